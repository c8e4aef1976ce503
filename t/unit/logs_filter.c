// pkgs: lua5.4
/*
 * logs_filter: records into Lua tables and back into JSON lines, with the
 * shipped example scripts scripts/logs_redact.lua and
 * scripts/logs_drop_health.lua run in a real Lua 5.4 state (the way
 * hook_run calls them: push, protected call, pull).
 */
#include "tap.h"

#include <lauxlib.h>
#include <lualib.h>

#include "../../modules/logs/logs_filter.c"
#include "../../modules/logs/logs_json.c"
#include "../../modules/logs/logs_time.c"

static lua_State *load(const char *script)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    char path[256];
    snprintf(path, sizeof path, "scripts/%s", script);
    if (luaL_dofile(L, path))
        diag("load %s: %s", script, lua_tostring(L, -1));
    return L;
}

static lua_State *load_text(const char *text)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, text))
        diag("load: %s", lua_tostring(L, -1));
    return L;
}

/* Runs filter(record) on msg; returns the pull result, out the JSON. */
static int run(lua_State *L, const char *msg, uint8_t flags, struct logs_buf *out)
{
    static const struct logs_kv meta[] = {{"namespace", "shop"}, {"pod", "cart-1"}, {"container", "app"}};
    struct logs_rec r = {.time_ns = 1475713029669794202ull, .msg = msg, .len = strlen(msg),
                         .stream = LOGS_STREAM_STDOUT, .flags = flags};
    out->n = 0;
    struct logs_filter_call c = {.rec = &r, .meta = meta, .n_meta = 3, .out = out};
    int top = lua_gettop(L);
    lua_getglobal(L, "filter");
    int n = logs_filter_push(L, &c);
    if (lua_pcall(L, n, 1, 0)) {
        diag("filter: %s", lua_tostring(L, -1));
        lua_settop(L, top);
        return -99;
    }
    int rc = logs_filter_pull(L, 1, &c);
    lua_settop(L, top);
    logs_buf_append(out, "", 1);
    out->n--;
    return rc;
}

int main(void)
{
    (void)tap_is_str;
    struct logs_buf out = {0};
    lua_State *L = load_text("function filter(r) return r end");
    is_int(run(L, "hello \"world\"", 0, &out), LOGS_FILTER_KEEP, "identity filter keeps");
    ok(strncmp(out.p, "{\"time\":\"2016-10-06T00:17:09.669794202Z\",", 41) == 0, "time first: %s", out.p);
    ok(strstr(out.p, "\"message\":\"hello \\\"world\\\"\""), "message escaped");
    ok(strstr(out.p, "\"namespace\":\"shop\"") && strstr(out.p, "\"stream\":\"stdout\""), "metadata and stream");
    ok(logs_json_is_object(out.p, out.p + out.n - 1), "valid JSON");
    lua_close(L);

    L = load_text("function filter(r) r.n = 42; r.f = 1.5; r.b = false; r.arr = {1, 'two', {x = 3}};"
                  " r.obj = {k = 'v'}; r.fn = print; r.inf = math.huge; r.message = nil; return r end");
    is_int(run(L, "m", 0, &out), LOGS_FILTER_KEEP, "modified record kept");
    ok(strstr(out.p, "\"n\":42") && strstr(out.p, "\"f\":1.5") && strstr(out.p, "\"b\":false"), "numbers, booleans");
    ok(strstr(out.p, "\"arr\":[1,\"two\",{\"x\":3}]"), "array with nested object: %s", out.p);
    ok(strstr(out.p, "\"obj\":{\"k\":\"v\"}"), "nested object");
    ok(!strstr(out.p, "\"fn\"") && !strstr(out.p, "\"message\""), "functions skipped, removed field gone");
    ok(strstr(out.p, "\"inf\":null"), "infinity as null");
    ok(logs_json_is_object(out.p, out.p + out.n - 1), "valid JSON");
    lua_close(L);

    L = load_text("function filter(r) local t = {} ; t.self = t ; r.loop = t ; return r end");
    is_int(run(L, "m", 0, &out), LOGS_FILTER_KEEP, "self-referencing table does not hang");
    ok(logs_json_is_object(out.p, out.p + out.n - 1), "depth-capped, valid JSON");
    lua_close(L);

    L = load_text("function filter(r) if r.message == 'x' then return nil end if r.message == 'y' then return false end"
                  " return 'oops' end");
    is_int(run(L, "x", 0, &out), LOGS_FILTER_DROP, "nil drops");
    is_int(run(L, "y", 0, &out), LOGS_FILTER_DROP, "false drops");
    ok(run(L, "z", 0, &out) < 0, "a string answer is an error (fallback)");
    lua_close(L);

    L = load("logs_redact.lua");
    run(L, "login user=bob password=hunter2 ok", 0, &out);
    ok(strstr(out.p, "password=[REDACTED] ok") && !strstr(out.p, "hunter2"), "redact: password=...: %s", out.p);
    ok(strstr(out.p, "\"redacted\":1"), "counts redactions");
    run(L, "Authorization: Bearer eyJhbGciOi.J9abc-_x", 0, &out);
    ok(strstr(out.p, "Bearer [REDACTED]") && !strstr(out.p, "eyJ"), "redact: bearer token");
    run(L, "{\"user\":\"bob\",\"password\":\"s3cr3t\"}", LOGS_REC_JSON, &out);
    ok(!strstr(out.p, "s3cr3t"), "redact: JSON password member");
    run(L, "key AKIAABCDEFGHIJKLMNOP used", 0, &out);
    ok(strstr(out.p, "[REDACTED-AWS-KEY]") && !strstr(out.p, "AKIAABCD"), "redact: AWS key id");
    run(L, "nothing secret here", 0, &out);
    ok(strstr(out.p, "\"message\":\"nothing secret here\"") && !strstr(out.p, "redacted"), "clean message untouched");
    lua_close(L);

    L = load("logs_drop_health.lua");
    is_int(run(L, "10.0.0.1 - - \"GET /healthz HTTP/1.1\" 200 2 \"-\" \"kube-probe/1.29\"", 0, &out),
           LOGS_FILTER_DROP, "drop: kube-probe request");
    is_int(run(L, "GET /readyz 200", 0, &out), LOGS_FILTER_DROP, "drop: GET /readyz");
    is_int(run(L, "GET /healthzone/list 200", 0, &out), LOGS_FILTER_KEEP, "keep: a path that only starts alike");
    is_int(run(L, "ERROR: payment failed", 0, &out), LOGS_FILTER_KEEP, "keep: application line");
    ok(strstr(out.p, "\"level\":\"error\""), "level tagged: %s", out.p);
    lua_close(L);
    logs_buf_free(&out);
    return done_testing();
}

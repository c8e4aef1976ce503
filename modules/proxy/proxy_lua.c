/*
 * proxy_lua: the route(req) hook. The request is handed to the script as a
 * table; the script returns nil (route as configured) or a table that may
 * pick a cluster, set request headers, or deny the request:
 *
 *   function route(req)
 *     -- req.method, req.path, req.authority, req.listener ("outbound"),
 *     -- req.protocol ("HTTP/1.1", "HTTP/2", "gRPC"),
 *     -- req.headers["x-name"] (lower-case names; repeated fields joined by ", "),
 *     -- req.caller.namespace, req.caller.name, req.caller.labels["app"]
 *     return { cluster = "v2", set_headers = { ["x-tenant"] = "a" } }
 *     -- or: return { deny = 403, reason = "not allowed" }
 *   end
 *
 * A result that breaks these rules (an unknown cluster, a header with a
 * newline, a status outside 100..599) counts as a script failure.
 */
#include <lua.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy_lua.h"

static void push_str(lua_State *L, const char *key, const char *v, size_t n)
{
    lua_pushlstring(L, v, n);
    lua_setfield(L, -2, key);
}

/* Adds one header to the table on top of the stack; a repeated name gets
 * its values joined with ", ", as HTTP allows for list fields. */
void proxy_lua_push_header(lua_State *L, const char *name, size_t nl, const char *value, size_t vl)
{
    char lname[256];
    if (nl >= sizeof lname)
        return;
    for (size_t i = 0; i < nl; i++)
        lname[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] + 32) : name[i];
    lua_pushlstring(L, lname, nl);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, value, vl);
        lua_concat(L, 3);
    } else {
        lua_pop(L, 1);
        lua_pushlstring(L, value, vl);
    }
    lua_rawset(L, -3);
}

static int route_push(lua_State *L, void *arg)
{
    struct proxy_lua_call *call = arg;
    lua_createtable(L, 0, 8);
    push_str(L, "method", call->method, call->method_len);
    push_str(L, "path", call->path, call->path_len);
    push_str(L, "authority", call->authority, call->authority_len);
    push_str(L, "listener", call->listener, strlen(call->listener));
    push_str(L, "protocol", call->protocol, strlen(call->protocol));
    lua_createtable(L, 0, 16);
    call->push_headers(L, call->headers_arg);
    lua_setfield(L, -2, "headers");
    lua_createtable(L, 0, 3);
    const struct otr_pod *pod = call->caller;
    push_str(L, "namespace", pod ? pod->namespace_ : "", pod ? strlen(pod->namespace_) : 0);
    push_str(L, "name", pod ? pod->name : "", pod ? strlen(pod->name) : 0);
    lua_createtable(L, 0, pod ? (int)pod->n_labels : 0);
    for (size_t i = 0; pod && i < pod->n_labels; i++)
        push_str(L, pod->labels[i].key, pod->labels[i].value, strlen(pod->labels[i].value));
    lua_setfield(L, -2, "labels");
    lua_setfield(L, -2, "caller");
    return 1;
}

static bool is_token(const char *s, size_t n)
{
    static const char punct[] = "!#$%&'*+-.^_`|~";
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && !memchr(punct, c, sizeof punct - 1))
            return false;
    }
    return true;
}

static bool is_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static int store(struct proxy_lua_out *out, const char *s, size_t n, uint16_t *off)
{
    if (out->store_len + n > sizeof out->store)
        return -1;
    memcpy(out->store + out->store_len, s, n);
    *off = (uint16_t)out->store_len;
    out->store_len += n;
    return 0;
}

static int pull_set_headers(lua_State *L, struct proxy_lua_out *out)
{
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        size_t nl, vl;
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 2);
            return OTR_EFALLBACK;
        }
        const char *n = lua_tolstring(L, -2, &nl), *v = lua_tolstring(L, -1, &vl);
        if (!is_token(n, nl) || !is_value(v, vl) || out->n_set == PROXY_LUA_MAX_SET ||
            store(out, n, nl, &out->set[out->n_set].name_off) ||
            store(out, v, vl, &out->set[out->n_set].value_off)) {
            lua_pop(L, 2);
            return OTR_EFALLBACK;
        }
        out->set[out->n_set].name_len = (uint16_t)nl;
        out->set[out->n_set].value_len = (uint16_t)vl;
        out->n_set++;
        lua_pop(L, 1);
    }
    return 0;
}

static int route_pull(lua_State *L, int nres, void *arg)
{
    struct proxy_lua_call *call = arg;
    struct proxy_lua_out *out = call->out;
    if (lua_isnil(L, -1))
        return 0;
    if (!lua_istable(L, -1))
        return OTR_EFALLBACK;
    int rc = 0;
    if (lua_getfield(L, -1, "deny") != LUA_TNIL) {
        int isnum;
        lua_Integer st = lua_tointegerx(L, -1, &isnum);
        if (!isnum || st < 100 || st > 599)
            rc = OTR_EFALLBACK;
        else
            out->deny = (int)st;
    }
    lua_pop(L, 1);
    if (!rc && lua_getfield(L, -1, "reason") == LUA_TSTRING) {
        size_t n;
        const char *r = lua_tolstring(L, -1, &n);
        if (n >= sizeof out->reason)
            n = sizeof out->reason - 1;
        memcpy(out->reason, r, n);
        out->reason[n] = 0;
        if (!is_value(out->reason, n))
            out->reason[0] = 0;
    }
    lua_pop(L, 1);
    if (!rc && lua_getfield(L, -1, "cluster") != LUA_TNIL) {
        size_t n;
        const char *name = lua_tolstring(L, -1, &n);
        out->cluster = -1;
        for (size_t i = 0; name && i < call->st->n_clusters; i++)
            if (strlen(call->st->clusters[i].conf->name) == n && !memcmp(call->st->clusters[i].conf->name, name, n))
                out->cluster = (int)i;
        if (out->cluster < 0)
            rc = OTR_EFALLBACK;
    }
    lua_pop(L, 1);
    if (!rc && lua_getfield(L, -1, "set_headers") != LUA_TNIL)
        rc = lua_istable(L, -1) ? pull_set_headers(L, out) : OTR_EFALLBACK;
    lua_pop(L, 1);
    return rc;
}

int proxy_lua_route(struct proxy_worker *pw, struct proxy_lua_call *call)
{
    struct proxy_lua_out *out = call->out;
    out->deny = 0;
    out->cluster = -1;
    out->n_set = 0;
    out->store_len = 0;
    out->reason[0] = 0;
    call->st = pw->st;
    int rc = pw->st->host->hook_run(pw->st->hook, pw->w, route_push, route_pull, 1, call);
    if (rc) {
        out->deny = 0;
        out->cluster = -1;
        out->n_set = 0;
    }
    return rc;
}

bool proxy_lua_sets(const struct proxy_lua_out *out, const char *name, size_t nl)
{
    for (unsigned i = 0; out && i < out->n_set; i++) {
        if (out->set[i].name_len != nl)
            continue;
        if (strncasecmp(out->store + out->set[i].name_off, name, nl) == 0)
            return true;
    }
    return false;
}

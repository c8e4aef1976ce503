/*
 * bench/lua_call: cost of one otr_lua_vm_call, the proxy's per-request path.
 *
 *   mkdir -p build/bench && cc -std=c11 -D_GNU_SOURCE -O2 -Icore/include -Icore \
 *      $(pkg-config --cflags lua5.4 libuv) bench/lua_call.c -o build/bench/lua_call $(pkg-config --libs lua5.4)
 *   build/bench/lua_call [iterations]
 *
 * Prints nanoseconds per call for:
 *   baseline  a bare lua_pcall of the trivial function (no budget, no
 *             sandbox, no protection of push/pull): the floor;
 *   trivial   a hook returning a constant, no arguments, one result read;
 *   fields    a hook reading 5 fields of a request table and returning one
 *             of them as a string; the table is built once and re-pushed;
 *   fields+new the same, building the 5-field table afresh for every call,
 *             as the proxy does per request.
 * Each case runs a warm-up, then the timed loop; min of 5 rounds is shown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

/* Included rather than linked so that the baseline can reach vm->L. */
#include "lua_host.c"
#include "../core/lua_pattern.c"

static const char script[] =
    "function trivial() return 1 end\n"
    "function route(req)\n"
    "  local m, p, h, a, c = req.method, req.path, req.host, req.agent, req.cluster\n"
    "  if m == 'GET' and h == 'example.org' and #p > 0 and a ~= nil then return c end\n"
    "  return 'default'\n"
    "end\n";

static int req_ref = LUA_NOREF;

static int push_none(lua_State *L, void *arg)
{
    return 0;
}

static void build_req(lua_State *L)
{
    lua_createtable(L, 0, 5);
    lua_pushliteral(L, "GET");
    lua_setfield(L, -2, "method");
    lua_pushliteral(L, "/api/v1/items");
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "example.org");
    lua_setfield(L, -2, "host");
    lua_pushliteral(L, "curl/8.0");
    lua_setfield(L, -2, "agent");
    lua_pushliteral(L, "backend");
    lua_setfield(L, -2, "cluster");
}

static int push_new(lua_State *L, void *arg)
{
    build_req(L);
    return 1;
}

/* Builds the table on the first call and keeps it in the registry. */
static int push_cached(lua_State *L, void *arg)
{
    if (req_ref == LUA_NOREF) {
        build_req(L);
        req_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, req_ref);
    return 1;
}

static int pull_int(lua_State *L, int n, void *arg)
{
    *(lua_Integer *)arg += lua_tointeger(L, -1);
    return 0;
}

static int pull_str(lua_State *L, int n, void *arg)
{
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    *(lua_Integer *)arg += (lua_Integer)len + (s ? s[0] : 0);
    return 0;
}

/* The floor: what a bare protected call of the same function costs. */
static double bench_raw(struct otr_lua_vm *vm, int id, long iters)
{
    lua_State *L = vm->L;
    int ref = otr_lua_vm_has_function(vm, id, "trivial") ? fn_cached(&vm->scripts[id], "trivial") : LUA_NOREF;
    lua_Integer sink = 0;
    double best = 1e30;
    lua_sethook(L, NULL, 0, 0); /* the next otr_lua_vm_call re-arms it */
    for (int round = 0; round < 6; round++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long i = 0; i < iters; i++) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
            if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
                fprintf(stderr, "baseline: %s\n", lua_tostring(L, -1));
                exit(1);
            }
            sink += lua_tointeger(L, -1);
            lua_settop(L, 0);
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double per = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / iters;
        if (round > 0 && per < best)
            best = per;
    }
    if (sink == 42)
        puts("");
    return best;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double bench_host(struct otr_lua_vm *vm, int id, const char *fn, int (*push)(lua_State *, void *),
                    int (*pull)(lua_State *, int, void *), long iters)
{
    lua_Integer sink = 0;
    char err[256];
    enum otr_lua_failure why;
    double best = 1e30;

    for (int round = 0; round < 6; round++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            if (otr_lua_vm_call(vm, id, fn, push, pull, 1, &sink, &why, err, sizeof err) != 0) {
                fprintf(stderr, "%s: %s\n", fn, err);
                exit(1);
            }
        }
        double per = (now_ns() - t0) / iters;
        if (round > 0 && per < best) /* round 0 is the warm-up */
            best = per;
    }
    if (sink == 42)
        puts("");
    return best;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 1000000;
    char path[] = "/tmp/otr-bench-lua-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, script, strlen(script)) != (ssize_t)strlen(script) || close(fd) != 0) {
        perror(path);
        return 1;
    }
    struct otr_lua_limits lim = {.memory = 16 << 20, .instructions = 1000000};
    struct otr_lua_vm *vm;
    char err[256];
    int id;
    if (otr_lua_vm_new(&lim, &vm) != 0 || otr_lua_vm_load(vm, path, &id, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    unlink(path);

    printf("iterations per round: %ld (best of 5 rounds)\n", iters);
    printf("baseline    %7.1f ns/call\n", bench_raw(vm, id, iters));
    printf("trivial     %7.1f ns/call\n", bench_host(vm, id, "trivial", push_none, pull_int, iters));
    printf("fields      %7.1f ns/call\n", bench_host(vm, id, "route", push_cached, pull_str, iters));
    printf("fields+new  %7.1f ns/call\n", bench_host(vm, id, "route", push_new, pull_str, iters));
    printf("memory in use after: %zu bytes\n", otr_lua_vm_memory(vm));
    otr_lua_vm_free(vm);
    return 0;
}

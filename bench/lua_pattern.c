/*
 * bench/lua_pattern: the metered pattern functions (core/lua_pattern.c)
 * against Lua 5.4's own, and how fast the sandbox cuts a runaway pattern.
 *
 *   mkdir -p build/bench && cc -std=c11 -D_GNU_SOURCE -O2 -Icore/include -Icore \
 *      $(pkg-config --cflags lua5.4 libuv) bench/lua_pattern.c -o build/bench/lua_pattern $(pkg-config --libs lua5.4)
 *   build/bench/lua_pattern [iterations]
 *
 * Times are thread CPU time (the machine may be shared).
 * Part 1: each typical call runs `iterations` times in a Lua loop on two
 * plain states, one with Lua's library ("lua"), one with ours ("ours",
 * metered by a counter that, like the sandbox's, subtracts from a budget).
 * Prints ns per call for both (best of 11 alternating rounds after a
 * warm-up), their ratio, and the steps ours charges per call (the
 * instructions a call costs a script in the sandbox).
 * Part 2: in a sandbox VM with a 1,000,000-instruction budget, CPU time
 * until a pathological call ends as a budget failure (Lua's own matcher
 * takes about 20 s on find_patho and gsub_patho); "spin", a plain Lua
 * loop, shows what the same budget of VM instructions takes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/lua_host.c"
#include "../core/lua_pattern.c"

static uint64_t bench_steps, bench_left = UINT64_MAX;

static void bench_charge(lua_State *L, uint64_t steps)
{
    bench_steps += steps;
    if (steps >= bench_left)
        luaL_error(L, "budget");
    bench_left -= steps;
}

static const struct otr_lua_pattern_meter bench_meter = {.charge = bench_charge};

static const struct {
    const char *name, *code;
} cases[] = {
    {"find plain (4th arg)", "return string.find(HDR, 'gzip', 1, true)"},
    {"find, no specials", "return string.find(HDR, 'curl')"},
    {"find keep%-alive", "return string.find(HDR, 'keep%-alive')"},
    {"match key = value", "return string.match('Content-Type = text/html ', '^(%w[%w-]*)%s*=%s*(.-)%s*$')"},
    {"match path captures", "return string.match('/api/v1/items/42', '^/api/v(%d+)/(%w+)/?(%d*)$')"},
    {"match IPv4", "return string.match('192.168.10.254', '^(%d+)%.(%d+)%.(%d+)%.(%d+)$')"},
    {"gmatch list of 8", "local n = 0 for x in string.gmatch('a,bb,c,dd,e,ff,g,hh', '([^,]+)') do n = n + 1 end return n"},
    {"gsub %s+ on 200 B", "return string.gsub(TEXT, '%s+', ' ')"},
    {"gsub function (%w+)", "return string.gsub('the quick brown fox jumps', '(%w+)', string.upper)"},
    {"gsub table $var", "return string.gsub('hello $name from $host', '%$(%w+)', VARS)"},
    {"find %d+ in 1 KiB", "return string.find(KB, '%d+')"},
    {"%b() nested", "return string.match('call(f(a, g(b)), c) tail', '%b()')"},
    {"trim", "return string.match('   padded value   ', '^%s*(.-)%s*$')"},
};

static const char setup[] =
    "HDR = 'Accept-Encoding: br, deflate, gzip; Connection: keep-alive; User-Agent: curl/8.0'\n"
    "TEXT = ('lorem  ipsum\\t dolor   sit amet '):rep(7)\n"
    "VARS = {name = 'world', host = 'outrider'}\n"
    "KB = ('x'):rep(1020) .. '1234'\n";

static lua_State *state_new(int ours)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (ours) {
        lua_getglobal(L, "string");
        otr_lua_pattern_install(L, -1, &bench_meter);
        lua_pop(L, 1);
    }
    if (luaL_dostring(L, setup) != LUA_OK) {
        fprintf(stderr, "setup: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    return L;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Compiles "run code n times" in L; returns a registry reference. */
static int loop_ref(lua_State *L, const char *code)
{
    char loop[512];
    snprintf(loop, sizeof loop, "local f = function() %s end return function(n) for i = 1, n do f() end end", code);
    if (luaL_dostring(L, loop) != LUA_OK) {
        fprintf(stderr, "%s: %s\n", code, lua_tostring(L, -1));
        exit(1);
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static double time_loop(lua_State *L, int ref, long iters)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushinteger(L, iters);
    double t0 = now_ns();
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        exit(1);
    }
    return (now_ns() - t0) / iters;
}

/* ns per call of code on each state, looped in Lua. The two alternate
 * round by round so that load from other processes hits both alike; the
 * best of ROUNDS rounds after a warm-up is kept. */
#define ROUNDS 11
static void time_case(lua_State *ref, lua_State *ours, const char *code, long iters, double *t_ref, double *t_ours)
{
    int r = loop_ref(ref, code), o = loop_ref(ours, code);
    *t_ref = *t_ours = 1e30;
    for (int round = 0; round <= ROUNDS; round++) {
        double a = time_loop(ref, r, iters), b = time_loop(ours, o, iters);
        if (round > 0 && a < *t_ref)
            *t_ref = a;
        if (round > 0 && b < *t_ours)
            *t_ours = b;
    }
    luaL_unref(ref, LUA_REGISTRYINDEX, r);
    luaL_unref(ours, LUA_REGISTRYINDEX, o);
}

static const char runaway[] =
    "local s = ('a'):rep(200)\n"
    "function find_patho() return string.find(s, '.-.-.-.-b') end\n"
    "function gsub_patho() return string.gsub(s, '.-.-.-.-b', '') end\n"
    "function backref_patho() return string.find(('a'):rep(5000), '(.-)%1b') end\n"
    "local hay, needle = ('a'):rep(1 << 20), ('a'):rep(1 << 10) .. 'b'\n"
    "function plain_loop() while true do string.find(hay, needle, 1, true) end end\n"
    "function spin() local x = 0 while true do x = x + 1 end end\n";

static void bench_cutoff(void)
{
    char path[] = "/tmp/otr-bench-pat-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, runaway, strlen(runaway)) != (ssize_t)strlen(runaway) || close(fd) != 0) {
        perror(path);
        exit(1);
    }
    struct otr_lua_limits lim = {.memory = 16 << 20, .instructions = 1000000};
    struct otr_lua_vm *vm;
    char err[256];
    int id;
    if (otr_lua_vm_new(&lim, &vm) != 0 || otr_lua_vm_load(vm, path, &id, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        exit(1);
    }
    unlink(path);
    static const char *const fns[] = {"spin", "find_patho", "gsub_patho", "backref_patho", "plain_loop"};
    printf("\nsandbox, budget 1,000,000 instructions: CPU time until OTR_LUA_BUDGET\n");
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
        enum otr_lua_failure why;
        double best = 1e30;
        for (int round = 0; round < ROUNDS; round++) {
            double t0 = now_ns();
            otr_lua_vm_call(vm, id, fns[i], NULL, NULL, 0, NULL, &why, err, sizeof err);
            double ms = (now_ns() - t0) / 1e6;
            if (why != OTR_LUA_BUDGET) {
                fprintf(stderr, "%s: not a budget failure (%d): %s\n", fns[i], why, err);
                exit(1);
            }
            if (ms < best)
                best = ms;
        }
        printf("  %-14s %7.2f ms\n", fns[i], best);
    }
    otr_lua_vm_free(vm);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 200000;
    lua_State *ref = state_new(0), *ours = state_new(1);

    printf("iterations per round: %ld (best of %d rounds, lua and ours alternating)\n", iters, ROUNDS);
    printf("%-22s %9s %9s %7s %7s\n", "case", "lua ns", "ours ns", "ratio", "steps");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double t_ref, t_ours;
        time_case(ref, ours, cases[i].code, iters, &t_ref, &t_ours);
        int o = loop_ref(ours, cases[i].code);
        bench_steps = 0;
        time_loop(ours, o, 1);
        luaL_unref(ours, LUA_REGISTRYINDEX, o);
        printf("%-22s %9.1f %9.1f %7.2f %7llu\n", cases[i].name, t_ref, t_ours, t_ours / t_ref,
               (unsigned long long)bench_steps);
    }
    lua_close(ref);
    lua_close(ours);
    bench_cutoff();
    return 0;
}

/*
 * Unit tests for core/lua_host.c: the sandbox, the memory cap, the
 * instruction budget, error messages and the call interface. Scripts are
 * written to a temporary directory and loaded like the agent loads them.
 * alarm() bounds the whole test: a budget that fails to stop a loop makes
 * the test die instead of hanging prove.
 */
#include "tap.h"

#include "../../core/lua_host.c"
#include "../../core/lua_pattern.c"

#include <unistd.h>

static char dir[64];

/* Writes a script and returns its path (static storage, one per slot). */
static const char *script_file(const char *name, const char *text)
{
    static char paths[32][128];
    static int next;
    char *p = paths[next++ % 32];
    snprintf(p, 128, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(text, 1, strlen(text), f) != strlen(text) || fclose(f) != 0) {
        perror(p);
        exit(2);
    }
    return p;
}

static struct otr_lua_vm *vm_or_die(size_t memory, uint64_t instructions)
{
    struct otr_lua_limits lim = {.memory = memory, .instructions = instructions};
    struct otr_lua_vm *vm;
    if (otr_lua_vm_new(&lim, &vm) != 0) {
        fprintf(stderr, "otr_lua_vm_new failed\n");
        exit(2);
    }
    return vm;
}

static int load_or_die(struct otr_lua_vm *vm, const char *path)
{
    char err[512];
    int id;
    if (otr_lua_vm_load(vm, path, &id, err, sizeof err) != 0) {
        fprintf(stderr, "load %s: %s\n", path, err);
        exit(2);
    }
    return id;
}

/* --- push/pull helpers ---------------------------------------------------- */

static int push_string(lua_State *L, void *arg)
{
    lua_pushstring(L, ((const char **)arg)[0]);
    return 1;
}

struct str_out {
    const char *in;
    char out[600];
};

/* Reads one result as text ("nil" for nil, "true"/"false" for booleans). */
static int pull_text(lua_State *L, int n, void *arg)
{
    struct str_out *o = arg;
    if (n != 1)
        return -1;
    if (lua_isnil(L, -1))
        snprintf(o->out, sizeof o->out, "nil");
    else if (lua_isboolean(L, -1))
        snprintf(o->out, sizeof o->out, "%s", lua_toboolean(L, -1) ? "true" : "false");
    else
        snprintf(o->out, sizeof o->out, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    return 0;
}

static int push_in(lua_State *L, void *arg)
{
    struct str_out *o = arg;
    if (!o->in)
        return 0;
    lua_pushstring(L, o->in);
    return 1;
}

/* Calls fn(in) and returns its single result as text, or "FAIL: <err>". */
static const char *eval(struct otr_lua_vm *vm, int id, const char *fn, const char *in)
{
    static struct str_out o;
    char err[512];
    enum otr_lua_failure why;
    o.in = in;
    o.out[0] = 0;
    if (otr_lua_vm_call(vm, id, fn, push_in, pull_text, 1, &o, &why, err, sizeof err) != 0)
        snprintf(o.out, sizeof o.out, "FAIL: %s", err);
    return o.out;
}

/* Calls fn with no arguments and no results, returning the failure class. */
static enum otr_lua_failure run(struct otr_lua_vm *vm, int id, const char *fn, char *err, size_t errlen)
{
    enum otr_lua_failure why = (enum otr_lua_failure)-1;
    int rc = otr_lua_vm_call(vm, id, fn, NULL, NULL, 0, NULL, &why, err, errlen);
    if (why != OTR_LUA_OK && rc != OTR_EFALLBACK)
        return (enum otr_lua_failure)-2;
    return why;
}

/* --- sandbox ---------------------------------------------------------------- */

static const char probe_lua[] =
    "-- look up a dotted name in this script's environment\n"
    "function typeof(name)\n"
    "  local v = _ENV\n"
    "  for part in string.gmatch(name, '[^.]+') do\n"
    "    if type(v) ~= 'table' then return 'nil' end\n"
    "    v = v[part]\n"
    "  end\n"
    "  return type(v)\n"
    "end\n"
    "function eval(code)\n"
    "  local f, e = load(code)\n"
    "  if not f then return 'load error: ' .. e end\n"
    "  local ok, r = pcall(f)\n"
    "  if not ok then return 'error: ' .. tostring(r) end\n"
    "  return r\n"
    "end\n";

static void test_sandbox(void)
{
    static const char *const absent[] = {
        "io",          "debug",     "package",    "require",    "dofile",     "loadfile",
        "collectgarbage", "os.execute", "os.exit", "os.remove", "os.rename", "os.getenv",
        "os.tmpname", "os.setlocale", "string.dump", "math.randomseed", "warn", "newproxy",
    };
    static const char *const present[][2] = {
        {"assert", "function"},   {"error", "function"},     {"ipairs", "function"},  {"next", "function"},
        {"pairs", "function"},    {"pcall", "function"},     {"xpcall", "function"},  {"select", "function"},
        {"tonumber", "function"}, {"tostring", "function"},  {"type", "function"},    {"rawequal", "function"},
        {"rawget", "function"},   {"rawset", "function"},    {"rawlen", "function"},  {"setmetatable", "function"},
        {"getmetatable", "function"}, {"print", "function"}, {"_VERSION", "string"},  {"load", "function"},
        {"string.format", "function"}, {"table.concat", "function"}, {"math.floor", "function"},
        {"utf8.char", "function"}, {"coroutine.wrap", "function"}, {"os.time", "function"},
        {"os.clock", "function"}, {"os.date", "function"}, {"math.random", "function"},
    };
    struct otr_lua_vm *vm = vm_or_die(8 << 20, 1000000);
    int id = load_or_die(vm, script_file("probe.lua", probe_lua));

    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
        is_str(eval(vm, id, "typeof", absent[i]), "nil", "sandbox: %s is absent", absent[i]);
    for (size_t i = 0; i < sizeof present / sizeof *present; i++)
        is_str(eval(vm, id, "typeof", present[i][0]), present[i][1], "sandbox: %s is a %s", present[i][0],
               present[i][1]);

    /* The string metatable: method calls work, dump is gone from the shared
     * table, and the metatable itself is out of reach. */
    is_str(eval(vm, id, "eval", "return ('abc'):upper()"), "ABC", "string methods work through the metatable");
    is_str(eval(vm, id, "eval", "return type(('').dump)"), "nil", "('').dump is nil: shared string table reduced");
    is_str(eval(vm, id, "eval", "return tostring(getmetatable(''))"), "false", "getmetatable('') is hidden");
    is_str(eval(vm, id, "eval", "return type(('').__index)"), "nil", "('').__index reaches nothing");

    /* The real globals of the state are not reachable. */
    lua_pushliteral(vm->L, "real");
    lua_setglobal(vm->L, "OTR_SECRET");
    is_str(eval(vm, id, "eval", "return tostring(_G.OTR_SECRET)"), "nil", "_G is not the state's globals");
    is_str(eval(vm, id, "eval", "return tostring(_G == _ENV)"), "true", "_G is the script's own environment");
    is_str(eval(vm, id, "eval", "return tostring(load('return OTR_SECRET')())"), "nil",
           "load() without env gets the sandbox, not the globals");
    is_str(eval(vm, id, "eval", "return tostring(load('return io')())"), "nil", "load()ed chunk sees no io");
    is_str(eval(vm, id, "eval", "return tostring(getmetatable(_G))"), "nil", "no metatable leads out of _G");
    const char *bin = eval(vm, id, "eval", "local f, e = load('\\27Lua\\84\\0', 'x', 'b') return e");
    ok(strstr(bin, "attempt to load a binary chunk") != NULL, "load() of a binary chunk is refused (even asking for mode b): %s", bin);

    /* The wrapped coroutine and xpcall functions keep Lua's semantics. */
    is_str(eval(vm, id, "eval",
                "local g = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)"
                " return g() + g() + g()"),
           "6", "coroutine.wrap generator");
    const char *werr = eval(vm, id, "eval", "local ok, e = pcall(coroutine.wrap(function() error('boom') end)) return e");
    ok(strstr(werr, "\"]:1: boom") != NULL, "coroutine.wrap propagates errors: %s", werr);
    is_str(eval(vm, id, "eval", "return select(2, xpcall(function() error('e', 0) end, function(m) return 'handled ' .. m end))"),
           "handled e", "xpcall calls its message handler");
    is_str(eval(vm, id, "eval", "return select('#', xpcall(function(...) return ... end, print, 1, 2, 3))"), "4",
           "xpcall passes arguments and returns true plus results");
    is_str(eval(vm, id, "eval",
                "local co = coroutine.wrap(function() return xpcall(function() coroutine.yield(1) return 2 end, print) end)"
                " local a = co() local ok, b = co() return a .. tostring(ok) .. b"),
           "1true2", "xpcall body may yield");
    is_str(eval(vm, id, "eval", "local co = coroutine.create(function() coroutine.yield() end) coroutine.resume(co)"
                                " return tostring(coroutine.close(co)) .. coroutine.status(co)"),
           "truedead", "coroutine.close of a suspended coroutine");

    /* __gc would run outside the budget: refused. */
    ok(strstr(eval(vm, id, "eval", "setmetatable({}, {__gc = function() while true do end end})"),
              "__gc metamethods are not allowed") != NULL,
       "setmetatable with __gc is refused");
    is_str(eval(vm, id, "eval", "local t = setmetatable({}, {__index = function() return 7 end}) return t.x"), "7",
           "setmetatable without __gc works");

    /* print writes nothing and is counted. */
    uint64_t before = otr_lua_vm_prints(vm);
    eval(vm, id, "eval", "print('hello', 1) print() return 0");
    is_int(otr_lua_vm_prints(vm) - before, 2, "print() is counted, not written");
    otr_lua_vm_free(vm);
}

/* A precompiled script file is refused with a message naming it. */
static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    return fwrite(p, 1, sz, ud) == sz ? 0 : 1;
}

static void test_binary_file(void)
{
    char path[128], err[512];
    int id = -1;
    snprintf(path, sizeof path, "%s/binary.lua", dir);
    lua_State *L = luaL_newstate();
    FILE *f = fopen(path, "wb");
    if (!f || luaL_loadstring(L, "function route() return 1 end") != LUA_OK || lua_dump(L, dump_writer, f, 0) != 0)
        exit(2);
    fclose(f);
    lua_close(L);

    struct otr_lua_vm *vm = vm_or_die(8 << 20, 1000000);
    is_int(otr_lua_vm_load(vm, path, &id, err, sizeof err), OTR_ECONFIG, "binary script file: load fails");
    ok(strncmp(err, path, strlen(path)) == 0 && strstr(err, "binary") != NULL, "binary file message: %s", err);
    is_int(vm->n_scripts, 0, "binary file: no script registered");
    otr_lua_vm_free(vm);
}

/* --- budget ------------------------------------------------------------------ */

static const char loops_lua[] =
    "function spin() while true do end end\n"                                       /* 1 */
    "function pcall_spin()\n"                                                       /* 2 */
    "  while true do pcall(function() while true do end end) end\n"                /* 3 */
    "end\n"                                                                         /* 4 */
    "function xpcall_spin()\n"                                                      /* 5 */
    "  local h = function() while true do end end\n"                                /* 6 */
    "  while true do xpcall(function() while true do end end, h) end\n"             /* 7 */
    "end\n"                                                                         /* 8 */
    "function co_spin()\n"                                                          /* 9 */
    "  local co = coroutine.wrap(function() while true do end end)\n"               /* 10 */
    "  co()\n"                                                                      /* 11 */
    "end\n"                                                                         /* 12 */
    "function co_spawn()\n"                                                         /* 13 */
    "  local function spawn(d)\n"                                                   /* 14 */
    "    while true do\n"                                                           /* 15 */
    "      local co = coroutine.create(function() if d < 150 then spawn(d + 1) end while true do end end)\n"
    "      coroutine.resume(co)\n"                                                  /* 17 */
    "    end\n"                                                                     /* 18 */
    "  end\n"                                                                       /* 19 */
    "  spawn(0)\n"                                                                  /* 20 */
    "end\n"                                                                         /* 21 */
    "function count(n) local x = 0 for i = 1, n do x = x + i end return x end\n"    /* 22 */
    "function fine() return 'fine' end\n"                                           /* 23 */
    "parked = coroutine.create(function() while true do coroutine.yield() end end)\n"
    "function resume_parked() while true do coroutine.resume(parked) end end\n"
    "local function looping_close()\n"
    "  local mt = {}\n"
    "  local obj = setmetatable({}, mt)\n"
    "  mt.__close = function() while true do end end\n"
    "  return obj\n"
    "end\n"
    "function tbc_wrap()\n"
    "  local co = coroutine.wrap(function() local x <close> = looping_close() while true do end end)\n"
    "  co()\n"
    "end\n"
    "function tbc_kill()\n"
    "  dead = coroutine.create(function() local x <close> = looping_close() while true do end end)\n"
    "  return tostring(coroutine.resume(dead))\n"
    "end\n"
    "function tbc_close() return tostring(coroutine.close(dead)) end\n"
    "local huge_mt = {__len = function() return 1 << 40 end, __index = rawlen, __newindex = rawequal}\n"
    "function move_spin() table.move({}, 1, 1 << 40, 2) end\n"
    "function insert_spin() table.insert(setmetatable({}, huge_mt), 1, 'x') end\n"
    "function remove_spin() table.remove(setmetatable({}, huge_mt), 1) end\n"
    "function sort_spin()\n"
    "  table.sort(setmetatable({}, {__len = function() return (1 << 31) - 2 end, __index = rawlen, __newindex = rawequal}))\n"
    "end\n"
    "function rep_empty() return #string.rep('', 1 << 50) + #(''):rep(1 << 50, '') end\n"
    "function legit_tables()\n"
    "  local t = {}\n"
    "  for i = 1, 3000 do table.insert(t, (i * 7919) % 1000) end\n"
    "  table.insert(t, 1, 5) table.remove(t, 1) table.remove(t)\n"
    "  table.sort(t)\n"
    "  local u = table.move(t, 1, #t, 1, {})\n"
    "  return #table.concat(u, ',') + select('#', table.unpack(u)) + #string.rep('ab', 3, '-')\n"
    "end\n"
    "function tostring_loop() error(setmetatable({}, {__tostring = function() while true do end end})) end\n"
    "function close_in_budget()\n"
    "  local x <close> = looping_close()\n"
    "  return 1\n"
    "end\n"
    "big = string.rep('x', 1 << 20)\n"
    "rounds = 0\n"
    "local function upper_forever() while true do local u = big:upper() rounds = rounds + 1 end end\n"
    "local string_work = {\n"
    "  upper = upper_forever,\n"
    "  format = function() while true do local f = string.format('%s%s', big, big) rounds = rounds + 1 end end,\n"
    "  concat = function() while true do local c = big .. 'y' rounds = rounds + 1 end end,\n"
    "  pcall = function() while true do pcall(upper_forever) end end,\n"
    "  coroutine = function() coroutine.wrap(upper_forever)() end,\n"
    "}\n"
    "function string_spin(kind) rounds = 0 string_work[kind]() end\n"
    "function string_rounds() return tostring(rounds) end\n"
    "function legit_strings()\n"
    "  local s = ''\n"
    "  for i = 1, 200 do s = s .. string.format('%d,', i):upper() end\n"
    "  return #s\n"
    "end\n";

static int push_int(lua_State *L, void *arg)
{
    lua_pushinteger(L, *(lua_Integer *)arg);
    return 1;
}

static void test_budget(void)
{
    char err[512];
    struct otr_lua_vm *vm = vm_or_die(8 << 20, 100000);
    int id = load_or_die(vm, script_file("loops.lua", loops_lua));
    char want[256];

    is_int(run(vm, id, "spin", err, sizeof err), OTR_LUA_BUDGET, "infinite loop: budget");
    snprintf(want, sizeof want, "%s/loops.lua:1: instruction budget exhausted (100000 instructions)", dir);
    is_str(err, want, "budget message names file and line");
    is_int(run(vm, id, "pcall_spin", err, sizeof err), OTR_LUA_BUDGET, "pcall-wrapped infinite loop: budget");
    is_int(run(vm, id, "xpcall_spin", err, sizeof err), OTR_LUA_BUDGET, "xpcall with looping handler: budget");
    is_int(run(vm, id, "co_spin", err, sizeof err), OTR_LUA_BUDGET, "loop inside a coroutine: budget");
    is_int(run(vm, id, "co_spawn", err, sizeof err), OTR_LUA_BUDGET, "loop spawning looping coroutines: budget");
    is_int(run(vm, id, "resume_parked", err, sizeof err), OTR_LUA_BUDGET, "loop resuming a parked coroutine: budget");
    /* A budget error raised in the hook leaves Lua's hooks off until a pcall
     * catches it; script code that could run in between must not. */
    is_int(run(vm, id, "tbc_wrap", err, sizeof err), OTR_LUA_BUDGET,
           "coroutine.wrap of a killed coroutine with a looping __close: budget");
    is_str(eval(vm, id, "tbc_kill", NULL), "false", "a coroutine killed by the budget, error caught by the script");
    is_str(eval(vm, id, "tbc_close", NULL), "false",
           "next call: closing it does not run its looping __close unhooked");
    is_int(run(vm, id, "close_in_budget", err, sizeof err), OTR_LUA_BUDGET, "a looping __close in a call: budget");
    static const char *const c_loops[] = {"move_spin", "insert_spin", "remove_spin", "sort_spin"};
    for (size_t i = 0; i < sizeof c_loops / sizeof *c_loops; i++)
        is_int(run(vm, id, c_loops[i], err, sizeof err), OTR_LUA_BUDGET, "C loop of a table function (%s): budget",
               c_loops[i]);
    is_str(eval(vm, id, "rep_empty", NULL), "0", "string.rep of nothing 2^50 times returns at once");
    /* A 1 MiB string function is one instruction but allocates 1-2 MiB
     * (16k-80k instructions' worth): a few rounds fit in the budget;
     * without charging the bytes, ~100000 / 7 would run (seconds). */
    static const char *const string_kinds[] = {"upper", "format", "concat", "pcall", "coroutine"};
    for (size_t i = 0; i < sizeof string_kinds / sizeof *string_kinds; i++) {
        enum otr_lua_failure why;
        const char *kind[] = {string_kinds[i]};
        otr_lua_vm_call(vm, id, "string_spin", push_string, NULL, 1, kind, &why, err, sizeof err);
        is_int(why, OTR_LUA_BUDGET, "loop of 1 MiB string work (%s): budget", string_kinds[i]);
        const char *rounds = eval(vm, id, "string_rounds", NULL);
        ok(atoi(rounds) <= 8, "cut off after %s rounds (the allocated bytes are charged)", rounds);
    }
    is_str(eval(vm, id, "legit_strings", NULL), "692", "ordinary string building fits the budget");
    is_str(eval(vm, id, "legit_tables", NULL), "14674", "table functions on 3000 elements fit the budget (and compute the right thing)");
    is_int(run(vm, id, "tostring_loop", err, sizeof err), OTR_LUA_BUDGET,
           "an error object whose __tostring loops: budget");
    is_str(eval(vm, id, "fine", NULL), "fine", "VM usable after budget failures");

    /* The budget is per call and close to its nominal size: a loop of ~40k
     * instructions passes (twice in a row), one of ~400k does not. */
    lua_Integer n = 10000;
    enum otr_lua_failure why;
    for (int i = 0; i < 2; i++) {
        int rc = otr_lua_vm_call(vm, id, "count", push_int, NULL, 1, &n, &why, err, sizeof err);
        is_int(rc == 0 && why == OTR_LUA_OK, 1, "count(10000) within budget, call %d", i + 1);
    }
    n = 100000;
    otr_lua_vm_call(vm, id, "count", push_int, NULL, 1, &n, &why, err, sizeof err);
    is_int(why, OTR_LUA_BUDGET, "count(100000) exceeds a 100000 budget");
    otr_lua_vm_free(vm);

    /* Top-level code runs under the budget too. */
    vm = vm_or_die(8 << 20, 100000);
    int sid = -1;
    const char *path = script_file("toplevel_loop.lua", "x = 1\nwhile true do end\n");
    is_int(otr_lua_vm_load(vm, path, &sid, err, sizeof err), OTR_ECONFIG, "looping top level: load fails");
    snprintf(want, sizeof want, "%s:2: instruction budget exhausted", path);
    ok(strncmp(err, want, strlen(want)) == 0, "looping top level message: %s", err);
    otr_lua_vm_free(vm);
}

/* --- memory ------------------------------------------------------------------ */

static const char bombs_lua[] =
    "function doubling() local s = 'x' local keep = {} while true do s = s .. s keep[#keep + 1] = s end end\n"
    "function rep() return #string.rep('x', 1 << 30) end\n"
    "function grow() local t = {} local i = 0 while true do i = i + 1 t[i] = {i} end end\n"
    "function concat() local t = {} for i = 1, 1e6 do t[i] = 'abcdefgh' end return table.concat(t) end\n"
    "function caught() local ok, e = pcall(string.rep, 'x', 1 << 30) return tostring(e) end\n"
    "function fine() return 'fine' end\n";

static void test_memory(void)
{
    char err[512], want[256];
    struct otr_lua_vm *vm = vm_or_die(4 << 20, 100000000);
    int id = load_or_die(vm, script_file("bombs.lua", bombs_lua));
    static const char *const bombs[] = {"doubling", "rep", "grow", "concat"};

    lua_gc(vm->L, LUA_GCCOLLECT, 0);
    size_t baseline = otr_lua_vm_memory(vm);
    ok(baseline > 0 && baseline < (1u << 20), "baseline memory %zu bytes", baseline);
    snprintf(want, sizeof want, "%s/bombs.lua: memory limit reached (4194304 bytes)", dir);
    for (size_t i = 0; i < sizeof bombs / sizeof *bombs; i++) {
        is_int(run(vm, id, bombs[i], err, sizeof err), OTR_LUA_MEMORY, "memory bomb %s: cut off", bombs[i]);
        is_str(err, want, "memory bomb %s: message", bombs[i]);
        ok(otr_lua_vm_memory(vm) <= baseline + (64u << 10), "memory bomb %s: memory back to %zu (baseline %zu)",
           bombs[i], otr_lua_vm_memory(vm), baseline);
        is_str(eval(vm, id, "fine", NULL), "fine", "memory bomb %s: VM usable after", bombs[i]);
    }
    is_str(eval(vm, id, "caught", NULL), "not enough memory", "a script can catch its own memory error");
    ok(otr_lua_vm_memory(vm) <= (4u << 20), "memory never above the cap");
    otr_lua_vm_free(vm);

    /* Top-level code runs under the cap too. */
    vm = vm_or_die(4 << 20, 100000000);
    int sid = -1;
    const char *path = script_file("toplevel_bomb.lua", "big = string.rep('x', 8 << 20)\n");
    is_int(otr_lua_vm_load(vm, path, &sid, err, sizeof err), OTR_ECONFIG, "top-level memory bomb: load fails");
    snprintf(want, sizeof want, "%s: memory limit reached (4194304 bytes)", path);
    is_str(err, want, "top-level memory bomb message");
    otr_lua_vm_free(vm);

    struct otr_lua_limits tiny = {.memory = 1024, .instructions = 1000};
    is_int(otr_lua_vm_new(&tiny, &vm), UV_ENOMEM, "a cap too small for the libraries: UV_ENOMEM");
    ok(vm == NULL, "no VM returned on failure");
}

/* --- errors ------------------------------------------------------------------ */

static const char errors_lua[] =
    "function index_nil()\n"              /* 1 */
    "  local req = nil\n"                 /* 2 */
    "  return req.path\n"                 /* 3 */
    "end\n"                               /* 4 */
    "function raise() error('no route') end\n" /* 5 */
    "function raise_table()\n"            /* 6 */
    "  error({code = 7})\n"               /* 7 */
    "end\n"                               /* 8 */
    "function bad_arg() return string.rep() end\n" /* 9 */
    "notfn = 5\n"
    "function route() return 'ok' end\n";

static void test_errors(void)
{
    char err[512], want[256];
    struct otr_lua_vm *vm = vm_or_die(8 << 20, 1000000);
    const char *path = script_file("errors.lua", errors_lua);
    int id = load_or_die(vm, path);
    int top = lua_gettop(vm->L);

    is_int(run(vm, id, "index_nil", err, sizeof err), OTR_LUA_ERROR, "runtime error: classified ERROR");
    snprintf(want, sizeof want, "%s:3: attempt to index a nil value (local 'req')", path);
    is_str(err, want, "runtime error: file:line: message");
    run(vm, id, "raise", err, sizeof err);
    snprintf(want, sizeof want, "%s:5: no route", path);
    is_str(err, want, "error('...'): file:line: message");
    run(vm, id, "raise_table", err, sizeof err);
    snprintf(want, sizeof want, "%s:7: (error object is a table value)", path);
    is_str(err, want, "error({...}): placed and described");
    run(vm, id, "bad_arg", err, sizeof err);
    snprintf(want, sizeof want, "%s:9: bad argument #1 to 'rep'", path);
    ok(strncmp(err, want, strlen(want)) == 0, "error in a library function: %s", err);
    is_int(lua_gettop(vm->L), top, "stack restored after failures");

    /* Missing functions. */
    is_int(run(vm, id, "nope", err, sizeof err), OTR_LUA_MISSING, "undefined function: MISSING");
    snprintf(want, sizeof want, "%s: function 'nope' is not defined", path);
    is_str(err, want, "undefined function: message");
    is_int(run(vm, id, "notfn", err, sizeof err), OTR_LUA_MISSING, "global that is not a function: MISSING");
    is_int(otr_lua_vm_has_function(vm, id, "route"), 1, "has_function: defined");
    is_int(otr_lua_vm_has_function(vm, id, "nope"), 0, "has_function: undefined");
    is_int(otr_lua_vm_has_function(vm, id, "notfn"), 0, "has_function: not a function");
    is_int(otr_lua_vm_has_function(vm, 99, "route"), 0, "has_function: unknown script");
    enum otr_lua_failure why;
    is_int(otr_lua_vm_call(vm, 99, "route", NULL, NULL, 0, NULL, &why, err, sizeof err), UV_EINVAL,
           "call on an unknown script id: UV_EINVAL");
    is_int(lua_gettop(vm->L), top, "stack restored after missing functions");

    /* Syntax errors at load. */
    int sid = -1;
    const char *bad = script_file("syntax.lua", "function route()\n  x = = 1\nend\n");
    is_int(otr_lua_vm_load(vm, bad, &sid, err, sizeof err), OTR_ECONFIG, "syntax error: load fails");
    snprintf(want, sizeof want, "%s:2: unexpected symbol near '='", bad);
    is_str(err, want, "syntax error: file:line: message");
    const char *rt = script_file("toplevel_error.lua", "local t = nil\nlocal x = t.y\n");
    is_int(otr_lua_vm_load(vm, rt, &sid, err, sizeof err), OTR_ECONFIG, "top-level runtime error: load fails");
    snprintf(want, sizeof want, "%s:2: attempt to index a nil value (local 't')", rt);
    is_str(err, want, "top-level runtime error: file:line: message");
    snprintf(want, sizeof want, "%s/does-not-exist.lua", dir);
    is_int(otr_lua_vm_load(vm, want, &sid, err, sizeof err), OTR_ECONFIG, "missing file: load fails");
    ok(strstr(err, "does-not-exist.lua: No such file or directory") != NULL, "missing file message: %s", err);
    is_int(vm->n_scripts, 1, "failed loads register nothing");
    otr_lua_vm_free(vm);
}

/* --- calls -------------------------------------------------------------------- */

static const char route_lua[] =
    "function route(req, n)\n"
    "  return req.method .. ' ' .. req.path, n * 2, req.headers.host == 'example.org', nil, 1.5\n"
    "end\n"
    "function swap(a, b) return b, a end\n";

struct roundtrip {
    char s[64];
    lua_Integer i;
    int b, nil_seen;
    double d;
};

static int push_req(lua_State *L, void *arg)
{
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "GET");
    lua_setfield(L, -2, "method");
    lua_pushliteral(L, "/x");
    lua_setfield(L, -2, "path");
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "example.org");
    lua_setfield(L, -2, "host");
    lua_setfield(L, -2, "headers");
    lua_pushinteger(L, 21);
    return 2;
}

static int pull_req(lua_State *L, int n, void *arg)
{
    struct roundtrip *r = arg;
    if (n != 5)
        return -100 - n;
    snprintf(r->s, sizeof r->s, "%s", lua_tostring(L, -5));
    r->i = lua_tointeger(L, -4);
    r->b = lua_toboolean(L, -3);
    r->nil_seen = lua_isnil(L, -2);
    r->d = lua_tonumber(L, -1);
    return 7;
}

static int pull_count(lua_State *L, int n, void *arg)
{
    return n;
}

static int pull_raises(lua_State *L, int n, void *arg)
{
    luaL_checkinteger(L, -1);
    return 0;
}

static void test_calls(void)
{
    char err[512];
    enum otr_lua_failure why;
    struct otr_lua_vm *vm = vm_or_die(8 << 20, 1000000);
    int id = load_or_die(vm, script_file("route.lua", route_lua));
    int top = lua_gettop(vm->L);
    struct roundtrip r = {0};

    is_int(otr_lua_vm_call(vm, id, "route", push_req, pull_req, 5, &r, &why, err, sizeof err), 7,
           "call returns pull's result");
    is_int(why, OTR_LUA_OK, "why is OK on success");
    is_str(r.s, "GET /x", "table fields in, string out");
    is_int(r.i, 42, "integer out");
    is_int(r.b, 1, "nested table read, boolean out");
    is_int(r.nil_seen, 1, "nil out");
    ok(r.d == 1.5, "float out");
    is_int(lua_gettop(vm->L), top, "stack restored after a call");
    /* Second call goes through the cached reference. */
    memset(&r, 0, sizeof r);
    is_int(otr_lua_vm_call(vm, id, "route", push_req, pull_req, 5, &r, &why, err, sizeof err), 7,
           "second call (cached function) works");
    is_str(r.s, "GET /x", "second call result");
    is_int(vm->scripts[id].n_fns, 1, "one cached function reference for (route.lua, route)");

    const char *args[] = {"a"};
    is_int(otr_lua_vm_call(vm, id, "swap", push_string, pull_count, LUA_MULTRET, args, &why, err, sizeof err), 2,
           "LUA_MULTRET gives pull the actual result count");
    is_int(otr_lua_vm_call(vm, id, "swap", push_string, pull_raises, 1, args, &why, err, sizeof err), OTR_EFALLBACK,
           "an error raised by pull falls back");
    is_int(why, OTR_LUA_ERROR, "an error raised by pull is an ERROR");
    ok(strstr(err, "number expected") != NULL, "pull's error message: %s", err);
    is_int(lua_gettop(vm->L), top, "stack restored after pull raised");
    otr_lua_vm_free(vm);
}

/* --- isolation and identity ------------------------------------------------- */

static void test_isolation(void)
{
    char err[512];
    struct otr_lua_vm *vm = vm_or_die(8 << 20, 1000000);
    const char *a_path = script_file("a.lua", "shared = 'from a'\n"
                                              "string.upper = function() return 'hijacked' end\n"
                                              "function get() return tostring(shared) end\n");
    const char *b_path = script_file("b.lua", "function get() return tostring(shared) end\n"
                                              "function upper() return string.upper('x') .. ('y'):upper() end\n"
                                              "function set_mt() getmetatable('').__index = {} end\n");
    int a = load_or_die(vm, a_path), b = load_or_die(vm, b_path);

    ok(a != b, "two scripts get two ids");
    is_str(eval(vm, a, "get", NULL), "from a", "a sees its own global");
    is_str(eval(vm, b, "get", NULL), "nil", "b does not see a's global");
    is_str(eval(vm, b, "upper", NULL), "XY", "a replacing string.upper does not affect b");
    is_int(run(vm, b, "set_mt", err, sizeof err), OTR_LUA_ERROR, "the shared string metatable cannot be changed");
    is_int(otr_lua_vm_has_function(vm, a, "upper"), 0, "a does not see b's functions");

    int again = -1;
    is_int(otr_lua_vm_load(vm, a_path, &again, err, sizeof err), 0, "loading a.lua again succeeds");
    is_int(again, a, "loading the same path twice returns the same id");
    char other[160];
    snprintf(other, sizeof other, "%s/./a.lua", dir);
    is_int(otr_lua_vm_load(vm, other, &again, err, sizeof err), 0, "loading a.lua by another spelling");
    is_int(again, a, "another spelling of the same file returns the same id");
    is_int(vm->n_scripts, 2, "no extra script registered");
    otr_lua_vm_free(vm);
}

/* --- pattern functions ---------------------------------------------------- */

/* Lua's matcher runs in C without executing instructions; the sandbox's
 * string.find/match/gmatch/gsub (core/lua_pattern.c) charge their steps to
 * the budget. Each of these would otherwise stall the worker for seconds
 * (the first one about 20 s) or, for the loops, much longer. */
static const char patterns_lua[] =
    "local s = ('a'):rep(200)\n"                                                     /* 1 */
    "local p = '.-.-.-.-b'\n"                                                        /* 2 */
    "function find_patho() return string.find(s, p) end\n"                           /* 3 */
    "function match_patho() return string.match(s, p) end\n"                         /* 4 */
    "function gmatch_patho() for x in string.gmatch(s, p) do end end\n"              /* 5 */
    "function gsub_patho() return string.gsub(s, p, 'x') end\n"                      /* 6 */
    "function method_patho() return s:find(p) end\n"                                 /* 7 */
    "function pcall_patho() while true do pcall(string.find, s, p) end end\n"        /* 8 */
    "function backref_patho() return string.find(('a'):rep(5000), '(.-)%1b') end\n"  /* 9 */
    "function balance_patho() return string.find(('('):rep(20000), '%b()') end\n"    /* 10 */
    "local hay, needle = ('a'):rep(1 << 16), ('a'):rep(1 << 12) .. 'b'\n"            /* 11 */
    "function plain_loop() for i = 1, 1000 do string.find(hay, needle, 1, true) end end\n"
    "function nospecial_loop() for i = 1, 1000 do string.find(hay, needle) end end\n" /* 13 */
    "function gsub_template()\n"                                                     /* 14 */
    "  return #string.gsub(('x'):rep(50000), '(y*)', ('%1'):rep(10000))\n"           /* 15 */
    "end\n"                                                                          /* 16 */
    "function gsub_find() return string.gsub(s, '.', function(c) return string.find(s, p) end) end\n"
    "function legit(req)\n"                                                          /* 18 */
    "  local out = {}\n"                                                             /* 19 */
    "  for k, v in req:gmatch('(%w+)=([^;]*)') do out[#out + 1] = k .. ':' .. v end\n"
    "  local host = req:match('host=([%w.]+)')\n"                                    /* 21 */
    "  local n = select(2, req:gsub(';', ';'))\n"                                    /* 22 */
    "  return table.concat(out, ',') .. '|' .. host .. '|' .. n .. '|' .. tostring(req:find('x=1', 1, true))\n"
    "end\n"                                                                          /* 24 */
    "function malformed() local ok, e = pcall(string.find, 'a', 'a[') return e end\n"
    "function bad_repl() return select(2, pcall(string.gsub, 'a', '(a)', '%2')) end\n";

static void test_patterns(void)
{
    char err[512], want[256];
    struct otr_lua_vm *vm = vm_or_die(8 << 20, 100000);
    const char *path = script_file("patterns.lua", patterns_lua);
    int id = load_or_die(vm, path);
    static const struct {
        const char *fn;
        int line;
    } patho[] = {{"find_patho", 3},    {"match_patho", 4},   {"gmatch_patho", 5},   {"gsub_patho", 6},
                 {"method_patho", 7},  {"pcall_patho", 8},   {"backref_patho", 9},  {"balance_patho", 10},
                 {"plain_loop", 12},   {"nospecial_loop", 13}, {"gsub_template", 15}, {"gsub_find", 17}};

    for (size_t i = 0; i < sizeof patho / sizeof *patho; i++) {
        is_int(run(vm, id, patho[i].fn, err, sizeof err), OTR_LUA_BUDGET, "%s: budget", patho[i].fn);
        snprintf(want, sizeof want, "%s:%d: instruction budget exhausted (100000 instructions)", path, patho[i].line);
        is_str(err, want, "%s: the message names the script line", patho[i].fn);
    }
    struct str_out o = {.in = "host=example.org;path=/a;x=1;empty="};
    enum otr_lua_failure why;
    int rc = otr_lua_vm_call(vm, id, "legit", push_in, pull_text, 1, &o, &why, err, sizeof err);
    is_int(rc, 0, "VM usable after pattern budget failures");
    is_str(o.out, "host:example.org,path:/a,x:1,empty:|example.org|3|26", "ordinary pattern work within budget");
    is_str(eval(vm, id, "malformed", NULL), "malformed pattern (missing ']')", "malformed pattern: Lua's message");
    is_str(eval(vm, id, "bad_repl", NULL), "invalid capture index %2", "bad replacement: Lua's message");
    otr_lua_vm_free(vm);
}

int main(void)
{
    alarm(60);
    snprintf(dir, sizeof dir, "/tmp/otr-lua-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_sandbox();
    test_binary_file();
    test_budget();
    test_memory();
    test_errors();
    test_calls();
    test_isolation();
    test_patterns();

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
    return done_testing();
}

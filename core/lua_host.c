/*
 * lua_host: sandboxed Lua 5.4 VMs for policy scripts (see lua_host.h).
 *
 * Three mechanisms keep a script from harming the agent:
 *  - the sandbox: each script runs in its own environment table built from a
 *    template of safe functions; library tables are copied per script, so one
 *    script cannot change what another sees;
 *  - the memory cap: vm_alloc counts every byte the VM holds and refuses to
 *    grow past limits.memory, which Lua turns into a catchable memory error;
 *  - the instruction budget: a count hook charges executed instructions (and
 *    the allocator the bytes C functions allocate) to the current call and,
 *    once the budget is spent, raises an error at every further instruction
 *    so that no pcall can swallow it for long.
 * Everything that may allocate inside the VM runs under lua_pcall: an
 * unprotected error would otherwise end in Lua's panic handler (abort).
 */
#include "lua_host.h"
#include "lua_pattern.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* The count hook runs every HOOK_PERIOD instructions (fewer when less budget
 * is left). Small enough that a thread keeps running at most this many
 * instructions after the budget is spent elsewhere; large enough that the
 * hook's cost (one C call) is noise. */
#define HOOK_PERIOD 1000

/* C library functions (string.upper, string.format, `..`, table.concat)
 * count as one instruction however long their strings: a loop of them on
 * megabyte strings would run for seconds within the budget. Their work is
 * proportional to what they allocate, so a call also pays one instruction
 * per BYTES_PER_INSTRUCTION bytes it allocates. */
#define BYTES_PER_INSTRUCTION 64

/* Once a call's budget is spent, allocations growing by more than this are
 * refused, which ends a long C function at once; small ones stay allowed
 * for the error messages on the way out. */
#define SPENT_ALLOC_SLACK 512

/* A global function of a script, resolved once and kept in the registry so
 * that calls on the hot path cost a strcmp and a rawgeti, not a lookup. */
struct lua_fn {
    char *name;
    int ref;
};

struct lua_script {
    char *path; /* as given: used in messages */
    char *key;  /* canonical path: "same script" means same file */
    int env_ref;
    struct lua_fn *fns;
    size_t n_fns, cap_fns;
};

struct otr_lua_vm {
    lua_State *L;
    struct otr_lua_limits limits;
    size_t used;        /* bytes currently allocated by the VM */
    uint64_t refused;   /* allocations refused by the cap, ever */
    uint64_t remaining; /* instructions left in the current call */
    bool spent;         /* the current call exhausted its budget */
    bool metering;      /* a call is running: allocations are charged */
    uint64_t prints;    /* calls of print(), which writes nothing */
    int template_ref;   /* registry: table of safe globals */
    int load_ref;       /* registry: Lua's own load() */
    struct lua_script *scripts;
    size_t n_scripts, cap_scripts;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "outrider: %s:%d: out of memory (%zu bytes)\n", __FILE__, __LINE__, n);
        abort();
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

OTR_PRINTF(3, 4) static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static struct otr_lua_vm *vm_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* ------------------------------------------------------------------------ */
/* Memory cap                                                                */

static bool budget_charge_bytes(struct otr_lua_vm *vm, size_t bytes);

/* Lua passes osize as a type tag when ptr is NULL, so only a non-NULL block
 * has a size to give back. Shrinking never fails (the manual requires it):
 * if realloc cannot shrink, the old block is still large enough. */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct otr_lua_vm *vm = ud;
    size_t old = ptr ? osize : 0;

    if (nsize == 0) {
        free(ptr);
        vm->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > vm->limits.memory - vm->used) {
        vm->refused++;
        return NULL;
    }
    if (nsize > old && vm->metering && !budget_charge_bytes(vm, nsize - old))
        return NULL;
    void *p = realloc(ptr, nsize);
    if (!p) {
        if (nsize <= old)
            return ptr;
        vm->refused++;
        return NULL;
    }
    vm->used = vm->used - old + nsize;
    return p;
}

/* ------------------------------------------------------------------------ */
/* Instruction budget                                                        */

static int hook_count_for(uint64_t remaining)
{
    return remaining < HOOK_PERIOD ? (int)(remaining ? remaining : 1) : HOOK_PERIOD;
}

/* Raises "file:line: instruction budget exhausted", placed at the first
 * Lua function from `level` frames up (0 from the hook: the running
 * function). Frames of C functions are skipped: a library function that
 * charges the budget may have been called by another one (pcall,
 * string.gsub with string.find as replacement), and the message should
 * still name the script line that started it. */
static int budget_error(lua_State *L, int level)
{
    struct otr_lua_vm *vm = vm_of(L);
    lua_Debug ar;
    while (lua_getstack(L, level, &ar) && lua_getinfo(L, "l", &ar) && ar.currentline <= 0)
        level++;
    luaL_where(L, level);
    lua_pushfstring(L, "instruction budget exhausted (%I instructions)", (lua_Integer)vm->limits.instructions);
    lua_concat(L, 2);
    return lua_error(L);
}

/* Every thread has its own hook counter (lua_newthread copies the creator's
 * hook), so the hook asks its own thread how many instructions it ran since
 * it was armed and charges them to the VM-wide budget of the current call.
 * Once spent, the thread is re-armed with a count of 1: every instruction it
 * then tries raises again, so `while true do pcall(f) end` ends at once. */
static void budget_on_count(lua_State *L, lua_Debug *ar)
{
    struct otr_lua_vm *vm = vm_of(L);
    uint64_t ran = (uint64_t)lua_gethookcount(L);

    (void)ar;
    if (!vm->spent && vm->remaining > ran) {
        vm->remaining -= ran;
        int next = hook_count_for(vm->remaining);
        if ((uint64_t)next != ran)
            lua_sethook(L, budget_on_count, LUA_MASKCOUNT, next);
        return;
    }
    vm->remaining = 0;
    vm->spent = true;
    lua_sethook(L, budget_on_count, LUA_MASKCOUNT, 1);
    budget_error(L, 0);
}

/* Charges an allocation of bytes to the running call. Once the budget is
 * spent the main thread raises at its next instruction (a coroutine at its
 * next hook, and it cannot resume another); until then, only small
 * allocations succeed. Returns whether the allocation may go ahead. */
static bool budget_charge_bytes(struct otr_lua_vm *vm, size_t bytes)
{
    uint64_t cost = bytes / BYTES_PER_INSTRUCTION;
    if (!vm->spent && cost < vm->remaining) {
        vm->remaining -= cost;
        return true;
    }
    if (!vm->spent) {
        vm->remaining = 0;
        vm->spent = true;
        lua_sethook(vm->L, budget_on_count, LUA_MASKCOUNT, 1);
    }
    return bytes <= SPENT_ALLOC_SLACK;
}

/* Gives the main thread a fresh budget. Coroutines left over from earlier
 * calls keep their counters; their next hook re-arms them with this budget. */
static void budget_arm(struct otr_lua_vm *vm)
{
    vm->remaining = vm->limits.instructions;
    vm->spent = false;
    lua_sethook(vm->L, budget_on_count, LUA_MASKCOUNT, hook_count_for(vm->remaining));
}

/* ------------------------------------------------------------------------ */
/* Sandbox functions                                                         */

/* print() writes nothing and is counted: a hook runs per request, so output
 * would flood the agent's stdout; the count tells an operator that a script
 * still prints (see otr_lua_vm_prints). Arguments are not converted, so no
 * __tostring runs. */
static int sandbox_print(lua_State *L)
{
    vm_of(L)->prints++;
    return 0;
}

/* setmetatable() refusing __gc: finalizers run inside the garbage collector
 * with hooks disabled, outside any call's budget, so a looping __gc would
 * stall the worker. Lua marks an object for finalization only if its
 * metatable has __gc when it is set, so checking here is enough. */
static int sandbox_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in scripts");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* load(chunk [, chunkname [, mode [, env]]]): text only, and without an env
 * argument the chunk gets the calling script's environment (upvalue 2)
 * rather than the state's real globals. An explicit env is allowed: it is a
 * value the script already holds, so it grants nothing new. */
static int sandbox_load(lua_State *L)
{
    bool has_env = lua_gettop(L) >= 4;
    lua_settop(L, 4);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushliteral(L, "t");
    lua_pushvalue(L, has_env ? 4 : lua_upvalueindex(2));
    lua_call(L, 4, LUA_MULTRET);
    return lua_gettop(L) - 4;
}

/*
 * Lua code that runs after an error raised inside a hook. Lua clears its
 * "hooks allowed" flag while a hook runs; when the hook raises (the budget
 * error), the flag stays cleared until a pcall catches the error. Two kinds
 * of script code could run in that window, unhooked and so unbounded:
 *  - an xpcall message handler: sandbox xpcall wraps it so that it is
 *    skipped once the budget is spent (the error passes through unchanged);
 *  - to-be-closed variables of a coroutine killed by the error, which
 *    coroutine.close and Lua's own coroutine.wrap would run: the sandbox
 *    never closes a coroutine that died by an error (close reports it), and
 *    its wrap is built on resume, which leaves a dead coroutine alone.
 * Resuming is refused once the budget is spent: otherwise a script could
 * keep resuming coroutines that each run up to HOOK_PERIOD instructions
 * before their own counter notices.
 */

static int sandbox_co_resume(lua_State *L)
{
    if (vm_of(L)->spent)
        return budget_error(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int sandbox_co_close(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co != NULL, 1, "coroutine");
    if (vm_of(L)->spent)
        return budget_error(L, 1);
    int status = lua_status(co);
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "the coroutine died by an error; the sandbox does not run its to-be-closed variables");
        return 2;
    }
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* The function coroutine.wrap returns: upvalue 1 is sandbox resume, upvalue
 * 2 the coroutine. Errors propagate to the caller, like Lua's wrap. */
static int sandbox_co_wrapped(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_rotate(L, 1, 2);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    if (!lua_toboolean(L, 1)) {
        lua_settop(L, 2);
        return lua_error(L);
    }
    return lua_gettop(L) - 1;
}

/* coroutine.wrap: upvalue 1 is coroutine.create, upvalue 2 sandbox resume. */
static int sandbox_co_wrap(lua_State *L)
{
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_pushcclosure(L, sandbox_co_wrapped, 2);
    return 1;
}

/* The message handler given to xpcall: upvalue 1 is the script's. */
static int sandbox_msgh(lua_State *L)
{
    if (vm_of(L)->spent)
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Continuation of sandbox_xpcall (also its direct end): `base` values below
 * the results are xpcall's own arguments. */
static int sandbox_xpcall_done(lua_State *L, int status, lua_KContext base)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)base;
}

/* xpcall(f, msgh, ...) with msgh wrapped by sandbox_msgh. Written with
 * lua_pcallk so that f may yield, as with Lua's own xpcall. */
static int sandbox_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, sandbox_msgh, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1); /* the first result when f succeeds */
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* f, msgh, true, f, args... */
    return sandbox_xpcall_done(L, lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, sandbox_xpcall_done), 2);
}

/*
 * Library functions whose work is a C loop over a count the script chooses
 * (a table's length can come from a __len metamethod; index and newindex
 * metamethods can be C functions that allocate nothing) run no instructions,
 * so the count hook never sees them: table.move(t, 1, 1 << 40, 2) would spin
 * for hours. These wrappers charge the loop's length to the budget first.
 * string.rep of an empty string with an empty separator loops n times
 * producing nothing; it returns "" at once instead.
 */
enum charge_kind { CHARGE_MOVE, CHARGE_INSERT, CHARGE_REMOVE, CHARGE_SORT, CHARGE_CONCAT, CHARGE_UNPACK };

/* Takes n instructions from the current call's budget, or raises the budget
 * error (and enters the spent state) if fewer are left. */
static void budget_charge(lua_State *L, uint64_t n)
{
    struct otr_lua_vm *vm = vm_of(L);
    if (!vm->spent && n < vm->remaining) {
        vm->remaining -= n;
        return;
    }
    vm->remaining = 0;
    vm->spent = true;
    lua_sethook(L, budget_on_count, LUA_MASKCOUNT, 1);
    budget_error(L, 1);
}

/* Elements in i..j, 0 if empty; unsigned so extreme bounds cannot overflow. */
static uint64_t span(lua_Integer i, lua_Integer j)
{
    return j < i ? 0 : (uint64_t)((lua_Unsigned)j - (lua_Unsigned)i) + 1;
}

static uint64_t charge_of(lua_State *L, enum charge_kind kind)
{
    int n = lua_gettop(L);
    if (!lua_istable(L, 1))
        return 0; /* the library function reports the bad argument */
    switch (kind) {
    case CHARGE_MOVE:
        return span(luaL_checkinteger(L, 2), luaL_checkinteger(L, 3));
    case CHARGE_INSERT:
        return n == 3 ? span(luaL_checkinteger(L, 2), luaL_len(L, 1)) : 1;
    case CHARGE_REMOVE:
        return n >= 2 && !lua_isnil(L, 2) ? span(luaL_checkinteger(L, 2), luaL_len(L, 1)) : 1;
    case CHARGE_SORT: {
        uint64_t len = (uint64_t)(luaL_len(L, 1) > 0 ? luaL_len(L, 1) : 0), log = 1;
        for (uint64_t x = len; x > 1; x >>= 1)
            log++;
        return len > UINT64_MAX / log ? UINT64_MAX : len * log;
    }
    case CHARGE_CONCAT:
        return span(luaL_optinteger(L, 3, 1), lua_isnoneornil(L, 4) ? luaL_len(L, 1) : luaL_checkinteger(L, 4));
    case CHARGE_UNPACK:
        return span(luaL_optinteger(L, 2, 1), lua_isnoneornil(L, 3) ? luaL_len(L, 1) : luaL_checkinteger(L, 3));
    }
    return 0;
}

/* Upvalue 1: the library function; upvalue 2: its enum charge_kind. */
static int sandbox_charged(lua_State *L)
{
    budget_charge(L, charge_of(L, (enum charge_kind)lua_tointeger(L, lua_upvalueindex(2))));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Upvalue 1: Lua's string.rep. */
static int sandbox_string_rep(lua_State *L)
{
    size_t len, seplen;
    luaL_checklstring(L, 1, &len);
    luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &seplen);
    if (len == 0 && seplen == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Lua's pattern functions (find, match, gmatch, gsub) run in C and
 * backtrack; the sandbox uses lua_pattern's versions, which report their
 * matcher steps here, one instruction each. */
static const struct otr_lua_pattern_meter pattern_meter = {.charge = budget_charge};

/* Replaces field name of the table at t by a sandbox_charged wrapper. */
static void wrap_charged(lua_State *L, int t, const char *name, enum charge_kind kind)
{
    lua_getfield(L, t, name);
    lua_pushinteger(L, kind);
    lua_pushcclosure(L, sandbox_charged, 2);
    lua_setfield(L, t, name);
}

/* ------------------------------------------------------------------------ */
/* VM setup                                                                  */

static const char *const safe_base[] = {
    "assert", "error",  "ipairs", "next",   "pairs",  "pcall",  "select", "tonumber",
    "tostring", "type", "rawequal", "rawget", "rawset", "rawlen", "getmetatable", "_VERSION", NULL,
};

/* Copies the named fields of the table at src into the table at dst. */
static void copy_fields(lua_State *L, int src, int dst, const char *const *names)
{
    for (; *names; names++) {
        lua_getfield(L, src, *names);
        lua_setfield(L, dst, *names);
    }
}

/* Opens a library without making it a global; leaves its table on top. */
static int open_lib(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_requiref(L, name, open, 0);
    return lua_gettop(L);
}

static void template_add_coroutine(lua_State *L, int tpl)
{
    static const char *const plain[] = {"create", "isyieldable", "running", "status", "yield", NULL};
    int lib = open_lib(L, LUA_COLIBNAME, luaopen_coroutine);

    lua_newtable(L);
    int co = lua_gettop(L);
    copy_fields(L, lib, co, plain);
    lua_getfield(L, lib, "resume");
    lua_pushcclosure(L, sandbox_co_resume, 1);
    lua_setfield(L, co, "resume");
    lua_getfield(L, lib, "close");
    lua_pushcclosure(L, sandbox_co_close, 1);
    lua_setfield(L, co, "close");
    lua_getfield(L, lib, "create");
    lua_getfield(L, co, "resume");
    lua_pushcclosure(L, sandbox_co_wrap, 2);
    lua_setfield(L, co, "wrap");
    lua_setfield(L, tpl, "coroutine");
    lua_pop(L, 1);
}

/* Adds the library's table, minus the names in `drop`, to the template. */
static void template_add_lib(lua_State *L, int tpl, const char *name, lua_CFunction open, const char *const *drop)
{
    int lib = open_lib(L, name, open);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, lib)) {
        bool dropped = false;
        for (const char *const *d = drop; d && *d; d++)
            if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), *d) == 0)
                dropped = true;
        if (dropped) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_setfield(L, tpl, name);
    lua_pop(L, 1);
}

/* The string library is special: its table is also the __index of the
 * metatable every string shares, reachable from any script as ("").x. So
 * string.dump is removed from that very table, the budgeted rep and pattern
 * functions replace Lua's there, and the metatable itself is hidden
 * (getmetatable("") returns false) so no script can change it for the
 * others. Scripts get their own copy of the table like any other library. */
static void template_add_string(lua_State *L, int tpl)
{
    int lib = open_lib(L, LUA_STRLIBNAME, luaopen_string);
    lua_pushnil(L);
    lua_setfield(L, lib, "dump");
    lua_getfield(L, lib, "rep");
    lua_pushcclosure(L, sandbox_string_rep, 1);
    lua_setfield(L, lib, "rep");
    otr_lua_pattern_install(L, lib, &pattern_meter);
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    template_add_lib(L, tpl, LUA_STRLIBNAME, luaopen_string, NULL);
    lua_pop(L, 1);
}

static int vm_setup(lua_State *L)
{
    struct otr_lua_vm *vm = lua_touserdata(L, 1);
    static const char *const os_unsafe[] = {"execute", "exit",    "getenv",    "remove",
                                            "rename",  "tmpname", "setlocale", NULL};
    /* randomseed changes the generator every script of the VM shares; the
     * generator is seeded randomly when the library opens. */
    static const char *const math_unsafe[] = {"randomseed", NULL};

    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    int g = lua_gettop(L);
    lua_getfield(L, g, "load");
    vm->load_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_newtable(L);
    int tpl = lua_gettop(L);
    copy_fields(L, g, tpl, safe_base);
    lua_pushcfunction(L, sandbox_print);
    lua_setfield(L, tpl, "print");
    lua_pushcfunction(L, sandbox_setmetatable);
    lua_setfield(L, tpl, "setmetatable");
    lua_pushcfunction(L, sandbox_xpcall);
    lua_setfield(L, tpl, "xpcall");

    template_add_string(L, tpl);
    template_add_lib(L, tpl, LUA_TABLIBNAME, luaopen_table, NULL);
    lua_getfield(L, tpl, LUA_TABLIBNAME);
    wrap_charged(L, lua_gettop(L), "move", CHARGE_MOVE);
    wrap_charged(L, lua_gettop(L), "insert", CHARGE_INSERT);
    wrap_charged(L, lua_gettop(L), "remove", CHARGE_REMOVE);
    wrap_charged(L, lua_gettop(L), "sort", CHARGE_SORT);
    wrap_charged(L, lua_gettop(L), "concat", CHARGE_CONCAT);
    wrap_charged(L, lua_gettop(L), "unpack", CHARGE_UNPACK);
    lua_pop(L, 1);
    template_add_lib(L, tpl, LUA_MATHLIBNAME, luaopen_math, math_unsafe);
    template_add_lib(L, tpl, LUA_UTF8LIBNAME, luaopen_utf8, NULL);
    template_add_lib(L, tpl, LUA_OSLIBNAME, luaopen_os, os_unsafe);
    template_add_coroutine(L, tpl);

    lua_pushvalue(L, tpl);
    vm->template_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Pushes a new environment: the template's values, each library table
 * copied, _G pointing at the environment itself, and a load() bound to it. */
static void env_push_new(lua_State *L, struct otr_lua_vm *vm)
{
    lua_newtable(L);
    int env = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->template_ref);
    int tpl = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, tpl)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            int lib = lua_gettop(L);
            lua_newtable(L);
            lua_pushnil(L);
            while (lua_next(L, lib)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_rawset(L, -4);
            }
            lua_replace(L, lib);
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, env);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, env);
    lua_setfield(L, env, LUA_GNAME);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->load_ref);
    lua_pushvalue(L, env);
    lua_pushcclosure(L, sandbox_load, 2);
    lua_setfield(L, env, "load");
}

/* An error escaping every pcall is a bug in this file, not in a script. */
static int vm_on_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "outrider: unprotected Lua error: %s\n", msg ? msg : "(not a string)");
    abort();
}

int otr_lua_vm_new(const struct otr_lua_limits *limits, struct otr_lua_vm **out)
{
    struct otr_lua_vm *vm;

    *out = NULL;
    if (!limits || limits->memory == 0 || limits->instructions == 0)
        return UV_EINVAL;
    vm = calloc(1, sizeof *vm);
    if (!vm)
        return UV_ENOMEM;
    vm->limits = *limits;
    vm->L = lua_newstate(vm_alloc, vm);
    if (!vm->L) {
        free(vm);
        return UV_ENOMEM;
    }
    lua_atpanic(vm->L, vm_on_panic);
    budget_arm(vm);
    lua_pushcfunction(vm->L, vm_setup);
    lua_pushlightuserdata(vm->L, vm);
    if (lua_pcall(vm->L, 1, 0, 0) != LUA_OK) {
        lua_close(vm->L);
        free(vm);
        return UV_ENOMEM;
    }
    *out = vm;
    return 0;
}

void otr_lua_vm_free(struct otr_lua_vm *vm)
{
    if (!vm)
        return;
    lua_close(vm->L);
    for (size_t i = 0; i < vm->n_scripts; i++) {
        struct lua_script *s = &vm->scripts[i];
        for (size_t j = 0; j < s->n_fns; j++)
            free(s->fns[j].name);
        free(s->fns);
        free(s->path);
        free(s->key);
    }
    free(vm->scripts);
    free(vm);
}

size_t otr_lua_vm_memory(const struct otr_lua_vm *vm)
{
    return vm->used;
}

uint64_t otr_lua_vm_prints(const struct otr_lua_vm *vm)
{
    return vm->prints;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

/* Message handler: string errors already carry "file:line:" (Lua's error()
 * and runtime errors add it); other values are described and placed at the
 * innermost Lua frame. */
static int vm_on_error(lua_State *L)
{
    lua_Debug ar;

    if (lua_type(L, 1) == LUA_TSTRING)
        return 1;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            break;
        }
    }
    if (lua_gettop(L) == 1)
        lua_pushliteral(L, "");
    if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
        lua_pop(L, 1);
        luaL_tolstring(L, 1, NULL);
    } else {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    lua_concat(L, 2);
    return 1;
}

/* Classifies a failed protected call and writes its message. */
static enum otr_lua_failure failure_of(struct otr_lua_vm *vm, int status, uint64_t refused_before,
                                       const char *path, char *err, size_t errlen)
{
    lua_State *L = vm->L;
    const char *msg = lua_tostring(L, -1);

    if (!vm->spent && (status == LUA_ERRMEM || (status == LUA_ERRERR && vm->refused != refused_before))) {
        set_err(err, errlen, "%s: memory limit reached (%zu bytes)", path, vm->limits.memory);
        return OTR_LUA_MEMORY;
    }
    if (vm->spent) {
        if (msg && strstr(msg, "instruction budget exhausted"))
            set_err(err, errlen, "%s", msg);
        else
            set_err(err, errlen, "%s: instruction budget exhausted (%llu instructions)", path,
                    (unsigned long long)vm->limits.instructions);
        return OTR_LUA_BUDGET;
    }
    if (status == LUA_ERRERR)
        set_err(err, errlen, "%s: error in error handling", path);
    else
        set_err(err, errlen, "%s", msg ? msg : "(error without a message)");
    return OTR_LUA_ERROR;
}

/* After a memory failure the aborted call's garbage is unreachable; collect
 * it now rather than in an emergency collection during a later call. */
static void after_failure(struct otr_lua_vm *vm, enum otr_lua_failure why)
{
    if (why == OTR_LUA_MEMORY)
        lua_gc(vm->L, LUA_GCCOLLECT, 0);
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */

struct load_job {
    struct otr_lua_vm *vm;
    const char *chunkname;
    const char *buf;
    size_t len;
    int env_ref;
    int parse_status;
};

static int load_protected(lua_State *L)
{
    struct load_job *j = lua_touserdata(L, 1);

    env_push_new(L, j->vm);
    int env = lua_gettop(L);
    j->parse_status = luaL_loadbufferx(L, j->buf, j->len, j->chunkname, "t");
    if (j->parse_status != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, env);
    lua_setupvalue(L, -2, 1); /* the main chunk's only upvalue is _ENV */
    lua_call(L, 0, 0);
    j->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Reads a whole script file (at most max bytes) into a malloc'd buffer. */
static int read_script(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (!f) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return OTR_ECONFIG;
    }
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max) {
            set_err(err, errlen, "%s: larger than the Lua memory limit (%zu bytes)", path, max);
            goto fail;
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
fail:
    fclose(f);
    free(buf);
    return OTR_ECONFIG;
}

int otr_lua_vm_load(struct otr_lua_vm *vm, const char *path, int *script, char *err, size_t errlen)
{
    char *key = realpath(path, NULL);
    char *buf = NULL, *chunkname = NULL;
    size_t len;
    int rc = OTR_ECONFIG;

    if (!key) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return OTR_ECONFIG;
    }
    for (size_t i = 0; i < vm->n_scripts; i++) {
        if (strcmp(vm->scripts[i].key, key) == 0) {
            free(key);
            *script = (int)i;
            return 0;
        }
    }
    if (read_script(path, vm->limits.memory, &buf, &len, err, errlen) < 0)
        goto done;
    if (len > 0 && buf[0] == LUA_SIGNATURE[0]) {
        set_err(err, errlen, "%s: precompiled (binary) Lua chunks are refused; give the source text", path);
        goto done;
    }
    chunkname = xrealloc(NULL, strlen(path) + 2);
    chunkname[0] = '@';
    strcpy(chunkname + 1, path);

    struct load_job job = {.vm = vm, .chunkname = chunkname, .buf = buf, .len = len, .env_ref = LUA_NOREF};
    lua_State *L = vm->L;
    int base = lua_gettop(L);
    uint64_t refused = vm->refused;
    budget_arm(vm);
    lua_pushcfunction(L, vm_on_error);
    lua_pushcfunction(L, load_protected);
    lua_pushlightuserdata(L, &job);
    int status = lua_pcall(L, 1, 0, base + 1);
    if (status != LUA_OK) {
        if (job.parse_status == LUA_ERRMEM)
            status = LUA_ERRMEM;
        after_failure(vm, failure_of(vm, status, refused, path, err, errlen));
        lua_settop(L, base);
        goto done;
    }
    lua_settop(L, base);
    if (vm->n_scripts == vm->cap_scripts) {
        vm->cap_scripts = vm->cap_scripts ? vm->cap_scripts * 2 : 4;
        vm->scripts = xrealloc(vm->scripts, vm->cap_scripts * sizeof *vm->scripts);
    }
    vm->scripts[vm->n_scripts] = (struct lua_script){.path = xstrdup(path), .key = key, .env_ref = job.env_ref};
    key = NULL;
    *script = (int)vm->n_scripts++;
    rc = 0;
done:
    free(key);
    free(buf);
    free(chunkname);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Calls                                                                     */

struct call_job {
    struct otr_lua_vm *vm;
    struct lua_script *script;
    const char *fn;
    int ref; /* LUA_NOREF until resolved */
    bool resolve_only, missing;
    int (*push)(lua_State *, void *);
    int (*pull)(lua_State *, int, void *);
    int nres;
    void *arg;
    int result;
};

static int fn_cached(const struct lua_script *s, const char *fn)
{
    for (size_t i = 0; i < s->n_fns; i++)
        if (strcmp(s->fns[i].name, fn) == 0)
            return s->fns[i].ref;
    return LUA_NOREF;
}

/* Looks up fn in the script's environment (honouring an __index the script
 * may have set on it) and, if it is a function, keeps a reference to it.
 * A name that is not a function is not cached: it is looked up again next
 * time, which only happens on the failure path. */
static int fn_resolve(lua_State *L, struct lua_script *s, const char *fn)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->env_ref);
    lua_getfield(L, -1, fn);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 2);
        return LUA_NOREF;
    }
    if (s->n_fns == s->cap_fns) {
        s->cap_fns = s->cap_fns ? s->cap_fns * 2 : 4;
        s->fns = xrealloc(s->fns, s->cap_fns * sizeof *s->fns);
    }
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    s->fns[s->n_fns++] = (struct lua_fn){.name = xstrdup(fn), .ref = ref};
    return ref;
}

static int call_protected(lua_State *L)
{
    struct call_job *j = lua_touserdata(L, 1);

    if (j->ref == LUA_NOREF)
        j->ref = fn_resolve(L, j->script, j->fn);
    if (j->ref == LUA_NOREF) {
        j->missing = true;
        return 0;
    }
    if (j->resolve_only)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->ref);
    int fn_index = lua_gettop(L);
    int nargs = j->push ? j->push(L, j->arg) : 0;
    if (nargs < 0 || nargs > lua_gettop(L) - fn_index)
        return luaL_error(L, "%s: the host failed to build the arguments of %s()", j->script->path, j->fn);
    lua_call(L, nargs, j->nres);
    int n = j->nres == LUA_MULTRET ? lua_gettop(L) - fn_index + 1 : j->nres;
    j->result = j->pull ? j->pull(L, n, j->arg) : 0;
    return 0;
}

/* Runs job under the budget and classifies the outcome. */
static int call_run(struct call_job *j, enum otr_lua_failure *why, char *err, size_t errlen)
{
    struct otr_lua_vm *vm = j->vm;
    lua_State *L = vm->L;
    int base = lua_gettop(L);
    uint64_t refused = vm->refused;

    budget_arm(vm);
    lua_pushcfunction(L, vm_on_error);
    lua_pushcfunction(L, call_protected);
    lua_pushlightuserdata(L, j);
    vm->metering = true;
    int status = lua_pcall(L, 1, 0, base + 1);
    vm->metering = false;
    if (status == LUA_OK) {
        lua_settop(L, base);
        if (j->missing) {
            *why = OTR_LUA_MISSING;
            set_err(err, errlen, "%s: function '%s' is not defined", j->script->path, j->fn);
            return OTR_EFALLBACK;
        }
        *why = OTR_LUA_OK;
        return j->result;
    }
    *why = failure_of(vm, status, refused, j->script->path, err, errlen);
    lua_settop(L, base);
    after_failure(vm, *why);
    return OTR_EFALLBACK;
}

int otr_lua_vm_has_function(struct otr_lua_vm *vm, int script, const char *fn)
{
    enum otr_lua_failure why;

    if (script < 0 || (size_t)script >= vm->n_scripts)
        return 0;
    struct call_job job = {.vm = vm, .script = &vm->scripts[script], .fn = fn, .resolve_only = true};
    job.ref = fn_cached(job.script, fn);
    if (job.ref != LUA_NOREF)
        return 1;
    return call_run(&job, &why, NULL, 0) == 0 && !job.missing;
}

int otr_lua_vm_call(struct otr_lua_vm *vm, int script, const char *fn, int (*push)(lua_State *, void *),
                    int (*pull)(lua_State *, int, void *), int nres, void *arg, enum otr_lua_failure *why,
                    char *err, size_t errlen)
{
    enum otr_lua_failure dummy;

    if (!why)
        why = &dummy;
    if (script < 0 || (size_t)script >= vm->n_scripts) {
        *why = OTR_LUA_MISSING;
        set_err(err, errlen, "no script with id %d", script);
        return UV_EINVAL;
    }
    struct call_job job = {
        .vm = vm, .script = &vm->scripts[script], .fn = fn, .push = push, .pull = pull, .nres = nres, .arg = arg};
    job.ref = fn_cached(job.script, fn);
    return call_run(&job, why, err, errlen);
}

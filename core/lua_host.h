/*
 * lua_host: sandboxed Lua 5.4 virtual machines for policy scripts.
 *
 * One VM per worker per generation (a reload builds new ones). A VM loads
 * each script into its own environment table; the state's real globals are
 * never reachable from a script. The environment holds only:
 *   base: assert error ipairs next pairs pcall xpcall select tonumber
 *         tostring type rawequal rawget rawset rawlen getmetatable
 *         setmetatable print load _VERSION, and _G (the environment itself);
 *   string (no dump), table, math (no randomseed: the generator is shared
 *   by the VM's scripts and seeded randomly), utf8, coroutine, and os with
 *   time, clock and date only.
 * Absent: io, debug, package, require, dofile, loadfile, collectgarbage,
 * warn and the rest of os. Adjusted functions:
 *   print         writes nothing; calls are counted (otr_lua_vm_prints);
 *   load          text chunks only; without an env argument the chunk gets
 *                 the calling script's environment;
 *   setmetatable  refuses metatables with __gc (finalizers run with hooks
 *                 off, outside any budget);
 *   xpcall        the script's message handler is skipped once the budget
 *                 is spent (it would otherwise run unhooked);
 *   coroutine     resume/close/wrap refuse to run once the budget is spent;
 *                 close does not run the to-be-closed variables of a
 *                 coroutine that died by an error, and wrap leaves them too;
 *   string.find, match, gmatch, gsub
 *                 lua_pattern's reimplementation of Lua 5.4's (same results
 *                 and errors), charging one instruction per matcher step:
 *                 Lua's own matcher backtracks in C without executing
 *                 instructions, so a pathological pattern ('.-.-.-.-b' on
 *                 200 bytes: ~20 s) would escape the budget;
 *   table.move, insert, remove, sort, concat, unpack
 *                 charge their C loop's length first; string.rep of nothing
 *                 returns at once.
 * Library tables are copied per script, so no script can change what
 * another sees; the string metatable (shared by all strings) is hidden from
 * getmetatable and its __index is the reduced string table.
 * Binary (precompiled) chunks are refused. Memory is capped by a custom
 * allocator (returns NULL past the cap, so Lua raises "not enough memory");
 * each call runs under an instruction budget enforced with a count hook.
 * Errors never propagate: they come back as OTR_EFALLBACK with a reason.
 *
 * Known gap: other C work proportional to a string's length is one call or
 * one instruction whatever the length (string.upper/lower/reverse/format,
 * the .. operator, == on long equal strings), so a loop of such calls is
 * bounded by the budget's count, not by their cost: `for i = 1, 1e9 do
 * big:upper() end` on a 4 MiB string runs past 120 s under a budget of
 * 1,000,000 instructions. Charging allocated bytes in the allocator would
 * cover all but comparisons.
 *
 * A VM is used by one thread at a time (created on the main thread, then
 * handed to its worker).
 */
#ifndef OTR_LUA_HOST_H
#define OTR_LUA_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "outrider/module.h"

struct otr_lua_limits {
    size_t memory;         /* bytes per VM, e.g. 16 MiB */
    uint64_t instructions; /* per call, e.g. 1,000,000 */
};

/* Why a call fell back, for counters: */
enum otr_lua_failure {
    OTR_LUA_OK = 0,
    OTR_LUA_ERROR,    /* runtime error raised by the script */
    OTR_LUA_BUDGET,   /* instruction budget exhausted */
    OTR_LUA_MEMORY,   /* memory cap reached */
    OTR_LUA_MISSING,  /* the function is not defined */
};

struct otr_lua_vm;

/* Creates a sandboxed VM. Returns 0, UV_EINVAL if a limit is 0, or
 * UV_ENOMEM (also when limits->memory is too small for the libraries). */
int otr_lua_vm_new(const struct otr_lua_limits *limits, struct otr_lua_vm **out);
/* Closes the VM and frees everything it holds (NULL is allowed). */
void otr_lua_vm_free(struct otr_lua_vm *vm);

/* Loads and runs (top level, under the budget and memory cap) a script file
 * into a new environment; *script receives an id for calls. On failure
 * returns OTR_ECONFIG with a message ("route.lua:3: unexpected symbol near
 * ...") in err; nothing of the failed script stays reachable. Messages name
 * the script by path as given (Lua shortens paths over 60 characters).
 * Source text only: a precompiled chunk is refused. Loading the same file
 * twice (same realpath) returns the same id without running it again. */
int otr_lua_vm_load(struct otr_lua_vm *vm, const char *path, int *script, char *err, size_t errlen);
/* Whether the script defines a global function named fn: 1 or 0. The
 * function found is cached for otr_lua_vm_call: a call always runs the
 * function the name had when it was first resolved, even if the script
 * later assigns another value to that global. */
int otr_lua_vm_has_function(struct otr_lua_vm *vm, int script, const char *fn);

/* Calls fn of script: push() pushes arguments and returns their count; the
 * call runs under the limits; pull() reads nres results from the top of the
 * stack and returns the caller's result. The stack is restored afterwards.
 * Returns pull's result, or OTR_EFALLBACK with *why set and a message in err
 * ("route.lua:7: attempt to index a nil value (local 'req')"). push and pull
 * (either may be NULL) run inside the protected call: they may raise Lua
 * errors (luaL_checkstring...), which count as OTR_LUA_ERROR, and may use up
 * to LUA_MINSTACK - 2 stack slots without lua_checkstack. nres may be
 * LUA_MULTRET: pull then gets the actual count. The function is resolved by
 * name once per (script, fn) and cached; later calls allocate nothing in the
 * host. An unknown script id returns UV_EINVAL. */
int otr_lua_vm_call(struct otr_lua_vm *vm, int script, const char *fn, int (*push)(lua_State *, void *),
                    int (*pull)(lua_State *, int, void *), int nres, void *arg, enum otr_lua_failure *why,
                    char *err, size_t errlen);

/* Memory currently in use by the VM, in bytes. */
size_t otr_lua_vm_memory(const struct otr_lua_vm *vm);

/* How many times scripts called print(), which writes nothing: per-request
 * output would flood the agent's stdout. Exposed so core can count it. */
uint64_t otr_lua_vm_prints(const struct otr_lua_vm *vm);

#endif

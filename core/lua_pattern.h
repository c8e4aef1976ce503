/*
 * lua_pattern: Lua 5.4's string.find, string.match, string.gmatch and
 * string.gsub, reimplemented with a step meter.
 *
 * Lua's own pattern matcher runs in C and backtracks; its work is not made
 * of VM instructions, so an instruction-count hook never sees it and a
 * pathological pattern ('.-.-.-.-b' on 200 bytes) runs for many seconds.
 * These versions behave like Lua 5.4's (same results, same argument
 * handling, same error messages for malformed patterns, same evaluation
 * order, so the same error or result for every input) and report their work
 * to a meter as "steps": one per pattern item tried, per subject byte a
 * repetition or %b scans, per capture or replacement item, and one per few
 * bytes compared, searched or scanned in bulk (memchr, memcmp, long sets).
 * The meter may end the call by raising a Lua error.
 *
 * Plain finds (fourth argument true, or a pattern without special
 * characters) search like Lua (memchr, then memcmp per candidate), charging
 * the bytes skipped and each candidate compared.
 */
#ifndef OTR_LUA_PATTERN_H
#define OTR_LUA_PATTERN_H

#include <stdint.h>

#include <lua.h>

/* Steps the matcher accumulates before calling the meter; any remainder is
 * charged when the library function returns. */
#define OTR_LUA_PATTERN_BATCH 1024

struct otr_lua_pattern_meter {
    /* Charges steps of matcher work to whatever budget L runs under. Called
     * on L's thread, from inside the library function, at most every
     * OTR_LUA_PATTERN_BATCH steps and once at its end (never with 0). It may
     * raise a Lua error (lua_error/luaL_error): the matcher holds no memory
     * or state outside the Lua stack, so unwinding is safe. */
    void (*charge)(lua_State *L, uint64_t steps);
};

/* Replaces find, match, gmatch and gsub of the table at index lib with the
 * metered versions. The meter is borrowed: it must outlive the state (a
 * static const struct is the intended use). */
void otr_lua_pattern_install(lua_State *L, int lib, const struct otr_lua_pattern_meter *meter);

#endif

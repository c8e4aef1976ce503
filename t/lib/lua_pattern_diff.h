/*
 * lua_pattern_diff.h: differential harness for core/lua_pattern.c, shared
 * by t/unit/lua_pattern.c and t/fuzz/lua_pattern_fuzz.c (which #include
 * lua_pattern.c first).
 *
 * Two plain Lua states run the same Lua code: "ref" with Lua's own string
 * library, "ours" with find/match/gmatch/gsub replaced by lua_pattern's, in
 * the same library table (so even "bad argument #1 to 'string.find'" names
 * agree). A case sets the globals S (subject), P (pattern), I (init),
 * R (replacement string), N (max replacements) and runs one of the OPS
 * below under pcall in both states; the results (count, types, values) or
 * the error message are printed to a string by the same Lua function and
 * compared byte for byte.
 *
 * Lua's matcher cannot be interrupted, so a case runs on ours first with a
 * step limit; if ours needs more steps, the case is skipped rather than
 * handed to Lua (the work is the same algorithm, so the step count predicts
 * Lua's time).
 */
#ifndef OTR_LUA_PATTERN_DIFF_H
#define OTR_LUA_PATTERN_DIFF_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pdiff_result { PDIFF_SAME, PDIFF_DIFFERENT, PDIFF_SKIPPED };

/* Steps metered on the ours state since the last reset, and the limit past
 * which the meter raises. Single-threaded tests only. */
static uint64_t pdiff_steps, pdiff_limit = UINT64_MAX;
static uint64_t pdiff_charges, pdiff_max_charge;

static void pdiff_charge(lua_State *L, uint64_t steps)
{
    pdiff_steps += steps;
    pdiff_charges++;
    if (steps > pdiff_max_charge)
        pdiff_max_charge = steps;
    if (pdiff_steps > pdiff_limit)
        luaL_error(L, "pdiff: step limit");
}

static const struct otr_lua_pattern_meter pdiff_meter = {.charge = pdiff_charge};

/* The operations a case can run; each is a Lua chunk returning one string. */
static const char *const PDIFF_OPS[] = {
    "return RUN(function() return string.find(S, P) end)",
    "return RUN(function() return string.find(S, P, I) end)",
    "return RUN(function() return string.find(S, P, I, true) end)",
    "return RUN(function() return string.match(S, P) end)",
    "return RUN(function() return string.match(S, P, I) end)",
    "return RUN(function() return GMATCH(string.gmatch(S, P)) end)",
    "return RUN(function() return GMATCH(string.gmatch(S, P, I)) end)",
    "return RUN(function() return string.gsub(S, P, R) end)",
    "return RUN(function() return string.gsub(S, P, R, N) end)",
    "return RUN(function() return string.gsub(S, P, T) end)",
    "return RUN(function() return string.gsub(S, P, F) end)",
    "return RUN(function() return string.gsub(S, P, F, N) end)",
    "return RUN(function() return S:find(P, I) end)",
    "return RUN(function() return S:gsub(P, '%0%0', N) end)",
};
#define PDIFF_NOPS ((int)(sizeof PDIFF_OPS / sizeof *PDIFF_OPS))

static const char PDIFF_PRELUDE[] =
    "local function show(...)\n"
    "  local n = select('#', ...)\n"
    "  local t = {tostring(n)}\n"
    "  for i = 1, n do\n"
    "    local v = select(i, ...)\n"
    "    if type(v) == 'string' then t[#t + 1] = string.format('%q', v)\n"
    "    elseif type(v) == 'number' then t[#t + 1] = math.type(v) .. ':' .. tostring(v)\n"
    "    else t[#t + 1] = type(v) == 'table' and 'table' or tostring(v) end\n"
    "  end\n"
    "  return table.concat(t, ' ')\n"
    "end\n"
    "function RUN(f) return show(pcall(f)) end\n"
    /* Every result of an iterator, and one more call after the end. */
    "function GMATCH(it)\n"
    "  local out = {}\n"
    "  for k = 1, 80 do\n"
    "    local r = table.pack(it())\n"
    "    out[k] = show(table.unpack(r, 1, r.n))\n"
    "    if r.n == 0 then out[k + 1] = show(it()) break end\n"
    "  end\n"
    "  return table.concat(out, '|')\n"
    "end\n"
    /* Replacement values of every kind, chosen by the first capture. */
    "T = {a = 'A', b = false, c = 3, ab = 'AB', [''] = 'E', ['1'] = 1.5, x = {}, [2] = 'two'}\n"
    "function F(...)\n"
    "  local a = ...\n"
    "  if a == 'b' then return false end\n"
    "  if a == 'c' then return 7 end\n"
    "  if a == 'x' then return {} end\n"
    "  if a == '1' then return nil end\n"
    "  local t = table.pack(...)\n"
    "  for i = 1, t.n do t[i] = tostring(t[i]) end\n"
    "  return '<' .. t.n .. ':' .. table.concat(t, ',', 1, t.n) .. '>'\n"
    "end\n";

struct pdiff {
    lua_State *ref, *ours;
    int ops_ref[PDIFF_NOPS], ops_ours[PDIFF_NOPS];
    char *out_ref, *out_ours; /* last outputs, malloc'd */
};

static void pdiff_state(lua_State **L, int *ops, int ours)
{
    *L = luaL_newstate();
    if (!*L)
        abort();
    luaL_openlibs(*L);
    if (ours) {
        lua_getglobal(*L, "string");
        otr_lua_pattern_install(*L, -1, &pdiff_meter);
        lua_pop(*L, 1);
    }
    if (luaL_dostring(*L, PDIFF_PRELUDE) != LUA_OK) {
        fprintf(stderr, "pdiff prelude: %s\n", lua_tostring(*L, -1));
        abort();
    }
    for (int i = 0; i < PDIFF_NOPS; i++) {
        if (luaL_loadstring(*L, PDIFF_OPS[i]) != LUA_OK)
            abort();
        ops[i] = luaL_ref(*L, LUA_REGISTRYINDEX);
    }
}

static void pdiff_init(struct pdiff *d)
{
    memset(d, 0, sizeof *d);
    pdiff_state(&d->ref, d->ops_ref, 0);
    pdiff_state(&d->ours, d->ops_ours, 1);
}

static void pdiff_fini(struct pdiff *d)
{
    lua_close(d->ref);
    lua_close(d->ours);
    free(d->out_ref);
    free(d->out_ours);
}

struct pdiff_case {
    const char *s, *p, *r;
    size_t ls, lp, lr;
    lua_Integer init, n;
    int op;
};

/* Runs op in L with the case's globals; returns the output (malloc'd). */
static char *pdiff_exec(lua_State *L, const int *ops, const struct pdiff_case *c)
{
    lua_pushlstring(L, c->s, c->ls);
    lua_setglobal(L, "S");
    lua_pushlstring(L, c->p, c->lp);
    lua_setglobal(L, "P");
    lua_pushlstring(L, c->r ? c->r : "", c->r ? c->lr : 0);
    lua_setglobal(L, "R");
    lua_pushinteger(L, c->init);
    lua_setglobal(L, "I");
    lua_pushinteger(L, c->n);
    lua_setglobal(L, "N");
    lua_rawgeti(L, LUA_REGISTRYINDEX, ops[c->op]);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "pdiff op %d: %s\n", c->op, lua_tostring(L, -1));
        abort();
    }
    size_t len;
    const char *out = lua_tolstring(L, -1, &len);
    char *copy = malloc(len + 1);
    if (!copy)
        abort();
    memcpy(copy, out, len + 1);
    lua_pop(L, 1);
    return copy;
}

/* Runs one case on both states (ours first, limited to `limit` steps). */
static enum pdiff_result pdiff_run(struct pdiff *d, const struct pdiff_case *c, uint64_t limit)
{
    free(d->out_ref);
    free(d->out_ours);
    d->out_ref = NULL;
    pdiff_steps = 0;
    pdiff_limit = limit;
    d->out_ours = pdiff_exec(d->ours, d->ops_ours, c);
    pdiff_limit = UINT64_MAX;
    if (strstr(d->out_ours, "pdiff: step limit"))
        return PDIFF_SKIPPED;
    d->out_ref = pdiff_exec(d->ref, d->ops_ref, c);
    return strcmp(d->out_ref, d->out_ours) == 0 ? PDIFF_SAME : PDIFF_DIFFERENT;
}

/* Lua source text for bytes, for messages: "a\0b" -> "a\x00b". */
static const char *pdiff_quote(const char *s, size_t n, char *buf, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < size; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 32 && ch < 127 && ch != '\\' && ch != '"')
            buf[o++] = (char)ch;
        else
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
    }
    buf[o] = 0;
    return buf;
}

#endif

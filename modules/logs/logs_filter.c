/*
 * logs_filter: Lua <-> record conversion for the filter hook.
 */
#include "logs_filter.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <outrider/module.h>

#include "logs_json.h"
#include "logs_time.h"

#define DEPTH_MAX 16
#define LIT(b, s) logs_buf_append((b), (s), sizeof(s) - 1)

static void set_str(lua_State *L, const char *k, const char *v, size_t n)
{
    lua_pushlstring(L, v, n);
    lua_setfield(L, -2, k);
}

static int push_bus(lua_State *L, const struct logs_filter_call *c)
{
    lua_createtable(L, 0, (int)(c->n_fields + c->n_meta) + 2);
    char t[LOGS_TIME_LEN];
    logs_time_format(c->time_ns, t);
    set_str(L, "time", t, LOGS_TIME_LEN);
    set_str(L, "source", c->source, strlen(c->source));
    for (size_t i = 0; i < c->n_fields; i++) {
        const struct otr_field *f = &c->fields[i];
        switch (f->type) {
        case OTR_VAL_STR: lua_pushlstring(L, f->v.s.ptr, f->v.s.len); break;
        case OTR_VAL_INT: lua_pushinteger(L, (lua_Integer)f->v.i); break;
        case OTR_VAL_DOUBLE: lua_pushnumber(L, f->v.d); break;
        case OTR_VAL_BOOL: lua_pushboolean(L, f->v.b); break;
        default: continue;
        }
        lua_setfield(L, -2, f->key);
    }
    for (size_t i = 0; i < c->n_meta; i++)
        set_str(L, c->meta[i].key, c->meta[i].value, strlen(c->meta[i].value));
    return 1;
}

int logs_filter_push(lua_State *L, void *arg)
{
    const struct logs_filter_call *c = arg;
    const struct logs_rec *r = c->rec;
    if (!r)
        return push_bus(L, c);
    lua_createtable(L, 0, (int)c->n_meta + 4);
    char t[LOGS_TIME_LEN];
    logs_time_format(r->time_ns, t);
    set_str(L, "time", t, LOGS_TIME_LEN);
    if (r->stream == LOGS_STREAM_STDOUT)
        set_str(L, "stream", "stdout", 6);
    else if (r->stream == LOGS_STREAM_STDERR)
        set_str(L, "stream", "stderr", 6);
    for (size_t i = 0; i < c->n_meta; i++)
        set_str(L, c->meta[i].key, c->meta[i].value, strlen(c->meta[i].value));
    set_str(L, "message", r->msg, r->len);
    if (r->flags & LOGS_REC_JSON) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "json");
    }
    if (r->flags & LOGS_REC_SPLIT) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "split");
    }
    if (r->flags & LOGS_REC_MALFORMED) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "malformed");
    }
    return 1;
}

static int encode_value(lua_State *L, int idx, struct logs_buf *out, int depth);

static int encode_number(lua_State *L, int idx, struct logs_buf *out)
{
    char num[40];
    int n;
    if (lua_isinteger(L, idx)) {
        n = snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
    } else {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d))
            return LIT(out, "null");
        n = snprintf(num, sizeof num, "%.17g", d);
    }
    return logs_buf_append(out, num, (size_t)n);
}

static int encode_string(lua_State *L, int idx, struct logs_buf *out)
{
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return LIT(out, "\"") || logs_json_escape(out, s, n) || LIT(out, "\"");
}

/* Whether the table at idx is a sequence 1..n with n >= 1. */
static bool is_array(lua_State *L, int idx)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n == 0)
        return false;
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
    }
    return count == n;
}

static bool encodable(int type)
{
    return type == LUA_TSTRING || type == LUA_TNUMBER || type == LUA_TBOOLEAN || type == LUA_TTABLE;
}

/* Members of the table at idx; "time" first when first is set (outputs
 * find it at a fixed place). Keys that are not strings or numbers, and
 * values of other types, are skipped. */
static int encode_members(lua_State *L, int idx, struct logs_buf *out, int depth, bool time_first)
{
    bool first = true;
    if (time_first) {
        lua_getfield(L, idx, "time");
        if (lua_type(L, -1) == LUA_TSTRING) {
            if (LIT(out, "\"time\":") || encode_string(L, lua_gettop(L), out))
                return -1;
            first = false;
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        if ((kt != LUA_TSTRING && kt != LUA_TNUMBER) || !encodable(lua_type(L, -1)) ||
            (time_first && kt == LUA_TSTRING && strcmp(lua_tostring(L, -2), "time") == 0)) {
            lua_pop(L, 1);
            continue;
        }
        if (!first && LIT(out, ","))
            return -1;
        first = false;
        /* Convert a copy of the key: lua_tolstring on a number key would
         * confuse lua_next. */
        lua_pushvalue(L, -2);
        int rc = encode_string(L, lua_gettop(L), out);
        lua_pop(L, 1);
        if (rc || LIT(out, ":") || encode_value(L, lua_gettop(L), out, depth + 1))
            return -1;
        lua_pop(L, 1);
    }
    return 0;
}

static int encode_value(lua_State *L, int idx, struct logs_buf *out, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: return encode_string(L, idx, out);
    case LUA_TNUMBER: return encode_number(L, idx, out);
    case LUA_TBOOLEAN: return lua_toboolean(L, idx) ? LIT(out, "true") : LIT(out, "false");
    case LUA_TTABLE:
        if (depth >= DEPTH_MAX || !lua_checkstack(L, 4))
            return LIT(out, "null");
        if (is_array(L, idx)) {
            if (LIT(out, "["))
                return -1;
            lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, i);
                int rc = (i > 1 && LIT(out, ",")) ||
                         (encodable(lua_type(L, -1)) ? encode_value(L, lua_gettop(L), out, depth + 1) : LIT(out, "null"));
                lua_pop(L, 1);
                if (rc)
                    return -1;
            }
            return LIT(out, "]");
        }
        return LIT(out, "{") || encode_members(L, idx, out, depth, false) || LIT(out, "}");
    default: return LIT(out, "null");
    }
}

int logs_filter_pull(lua_State *L, int nres, void *arg)
{
    const struct logs_filter_call *c = arg;
    int idx = lua_gettop(L) - nres + 1;
    int t = lua_type(L, idx);
    if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, idx)))
        return LOGS_FILTER_DROP;
    if (t != LUA_TTABLE)
        return -1;
    size_t start = c->out->n;
    if (LIT(c->out, "{") || encode_members(L, idx, c->out, 0, true) || LIT(c->out, "}\n")) {
        c->out->n = start;
        return -1;
    }
    return LOGS_FILTER_KEEP;
}

/*
 * proxy_lua: the route(req) Lua hook (see proxy_lua.c for the script's
 * view). Worker thread only.
 */
#ifndef OUTRIDER_PROXY_LUA_H
#define OUTRIDER_PROXY_LUA_H

#include "proxy.h"

#define PROXY_LUA_MAX_SET 16

/* What a script decided; kept per connection (HTTP/1.1) or per stream. */
struct proxy_lua_out {
    int deny;      /* 0, or the status to answer with */
    int cluster;   /* -1: as routes say */
    unsigned n_set;
    struct {
        uint16_t name_off, name_len, value_off, value_len;
    } set[PROXY_LUA_MAX_SET]; /* headers to set, bytes in store */
    char store[2048];
    size_t store_len;
    char reason[128];
};

struct proxy_lua_call {
    const char *method, *path, *authority;
    size_t method_len, path_len, authority_len;
    const char *listener, *protocol;
    /* Pushes the request's headers into the table on top of the stack,
     * with proxy_lua_push_header. */
    void (*push_headers)(lua_State *L, const void *arg);
    const void *headers_arg;
    const struct otr_pod *caller; /* may be NULL */
    struct proxy_lua_out *out;
    struct proxy_state *st;
};

/* Runs route(req). Returns 0 (out filled) or OTR_EFALLBACK (out says
 * "no decision"; the caller applies the configured fallback). */
int proxy_lua_route(struct proxy_worker *pw, struct proxy_lua_call *call);
void proxy_lua_push_header(lua_State *L, const char *name, size_t nl, const char *value, size_t vl);
/* Whether out sets the header name (any case). */
bool proxy_lua_sets(const struct proxy_lua_out *out, const char *name, size_t nl);

#endif

/*
 * Message heads serialized into a growable buffer the connection keeps, for
 * HTTP/1.1 requests and responses whichever side they came from.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

/* Grows the buffer to fit n more bytes. */
__attribute__((noinline)) static bool head_grow(struct proxy_head_out *o, size_t n)
{
    size_t cap = *o->cap ? *o->cap : 1024;
    while (cap < *o->len + n)
        cap *= 2;
    char *nb = realloc(*o->buf, cap);
    if (!nb) {
        o->failed = true;
        return false;
    }
    *o->buf = nb;
    *o->cap = cap;
    return true;
}

/* Whether n more bytes fit, growing the buffer if needed. Inlined: heads
 * are written in many small pieces on every request and response, and the
 * buffer, kept by the connection, almost never needs to grow. */
static inline bool head_reserve(struct proxy_head_out *o, size_t n)
{
    if (o->failed)
        return false;
    return *o->len + n <= *o->cap || head_grow(o, n);
}

void proxy_head_put(struct proxy_head_out *o, const void *p, size_t n)
{
    if (!head_reserve(o, n))
        return;
    memcpy(*o->buf + *o->len, p, n);
    *o->len += n;
}

void proxy_head_str(struct proxy_head_out *o, const char *s)
{
    proxy_head_put(o, s, strlen(s));
}

/* One reservation for the whole line: heads are built field by field on
 * every request. */
void proxy_head_field(struct proxy_head_out *o, const void *name, size_t nl, const void *value, size_t vl)
{
    if (!head_reserve(o, nl + vl + 4))
        return;
    char *d = *o->buf + *o->len;
    memcpy(d, name, nl);
    d += nl;
    *d++ = ':';
    *d++ = ' ';
    memcpy(d, value, vl);
    d += vl;
    *d++ = '\r';
    *d++ = '\n';
    *o->len += nl + vl + 4;
}

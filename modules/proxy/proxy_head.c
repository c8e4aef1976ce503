/*
 * Message heads serialized into a growable buffer the connection keeps, for
 * HTTP/1.1 requests and responses whichever side they came from.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

void proxy_head_put(struct proxy_head_out *o, const void *p, size_t n)
{
    if (o->failed)
        return;
    if (*o->len + n > *o->cap) {
        size_t cap = *o->cap ? *o->cap : 1024;
        while (cap < *o->len + n)
            cap *= 2;
        char *nb = realloc(*o->buf, cap);
        if (!nb) {
            o->failed = true;
            return;
        }
        *o->buf = nb;
        *o->cap = cap;
    }
    memcpy(*o->buf + *o->len, p, n);
    *o->len += n;
}

void proxy_head_str(struct proxy_head_out *o, const char *s)
{
    proxy_head_put(o, s, strlen(s));
}

void proxy_head_field(struct proxy_head_out *o, const void *name, size_t nl, const void *value, size_t vl)
{
    proxy_head_put(o, name, nl);
    proxy_head_put(o, ": ", 2);
    proxy_head_put(o, value, vl);
    proxy_head_put(o, "\r\n", 2);
}

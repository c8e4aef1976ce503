/*
 * proxy_h2_util: byte queues, header lists and field rules shared by the
 * two legs of an HTTP/2 stream.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy_h2.h"

int proxy_bytes_put(struct proxy_bytes *b, const uint8_t *d, size_t n)
{
    if (!n)
        return 0;
    if (b->hold && b->len + n > b->hold)
        b->hold = 0; /* too long to keep for a replay: drained as usual from now on */
    if (b->off && b->off == b->len && !b->hold)
        b->off = b->len = 0;
    if (b->len + n > b->cap) {
        /* Slide down before growing: the queue is drained from the front. */
        if (b->off && !b->hold) {
            memmove(b->p, b->p + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len + n > b->cap) {
            /* Small first: most queues hold one small message. */
            size_t cap = b->cap ? b->cap : (n > 512 ? n : 512);
            while (cap < b->len + n)
                cap *= 2;
            uint8_t *np = proxy_mem_realloc(b->mem, b->p, cap);
            if (!np)
                return UV_ENOMEM;
            b->p = np;
            b->cap = proxy_mem_cap(np);
        }
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

size_t proxy_bytes_take(struct proxy_bytes *b, uint8_t *out, size_t n)
{
    size_t avail = b->len - b->off;
    if (n > avail)
        n = avail;
    if (!n)
        return 0; /* p may be NULL: memcpy must not see it */
    memcpy(out, b->p + b->off, n);
    b->off += n;
    return n;
}

void proxy_hdrs_add_h1_fields(struct proxy_hdrs *h, const char *p, size_t n)
{
    while (n) {
        const char *eol = memchr(p, '\n', n);
        size_t ll = eol ? (size_t)(eol - p) + 1 : n;
        const char *colon = memchr(p, ':', ll);
        if (colon) {
            char name[128];
            size_t nl = (size_t)(colon - p);
            const char *v = colon + 1, *ve = p + ll;
            while (ve > v && (ve[-1] == '\n' || ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            if (nl && nl < sizeof name) {
                for (size_t k = 0; k < nl; k++)
                    name[k] = (p[k] >= 'A' && p[k] <= 'Z') ? (char)(p[k] + 32) : p[k];
                if (!proxy_h2_hop_field((const uint8_t *)name, nl, (const uint8_t *)v, (size_t)(ve - v)))
                    proxy_hdrs_add(h, (const uint8_t *)name, nl, (const uint8_t *)v, (size_t)(ve - v));
            }
        }
        p += ll;
        n -= ll;
    }
}

void proxy_bytes_free(struct proxy_bytes *b)
{
    struct proxy_mem *m = b->mem;
    proxy_mem_free(m, b->p);
    memset(b, 0, sizeof *b);
    b->mem = m;
}

struct proxy_hdr_block {
    struct proxy_hdr_block *next;
    size_t used, cap;
    _Alignas(nghttp2_nv) uint8_t data[];
};

/* A list's first block also holds its first field entries: one allocation
 * for most lists instead of two. */
#define FIRST_NV 6
#define FIRST_BLOCK 512

static uint8_t *hdrs_alloc(struct proxy_hdrs *h, size_t n)
{
    struct proxy_hdr_block *b = h->blocks;
    if (!b || b->cap - b->used < n) {
        /* One small block holds most requests' fields. */
        size_t size = sizeof *b + n > 512 ? sizeof *b + n : 512;
        b = proxy_mem_alloc(h->mem, size);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = proxy_mem_cap(b) - sizeof *b;
        b->next = h->blocks;
        h->blocks = b;
    }
    uint8_t *p = b->data + b->used;
    b->used += n;
    return p;
}

#define NAME_IS(name, nl, lit) ((nl) == sizeof lit - 1 && memcmp((name), lit, sizeof lit - 1) == 0)

/* The name as a string literal when it is a common one (the names of
 * HPACK's static table, RFC 7541 appendix A, and gRPC's and proxies'
 * usual ones), else NULL; *k: which of the fields the proxy reads it is,
 * PROXY_HDR_KNOWN for none. A literal is neither copied into the list nor,
 * flagged NGHTTP2_NV_FLAG_NO_COPY_NAME, copied and lower-cased again by
 * nghttp2 when the list is submitted (lists hold lower-case names).
 * HDR_ONCE for *k: a field whose value is new on every request (request
 * and trace ids; also grpc-timeout, which the proxy reads), see
 * proxy_hdrs_add_decoded. */
#define HDR_ONCE (PROXY_HDR_KNOWN + 1)
static const char *common_name(const uint8_t *name, size_t nl, int *k)
{
#define C(lit)                                                                                                  \
    if (NAME_IS(name, nl, lit))                                                                                 \
        return lit;
#define K(lit, known)                                                                                           \
    if (NAME_IS(name, nl, lit)) {                                                                               \
        *k = known;                                                                                             \
        return lit;                                                                                             \
    }
#define ONCE(lit)                                                                                               \
    if (NAME_IS(name, nl, lit)) {                                                                               \
        *k = HDR_ONCE;                                                                                          \
        return lit;                                                                                             \
    }
    *k = PROXY_HDR_KNOWN;
    switch (nl) {
    case 2: C("te") ONCE("b3") break;
    case 3: C("age") C("via") break;
    case 4: C("date") K("host", PROXY_HDR_HOST) C("etag") C("from") C("link") C("vary") break;
    case 5: K(":path", PROXY_HDR_PATH) C("allow") C("range") break;
    case 6: C("server") C("accept") C("cookie") C("expect") break;
    case 7: C(":status") K(":method", PROXY_HDR_METHOD) C(":scheme") C("expires") C("referer") C("refresh") break;
    case 8: C("if-match") C("if-range") C("location") break;
    case 10: K(":authority", PROXY_HDR_AUTHORITY) C("user-agent") C("set-cookie") break;
    case 11: K("grpc-status", PROXY_HDR_GRPC_STATUS) C("retry-after") ONCE("traceparent") ONCE("x-b3-spanid") break;
    case 12:
        K("content-type", PROXY_HDR_CONTENT_TYPE) K("grpc-timeout", PROXY_HDR_GRPC_TIMEOUT) C("grpc-message")
        C("max-forwards") ONCE("x-request-id") ONCE("x-b3-traceid") break;
    case 13:
        C("accept-ranges") C("authorization") C("cache-control") C("content-range") C("if-none-match")
        C("last-modified") C("grpc-encoding") ONCE("uber-trace-id") break;
    case 14: C("content-length") C("accept-charset") break;
    case 15: C("accept-encoding") C("accept-language") C("x-forwarded-for") ONCE("x-amzn-trace-id") break;
    case 16:
        C("content-encoding") C("content-language") C("content-location") C("www-authenticate")
        ONCE("x-correlation-id") break;
    case 17: C("if-modified-since") C("transfer-encoding") C("x-forwarded-proto") ONCE("x-b3-parentspanid") break;
    case 18: C("proxy-authenticate") break;
    case 19: C("content-disposition") C("if-unmodified-since") C("proxy-authorization") break;
    case 20: C("grpc-accept-encoding") break;
    case 21: ONCE("x-cloud-trace-context") break;
    case 25: C("strict-transport-security") break;
    case 27: C("access-control-allow-origin") break;
    default: break;
    }
    return NULL;
#undef C
#undef K
#undef ONCE
}

/* Room for more field entries: the first in the first block, then arrays
 * of their own, doubling. */
static int hdrs_grow(struct proxy_hdrs *h)
{
    if (!h->cap && !h->blocks) {
        struct proxy_hdr_block *b = proxy_mem_alloc(h->mem, FIRST_BLOCK);
        if (!b)
            return UV_ENOMEM;
        b->next = NULL;
        b->cap = proxy_mem_cap(b) - sizeof *b;
        b->used = FIRST_NV * sizeof(nghttp2_nv);
        h->blocks = b;
        h->nv = (nghttp2_nv *)(void *)b->data;
        h->cap = FIRST_NV;
        h->nv_in_block = true;
        return 0;
    }
    size_t cap = h->cap ? h->cap * 2 : FIRST_NV;
    nghttp2_nv *nv = proxy_mem_alloc(h->mem, cap * sizeof *nv);
    if (!nv)
        return UV_ENOMEM;
    if (h->n)
        memcpy(nv, h->nv, h->n * sizeof *nv);
    if (!h->nv_in_block)
        proxy_mem_free(h->mem, h->nv);
    h->nv = nv;
    h->cap = proxy_mem_cap(nv) / sizeof *nv;
    h->nv_in_block = false;
    return 0;
}

/* NGHTTP2_NV_FLAG_NO_INDEX makes nghttp2 send a field as a literal never
 * indexed. Kept from the sender (RFC 7541 7.1.3), and set on request and
 * trace ids and grpc-timeout: indexed, a value seen once fills the HPACK
 * table with entries never used again, evicting those that are
 * (user-agent, :authority...), and nghttp2's encoder compares the value
 * with every entry of that name in its table, all of them ids then
 * (bench/proxy/h2_callgrind.sh, scenario ids: 30,100 -> 26,600
 * instructions per request; timeouts: 31,100 -> 25,200). */
int proxy_hdrs_add_decoded(struct proxy_hdrs *h, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl,
                           uint8_t flags)
{
    if (h->n == h->cap && hdrs_grow(h) != 0)
        return UV_ENOMEM;
    int k;
    const char *lit = common_name(name, nl, &k);
    uint8_t *p = hdrs_alloc(h, (lit ? 0 : nl + 1) + vl + 1);
    if (!p)
        return UV_ENOMEM;
    uint8_t *n = (uint8_t *)(uintptr_t)lit;
    if (!lit) {
        memcpy(p, name, nl);
        p[nl] = 0;
        n = p;
        p += nl + 1;
    }
    memcpy(p, value, vl);
    p[vl] = 0;
    if (k < PROXY_HDR_KNOWN && !h->at[k])
        h->at[k] = (uint32_t)h->n + 1;
    /* grpc-timeout is the time left to the call's deadline: new every call
     * too. (A table: no branch on the way of every field.) */
    static const uint8_t never_indexed[HDR_ONCE + 1] = {
        [PROXY_HDR_GRPC_TIMEOUT] = NGHTTP2_NV_FLAG_NO_INDEX,
        [HDR_ONCE] = NGHTTP2_NV_FLAG_NO_INDEX,
    };
    flags = (flags | never_indexed[k]) & NGHTTP2_NV_FLAG_NO_INDEX;
    h->nv[h->n++] = (nghttp2_nv){ n, p, nl, vl, flags | (lit ? NGHTTP2_NV_FLAG_NO_COPY_NAME : NGHTTP2_NV_FLAG_NONE) };
    h->bytes += nl + vl;
    return 0;
}

int proxy_hdrs_add(struct proxy_hdrs *h, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl)
{
    return proxy_hdrs_add_decoded(h, name, nl, value, vl, NGHTTP2_NV_FLAG_NONE);
}

void proxy_hdrs_clear(struct proxy_hdrs *h)
{
    if (!h->blocks && !h->nv)
        return; /* never filled, or cleared already */
    struct proxy_mem *m = h->mem;
    while (h->blocks) {
        struct proxy_hdr_block *b = h->blocks;
        h->blocks = b->next;
        proxy_mem_free(m, b);
    }
    if (!h->nv_in_block)
        proxy_mem_free(m, h->nv);
    memset(h, 0, sizeof *h);
    h->mem = m;
}

const nghttp2_nv *proxy_hdrs_find(const struct proxy_hdrs *h, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < h->n; i++)
        if (h->nv[i].namelen == nl && strncasecmp((const char *)h->nv[i].name, name, nl) == 0)
            return &h->nv[i];
    return NULL;
}

char *proxy_nv_put_h1(char *p, const nghttp2_nv *h)
{
    memcpy(p, h->name, h->namelen);
    p += h->namelen;
    memcpy(p, ": ", 2);
    p += 2;
    memcpy(p, h->value, h->valuelen);
    p += h->valuelen;
    memcpy(p, "\r\n", 2);
    return p + 2;
}

static bool name_is(const uint8_t *name, size_t nl, const char *lit)
{
    return strlen(lit) == nl && memcmp(name, lit, nl) == 0;
}

bool proxy_h2_hop_field(const uint8_t *name, size_t nl, const uint8_t *value, size_t vl)
{
    /* HTTP/2 names arrive lower-case (nghttp2 checks it). TE survives only
     * as "trailers", which gRPC needs end to end. Most fields are none of
     * these: the length alone tells. */
    switch (nl) {
    case 2:
        if (name_is(name, nl, "te"))
            return !(vl == 8 && strncasecmp((const char *)value, "trailers", 8) == 0);
        return false;
    case 4: return name_is(name, nl, "host");
    case 7: return name_is(name, nl, "upgrade");
    case 10: return name_is(name, nl, "connection") || name_is(name, nl, "keep-alive");
    case 16: return name_is(name, nl, "proxy-connection");
    case 17: return name_is(name, nl, "transfer-encoding");
    default: return false;
    }
}

int64_t proxy_grpc_timeout_ms(const char *v, size_t n)
{
    /* TimeoutValue is 1 to 8 ASCII digits, then one unit letter. */
    if (n < 2 || n > 9)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    switch (v[n - 1]) {
    case 'H': return x * 3600000;
    case 'M': return x * 60000;
    case 'S': return x * 1000;
    case 'm': return x;
    case 'u': return (x + 999) / 1000;
    case 'n': return (x + 999999) / 1000000;
    default: return -1;
    }
}

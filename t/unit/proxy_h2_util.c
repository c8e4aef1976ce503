// pkgs: libnghttp2
/*
 * HTTP/2 helpers: grpc-timeout parsing (units, rounding up, malformed
 * values), the hop-by-hop field rule, the byte queue between two legs, and
 * header lists whose bytes never move.
 */
#include "tap.h"

#include "../../modules/proxy/proxy_h2_util.c"
#include "../../modules/proxy/proxy_mem.c"

static void test_grpc_timeout(void)
{
    static const struct {
        const char *v;
        long long ms;
    } cases[] = {
        { "1H", 3600000 }, { "2M", 120000 }, { "5S", 5000 }, { "250m", 250 }, { "1500u", 2 },
        { "1u", 1 },       { "999999n", 1 }, { "2000000n", 2 }, { "0m", 0 },   { "99999999S", 99999999000LL },
        { "", -1 },        { "m", -1 },      { "10", -1 },      { "10x", -1 }, { "-5m", -1 },
        { "123456789m", -1 }, { "1.5S", -1 }, { " 5S", -1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_int(proxy_grpc_timeout_ms(cases[i].v, strlen(cases[i].v)), cases[i].ms, "grpc-timeout \"%s\" -> %lld",
               cases[i].v, cases[i].ms);
}

static bool hop(const char *n, const char *v)
{
    return proxy_h2_hop_field((const uint8_t *)n, strlen(n), (const uint8_t *)v, strlen(v));
}

static void test_hop(void)
{
    ok(hop("connection", "close") && hop("keep-alive", "1") && hop("proxy-connection", "x") &&
           hop("transfer-encoding", "chunked") && hop("upgrade", "h2c") && hop("host", "a"),
       "connection-specific fields are hop-by-hop in HTTP/2");
    ok(!hop("te", "trailers") && !hop("te", "Trailers"), "te: trailers passes (gRPC needs it)");
    ok(hop("te", "gzip"), "te other than trailers is dropped");
    ok(!hop("content-type", "application/grpc") && !hop("grpc-timeout", "1S"), "end-to-end fields pass");
}

static void test_bytes(void)
{
    struct proxy_bytes b = { 0 };
    uint8_t out[100000];
    is_int(proxy_bytes_take(&b, out, 10), 0, "empty queue gives nothing");
    uint8_t data[70000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7);
    is_int(proxy_bytes_put(&b, data, 1000), 0, "put 1000");
    is_int(proxy_bytes_take(&b, out, 600), 600, "take 600");
    is_int(proxy_bytes_put(&b, data + 1000, sizeof data - 1000), 0, "put the rest (grows, slides)");
    size_t got = 600, n;
    while ((n = proxy_bytes_take(&b, out + got, 4096)))
        got += n;
    ok(got == sizeof data && memcmp(out, data, sizeof data) == 0, "every byte comes out once, in order");
    is_int(proxy_bytes_put(&b, NULL, 0), 0, "putting nothing is fine");
    proxy_bytes_free(&b);
}

static void test_hdrs(void)
{
    struct proxy_hdrs h = { 0 };
    char name[32], value[64];
    for (int i = 0; i < 200; i++) {
        int nl = snprintf(name, sizeof name, "x-h%d", i), vl = snprintf(value, sizeof value, "value-%d", i * 3);
        proxy_hdrs_add(&h, (uint8_t *)name, (size_t)nl, (uint8_t *)value, (size_t)vl);
    }
    is_int(h.n, 200, "200 fields added");
    const nghttp2_nv *f = proxy_hdrs_find(&h, "X-H7");
    ok(f && f->valuelen == 8 && memcmp(f->value, "value-21", 8) == 0, "lookup ignores case; early fields did not move");
    ok(f && f->value[f->valuelen] == 0, "values are NUL-terminated");
    is_str(f ? (const char *)f->name : NULL, "x-h7", "names are kept as given");
    ok(!proxy_hdrs_find(&h, "x-h200"), "missing field not found");
    proxy_hdrs_clear(&h);
    is_int(h.n, 0, "cleared");
}

/* Common names point at literals nghttp2 need not copy; others are copied. */
static void test_hdrs_common_names(void)
{
    static const char *const common[] = {
        ":authority", ":method", ":path", ":scheme", ":status", "accept-charset", "accept-encoding",
        "accept-language", "accept-ranges", "accept", "access-control-allow-origin", "age", "allow",
        "authorization", "cache-control", "content-disposition", "content-encoding", "content-language",
        "content-length", "content-location", "content-range", "content-type", "cookie", "date", "etag",
        "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match", "if-range",
        "if-unmodified-since", "last-modified", "link", "location", "max-forwards", "proxy-authenticate",
        "proxy-authorization", "range", "referer", "refresh", "retry-after", "server", "set-cookie",
        "strict-transport-security", "transfer-encoding", "user-agent", "vary", "via", "www-authenticate",
        "te", "grpc-status", "grpc-message", "grpc-encoding", "grpc-accept-encoding",
        "x-forwarded-for", "x-forwarded-proto",
    };
    struct proxy_hdrs h = { 0 };
    size_t n = sizeof common / sizeof common[0], found = 0;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s", common[i]); /* not the test's own literal */
        proxy_hdrs_add(&h, (const uint8_t *)name, strlen(name), (const uint8_t *)"v", 1);
        const nghttp2_nv *nv = &h.nv[h.n - 1];
        found += nv->flags == NGHTTP2_NV_FLAG_NO_COPY_NAME && nv->namelen == strlen(common[i]) &&
                 strcmp((const char *)nv->name, common[i]) == 0 && (const char *)nv->name != name;
    }
    is_int((long long)found, (long long)n, "every common name points at a literal, flagged not to copy");
    proxy_hdrs_add(&h, (const uint8_t *)"x-custom", 8, (const uint8_t *)"1", 1);
    proxy_hdrs_add(&h, (const uint8_t *)"Host", 4, (const uint8_t *)"1", 1);
    proxy_hdrs_add(&h, (const uint8_t *)"dates", 5, (const uint8_t *)"1", 1);
    bool copied = true;
    for (size_t i = h.n - 3; i < h.n; i++)
        copied = copied && h.nv[i].flags == NGHTTP2_NV_FLAG_NONE && h.nv[i].name[h.nv[i].namelen] == 0;
    ok(copied, "other names (and other cases) are copied, NUL-terminated, for nghttp2 to copy");
    is_str((const char *)h.nv[h.n - 1].value, "1", "values are copied either way");
    proxy_hdrs_clear(&h);
}

/* Request and trace ids and grpc-timeout (the time left to a call's
 * deadline) are never indexed (literals, like common names);
 * a field the sender sent never indexed stays so; other flags from the
 * decoder are not taken. */
static void test_hdrs_never_indexed(void)
{
    static const char *const ids[] = {
        "x-request-id", "traceparent", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
        "x-amzn-trace-id", "x-cloud-trace-context", "uber-trace-id", "x-correlation-id", "grpc-timeout",
    };
    struct proxy_hdrs h = { 0 };
    size_t n = sizeof ids / sizeof ids[0], found = 0;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s", ids[i]);
        proxy_hdrs_add(&h, (const uint8_t *)name, strlen(name), (const uint8_t *)"v", 1);
        const nghttp2_nv *nv = &h.nv[h.n - 1];
        found += nv->flags == (NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_INDEX) &&
                 strcmp((const char *)nv->name, ids[i]) == 0 && (const char *)nv->name != name;
    }
    is_int((long long)found, (long long)n, "request and trace ids, grpc-timeout: literal names, never indexed");
    ok(proxy_hdrs_get(&h, PROXY_HDR_GRPC_TIMEOUT) != NULL, "grpc-timeout is still recorded for the proxy");
    proxy_hdrs_add_decoded(&h, (const uint8_t *)"x-secret", 8, (const uint8_t *)"s", 1, NGHTTP2_NV_FLAG_NO_INDEX);
    is_int(h.nv[h.n - 1].flags, NGHTTP2_NV_FLAG_NO_INDEX, "a field sent never indexed stays never indexed");
    proxy_hdrs_add_decoded(&h, (const uint8_t *)"cookie", 6, (const uint8_t *)"c", 1, NGHTTP2_NV_FLAG_NO_INDEX);
    is_int(h.nv[h.n - 1].flags, NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_INDEX,
           "a common name sent never indexed: literal and never indexed");
    proxy_hdrs_add_decoded(&h, (const uint8_t *)"x-other", 7, (const uint8_t *)"o", 1, NGHTTP2_NV_FLAG_NO_COPY_VALUE);
    is_int(h.nv[h.n - 1].flags, NGHTTP2_NV_FLAG_NONE, "other flags are not taken (the list owns its copies)");
    proxy_hdrs_add(&h, (const uint8_t *)"x-requests-id", 13, (const uint8_t *)"i", 1);
    is_int(h.nv[h.n - 1].flags, NGHTTP2_NV_FLAG_NONE, "other names are indexed as nghttp2 decides");
    proxy_hdrs_clear(&h);
}

/* The fields the proxy reads are found as they are added: the first of
 * each name, forgotten when the list is cleared. */
static void test_hdrs_known(void)
{
    struct proxy_hdrs h = { 0 };
    static const char *f[][2] = {
        { ":method", "POST" }, { ":path", "/a" }, { ":authority", "svc" }, { "x-a", "1" },
        { "content-type", "application/grpc" }, { "grpc-timeout", "5S" }, { "content-type", "text/plain" },
        { "grpc-statu", "x" }, { "grpc-status", "14" }, { "hosts", "no" }, { "host", "h" },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        proxy_hdrs_add(&h, (const uint8_t *)f[i][0], strlen(f[i][0]), (const uint8_t *)f[i][1], strlen(f[i][1]));
    static const struct { enum proxy_hdr_known k; const char *value; } want[] = {
        { PROXY_HDR_METHOD, "POST" }, { PROXY_HDR_PATH, "/a" }, { PROXY_HDR_AUTHORITY, "svc" },
        { PROXY_HDR_HOST, "h" }, { PROXY_HDR_CONTENT_TYPE, "application/grpc" },
        { PROXY_HDR_GRPC_TIMEOUT, "5S" }, { PROXY_HDR_GRPC_STATUS, "14" },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const nghttp2_nv *nv = proxy_hdrs_get(&h, want[i].k);
        is_str(nv ? (const char *)nv->value : NULL, want[i].value, "known field %d is the first of its name", (int)want[i].k);
        ok(nv == proxy_hdrs_find(&h, (const char *)(nv ? nv->name : (const uint8_t *)"-")), "  the one a scan finds");
    }
    proxy_hdrs_clear(&h);
    ok(!proxy_hdrs_get(&h, PROXY_HDR_METHOD) && !proxy_hdrs_get(&h, PROXY_HDR_GRPC_STATUS), "a cleared list knows none");
    proxy_hdrs_add(&h, (const uint8_t *)"x-b", 3, (const uint8_t *)"2", 1);
    proxy_hdrs_add(&h, (const uint8_t *)"grpc-status", 11, (const uint8_t *)"0", 1);
    const nghttp2_nv *gs = proxy_hdrs_get(&h, PROXY_HDR_GRPC_STATUS);
    is_str(gs ? (const char *)gs->value : NULL, "0", "refilled: the new field");
    proxy_hdrs_clear(&h);
}

/* A held queue keeps what was taken, so a retry can take it all again,
 * until it outgrows its hold; the same with its buffer from a pool (a
 * stream's queues), which grows by the pool's size classes. */
static void test_bytes_hold(struct proxy_mem *m)
{
    struct proxy_bytes b = { .hold = 10000, .mem = m };
    uint8_t data[12000], out[12000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 13);
    proxy_bytes_put(&b, data, 3000);
    is_int(proxy_bytes_take(&b, out, 3000), 3000, "held: take all 3000");
    proxy_bytes_put(&b, data + 3000, 5000); /* would reset or slide without the hold */
    is_int(proxy_bytes_take(&b, out + 3000, 2000), 2000, "take 2000 more");
    b.off = 0; /* the replay */
    size_t got = 0, n;
    while ((n = proxy_bytes_take(&b, out + got, 777)))
        got += n;
    ok(got == 8000 && memcmp(out, data, 8000) == 0, "after a rewind all 8000 bytes come out again, in order");
    is_int(b.hold, 10000, "still held");
    proxy_bytes_put(&b, data + 8000, 4000);
    is_int(b.hold, 0, "12000 bytes outgrow a 10000-byte hold: dropped");
    got = 0;
    while ((n = proxy_bytes_take(&b, out + got, 1000)))
        got += n;
    ok(got == 4000 && memcmp(out, data + 8000, 4000) == 0, "the queue goes on as a plain queue");
    proxy_bytes_free(&b);
    ok(b.mem == m && !b.p, "freed; the queue keeps its pool");
}

int main(void)
{
    test_bytes_hold(NULL);
    struct proxy_mem pool;
    proxy_mem_init(&pool);
    test_bytes_hold(&pool);
    proxy_mem_fini(&pool);
    test_grpc_timeout();
    test_hop();
    test_bytes();
    test_hdrs();
    test_hdrs_known();
    test_hdrs_common_names();
    test_hdrs_never_indexed();
    return done_testing();
}

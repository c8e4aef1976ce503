// pkgs: libnghttp2
/*
 * The HTTP/2 path's per-worker allocator: size classes, reuse of freed
 * blocks, the bounds on what it caches, realloc, the nghttp2 interface
 * (a real session allocating through it), and trim. Under ASan nothing
 * is cached, so the reuse checks become checks that nothing is kept.
 */
#include <stdbool.h>

#include "tap.h"

#include "../../modules/proxy/proxy_mem.c"

static void test_classes(void)
{
    /* Every size gets a class at least as big, at most 1.5x (plus the
     * smallest class's floor). */
    bool ok = true;
    for (size_t n = 1; n <= CLASS_MAX && ok; n++) {
        unsigned c = size_class(n);
        size_t cs = class_size(c);
        if (c >= PROXY_MEM_CLASSES || cs < n || (n > CLASS_MIN && cs * 2 > n * 3) ||
            (c > 0 && class_size(c - 1) >= n))
            ok = false;
    }
    ok(ok, "each size up to %d maps to the smallest class that holds it", CLASS_MAX);
    is_int((long long)class_size(0), 32, "smallest class 32 B");
    void *zero = proxy_mem_alloc(NULL, 0);
    is_str(zero ? "a block" : "NULL", "a block", "a zero-byte request gets a block of the smallest class");
    proxy_mem_free(NULL, zero);
    is_int((long long)class_size(PROXY_MEM_CLASSES - 1), CLASS_MAX, "largest class %d B", CLASS_MAX);
}

static void test_reuse(void)
{
    struct proxy_mem m;
    proxy_mem_init(&m);
    char *a = proxy_mem_alloc(&m, 100);
    ok(a != NULL, "alloc 100");
    ok(proxy_mem_cap(a) >= 100 && proxy_mem_cap(a) <= 150, "capacity of its class (%zu)", proxy_mem_cap(a));
    ok(((uintptr_t)a % _Alignof(max_align_t)) == 0, "aligned like malloc");
    memset(a, 'x', 100);
    proxy_mem_free(&m, a);
    char *b = proxy_mem_alloc(&m, 120);
#ifdef PROXY_MEM_ASAN
    is_int((long long)m.cached, 0, "ASan: nothing cached");
    ok(1, "ASan: no reuse to check");
#else
    ok(b == a, "a freed block of the class is reused");
    is_int((long long)m.cached, 0, "and leaves the cache");
#endif
    char *z = proxy_mem_calloc(&m, 120);
    bool zero = true;
    for (int i = 0; i < 120; i++)
        zero = zero && z[i] == 0;
    ok(zero, "calloc zeroes");
    proxy_mem_free(&m, z);
    proxy_mem_free(&m, b);
    proxy_mem_free(&m, NULL);
    ok(1, "free(NULL) is a no-op");

    /* Beyond the largest class: plain malloc, never cached. */
    char *big = proxy_mem_alloc(&m, CLASS_MAX + 1);
    ok(big && proxy_mem_cap(big) == CLASS_MAX + 1, "a large block has its exact size");
    size_t before = m.cached;
    proxy_mem_free(&m, big);
    is_int((long long)m.cached, (long long)before, "a large block is not cached");

    /* Without a pool: same blocks, nothing kept. */
    char *n = proxy_mem_alloc(NULL, 50);
    ok(n && proxy_mem_cap(n) >= 50, "alloc without a pool");
    proxy_mem_free(NULL, n);
    proxy_mem_fini(&m);
    is_int((long long)m.cached, 0, "fini empties the cache");
}

static void test_bounds(void)
{
    /* Free far more than a class may keep: the cache stays bounded. */
    struct proxy_mem m;
    proxy_mem_init(&m);
    enum { N = 4096 };
    static void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = proxy_mem_alloc(&m, 1024);
    for (int i = 0; i < N; i++)
        proxy_mem_free(&m, p[i]);
    ok(m.cached <= CLASS_CACHE_BYTES, "one class caches at most %d bytes (%zu)", CLASS_CACHE_BYTES, m.cached);
    static const size_t more[] = { 2048, 4096, 8192, 16384 };
    for (size_t k = 0; k < sizeof more / sizeof more[0]; k++) {
        for (int i = 0; i < N; i++)
            p[i] = proxy_mem_alloc(&m, more[k]);
        for (int i = 0; i < N; i++)
            proxy_mem_free(&m, p[i]);
    }
    ok(m.cached <= POOL_CACHE_BYTES, "the pool caches at most %d bytes (%zu)", POOL_CACHE_BYTES, m.cached);
#ifndef PROXY_MEM_ASAN
    ok(m.cached + CLASS_MAX > POOL_CACHE_BYTES, "and fills up to that");
#endif
    unsigned long blocks = 0;
    for (unsigned c = 0; c < PROXY_MEM_CLASSES; c++)
        blocks += m.n_free[c];
    proxy_mem_trim(&m);
    is_int((long long)m.cached, 0, "trim empties the cache (%lu blocks)", blocks);
    void *again = proxy_mem_alloc(&m, 64);
    ok(again != NULL, "the pool is usable after trim");
    proxy_mem_free(&m, again);
    proxy_mem_fini(&m);
}

static void test_realloc(void)
{
    struct proxy_mem m;
    proxy_mem_init(&m);
    char *p = proxy_mem_realloc(&m, NULL, 40);
    ok(p != NULL, "realloc(NULL) allocates");
    memcpy(p, "0123456789", 10);
    ok(proxy_mem_realloc(&m, p, 48) == p, "growing within the class keeps the block");
    char *q = proxy_mem_realloc(&m, p, 5000);
    ok(q && memcmp(q, "0123456789", 10) == 0, "growing past it moves the bytes");
    char *r = proxy_mem_realloc(&m, q, 100000);
    ok(r && memcmp(r, "0123456789", 10) == 0, "and past the largest class");
    proxy_mem_free(&m, r);
    proxy_mem_fini(&m);
}

/* A real nghttp2 client session allocating through the pool: submit
 * requests, serialise them, delete the session; then the same again
 * reuses what the first one freed. */
static void session_round(struct proxy_mem *m, int *ok)
{
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session *s;
    if (nghttp2_session_client_new3(&s, cb, NULL, NULL, &m->nghttp2) != 0) {
        *ok = 0;
        nghttp2_session_callbacks_del(cb);
        return;
    }
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
    nghttp2_nv nv[] = {
        { (uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0 },
        { (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0 },
        { (uint8_t *)":authority", (uint8_t *)"example", 10, 7, 0 },
        { (uint8_t *)":path", (uint8_t *)"/a/long/enough/path?q=1", 5, 23, 0 },
    };
    for (int i = 0; i < 50; i++)
        if (nghttp2_submit_request(s, NULL, nv, 4, NULL, NULL) < 0)
            *ok = 0;
    size_t total = 0;
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(s, &d);
        if (n <= 0) {
            if (n < 0)
                *ok = 0;
            break;
        }
        total += (size_t)n;
    }
    if (total < 50 * 9)
        *ok = 0;
    nghttp2_session_del(s);
}

static void test_nghttp2(void)
{
    struct proxy_mem m;
    proxy_mem_init(&m);
    int ok = 1;
    session_round(&m, &ok);
    ok(ok, "an nghttp2 session runs on the pool");
#ifdef PROXY_MEM_ASAN
    is_int((long long)m.cached, 0, "ASan: its freed blocks are not kept");
#else
    ok(m.cached > 0, "its freed blocks are cached (%zu bytes)", m.cached);
#endif
    session_round(&m, &ok);
    ok(ok, "a second session runs on the recycled blocks");
    proxy_mem_fini(&m);
    is_int((long long)m.cached, 0, "fini returns everything");
}

int main(void)
{
    test_classes();
    test_reuse();
    test_bounds();
    test_realloc();
    test_nghttp2();
    return done_testing();
}

/*
 * proxy_mem: size-class free lists per worker, bounded (see proxy_mem.h).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_mem.h"

/* What one class may cache, and the whole pool: enough for the churn of a
 * few hundred concurrent streams, small next to their live memory. */
#ifdef PROXY_MEM_ASAN
#define CLASS_CACHE_BYTES 0
#else
#define CLASS_CACHE_BYTES (512 * 1024)
#endif
#define POOL_CACHE_BYTES (2 * 1024 * 1024)
#define CLASS_MIN 32
#define CLASS_MAX 16384

/* The header before each block's data; the data keeps malloc's alignment.
 * While cached, the data's first bytes link the free list. */
struct proxy_mem_block {
    _Alignas(max_align_t) size_t cap;
    uint32_t cls; /* its class, PROXY_MEM_CLASSES above the largest */
};

struct proxy_mem_link {
    struct proxy_mem_block *next;
};

#define HDR sizeof(struct proxy_mem_block)

/* The class of each size up to 1 KiB by 16-byte steps (every class below
 * it is a multiple of 16): the sizes nghttp2 and the streams ask for most,
 * one load instead of the arithmetic below. */
#define SMALL_MAX 1024
static const uint8_t small_class[SMALL_MAX / 16] = {
    0, 0, 1, 2, 3, 3, 4, 4,                                 /* up to 128 */
    5, 5, 5, 5, 6, 6, 6, 6,                                 /* up to 256 */
    7, 7, 7, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8,         /* up to 512 */
    9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,         /* up to 768 */
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
};

/* Class c holds 2^(5+c/2) bytes for even c, 1.5 times 2^(5+(c-1)/2) for
 * odd c: at most a third of a block is slack. */
static inline unsigned size_class(size_t n)
{
    if (n <= SMALL_MAX)
        return n ? small_class[(n - 1) / 16] : 0;
    unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)(n - 1)); /* 2^k < n <= 2^(k+1) */
    return 2 * (k - 5) + (n > ((size_t)3 << (k - 1)) ? 2 : 1);
}

static size_t class_size(unsigned c)
{
    return c % 2 ? (size_t)3 << (4 + c / 2) : (size_t)1 << (5 + c / 2);
}

static inline void *block_data(struct proxy_mem_block *b)
{
    return (char *)b + HDR;
}

static inline struct proxy_mem_block *data_block(const void *p)
{
    return (struct proxy_mem_block *)((char *)(uintptr_t)p - HDR);
}

static inline struct proxy_mem_link *block_link(struct proxy_mem_block *b)
{
    return block_data(b);
}

size_t proxy_mem_cap(const void *p)
{
    return data_block(p)->cap;
}

/* The bodies of alloc and free, inlined into nghttp2's hooks too: the
 * library calls them several times per stream. */
static inline __attribute__((always_inline)) void *mem_alloc(struct proxy_mem *m, size_t n)
{
    size_t cap = n;
    if (n <= CLASS_MAX) {
        unsigned c = size_class(n);
        struct proxy_mem_block *b = m ? m->free[c] : NULL;
        if (b) {
            m->free[c] = block_link(b)->next;
            m->n_free[c]--;
            m->cached -= b->cap;
            return block_data(b);
        }
        cap = class_size(c);
    }
    if (cap > SIZE_MAX - HDR)
        return NULL;
    struct proxy_mem_block *b = malloc(HDR + cap);
    if (!b)
        return NULL;
    b->cap = cap;
    b->cls = n <= CLASS_MAX ? size_class(n) : PROXY_MEM_CLASSES;
    return block_data(b);
}

void *proxy_mem_alloc(struct proxy_mem *m, size_t n)
{
    return mem_alloc(m, n);
}

void *proxy_mem_calloc(struct proxy_mem *m, size_t n)
{
    void *p = proxy_mem_alloc(m, n);
    if (p)
        memset(p, 0, n);
    return p;
}

static inline __attribute__((always_inline)) void mem_free(struct proxy_mem *m, void *p)
{
    if (!p)
        return;
    struct proxy_mem_block *b = data_block(p);
    unsigned c = b->cls;
    if (m && c < PROXY_MEM_CLASSES && m->n_free[c] < m->max_free[c] && m->cached + b->cap <= POOL_CACHE_BYTES) {
        block_link(b)->next = m->free[c];
        m->free[c] = b;
        m->n_free[c]++;
        m->cached += b->cap;
        return;
    }
    free(b);
}

void proxy_mem_free(struct proxy_mem *m, void *p)
{
    mem_free(m, p);
}

void *proxy_mem_realloc(struct proxy_mem *m, void *p, size_t n)
{
    if (!p)
        return proxy_mem_alloc(m, n);
    size_t cap = proxy_mem_cap(p);
    if (n <= cap)
        return p;
    void *np = proxy_mem_alloc(m, n);
    if (!np)
        return NULL;
    memcpy(np, p, cap);
    proxy_mem_free(m, p);
    return np;
}

void proxy_mem_trim(struct proxy_mem *m)
{
    for (unsigned c = 0; c < PROXY_MEM_CLASSES; c++) {
        while (m->free[c]) {
            struct proxy_mem_block *b = m->free[c];
            m->free[c] = block_link(b)->next;
            free(b);
        }
        m->n_free[c] = 0;
    }
    m->cached = 0;
}

/* nghttp2's allocator interface: the pool rides in mem_user_data. */
static void *nghttp2_on_malloc(size_t n, void *m)
{
    return mem_alloc(m, n);
}

static void nghttp2_on_free(void *p, void *m)
{
    mem_free(m, p);
}

static void *nghttp2_on_calloc(size_t nmemb, size_t size, void *m)
{
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    return proxy_mem_calloc(m, nmemb * size);
}

static void *nghttp2_on_realloc(void *p, size_t n, void *m)
{
    return proxy_mem_realloc(m, p, n);
}

void proxy_mem_init(struct proxy_mem *m)
{
    memset(m, 0, sizeof *m);
    for (unsigned c = 0; c < PROXY_MEM_CLASSES; c++)
        m->max_free[c] = (uint32_t)(CLASS_CACHE_BYTES / class_size(c));
    m->nghttp2 = (nghttp2_mem){ m, nghttp2_on_malloc, nghttp2_on_free, nghttp2_on_calloc, nghttp2_on_realloc };
}

void proxy_mem_fini(struct proxy_mem *m)
{
    proxy_mem_trim(m);
}

/*
 * proxy_mem: a per-worker allocator for the HTTP/2 path (nghttp2 sessions,
 * streams, their header lists and body queues).
 *
 * Hundreds of concurrent streams allocate and free the same few sizes in
 * bursts; glibc's per-thread cache holds only 7 blocks per size and none
 * above 1 KiB, so most of those calls went through its slow paths. Here
 * each size class (32 B to 16 KiB, two per power of two) keeps a free list
 * of blocks, bounded per class and per worker so an idle worker holds
 * little; larger requests go straight to malloc.
 *
 * Every block starts with a small header holding its capacity, so any
 * pool of the same thread (or none) may free it. Under AddressSanitizer
 * nothing is cached: a use after free must reach ASan's quarantine rather
 * than a recycled block.
 *
 * Worker thread only; a pool belongs to one struct proxy_worker.
 */
#ifndef OUTRIDER_PROXY_MEM_H
#define OUTRIDER_PROXY_MEM_H

#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

/* Under AddressSanitizer caches keep nothing (see above). */
#if defined(__SANITIZE_ADDRESS__)
#define PROXY_MEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PROXY_MEM_ASAN 1
#endif
#endif

#define PROXY_MEM_CLASSES 19 /* 32, 48, 64, 96, ... 12288, 16384 bytes */

struct proxy_mem_block;

struct proxy_mem {
    struct proxy_mem_block *free[PROXY_MEM_CLASSES];
    uint32_t n_free[PROXY_MEM_CLASSES];
    uint32_t max_free[PROXY_MEM_CLASSES]; /* the bound of each class */
    size_t cached; /* bytes held in the free lists */
    nghttp2_mem nghttp2; /* hands this pool to nghttp2_session_*_new3 */
};

void proxy_mem_init(struct proxy_mem *m);
/* Returns every cached block to malloc. Any thread once the worker is
 * done with the pool. */
void proxy_mem_fini(struct proxy_mem *m);
/* Same as fini but the pool stays usable (an idle worker's memory). */
void proxy_mem_trim(struct proxy_mem *m);

/* Like malloc/calloc/realloc/free; m may be NULL (no caching). Blocks
 * come only from these functions and go back only through them. */
void *proxy_mem_alloc(struct proxy_mem *m, size_t n);
void *proxy_mem_calloc(struct proxy_mem *m, size_t n);
void *proxy_mem_realloc(struct proxy_mem *m, void *p, size_t n);
void proxy_mem_free(struct proxy_mem *m, void *p);
/* The usable size of a block (at least what was asked for). */
size_t proxy_mem_cap(const void *p);

#endif

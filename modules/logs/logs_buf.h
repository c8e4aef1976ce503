/*
 * logs_buf: a growable byte buffer with a hard cap, reused across lines so
 * the hot path does not allocate once it has warmed up.
 */
#ifndef LOGS_BUF_H
#define LOGS_BUF_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct logs_buf {
    char *p;
    size_t n, cap;
};

/* Makes room for extra more bytes. Returns 0, or -1 if out of memory (the
 * buffer is unchanged). */
static inline int logs_buf_reserve(struct logs_buf *b, size_t extra)
{
    /* Never leaves p NULL, so callers may form p + n even for 0 bytes. */
    if (b->n + extra <= b->cap && b->p)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int logs_buf_append(struct logs_buf *b, const void *p, size_t n)
{
    if (logs_buf_reserve(b, n))
        return -1;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

/* Releases the memory. */
static inline void logs_buf_free(struct logs_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

#endif

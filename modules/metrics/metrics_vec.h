/*
 * metrics_vec: a growable array of fixed-size elements in chunks of 1,024.
 * Elements never move (pointers to them stay valid), growth copies no
 * elements, and at most one chunk is partly used, so memory follows the
 * count closely: a doubling array holds up to twice what it needs, which
 * for 100,000 series is most of the bytes per series.
 */
#ifndef OTR_METRICS_VEC_H
#define OTR_METRICS_VEC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "metrics_buf.h"

#define MVEC_SHIFT 10
#define MVEC_CHUNK (1u << MVEC_SHIFT)

struct mvec {
    char **chunks;
    uint32_t n;          /* elements */
    uint32_t n_chunks;   /* allocated chunks */
    uint32_t chunks_cap; /* slots in chunks[] */
    uint32_t elem;       /* element size in bytes */
};

static inline void mvec_init(struct mvec *v, size_t elem)
{
    *v = (struct mvec){NULL, 0, 0, 0, (uint32_t)elem};
}

static inline void *mvec_at(const struct mvec *v, uint32_t i)
{
    return v->chunks[i >> MVEC_SHIFT] + (size_t)(i & (MVEC_CHUNK - 1)) * v->elem;
}

/* Appends an uninitialised element; returns it. */
static inline void *mvec_push(struct mvec *v)
{
    if ((v->n >> MVEC_SHIFT) == v->n_chunks) {
        if (v->n_chunks == v->chunks_cap) {
            v->chunks_cap = v->chunks_cap ? v->chunks_cap * 2 : 4;
            v->chunks = xrealloc(v->chunks, v->chunks_cap * sizeof *v->chunks);
        }
        v->chunks[v->n_chunks++] = xmalloc((size_t)MVEC_CHUNK * v->elem);
    }
    return mvec_at(v, v->n++);
}

static inline void mvec_fini(struct mvec *v)
{
    for (uint32_t i = 0; i < v->n_chunks; i++)
        free(v->chunks[i]);
    free(v->chunks);
    mvec_init(v, v->elem);
}

/* Heap bytes held. */
static inline size_t mvec_memory(const struct mvec *v)
{
    return (size_t)v->n_chunks * MVEC_CHUNK * v->elem + v->chunks_cap * sizeof *v->chunks;
}

#endif

/*
 * logs_spool: the disk overflow of a queue. When the memory buffer is full
 * (an output is down or slow), sealed chunks that no output is sending are
 * written to segment files and their memory freed; they are read back when
 * an output reaches them. Segment files are appended to until they reach
 * segment_size, and deleted once every chunk in them was released. The
 * total is capped at max_size: beyond it the queue is full (sources pause,
 * or the configured drop policy applies to those that cannot).
 *
 * The spool bridges outages of a running agent; it is not kept across
 * restarts (files are re-read from their checkpoints instead), so a
 * directory's old segments are removed when it opens.
 */
#ifndef LOGS_SPOOL_H
#define LOGS_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct logs_spool_seg {
    uint32_t id;
    unsigned live;  /* chunks in it not yet released */
};

struct logs_spool {
    char *dir;
    uint64_t max_size, segment_size;
    int fd;                    /* the segment being appended to, -1 if none */
    uint32_t cur_id, next_id;
    uint64_t cur_off;
    struct logs_spool_seg *segs;
    size_t n_segs, cap_segs;
    uint64_t bytes;            /* live bytes on disk */
    /* Counters. */
    uint64_t written_chunks, read_chunks, errors;
};

/* Creates dir if needed and removes old segments. Returns 0 or -errno. */
int logs_spool_open(struct logs_spool *s, const char *dir, uint64_t max_size, uint64_t segment_size);
void logs_spool_close(struct logs_spool *s);

/* Appends n bytes; sets where they went. Returns 0, OTR-style UV_ENOSPC
 * when the cap would be exceeded, or -errno. */
int logs_spool_write(struct logs_spool *s, const void *p, size_t n, uint32_t *seg, uint64_t *off);
/* Reads n bytes back. Returns 0 or -errno. */
int logs_spool_read(struct logs_spool *s, uint32_t seg, uint64_t off, void *p, size_t n);
/* A chunk of n bytes in seg is gone for good. */
void logs_spool_release(struct logs_spool *s, uint32_t seg, size_t n);

#endif

/*
 * logs_queue: the bounded buffer between sources and outputs.
 *
 * Records arrive encoded (JSON lines) and are appended to chunks; each chunk
 * remembers, per source, how far its records reach (marks). Every output
 * reads the chunks in order at its own pace and acknowledges them; a chunk
 * is released only when every output acknowledged it, and only then are its
 * marks acknowledged to their sources (file checkpoints, forward acks), in
 * order. That is the whole at-least-once contract.
 *
 * Memory is bounded by mem_limit. Above it, with a spool, sealed chunks no
 * output is sending move to disk; without one, or with the spool full, the
 * queue reports itself full and sources that can wait (files, forward
 * connections) pause until there is room again. Sources that cannot wait
 * (the bus) lose records by the drop policy, counted.
 *
 * One queue per worker, used from that worker's thread only.
 */
#ifndef LOGS_QUEUE_H
#define LOGS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logs_buf.h"
#include "logs_spool.h"

/* A source's position: "everything of mine up to (a, b) is in here".
 * ack() is called when the chunk is released; unref() when the queue
 * forgets the mark (after ack, or when the queue is freed undelivered). */
struct logs_source_ops {
    void (*ack)(void *src, uint64_t a, uint64_t b);
    void (*unref)(void *src);
    void (*ref)(void *src);
    /* The source keeps its records until acknowledged and gives them again
     * after a restart (a file from its checkpoint, an old spool segment):
     * the spool need not keep them. Others (the bus, forward input) have
     * their records written to the spool when their chunk is sealed. */
    bool kept_by_source;
};

struct logs_mark {
    const struct logs_source_ops *ops;
    void *src;
    uint64_t a, b;
};

struct logs_chunk {
    struct logs_chunk *next;
    uint64_t seq;
    struct logs_buf data;       /* JSON lines, each ending in '\n' */
    uint32_t n_records;
    bool sealed;                /* no more appends; outputs may take it */
    bool in_memory;             /* data holds the bytes (else only the spool) */
    bool on_disk;               /* a copy is in the spool at (seg, seg_off) */
    uint32_t seg;
    uint64_t seg_frame, seg_off;
    size_t len;                 /* bytes when spilled */
    uint64_t opened_ms;         /* loop time of the first record */
    struct logs_mark *marks;
    size_t n_marks, cap_marks;
    /* (offset, length) pairs of the records no source keeps: what a
     * restart replays from the spool. */
    uint32_t *runs;
    uint32_t n_runs, cap_runs;
};

struct logs_queue;
typedef void (*logs_queue_fn)(void *arg, struct logs_queue *q);

struct logs_queue {
    struct logs_chunk *head, *tail; /* oldest .. newest */
    struct logs_chunk *spare;       /* released chunks kept for reuse */
    size_t n_spare;
    uint64_t next_seq;              /* seq of the next chunk created */
    uint64_t released_seq;          /* chunks below this are gone */
    size_t mem_bytes, mem_limit, chunk_size;
    bool full;
    /* Called when the queue becomes full / drains below half of the limit
     * (sources pause / resume), and when a chunk is sealed (outputs wake). */
    logs_queue_fn on_full, on_space, on_sealed;
    void *arg;
    /* Outputs register their acknowledged position here. */
    uint64_t *acked;                /* per output: every chunk below is done */
    uint64_t *sent;                 /* per output: chunks below were taken */
    size_t n_outputs;
    struct logs_spool *spool;       /* NULL: memory only */
    int drop_policy;                /* enum logs_drop_policy */
    uint64_t records_in, bytes_in, spilled, dropped_records, spool_errors;
};

enum logs_drop_policy {
    LOGS_DROP_NEWEST = 0, /* a record that cannot wait is dropped */
    LOGS_DROP_OLDEST,     /* the oldest chunk nobody is sending makes room */
};
#define LOGS_DROP_CHOICES "drop_newest|drop_oldest"


void logs_queue_init(struct logs_queue *q, size_t mem_limit, size_t chunk_size, size_t n_outputs);
/* Frees every chunk; marks not yet acknowledged are only unref'ed. */
void logs_queue_fini(struct logs_queue *q);

/* Appends one encoded line (with its '\n') from source src, whose position
 * after it is (a, b); n == 0 only moves the source's position (a dropped
 * record). now_ms is the loop time. Returns 0 or -1 (memory). */
int logs_queue_push(struct logs_queue *q, const char *line, size_t n, const struct logs_source_ops *ops, void *src,
                    uint64_t a, uint64_t b, uint64_t now_ms);
/* Seals the newest chunk if it holds anything (outputs flush on a timer). */
void logs_queue_seal(struct logs_queue *q);
/* The first sealed chunk with seq >= seq, or NULL. */
struct logs_chunk *logs_queue_at(struct logs_queue *q, uint64_t seq);
/* Output i acknowledged every chunk below seq: releases what all outputs
 * have, acknowledging marks in order. */
void logs_queue_ack(struct logs_queue *q, size_t output, uint64_t seq);
/* Adds a spool (owned by the caller) for overflow. */
void logs_queue_set_spool(struct logs_queue *q, struct logs_spool *spool, int drop_policy);
/* Output i took every chunk below seq (a batch in flight). */
void logs_queue_note_sent(struct logs_queue *q, size_t output, uint64_t seq);
/* Makes c's bytes available in memory (reads them back from the spool).
 * Returns 0 or a negative error. */
int logs_queue_load(struct logs_queue *q, struct logs_chunk *c);
/* The queue is full and a record cannot wait: applies the drop policy.
 * Returns true if the record may be pushed (drop_oldest dropped a chunk,
 * its records counted in dropped_records), false if the record must be
 * dropped (drop_newest, or nothing to drop; the caller counts it). */
bool logs_queue_make_room(struct logs_queue *q);

/* Whether the queue holds nothing. */
bool logs_queue_empty(const struct logs_queue *q);

#endif

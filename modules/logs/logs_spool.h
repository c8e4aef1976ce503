/*
 * logs_spool: the disk overflow of a queue. When the memory buffer is full
 * (an output is down or slow), sealed chunks that no output is sending are
 * written to segment files and their memory freed; they are read back when
 * an output reaches them. Segment files are appended to until they reach
 * segment_size, and deleted once every chunk in them was released. The
 * total is capped at max_size: beyond it the queue is full (sources pause,
 * or the configured drop policy applies to those that cannot).
 *
 * Segments outlive the process: a chunk holding records that no source
 * keeps for us (bus, forward input) is written as soon as it is sealed, so
 * a restart, a crash or a hot upgrade finds it (logs_replay.c). Each chunk
 * is one frame: a header (magic, state, run count, data length), the runs
 * (offset, length) of the records to replay, then the chunk's bytes. The
 * state byte turns from 'L' (live) to 'D' (done) when the chunk is
 * released, so a replay after a crash skips what was delivered. Records of
 * tailed files are in no run: their checkpoint re-reads them.
 *
 * Durability (sync): the process's end (SIGTERM, kill -9) keeps whatever
 * was written; a machine crash keeps only what reached the disk. With
 * sync set, a frame holding records to replay is fdatasync'ed as it is
 * written (one call per chunk, never per record), and the directory is
 * fsynced once per new segment so the file itself survives. Frames without
 * runs (tailed files) and done marks are not synced: their loss means lines
 * read again or delivered twice, never lost.
 */
#ifndef LOGS_SPOOL_H
#define LOGS_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOGS_SPOOL_MAGIC "OTRS"
#define LOGS_SPOOL_LIVE 'L'
#define LOGS_SPOOL_DONE 'D'
/* A frame's header, little-endian on disk (the host's order: segments
 * never leave the machine). */
struct logs_spool_frame {
    char magic[4];
    uint8_t state;
    uint8_t pad[3];
    uint32_t n_runs;   /* (uint32 offset, uint32 length) pairs follow */
    uint32_t data_len; /* then the chunk's bytes */
};

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
    bool sync;                 /* fdatasync frames with runs; fsync the dir per new segment */
    /* Counters. */
    uint64_t written_chunks, read_chunks, errors, syncs;
};

/* Creates dir if needed; segments already there (a previous process's,
 * replayed by logs_replay) are left alone and new ones numbered after
 * them. Returns 0 or -errno. */
int logs_spool_open(struct logs_spool *s, const char *dir, uint64_t max_size, uint64_t segment_size);
/* Deletes the segments whose chunks were all released; the others stay
 * for the next process. */
void logs_spool_close(struct logs_spool *s);

/* Appends one frame: n bytes and the runs (pairs) to replay after a
 * restart, on disk before it returns when sync is set and there are runs
 * (a failed sync is counted in errors: the frame stays, readable, but may
 * not survive a machine crash). Sets the segment, the frame's offset and
 * its bytes' offset.
 * Returns 0, UV_ENOSPC when the cap would be exceeded, or -errno. */
int logs_spool_write(struct logs_spool *s, const uint32_t *runs, uint32_t n_runs, const void *p, size_t n,
                     uint32_t *seg, uint64_t *frame, uint64_t *off);
/* Reads n bytes back. Returns 0 or -errno. */
int logs_spool_read(struct logs_spool *s, uint32_t seg, uint64_t off, void *p, size_t n);
/* The chunk of n bytes whose frame is at frame in seg is gone for good
 * (delivered or dropped): marked done, its segment deleted once empty. */
void logs_spool_release(struct logs_spool *s, uint32_t seg, uint64_t frame, size_t n);
/* Marks the frame at off in the open file fd done. Returns 0 or -errno. */
int logs_spool_mark_done(int fd, uint64_t off);
/* The number in a segment's name "spool-<id>.seg", or -1. */
long logs_spool_seg_id(const char *name);

#endif

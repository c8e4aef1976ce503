/*
 * logs_replay: gives the records a previous process left in its spool
 * segments (bus and forward records it had not delivered when it stopped,
 * crashed or handed over in a hot upgrade) to the queue again, as one more
 * source. Frames marked done are skipped, and so are the records of tailed
 * files, which their checkpoint re-reads (they are in no frame's runs).
 *
 * The replay is paced by the queue: frames are pushed only while it has
 * room. A segment is deleted once every output acknowledged all of its
 * records; each delivered frame is marked done before that, so a crash
 * during the replay sends again at most what was in flight.
 *
 * One replay per worker, used from that worker's thread only.
 */
#ifndef LOGS_REPLAY_H
#define LOGS_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "logs_buf.h"
#include "logs_queue.h"

struct logs_replay_seg {
    char *path;
    uint64_t size;  /* when it was found: the previous process is gone */
    uint64_t acked; /* frames below are delivered (marked done) */
};

struct logs_replay {
    struct logs_replay_seg *segs;
    size_t n_segs, cap_segs;
    size_t cur;          /* segment being read */
    uint64_t cur_off;    /* next frame in it */
    int fd;              /* cur's descriptor, -1 if none */
    int ack_fd;          /* the descriptor for marking frames done */
    size_t ack_seg;
    struct logs_buf buf;
    /* Counters. */
    uint64_t records, frames, bad_frames, errors;
};

void logs_replay_init(struct logs_replay *r);
void logs_replay_fini(struct logs_replay *r);
/* Adds the segments of dir (spool-<id>.seg, by id). Returns 0 or -errno. */
int logs_replay_add_dir(struct logs_replay *r, const char *dir);
/* Pushes up to max_frames frames while q has room. Returns true when
 * every segment was read (their acknowledgements may still come). */
bool logs_replay_pump(struct logs_replay *r, struct logs_queue *q, unsigned max_frames, uint64_t now_ms);
/* Whether segments remain to be read. */
bool logs_replay_pending(const struct logs_replay *r);

#endif

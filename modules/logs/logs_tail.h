/*
 * logs_tail: follows files named by glob patterns on one libuv loop.
 *
 * - Discovery: the patterns are expanded at start and every rescan period,
 *   and right away when a watched directory reports a change (uv_fs_event on
 *   the deepest directory of each pattern without wildcards).
 * - Identity: device + inode, checked against a fingerprint (FNV-1a of the
 *   first up to 256 bytes) so a reused inode is not mistaken for the old
 *   file.
 * - Rotation by rename (and create): when the path names another file or
 *   none, the old descriptor is read to its end and closed once it has not
 *   grown for rotate_wait; the new file is read from its head, only after the
 *   old one reached its end (lines of one path stay in order). A file deleted
 *   while open is read to its end the same way.
 * - Rotation by copytruncate: a file shorter than the read offset, or whose
 *   first bytes changed, starts again at 0 (lines written between the
 *   copy and the truncation that were not read yet exist only in the copy:
 *   the nature of copytruncate).
 * - Checkpoints: the owner acknowledges offsets (logs_file_ack) once every
 *   output has them; the tailer saves them atomically every checkpoint
 *   period and at stop, and resumes from them, also finishing a file that
 *   was rotated away while the agent was down.
 * - Backpressure: logs_tailer_pause stops reading until resume.
 *
 * All functions run on the loop's thread.
 */
#ifndef LOGS_TAIL_H
#define LOGS_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "logs_buf.h"
#include "logs_checkpoint.h"

struct logs_tail_conf {
    const char *const *paths; /* glob(3) patterns */
    size_t n_paths;
    bool from_head;           /* files found at start without a checkpoint: read from the head (else the end) */
    uint64_t poll_ms;         /* how often open files are checked for growth and truncation */
    uint64_t rescan_ms;       /* how often the patterns are expanded again */
    uint64_t rotate_wait_ms;  /* how long a rotated file is kept open after it last grew */
    uint64_t checkpoint_ms;   /* how often acknowledged offsets are saved; 0: only
                                 when the owner calls logs_tailer_checkpoint */
    size_t read_size;         /* bytes per read() */
    size_t max_line;          /* longest line passed whole; longer ones are cut */
    const char *checkpoint_path; /* NULL: no checkpoints */
};

struct logs_tailer;

struct logs_file {
    struct logs_file *next;
    struct logs_tailer *t;
    char *path;               /* where it is (its new name once rotated) */
    char *origin;             /* the path a pattern found it at */
    int fd;                   /* -1 once closed */
    uint64_t dev, ino;
    uint32_t fp_len;
    uint64_t fp_hash;
    uint64_t read_off;        /* next byte read() returns */
    uint64_t size;            /* size at the last check */
    uint64_t acked_off;       /* delivered up to here (the checkpoint) */
    uint32_t epoch;           /* bumped on truncation: older acks are void */
    struct logs_buf line;     /* an unterminated line carried between reads */
    uint64_t line_off;        /* its source offset */
    struct logs_file *pred;   /* an older file of the same path still being read */
    uint64_t last_growth_ms;
    bool rotated, at_eof, seen;
    unsigned refs;            /* owner's references (records in flight) */
    void *user;               /* the owner's per-file state */
};

struct logs_tail_cb {
    /* A file was opened (or restarted after truncation). */
    void (*open)(void *arg, struct logs_file *f);
    /* One line, without its newline, at [start, end) in the file. */
    void (*line)(void *arg, struct logs_file *f, const char *p, size_t n, uint64_t start, uint64_t end);
    /* The file's content ended (closed after rotation, truncated, or the
     * tailer stops): emit what is held for it. */
    void (*close)(void *arg, struct logs_file *f);
    /* The tailer went through its files and read everything available. */
    void (*idle)(void *arg);
    /* The tailer forgets the file (after close, once unreferenced and no
     * longer found, or at fini): free f->user. */
    void (*release)(void *arg, struct logs_file *f);
    void *arg;
};

struct logs_watch {
    uv_fs_event_t ev;
    struct logs_tailer *t;
};

struct logs_tailer {
    uv_loop_t *loop;
    struct logs_tail_conf conf;
    struct logs_tail_cb cb;
    uv_timer_t poll, rescan, ckpt_timer;
    uv_idle_t more;
    struct logs_watch *watches;
    size_t n_watches;
    int pending_closes;
    void (*on_stopped)(struct logs_tailer *t);
    struct logs_file *files;
    struct logs_ckpt ckpt;     /* loaded at start: entries waiting for their file */
    char *rbuf;
    bool paused, started, stopping, ckpt_dirty;
    /* Counters, read by the owner. */
    uint64_t files_opened, rotations, truncations, read_errors, bytes_read, lines_read, ckpt_errors;
};

/* Prepares t on loop (copies conf's scalars; paths and checkpoint_path are
 * borrowed and must outlive t). Returns 0 or UV_ENOMEM. */
int logs_tailer_init(struct logs_tailer *t, uv_loop_t *loop, const struct logs_tail_conf *conf,
                     const struct logs_tail_cb *cb);
/* Loads the checkpoint, scans, opens handles and starts reading. Returns 0
 * or a negative error (unreadable checkpoint). */
int logs_tailer_start(struct logs_tailer *t);
/* Stops reading, saves the checkpoint and closes the handles; on_stopped
 * runs once they are closed. What the owner holds for live files is not
 * emitted: the checkpoint lies before it, so a restart reads it again. Then
 * logs_tailer_fini (which releases every file). */
void logs_tailer_stop(struct logs_tailer *t, void (*on_stopped)(struct logs_tailer *t));
void logs_tailer_fini(struct logs_tailer *t);

void logs_tailer_pause(struct logs_tailer *t);
void logs_tailer_resume(struct logs_tailer *t);

/* Saves the checkpoint now (also done periodically). Returns 0 or -errno. */
int logs_tailer_checkpoint(struct logs_tailer *t);

/* The owner's references on a file (records in flight keep it alive). */
void logs_file_ref(struct logs_file *f);
void logs_file_unref(struct logs_file *f);
/* Everything before off (in epoch) is delivered. */
void logs_file_ack(struct logs_file *f, uint32_t epoch, uint64_t off);

/* Bytes not yet read from open files (the lag), and the number of files. */
uint64_t logs_tailer_lag(const struct logs_tailer *t);
size_t logs_tailer_count(const struct logs_tailer *t);

#endif

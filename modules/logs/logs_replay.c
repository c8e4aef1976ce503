/*
 * logs_replay: old spool segments read back frame by frame into the queue.
 * A queue mark (segment index, end of frame) follows every frame, so the
 * acknowledgement tells exactly which frames every output has.
 */
#include "logs_replay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "logs_spool.h"

void logs_replay_init(struct logs_replay *r)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->ack_fd = -1;
}

void logs_replay_fini(struct logs_replay *r)
{
    if (r->fd >= 0)
        close(r->fd);
    if (r->ack_fd >= 0)
        close(r->ack_fd);
    for (size_t i = 0; i < r->n_segs; i++)
        free(r->segs[i].path);
    free(r->segs);
    logs_buf_free(&r->buf);
    logs_replay_init(r);
}

struct found {
    long id;
    char *path;
    uint64_t size;
};

static int found_cmp(const void *a, const void *b)
{
    long x = ((const struct found *)a)->id, y = ((const struct found *)b)->id;
    return (x > y) - (x < y);
}

int logs_replay_add_dir(struct logs_replay *r, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct found *f = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d)) && !rc;) {
        long id = logs_spool_seg_id(e->d_name);
        if (id < 0)
            continue;
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            struct found *g = realloc(f, cap * sizeof *g);
            if (!g) {
                rc = UV_ENOMEM;
                break;
            }
            f = g;
        }
        f[n].id = id;
        f[n].size = (uint64_t)st.st_size;
        if (!(f[n++].path = strdup(p)))
            rc = UV_ENOMEM;
    }
    closedir(d);
    if (!rc && n)
        qsort(f, n, sizeof *f, found_cmp);
    for (size_t i = 0; i < n; i++) {
        if (!rc && r->n_segs == r->cap_segs) {
            size_t c = r->cap_segs ? r->cap_segs * 2 : 8;
            struct logs_replay_seg *s = realloc(r->segs, c * sizeof *s);
            if (s) {
                r->segs = s;
                r->cap_segs = c;
            } else {
                rc = UV_ENOMEM;
            }
        }
        if (rc) {
            free(f[i].path);
            continue;
        }
        r->segs[r->n_segs++] = (struct logs_replay_seg){.path = f[i].path, .size = f[i].size};
    }
    free(f);
    return rc;
}

bool logs_replay_pending(const struct logs_replay *r)
{
    return r->cur < r->n_segs;
}

/* ---- acknowledgements: mark frames done, delete finished segments ---------- */

static void replay_ref(void *src)
{
    (void)src;
}

/* Every frame of segment a below b is delivered. */
static void replay_ack(void *src, uint64_t a, uint64_t b)
{
    struct logs_replay *r = src;
    if (a >= r->n_segs)
        return;
    /* Marks come in order: earlier segments are finished. */
    for (size_t i = 0; i < a; i++) {
        if (r->segs[i].path && r->segs[i].acked < UINT64_MAX) {
            unlink(r->segs[i].path);
            r->segs[i].acked = UINT64_MAX;
        }
    }
    struct logs_replay_seg *g = &r->segs[a];
    if (g->acked == UINT64_MAX)
        return;
    if (b >= g->size) {
        unlink(g->path);
        g->acked = UINT64_MAX;
        return;
    }
    if (r->ack_fd < 0 || r->ack_seg != a) {
        if (r->ack_fd >= 0)
            close(r->ack_fd);
        r->ack_fd = open(g->path, O_RDWR | O_CLOEXEC);
        r->ack_seg = a;
        if (r->ack_fd < 0) {
            r->errors++;
            return;
        }
    }
    /* Walk the headers from the last acknowledged frame up to b. */
    while (g->acked < b) {
        struct logs_spool_frame h;
        if (pread(r->ack_fd, &h, sizeof h, (off_t)g->acked) != (ssize_t)sizeof h) {
            r->errors++;
            return;
        }
        if (h.state == LOGS_SPOOL_LIVE && logs_spool_mark_done(r->ack_fd, g->acked))
            r->errors++;
        g->acked += sizeof h + (uint64_t)h.n_runs * 8 + h.data_len;
    }
}

static const struct logs_source_ops replay_ops = {.ack = replay_ack, .ref = replay_ref, .unref = replay_ref,
                                                  .kept_by_source = true};

/* ---- reading --------------------------------------------------------------------- */

static void next_segment(struct logs_replay *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->cur++;
    r->cur_off = 0;
}

/* Reads exactly n bytes at off. Returns 0, or UV_EOF when the file is
 * shorter, or -errno. */
static int read_at(int fd, void *p, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return UV_EOF;
        got += (size_t)k;
    }
    return 0;
}

/* Pushes the runs of the frame at r->cur_off, whose header is h, each line
 * a record; the last push carries the frame's mark. */
static int push_frame(struct logs_replay *r, struct logs_queue *q, const struct logs_spool_frame *h, uint64_t end,
                      uint64_t now_ms)
{
    size_t runs_len = (size_t)h->n_runs * 8, n = runs_len + h->data_len;
    if (logs_buf_reserve(&r->buf, n))
        return UV_ENOMEM;
    int rc = read_at(r->fd, r->buf.p, n, r->cur_off + sizeof *h);
    if (rc)
        return rc;
    const uint32_t *runs = (const uint32_t *)(void *)r->buf.p;
    const char *data = r->buf.p + runs_len;
    for (uint32_t i = 0; i < h->n_runs; i++) {
        uint32_t off = runs[2 * i], len = runs[2 * i + 1];
        if (off > h->data_len || len > h->data_len - off)
            return UV_EINVAL;
        for (const char *p = data + off, *e = p + len; p < e;) {
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            const char *stop = nl ? nl + 1 : e;
            if (logs_queue_push(q, p, (size_t)(stop - p), &replay_ops, r, r->cur, end, now_ms))
                return UV_ENOMEM;
            r->records++;
            p = stop;
        }
    }
    return 0;
}

bool logs_replay_pump(struct logs_replay *r, struct logs_queue *q, unsigned max_frames, uint64_t now_ms)
{
    while (r->cur < r->n_segs && max_frames-- && !q->full) {
        struct logs_replay_seg *g = &r->segs[r->cur];
        if (r->fd < 0 && (r->fd = open(g->path, O_RDONLY | O_CLOEXEC)) < 0) {
            r->errors++;
            next_segment(r);
            continue;
        }
        struct logs_spool_frame h;
        int rc = r->cur_off + sizeof h <= g->size ? read_at(r->fd, &h, sizeof h, r->cur_off) : UV_EOF;
        uint64_t end = 0;
        if (!rc) {
            end = r->cur_off + sizeof h + (uint64_t)h.n_runs * 8 + h.data_len;
            if (memcmp(h.magic, LOGS_SPOOL_MAGIC, 4) || end > g->size)
                rc = UV_EINVAL;
        }
        if (!rc && h.state == LOGS_SPOOL_LIVE && h.n_runs)
            rc = push_frame(r, q, &h, end, now_ms);
        if (rc) {
            /* The end of the segment, or a frame cut short (a crash while
             * writing it) or damaged: what follows cannot be trusted. The
             * mark lets the segment go once what came before is out. */
            if (rc != UV_EOF || r->cur_off != g->size)
                r->bad_frames++;
            logs_queue_push(q, NULL, 0, &replay_ops, r, r->cur, g->size, now_ms);
            next_segment(r);
            continue;
        }
        /* A frame done, or without records to replay, still moves the mark. */
        if (h.state != LOGS_SPOOL_LIVE || !h.n_runs)
            logs_queue_push(q, NULL, 0, &replay_ops, r, r->cur, end, now_ms);
        r->frames++;
        r->cur_off = end;
    }
    return r->cur >= r->n_segs;
}

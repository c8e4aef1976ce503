/*
 * logs_spool: segment files under a directory, named spool-<id>.seg, each
 * a sequence of frames (see logs_spool.h).
 */
#include "logs_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

static void seg_path(const struct logs_spool *s, uint32_t id, char *out, size_t n)
{
    snprintf(out, n, "%s/spool-%u.seg", s->dir, id);
}

long logs_spool_seg_id(const char *name)
{
    if (strncmp(name, "spool-", 6) != 0)
        return -1;
    char *end;
    errno = 0;
    unsigned long id = strtoul(name + 6, &end, 10);
    if (end == name + 6 || strcmp(end, ".seg") != 0 || errno || id > UINT32_MAX - 1)
        return -1;
    return (long)id;
}

int logs_spool_open(struct logs_spool *s, const char *dir, uint64_t max_size, uint64_t segment_size)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->max_size = max_size;
    s->segment_size = segment_size;
    s->dir = strdup(dir);
    if (!s->dir)
        return UV_ENOMEM;
    if (mkdir(dir, 0750) && errno != EEXIST)
        return -errno;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    /* A previous process's segments are replayed, not overwritten. */
    for (struct dirent *e; (e = readdir(d));) {
        long id = logs_spool_seg_id(e->d_name);
        if (id >= 0 && (uint32_t)id >= s->next_id)
            s->next_id = (uint32_t)id + 1;
    }
    closedir(d);
    return 0;
}

void logs_spool_close(struct logs_spool *s)
{
    if (s->fd >= 0)
        close(s->fd);
    for (size_t i = 0; i < s->n_segs; i++) {
        if (s->segs[i].live)
            continue; /* undelivered: the next process replays it */
        char p[4096];
        seg_path(s, s->segs[i].id, p, sizeof p);
        unlink(p);
    }
    free(s->segs);
    free(s->dir);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

static struct logs_spool_seg *seg_find(struct logs_spool *s, uint32_t id)
{
    for (size_t i = 0; i < s->n_segs; i++)
        if (s->segs[i].id == id)
            return &s->segs[i];
    return NULL;
}

static void seg_drop(struct logs_spool *s, struct logs_spool_seg *g)
{
    char p[4096];
    seg_path(s, g->id, p, sizeof p);
    unlink(p);
    *g = s->segs[--s->n_segs];
}

/* Makes the directory entry of a new segment durable (fdatasync of the
 * file alone does not cover its name). */
static void dir_sync(struct logs_spool *s)
{
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd))
        s->errors++;
    if (fd >= 0)
        close(fd);
}

/* Starts a new segment file. */
static int seg_new(struct logs_spool *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
        struct logs_spool_seg *old = seg_find(s, s->cur_id);
        if (old && old->live == 0)
            seg_drop(s, old);
    }
    if (s->n_segs == s->cap_segs) {
        size_t cap = s->cap_segs ? s->cap_segs * 2 : 8;
        struct logs_spool_seg *g = realloc(s->segs, cap * sizeof *g);
        if (!g)
            return UV_ENOMEM;
        s->segs = g;
        s->cap_segs = cap;
    }
    char p[4096];
    uint32_t id = s->next_id++;
    seg_path(s, id, p, sizeof p);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    s->fd = fd;
    s->cur_id = id;
    s->cur_off = 0;
    s->segs[s->n_segs++] = (struct logs_spool_seg){.id = id};
    if (s->sync)
        dir_sync(s);
    return 0;
}

int logs_spool_write(struct logs_spool *s, const uint32_t *runs, uint32_t n_runs, const void *p, size_t n,
                     uint32_t *seg, uint64_t *frame, uint64_t *off)
{
    if (s->bytes + n > s->max_size || n > UINT32_MAX)
        return UV_ENOSPC;
    int rc;
    if ((s->fd < 0 || s->cur_off >= s->segment_size) && (rc = seg_new(s)))
        return rc;
    struct logs_spool_frame h = {.state = LOGS_SPOOL_LIVE, .n_runs = n_runs, .data_len = (uint32_t)n};
    memcpy(h.magic, LOGS_SPOOL_MAGIC, 4);
    struct iovec iov[3] = {{&h, sizeof h}, {(void *)runs, n_runs * 2 * sizeof *runs}, {(void *)p, n}};
    size_t total = iov[0].iov_len + iov[1].iov_len + n;
    /* One pwritev, so a kill -9 leaves a frame whole or absent. */
    uint64_t at = s->cur_off;
    size_t done = 0;
    while (done < total) {
        struct iovec v[3];
        int nv = 0;
        size_t skip = done;
        for (int i = 0; i < 3; i++) {
            if (skip >= iov[i].iov_len) {
                skip -= iov[i].iov_len;
                continue;
            }
            v[nv].iov_base = (char *)iov[i].iov_base + skip;
            v[nv++].iov_len = iov[i].iov_len - skip;
            skip = 0;
        }
        ssize_t w = pwritev(s->fd, v, nv, (off_t)(at + done));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            s->errors++;
            return -errno;
        }
        done += (size_t)w;
    }
    *seg = s->cur_id;
    *frame = at;
    *off = at + total - n;
    s->cur_off = at + total;
    s->bytes += n;
    seg_find(s, s->cur_id)->live++;
    s->written_chunks++;
    if (s->sync && n_runs) {
        /* Only these frames are replayed after a crash: the rest is kept by
         * its source (a file and its checkpoint). */
        if (fdatasync(s->fd))
            s->errors++;
        else
            s->syncs++;
    }
    return 0;
}

int logs_spool_read(struct logs_spool *s, uint32_t seg, uint64_t off, void *p, size_t n)
{
    int fd = s->fd >= 0 && seg == s->cur_id ? s->fd : -1;
    bool own = false;
    if (fd < 0) {
        char path[4096];
        seg_path(s, seg, path, sizeof path);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            s->errors++;
            return -errno;
        }
        own = true;
    }
    size_t got = 0;
    int rc = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : UV_EOF;
            s->errors++;
            break;
        }
        got += (size_t)r;
    }
    if (own)
        close(fd);
    if (!rc)
        s->read_chunks++;
    return rc;
}

int logs_spool_mark_done(int fd, uint64_t off)
{
    uint8_t d = LOGS_SPOOL_DONE;
    ssize_t w;
    do
        w = pwrite(fd, &d, 1, (off_t)(off + offsetof(struct logs_spool_frame, state)));
    while (w < 0 && errno == EINTR);
    return w == 1 ? 0 : w < 0 ? -errno : UV_EIO;
}

void logs_spool_release(struct logs_spool *s, uint32_t seg, uint64_t frame, size_t n)
{
    struct logs_spool_seg *g = seg_find(s, seg);
    s->bytes -= n;
    if (!g)
        return;
    if (--g->live == 0 && !(s->fd >= 0 && seg == s->cur_id)) {
        seg_drop(s, g);
        return;
    }
    /* The segment stays: a replay after a crash must skip this chunk. */
    int fd = s->fd >= 0 && seg == s->cur_id ? s->fd : -1;
    if (fd < 0) {
        char p[4096];
        seg_path(s, seg, p, sizeof p);
        fd = open(p, O_WRONLY | O_CLOEXEC);
    }
    if (fd < 0 || logs_spool_mark_done(fd, frame))
        s->errors++;
    if (fd >= 0 && fd != s->fd)
        close(fd);
}

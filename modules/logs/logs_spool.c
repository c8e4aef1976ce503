/*
 * logs_spool: segment files under a directory, named spool-<id>.seg.
 */
#include "logs_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

static void seg_path(const struct logs_spool *s, uint32_t id, char *out, size_t n)
{
    snprintf(out, n, "%s/spool-%u.seg", s->dir, id);
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
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "spool-", 6) == 0 && strstr(e->d_name, ".seg")) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
    return 0;
}

void logs_spool_close(struct logs_spool *s)
{
    if (s->fd >= 0)
        close(s->fd);
    for (size_t i = 0; i < s->n_segs; i++) {
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
    return 0;
}

int logs_spool_write(struct logs_spool *s, const void *p, size_t n, uint32_t *seg, uint64_t *off)
{
    if (s->bytes + n > s->max_size)
        return UV_ENOSPC;
    int rc;
    if ((s->fd < 0 || s->cur_off >= s->segment_size) && (rc = seg_new(s)))
        return rc;
    const char *q = p;
    size_t left = n;
    uint64_t at = s->cur_off;
    while (left) {
        ssize_t w = pwrite(s->fd, q, left, (off_t)at);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            s->errors++;
            return -errno;
        }
        q += w;
        left -= (size_t)w;
        at += (uint64_t)w;
    }
    *seg = s->cur_id;
    *off = s->cur_off;
    s->cur_off = at;
    s->bytes += n;
    seg_find(s, s->cur_id)->live++;
    s->written_chunks++;
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

void logs_spool_release(struct logs_spool *s, uint32_t seg, size_t n)
{
    struct logs_spool_seg *g = seg_find(s, seg);
    s->bytes -= n;
    if (g && --g->live == 0 && !(s->fd >= 0 && seg == s->cur_id))
        seg_drop(s, g);
}

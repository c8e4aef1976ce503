/*
 * logs_tail: discovery, identity, rotation, reading and checkpoints of
 * tailed files. Reads are plain read(2) on the loop thread: regular files
 * never block for long, and the read budget per round bounds the time spent
 * before other handles run.
 */
#include "logs_tail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FP_MAX 256
#define ROUND_BUDGET (1u << 20) /* bytes per file per round before yielding */

static void tailer_on_poll(uv_timer_t *h);
static void tailer_on_more(uv_idle_t *h);

/* ---- files ---------------------------------------------------------------- */

static int fingerprint_fd(int fd, uint64_t size, uint32_t *len, uint64_t *hash)
{
    char buf[FP_MAX];
    size_t want = size < FP_MAX ? (size_t)size : FP_MAX;
    ssize_t n = pread(fd, buf, want, 0);
    if (n < 0)
        return -errno;
    *len = (uint32_t)n;
    *hash = logs_fingerprint(buf, (size_t)n);
    return 0;
}

/* Whether the first len bytes of fd still hash to hash. */
static bool fingerprint_matches(int fd, uint32_t len, uint64_t hash)
{
    if (len == 0)
        return true;
    char buf[FP_MAX];
    ssize_t n = pread(fd, buf, len, 0);
    return n == (ssize_t)len && logs_fingerprint(buf, len) == hash;
}

static void file_free(struct logs_tailer *t, struct logs_file *f)
{
    if (t->cb.release)
        t->cb.release(t->cb.arg, f);
    if (f->fd >= 0)
        close(f->fd);
    logs_buf_free(&f->line);
    free(f->path);
    free(f->origin);
    free(f);
}

static struct logs_file *file_find(struct logs_tailer *t, uint64_t dev, uint64_t ino)
{
    for (struct logs_file *f = t->files; f; f = f->next)
        if (f->dev == dev && f->ino == ino)
            return f;
    return NULL;
}

/* Opens path at offset and appends it to the list. An older file of the
 * same path still being read becomes its predecessor. */
static struct logs_file *file_open(struct logs_tailer *t, const char *path, const char *origin, uint64_t offset)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        t->read_errors++;
        return NULL;
    }
    struct stat st;
    struct logs_file *f = calloc(1, sizeof *f);
    if (!f || fstat(fd, &st) || !(f->path = strdup(path)) || !(f->origin = strdup(origin))) {
        if (f)
            free(f->path);
        free(f);
        close(fd);
        t->read_errors++;
        return NULL;
    }
    f->t = t;
    f->fd = fd;
    f->dev = (uint64_t)st.st_dev;
    f->ino = (uint64_t)st.st_ino;
    f->size = (uint64_t)st.st_size;
    if (offset > f->size)
        offset = 0;
    f->read_off = f->acked_off = f->line_off = offset;
    f->last_growth_ms = uv_now(t->loop);
    f->seen = true;
    fingerprint_fd(fd, f->size, &f->fp_len, &f->fp_hash);
    if (offset && lseek(fd, (off_t)offset, SEEK_SET) < 0) {
        file_free(t, f);
        t->read_errors++;
        return NULL;
    }
    struct logs_file **tail = &t->files;
    for (; *tail; tail = &(*tail)->next)
        if ((*tail)->fd >= 0 && (*tail)->rotated && strcmp((*tail)->origin, origin) == 0)
            f->pred = *tail; /* the newest rotated file of this path */
    *tail = f;
    t->files_opened++;
    t->ckpt_dirty = true;
    if (t->cb.open)
        t->cb.open(t->cb.arg, f);
    return f;
}

/* Passes one line, cut into max_line pieces when longer. end is the offset
 * after the line (and its newline, if it had one). */
static void deliver(struct logs_tailer *t, struct logs_file *f, const char *p, size_t n, uint64_t start,
                    uint64_t end)
{
    size_t max = t->conf.max_line;
    while (n > max) {
        t->cb.line(t->cb.arg, f, p, max, start, start + max);
        p += max;
        n -= max;
        start += max;
    }
    t->lines_read++;
    t->cb.line(t->cb.arg, f, p, n, start, end);
}

/* Splits a chunk just read at offset off into lines; the unterminated rest
 * waits in f->line (cut at max_line so it stays bounded). */
static void file_consume(struct logs_tailer *t, struct logs_file *f, const char *p, size_t n, uint64_t off)
{
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            if (!f->line.n)
                f->line_off = off;
            if (logs_buf_append(&f->line, p, (size_t)(end - p)))
                abort();
            while (f->line.n >= t->conf.max_line) {
                size_t max = t->conf.max_line;
                t->cb.line(t->cb.arg, f, f->line.p, max, f->line_off, f->line_off + max);
                memmove(f->line.p, f->line.p + max, f->line.n - max);
                f->line.n -= max;
                f->line_off += max;
            }
            return;
        }
        size_t len = (size_t)(nl - p);
        if (f->line.n) {
            if (logs_buf_append(&f->line, p, len))
                abort();
            deliver(t, f, f->line.p, f->line.n, f->line_off, off + len + 1);
            f->line.n = 0;
        } else {
            deliver(t, f, p, len, off, off + len + 1);
        }
        off += len + 1;
        p = nl + 1;
    }
}

static void file_restart(struct logs_tailer *t, struct logs_file *f, uint64_t size);

/* Whether f was truncated and written again (copytruncate) since its head
 * was fingerprinted. A read between the two would have returned the new
 * content from the old offset: its lines would overtake, then repeat, the
 * new file's first ones. */
static bool file_rewritten(struct logs_file *f)
{
    return !fingerprint_matches(f->fd, f->fp_len, f->fp_hash);
}

/* Whether f's predecessor (the file its path named before a rotation) is
 * read to its end. Its at_eof flag may be stale: the writer can append to
 * it up to the rename, after our last read, or copytruncate it and write it
 * again to the same size; so ask the file itself, or the new file's first
 * lines would overtake the old file's last ones. */
static bool pred_drained(struct logs_tailer *t, struct logs_file *f)
{
    struct logs_file *pr = f->pred;
    if (!pr || pr->fd < 0)
        return true;
    if (!pr->at_eof)
        return false;
    struct stat st;
    if (fstat(pr->fd, &st))
        return true;
    uint64_t size = (uint64_t)st.st_size;
    if (size < pr->read_off || file_rewritten(pr)) {
        file_restart(t, pr, size);
        return false;
    }
    if (size > pr->read_off) {
        pr->at_eof = false;
        return false;
    }
    return true;
}

/* A young file's fingerprint grows with it, up to FP_MAX bytes, so that a
 * rewrite of even a short file is recognised. */
static void file_grow_fingerprint(struct logs_tailer *t, struct logs_file *f, uint64_t size)
{
    if (f->fp_len < FP_MAX && size > f->fp_len) {
        fingerprint_fd(f->fd, size, &f->fp_len, &f->fp_hash);
        t->ckpt_dirty = true;
    }
}

/* Reads up to the round budget. Returns true if more may be available. */
static bool file_read(struct logs_tailer *t, struct logs_file *f)
{
    if (f->fd < 0 || !pred_drained(t, f))
        return false;
    size_t budget = ROUND_BUDGET;
    while (!t->paused) {
        ssize_t n = read(f->fd, t->rbuf, t->conf.read_size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            t->read_errors++;
            return false;
        }
        if (n == 0) {
            f->at_eof = true;
            return false;
        }
        struct stat st;
        if (file_rewritten(f) && fstat(f->fd, &st) == 0) {
            file_restart(t, f, (uint64_t)st.st_size);
            continue; /* what was read belongs to the new content's middle */
        }
        f->at_eof = false;
        uint64_t off = f->read_off;
        f->read_off += (uint64_t)n;
        if (f->read_off > f->size)
            f->size = f->read_off;
        t->bytes_read += (uint64_t)n;
        file_consume(t, f, t->rbuf, (size_t)n, off);
        file_grow_fingerprint(t, f, f->read_off);
        if ((size_t)n >= budget)
            return true;
        budget -= (size_t)n;
    }
    return false;
}

/* The file's content is over: pass an unterminated last line, let the
 * owner emit what it holds, and close the descriptor. */
static void file_finish(struct logs_tailer *t, struct logs_file *f)
{
    if (f->line.n) {
        deliver(t, f, f->line.p, f->line.n, f->line_off, f->line_off + f->line.n);
        f->line.n = 0;
    }
    if (t->cb.close)
        t->cb.close(t->cb.arg, f);
    close(f->fd);
    f->fd = -1;
    for (struct logs_file *g = t->files; g; g = g->next)
        if (g->pred == f)
            g->pred = NULL;
    t->ckpt_dirty = true;
}

/* copytruncate (or a rewrite): start again at the head in a new epoch. */
static void file_restart(struct logs_tailer *t, struct logs_file *f, uint64_t size)
{
    t->truncations++;
    if (f->line.n) {
        deliver(t, f, f->line.p, f->line.n, f->line_off, f->line_off + f->line.n);
        f->line.n = 0;
    }
    if (t->cb.close)
        t->cb.close(t->cb.arg, f);
    f->epoch++;
    f->read_off = f->acked_off = f->line_off = 0;
    f->size = size;
    f->at_eof = false;
    lseek(f->fd, 0, SEEK_SET);
    fingerprint_fd(f->fd, size, &f->fp_len, &f->fp_hash);
    t->ckpt_dirty = true;
    if (t->cb.open)
        t->cb.open(t->cb.arg, f);
}

/* Checks an open file for truncation and growth. */
static void file_check(struct logs_tailer *t, struct logs_file *f, uint64_t now)
{
    struct stat st;
    if (fstat(f->fd, &st))
        return;
    uint64_t size = (uint64_t)st.st_size;
    if (size < f->read_off || file_rewritten(f)) {
        file_restart(t, f, size);
        return;
    }
    if (size != f->size) {
        f->size = size;
        f->last_growth_ms = now;
    }
    file_grow_fingerprint(t, f, size);
}

/* Whether path still names f; if not, f was rotated away or deleted: note
 * its new name, if any, for the checkpoint. */
static void file_check_path(struct logs_tailer *t, struct logs_file *f)
{
    struct stat st;
    if (f->rotated || f->fd < 0)
        return;
    if (stat(f->path, &st) == 0 && (uint64_t)st.st_dev == f->dev && (uint64_t)st.st_ino == f->ino)
        return;
    f->rotated = true;
    t->rotations++;
    char link[64], name[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", f->fd);
    ssize_t n = readlink(link, name, sizeof name - 1);
    if (n > 0) {
        name[n] = 0;
        char *copy = strdup(name);
        if (copy) {
            free(f->path);
            f->path = copy;
        }
    }
}

/* ---- discovery -------------------------------------------------------------- */

/* A path found by a pattern. */
static void scan_path(struct logs_tailer *t, const char *path, bool initial)
{
    struct stat st;
    if (stat(path, &st) || !S_ISREG(st.st_mode))
        return;
    struct logs_file *f = file_find(t, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
    if (f && f->fd < 0) {
        /* A finished file: the same one if its first bytes are unchanged,
         * else the inode was reused by a new file. */
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        bool same = fd >= 0 && fingerprint_matches(fd, f->fp_len, f->fp_hash) && (uint64_t)st.st_size >= f->fp_len;
        if (fd >= 0)
            close(fd);
        if (same || f->refs) {
            f->seen = true;
            return;
        }
        struct logs_file **pp = &t->files;
        while (*pp != f)
            pp = &(*pp)->next;
        *pp = f->next;
        file_free(t, f);
        f = NULL;
    }
    if (f) {
        f->seen = true;
        return;
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < t->ckpt.n; i++) {
        struct logs_ckpt_entry *e = &t->ckpt.items[i];
        if (e->used || e->dev != (uint64_t)st.st_dev || e->ino != (uint64_t)st.st_ino)
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && fingerprint_matches(fd, e->fp_len, e->fp_hash)) {
            offset = e->offset;
            e->used = 1;
        }
        if (fd >= 0)
            close(fd);
        break;
    }
    if (!offset && initial && !t->conf.from_head) {
        bool known = false;
        for (size_t i = 0; i < t->ckpt.n; i++)
            known |= t->ckpt.items[i].used && t->ckpt.items[i].dev == (uint64_t)st.st_dev &&
                     t->ckpt.items[i].ino == (uint64_t)st.st_ino;
        if (!known)
            offset = (uint64_t)st.st_size;
    }
    file_open(t, path, path, offset);
}

/* Where a checkpointed file is now: its recorded path if that still names
 * it, else a file with its inode in the same directory (rotated while the
 * agent was down, e.g. app.log -> app.log.1). Returns a malloc'ed path or
 * NULL. */
static char *leftover_find(const struct logs_ckpt_entry *e)
{
    struct stat st;
    if (stat(e->path, &st) == 0 && (uint64_t)st.st_dev == e->dev && (uint64_t)st.st_ino == e->ino)
        return strdup(e->path);
    char *dirname = strdup(e->path);
    if (!dirname)
        return NULL;
    char *slash = strrchr(dirname, '/');
    if (!slash) {
        free(dirname);
        return NULL;
    }
    *slash = 0;
    char *found = NULL;
    DIR *d = opendir(slash == dirname ? "/" : dirname);
    for (struct dirent *de; d && !found && (de = readdir(d));) {
        if ((uint64_t)de->d_ino != e->ino)
            continue;
        size_t n = strlen(dirname) + strlen(de->d_name) + 2;
        char *p = malloc(n);
        if (!p)
            break;
        snprintf(p, n, "%s/%s", dirname, de->d_name);
        if (stat(p, &st) == 0 && (uint64_t)st.st_dev == e->dev && (uint64_t)st.st_ino == e->ino &&
            S_ISREG(st.st_mode))
            found = p;
        else
            free(p);
    }
    if (d)
        closedir(d);
    free(dirname);
    return found;
}

/* Checkpointed files no pattern found any more (rotated away while the
 * agent was down): finish reading them where they now are. */
static void scan_leftovers(struct logs_tailer *t)
{
    for (size_t i = 0; i < t->ckpt.n; i++) {
        struct logs_ckpt_entry *e = &t->ckpt.items[i];
        if (e->used || file_find(t, e->dev, e->ino))
            continue;
        char *path = leftover_find(e);
        if (!path)
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        bool same = fd >= 0 && fingerprint_matches(fd, e->fp_len, e->fp_hash);
        if (fd >= 0)
            close(fd);
        struct logs_file *f = same ? file_open(t, path, e->origin, e->offset) : NULL;
        free(path);
        if (!f)
            continue;
        e->used = 1;
        f->rotated = true;
        /* It must be read before the file now at its old path. */
        for (struct logs_file *g = t->files; g; g = g->next)
            if (g != f && !g->rotated && !g->pred && strcmp(g->origin, f->origin) == 0)
                g->pred = f;
    }
}

static void tailer_scan(struct logs_tailer *t, bool initial)
{
    /* Rotations first, so a new file at a rotated path gets its
     * predecessor. */
    for (struct logs_file *f = t->files; f; f = f->next) {
        file_check_path(t, f);
        f->seen = false;
    }
    for (size_t i = 0; i < t->conf.n_paths; i++) {
        glob_t g;
        if (glob(t->conf.paths[i], 0, NULL, &g) == 0)
            for (size_t j = 0; j < g.gl_pathc; j++)
                scan_path(t, g.gl_pathv[j], initial);
        globfree(&g);
    }
    if (initial) {
        scan_leftovers(t);
        logs_ckpt_clear(&t->ckpt);
    }
    /* Finished files no pattern matches any more are forgotten once the
     * owner holds nothing of theirs. */
    for (struct logs_file **pp = &t->files; *pp;) {
        struct logs_file *f = *pp;
        if (f->fd < 0 && !f->seen && !f->refs) {
            *pp = f->next;
            file_free(t, f);
            t->ckpt_dirty = true;
        } else {
            pp = &f->next;
        }
    }
}

/* ---- the loop side --------------------------------------------------------- */

/* One round over the files; returns true if some had more to read. */
static bool tailer_round(struct logs_tailer *t, bool check)
{
    uint64_t now = uv_now(t->loop);
    bool more = false;
    for (struct logs_file *f = t->files; f; f = f->next) {
        if (f->fd < 0)
            continue;
        if (check)
            file_check(t, f, now);
        more |= file_read(t, f);
    }
    /* Rotated files that reached their end and stopped growing are done. */
    for (struct logs_file *f = t->files; f; f = f->next) {
        if (f->fd >= 0 && f->rotated && f->at_eof && now - f->last_growth_ms >= t->conf.rotate_wait_ms &&
            !t->paused) {
            struct stat st;
            if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size > f->read_off) {
                f->at_eof = false;
                more = true;
                continue;
            }
            file_finish(t, f);
        }
    }
    if (!more && t->cb.idle)
        t->cb.idle(t->cb.arg);
    return more;
}

static void tailer_kick(struct logs_tailer *t)
{
    if (!t->stopping && !t->paused)
        uv_idle_start(&t->more, tailer_on_more);
}

static void tailer_on_more(uv_idle_t *h)
{
    struct logs_tailer *t = h->data;
    if (t->paused || !tailer_round(t, false))
        uv_idle_stop(h);
}

static void tailer_on_poll(uv_timer_t *h)
{
    struct logs_tailer *t = h->data;
    if (!t->paused) {
        if (tailer_round(t, true))
            tailer_kick(t);
        return;
    }
    /* Paused: only note the sizes, so the lag stays true. */
    for (struct logs_file *f = t->files; f; f = f->next) {
        struct stat st;
        if (f->fd >= 0 && fstat(f->fd, &st) == 0 && (uint64_t)st.st_size > f->size)
            f->size = (uint64_t)st.st_size;
    }
}

static void tailer_on_rescan(uv_timer_t *h)
{
    struct logs_tailer *t = h->data;
    tailer_scan(t, false);
    tailer_kick(t);
}

static void tailer_on_ckpt(uv_timer_t *h)
{
    struct logs_tailer *t = h->data;
    if (t->ckpt_dirty)
        logs_tailer_checkpoint(t);
}

static void watch_on_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    struct logs_watch *w = h->data;
    struct logs_tailer *t = w->t;
    if (status < 0 || t->stopping)
        return;
    /* A name appearing or going away may be a new or rotated file. */
    if (events & UV_RENAME)
        uv_timer_start(&t->rescan, tailer_on_rescan, 0, t->conf.rescan_ms);
    tailer_kick(t);
}

/* The deepest directory of a pattern without wildcards: /var/log/pods for
 * the node role's default pattern. */
static char *pattern_dir(const char *pattern)
{
    char *dir = strdup(pattern);
    if (!dir)
        return NULL;
    char *wild = strpbrk(dir, "*?[");
    if (wild)
        *wild = 0;
    char *slash = strrchr(dir, '/');
    if (!slash) {
        free(dir);
        return strdup(".");
    }
    if (slash == dir)
        slash[1] = 0;
    else
        *slash = 0;
    return dir;
}

static void watches_start(struct logs_tailer *t)
{
    t->watches = calloc(t->conf.n_paths, sizeof *t->watches);
    if (!t->watches)
        return;
    for (size_t i = 0; i < t->conf.n_paths; i++) {
        char *dir = pattern_dir(t->conf.paths[i]);
        struct logs_watch *w = &t->watches[t->n_watches];
        if (!dir)
            continue;
        uv_fs_event_init(t->loop, &w->ev);
        w->ev.data = w;
        w->t = t;
        t->n_watches++;
        /* A missing directory is not an error: the rescan finds files
         * once it exists. */
        uv_fs_event_start(&w->ev, watch_on_event, dir, 0);
        free(dir);
    }
}

int logs_tailer_init(struct logs_tailer *t, uv_loop_t *loop, const struct logs_tail_conf *conf,
                     const struct logs_tail_cb *cb)
{
    memset(t, 0, sizeof *t);
    t->loop = loop;
    t->conf = *conf;
    t->cb = *cb;
    if (!t->conf.read_size)
        t->conf.read_size = 64 * 1024;
    if (!t->conf.max_line)
        t->conf.max_line = 64 * 1024;
    if (!t->conf.poll_ms)
        t->conf.poll_ms = 250;
    if (!t->conf.rescan_ms)
        t->conf.rescan_ms = 1000;
    t->rbuf = malloc(t->conf.read_size);
    if (!t->rbuf)
        return UV_ENOMEM;
    uv_timer_init(loop, &t->poll);
    uv_timer_init(loop, &t->rescan);
    uv_timer_init(loop, &t->ckpt_timer);
    uv_idle_init(loop, &t->more);
    t->poll.data = t->rescan.data = t->ckpt_timer.data = t->more.data = t;
    return 0;
}

int logs_tailer_start(struct logs_tailer *t)
{
    if (t->conf.checkpoint_path) {
        size_t bad = 0;
        int rc = logs_ckpt_load(&t->ckpt, t->conf.checkpoint_path, &bad);
        if (rc)
            return rc;
        t->ckpt_errors += bad;
    }
    t->started = true;
    tailer_scan(t, true);
    watches_start(t);
    uv_timer_start(&t->poll, tailer_on_poll, t->conf.poll_ms, t->conf.poll_ms);
    uv_timer_start(&t->rescan, tailer_on_rescan, t->conf.rescan_ms, t->conf.rescan_ms);
    if (t->conf.checkpoint_path && t->conf.checkpoint_ms)
        uv_timer_start(&t->ckpt_timer, tailer_on_ckpt, t->conf.checkpoint_ms, t->conf.checkpoint_ms);
    tailer_kick(t);
    return 0;
}

int logs_tailer_checkpoint(struct logs_tailer *t)
{
    if (!t->conf.checkpoint_path)
        return 0;
    struct logs_ckpt c = {0};
    int rc = 0;
    for (struct logs_file *f = t->files; f && !rc; f = f->next) {
        if (f->path[0] != '/' || strstr(f->path, " (deleted)") || strpbrk(f->path, "\t\n") ||
            strpbrk(f->origin, "\t\n"))
            continue;
        rc = logs_ckpt_add(&c, f->dev, f->ino, f->fp_len, f->fp_hash, f->acked_off, f->path, f->origin);
    }
    if (!rc)
        rc = logs_ckpt_save(&c, t->conf.checkpoint_path);
    logs_ckpt_clear(&c);
    if (rc)
        t->ckpt_errors++;
    else
        t->ckpt_dirty = false;
    return rc;
}

static void tailer_on_closed(uv_handle_t *h)
{
    struct logs_tailer *t = h->data;
    if (h->type == UV_FS_EVENT)
        t = ((struct logs_watch *)h->data)->t;
    if (--t->pending_closes == 0 && t->on_stopped)
        t->on_stopped(t);
}

void logs_tailer_stop(struct logs_tailer *t, void (*on_stopped)(struct logs_tailer *t))
{
    t->stopping = true;
    t->on_stopped = on_stopped;
    /* A tailer that never loaded the checkpoint must not overwrite it. */
    if (t->started)
        logs_tailer_checkpoint(t);
    uv_handle_t *hs[] = {(uv_handle_t *)&t->poll, (uv_handle_t *)&t->rescan, (uv_handle_t *)&t->ckpt_timer,
                         (uv_handle_t *)&t->more};
    t->pending_closes = 4 + (int)t->n_watches;
    for (size_t i = 0; i < 4; i++)
        uv_close(hs[i], tailer_on_closed);
    for (size_t i = 0; i < t->n_watches; i++)
        uv_close((uv_handle_t *)&t->watches[i].ev, tailer_on_closed);
}

void logs_tailer_fini(struct logs_tailer *t)
{
    while (t->files) {
        struct logs_file *f = t->files;
        t->files = f->next;
        file_free(t, f);
    }
    logs_ckpt_clear(&t->ckpt);
    free(t->watches);
    free(t->rbuf);
}

void logs_tailer_pause(struct logs_tailer *t)
{
    t->paused = true;
}

void logs_tailer_resume(struct logs_tailer *t)
{
    if (!t->paused)
        return;
    t->paused = false;
    tailer_kick(t);
}

void logs_file_ref(struct logs_file *f)
{
    f->refs++;
}

void logs_file_unref(struct logs_file *f)
{
    f->refs--;
}

void logs_file_ack(struct logs_file *f, uint32_t epoch, uint64_t off)
{
    if (epoch == f->epoch && off > f->acked_off) {
        f->acked_off = off;
        f->t->ckpt_dirty = true;
    }
}

uint64_t logs_tailer_lag(const struct logs_tailer *t)
{
    uint64_t lag = 0;
    for (const struct logs_file *f = t->files; f; f = f->next)
        if (f->fd >= 0 && f->size > f->read_off)
            lag += f->size - f->read_off;
    return lag;
}

size_t logs_tailer_count(const struct logs_tailer *t)
{
    size_t n = 0;
    for (const struct logs_file *f = t->files; f; f = f->next)
        n += f->fd >= 0;
    return n;
}

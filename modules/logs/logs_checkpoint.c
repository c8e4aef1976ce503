/*
 * logs_checkpoint: load and atomically save file offsets.
 */
#include "logs_checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define CKPT_MAGIC "outrider-logs-checkpoint 1\n"

uint64_t logs_fingerprint(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void logs_ckpt_clear(struct logs_ckpt *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->items[i].path), free(c->items[i].origin);
    free(c->items);
    memset(c, 0, sizeof *c);
}

int logs_ckpt_add(struct logs_ckpt *c, uint64_t dev, uint64_t ino, uint32_t fp_len, uint64_t fp_hash,
                  uint64_t offset, const char *path, const char *origin)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct logs_ckpt_entry *items = realloc(c->items, cap * sizeof *items);
        if (!items)
            return UV_ENOMEM;
        c->items = items;
        c->cap = cap;
    }
    char *copy = strdup(path), *ocopy = strdup(origin);
    if (!copy || !ocopy) {
        free(copy);
        free(ocopy);
        return UV_ENOMEM;
    }
    c->items[c->n++] = (struct logs_ckpt_entry){.dev = dev, .ino = ino, .fp_len = fp_len, .fp_hash = fp_hash,
                                                 .offset = offset, .path = copy, .origin = ocopy};
    return 0;
}

int logs_ckpt_load(struct logs_ckpt *c, const char *path, size_t *bad)
{
    logs_ckpt_clear(c);
    *bad = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    bool first = true;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (first) {
            first = false;
            if (strcmp(line, CKPT_MAGIC) != 0) {
                (*bad)++;
                break;
            }
            continue;
        }
        if (line[n - 1] == '\n')
            line[--n] = 0;
        uint64_t dev, ino, fp_hash, off;
        uint32_t fp_len;
        int pos = 0;
        if (sscanf(line, "%" SCNu64 " %" SCNu64 " %" SCNu32 " %" SCNx64 " %" SCNu64 " %n", &dev, &ino, &fp_len,
                   &fp_hash, &off, &pos) != 5 ||
            pos == 0 || line[pos] != '/' || !strchr(line + pos, '\t')) {
            (*bad)++;
            continue;
        }
        char *tab = strchr(line + pos, '\t');
        *tab = 0;
        if ((rc = logs_ckpt_add(c, dev, ino, fp_len, fp_hash, off, line + pos, tab + 1)))
            break;
    }
    free(line);
    fclose(f);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int logs_ckpt_save(const struct logs_ckpt *c, const char *path)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp)
        return UV_ENOMEM;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    rc = write_all(fd, CKPT_MAGIC, sizeof CKPT_MAGIC - 1);
    char buf[128];
    for (size_t i = 0; i < c->n && !rc; i++) {
        const struct logs_ckpt_entry *e = &c->items[i];
        int len = snprintf(buf, sizeof buf, "%" PRIu64 " %" PRIu64 " %" PRIu32 " %" PRIx64 " %" PRIu64 " ", e->dev,
                           e->ino, e->fp_len, e->fp_hash, e->offset);
        rc = write_all(fd, buf, (size_t)len);
        if (!rc)
            rc = write_all(fd, e->path, strlen(e->path));
        if (!rc)
            rc = write_all(fd, "\t", 1);
        if (!rc)
            rc = write_all(fd, e->origin, strlen(e->origin));
        if (!rc)
            rc = write_all(fd, "\n", 1);
    }
    if (!rc && fsync(fd))
        rc = -errno;
    if (close(fd) && !rc)
        rc = -errno;
    if (!rc && rename(tmp, path))
        rc = -errno;
    if (!rc) {
        /* The rename itself is durable only once the directory is synced. */
        char *slash = strrchr(tmp, '/');
        if (slash) {
            *slash = 0;
            int dfd = open(slash == tmp ? "/" : tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
        }
    } else {
        unlink(tmp);
    }
out:
    free(tmp);
    return rc;
}

/*
 * logs_checkpoint: the durable record of how far each file has been
 * delivered. One text file per tailer:
 *
 *     outrider-logs-checkpoint 1
 *     <dev> <inode> <fp_len> <fp_hash hex> <offset> <path>\t<origin>
 *
 * (origin: the path a pattern found the file at, before a rotation)
 *
 * written atomically (temporary file, fsync, rename, fsync of the
 * directory), so a crash leaves either the old or the new version.
 */
#ifndef LOGS_CHECKPOINT_H
#define LOGS_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

struct logs_ckpt_entry {
    uint64_t dev, ino;
    uint32_t fp_len;   /* bytes of the file the fingerprint covers */
    uint64_t fp_hash;  /* FNV-1a of those bytes */
    uint64_t offset;   /* next byte to read once restarted */
    char *path;        /* owned: where the file is */
    char *origin;      /* owned: where it was found */
    int used;          /* matched to a file after loading */
};

struct logs_ckpt {
    struct logs_ckpt_entry *items;
    size_t n, cap;
};

/* Loads path into c (emptied first). A missing file is an empty checkpoint.
 * Malformed lines are skipped and counted in *bad. Returns 0 or a negative
 * errno (with the file unreadable). */
int logs_ckpt_load(struct logs_ckpt *c, const char *path, size_t *bad);

/* Adds an entry (copies the paths; neither may hold a tab or newline). Returns 0 or UV_ENOMEM. */
int logs_ckpt_add(struct logs_ckpt *c, uint64_t dev, uint64_t ino, uint32_t fp_len, uint64_t fp_hash,
                  uint64_t offset, const char *path, const char *origin);

/* Writes c to path atomically. Returns 0 or a negative errno. */
int logs_ckpt_save(const struct logs_ckpt *c, const char *path);

void logs_ckpt_clear(struct logs_ckpt *c);

/* FNV-1a 64 over n bytes. */
uint64_t logs_fingerprint(const void *p, size_t n);

#endif

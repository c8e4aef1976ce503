/*
 * util: allocation that aborts with file and line on out-of-memory (for
 * small fixed allocations only: sizes a peer or a config controls are
 * bounded before allocating), and small string and time helpers.
 */
#ifndef OTR_UTIL_H
#define OTR_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *otr_xmalloc_at(size_t n, const char *file, int line);
void *otr_xcalloc_at(size_t n, size_t size, const char *file, int line);
void *otr_xrealloc_at(void *p, size_t n, const char *file, int line);
char *otr_xstrdup_at(const char *s, const char *file, int line);

#define otr_xmalloc(n) otr_xmalloc_at((n), __FILE__, __LINE__)
#define otr_xcalloc(n, s) otr_xcalloc_at((n), (s), __FILE__, __LINE__)
#define otr_xrealloc(p, n) otr_xrealloc_at((p), (n), __FILE__, __LINE__)
#define otr_xstrdup(s) otr_xstrdup_at((s), __FILE__, __LINE__)

/* A malloc'd printf. Aborts on out-of-memory. */
char *otr_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds of CLOCK_MONOTONIC / CLOCK_REALTIME. */
uint64_t otr_now_ms(void);
uint64_t otr_wall_ns(void);

/* Writes data to path atomically: a temporary file in the same folder,
 * then rename; with durable, fsync before the rename (for data that must
 * survive a power loss, not for runtime announcements). Returns 0 or a
 * negative errno. */
int otr_write_file_atomic(const char *path, const char *data, size_t len, bool durable);

#define OTR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define OTR_CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

#endif

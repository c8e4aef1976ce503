/*
 * metrics_buf: a growable byte buffer for building exposition text and
 * label sets, with the escaping rules of the Prometheus formats.
 * Allocation failure aborts with file and line: buffers are bounded by
 * the series cap, and a half-written exposition is worth nothing.
 */
#ifndef OTR_METRICS_BUF_H
#define OTR_METRICS_BUF_H

#include <stddef.h>
#include <stdint.h>

struct mbuf {
    char *p;
    size_t len, cap;
};

void mbuf_init(struct mbuf *b);
void mbuf_fini(struct mbuf *b);
/* Makes room for n more bytes; returns the write position. */
char *mbuf_reserve(struct mbuf *b, size_t n);
void mbuf_add(struct mbuf *b, const void *p, size_t n);
void mbuf_addc(struct mbuf *b, char c);
void mbuf_adds(struct mbuf *b, const char *s);
/* Appends a label value escaped for both formats: \\ \" \n. */
void mbuf_add_label_value(struct mbuf *b, const char *p, size_t n);
/* Appends HELP text: \\ and \n escaped; with quotes set, \" too (OpenMetrics). */
void mbuf_add_help(struct mbuf *b, const char *p, size_t n, int quotes);
/* Appends a number as metrics_format_double does. */
void mbuf_add_double(struct mbuf *b, double v);
void mbuf_add_int64(struct mbuf *b, int64_t v);

/* Allocation helpers that abort on failure, naming the place. */
void *metrics_xmalloc(size_t n, const char *file, int line);
void *metrics_xcalloc(size_t n, size_t size, const char *file, int line);
void *metrics_xrealloc(void *p, size_t n, const char *file, int line);
#define xmalloc(n) metrics_xmalloc((n), __FILE__, __LINE__)
#define xcalloc(n, s) metrics_xcalloc((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) metrics_xrealloc((p), (n), __FILE__, __LINE__)

#endif

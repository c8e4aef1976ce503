/* Growable buffer and the escaping rules of the exposition formats. */
#include "metrics_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_number.h"

void *metrics_xmalloc(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s:%d: out of memory allocating %zu bytes\n", file, line, n);
        abort();
    }
    return p;
}

void *metrics_xcalloc(size_t n, size_t size, const char *file, int line)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "%s:%d: out of memory allocating %zu x %zu bytes\n", file, line, n, size);
        abort();
    }
    return p;
}

void *metrics_xrealloc(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "%s:%d: out of memory growing to %zu bytes\n", file, line, n);
        abort();
    }
    return q;
}

void mbuf_init(struct mbuf *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
}

void mbuf_fini(struct mbuf *b)
{
    free(b->p);
    mbuf_init(b);
}

char *mbuf_reserve(struct mbuf *b, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    return b->p + b->len;
}

void mbuf_add(struct mbuf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    memcpy(mbuf_reserve(b, n), p, n);
    b->len += n;
}

void mbuf_addc(struct mbuf *b, char c)
{
    *mbuf_reserve(b, 1) = c;
    b->len++;
}

void mbuf_adds(struct mbuf *b, const char *s)
{
    mbuf_add(b, s, strlen(s));
}

/* Copies runs without special characters in one memcpy each. */
static void add_escaped(struct mbuf *b, const char *p, size_t n, int quotes)
{
    char *w = mbuf_reserve(b, 2 * n);
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\') {
            *w++ = '\\';
            *w++ = '\\';
        } else if (c == '\n') {
            *w++ = '\\';
            *w++ = 'n';
        } else if (c == '"' && quotes) {
            *w++ = '\\';
            *w++ = '"';
        } else {
            *w++ = c;
        }
    }
    b->len = (size_t)(w - b->p);
}

void mbuf_add_label_value(struct mbuf *b, const char *p, size_t n)
{
    add_escaped(b, p, n, 1);
}

void mbuf_add_help(struct mbuf *b, const char *p, size_t n, int quotes)
{
    add_escaped(b, p, n, quotes);
}

void mbuf_add_double(struct mbuf *b, double v)
{
    char *w = mbuf_reserve(b, METRICS_NUM_MAX);
    b->len += metrics_format_double(w, v);
}

void mbuf_add_int64(struct mbuf *b, int64_t v)
{
    char *w = mbuf_reserve(b, METRICS_NUM_MAX);
    b->len += metrics_format_int64(w, v);
}

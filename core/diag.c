/*
 * diag: the configuration error collector (see diag.h).
 *
 * Messages are formatted once into their own heap string so that callers can
 * pass temporary buffers as arguments. Out-of-memory here aborts: a config
 * loader that silently drops an error would report success on a bad file.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *diag_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "%s:%d: out of memory\n", __FILE__, __LINE__);
        abort();
    }
    return q;
}

void otr_diag_init(struct otr_diag *d, const char *file)
{
    memset(d, 0, sizeof *d);
    d->file = file;
}

void otr_diag_fini(struct otr_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->msgs[i]);
    free(d->msgs);
    d->msgs = NULL;
    d->n = d->cap = 0;
}

/* Takes ownership of msg. */
static void diag_push(struct otr_diag *d, char *msg)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->msgs = diag_xrealloc(d->msgs, d->cap * sizeof *d->msgs);
    }
    d->msgs[d->n++] = msg;
}

static char *diag_vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int len = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (len < 0)
        len = 0;
    char *s = diag_xrealloc(NULL, (size_t)len + 1);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    return s;
}

static char *diag_format(const char *fmt, ...) OTR_PRINTF(1, 2);
static char *diag_format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = diag_vformat(fmt, ap);
    va_end(ap);
    return s;
}

void otr_diag_vat(struct otr_diag *d, const char *path, const char *fmt, va_list ap)
{
    char *body = diag_vformat(fmt, ap);
    const char *file = d->file ? d->file : "config";
    char *msg;
    if (path != NULL && path[0] != '\0')
        msg = diag_format("%s: %s: %s", file, path, body);
    else
        msg = diag_format("%s: %s", file, body);
    free(body);
    diag_push(d, msg);
}

void otr_diag_at(struct otr_diag *d, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    otr_diag_vat(d, path, fmt, ap);
    va_end(ap);
}

void otr_diag_raw(struct otr_diag *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_push(d, diag_vformat(fmt, ap));
    va_end(ap);
}

void otr_diag_print(const struct otr_diag *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(out, "%s\n", d->msgs[i]);
}

/*
 * diag: collects configuration errors so that every error is reported, not
 * just the first. Messages are complete sentences already carrying their
 * place ("agent.conf:3:14: ..." or "agent.conf: proxy.routes[2].timeout: ...").
 * Single-threaded: used while loading a configuration on the main thread.
 */
#ifndef OTR_DIAG_H
#define OTR_DIAG_H

#include <stddef.h>
#include <stdio.h>

#include "outrider/module.h"

struct otr_diag {
    const char *file; /* the config file's name as given, for prefixes */
    char **msgs;
    size_t n, cap;
};

/* Initialises an empty collector; file is borrowed and must outlive it. */
void otr_diag_init(struct otr_diag *d, const char *file);
/* Frees every message. */
void otr_diag_fini(struct otr_diag *d);
/* Adds "<file>: <path>: <message>" (path may be NULL or "": "<file>: <message>"). */
void otr_diag_at(struct otr_diag *d, const char *path, const char *fmt, ...) OTR_PRINTF(3, 4);
void otr_diag_vat(struct otr_diag *d, const char *path, const char *fmt, va_list ap);
/* Adds a message exactly as formatted. */
void otr_diag_raw(struct otr_diag *d, const char *fmt, ...) OTR_PRINTF(2, 3);
/* Writes every message, one per line. */
void otr_diag_print(const struct otr_diag *d, FILE *out);

#endif

/*
 * metrics_promtext: a parser for the Prometheus text exposition format
 * (0.0.4), with the OpenMetrics 1.0 additions it can meet in the wild:
 * "# UNIT", "# EOF", the unknown/info/stateset/gaugehistogram types,
 * _total/_created samples, exemplars ("# {trace_id="x"} 1.2") which are
 * skipped, and float-second timestamps when told the body is OpenMetrics.
 *
 * The parser works in place: it unescapes label values and HELP text
 * inside the caller's buffer, so strings it reports point into it and stay
 * valid as long as the buffer. It allocates nothing.
 *
 * Errors stop the parse, like Prometheus, which fails a scrape whose body
 * it cannot parse: the error names line and column.
 */
#ifndef OTR_METRICS_PROMTEXT_H
#define OTR_METRICS_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROM_MAX_LABELS 64

enum prom_type {
    PROM_UNTYPED = 0, /* no TYPE line, "untyped" or OpenMetrics "unknown" */
    PROM_COUNTER,
    PROM_GAUGE,
    PROM_HISTOGRAM,
    PROM_SUMMARY,
    PROM_GAUGEHISTOGRAM,
    PROM_INFO,
    PROM_STATESET,
};

/* The type's name as written in a TYPE line of the Prometheus text format
 * (OpenMetrics-only types map to their closest text equivalent). */
const char *prom_type_name(enum prom_type t);

struct prom_str {
    const char *p;
    size_t n;
};

struct prom_label {
    struct prom_str name, value;
};

/* One sample, with the metadata of the family it belongs to. */
struct prom_sample {
    struct prom_str family; /* family name: the sample name less its type's suffix */
    struct prom_str name;   /* sample name as written ("http_requests_bucket") */
    enum prom_type type;
    struct prom_str help;   /* unescaped; n == 0 when the family has no HELP */
    size_t n_labels;
    struct prom_label labels[PROM_MAX_LABELS];
    double value;
    bool has_ts;
    int64_t ts_ms; /* milliseconds since the epoch */
};

enum prom_flags {
    PROM_OPENMETRICS = 1u << 0, /* timestamps are float seconds */
};

struct prom_error {
    unsigned line, col; /* 1-based */
    char msg[96];
};

/* Returns 0 to continue, or a positive code to stop the parse (prom_parse
 * returns it). */
typedef int (*prom_sample_cb)(void *arg, const struct prom_sample *s);

/* Parses buf[0..n) (modified in place), calling cb per sample. Returns 0,
 * the callback's positive stop code, or -1 with *err filled. */
int prom_parse(char *buf, size_t n, unsigned flags, prom_sample_cb cb, void *arg, struct prom_error *err);

/* Validation helpers shared with the store. */
bool prom_valid_metric_name(const char *p, size_t n);
bool prom_valid_label_name(const char *p, size_t n);
bool prom_valid_utf8(const char *p, size_t n);

#endif

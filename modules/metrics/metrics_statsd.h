/*
 * metrics_statsd: a parser for statsd and DogStatsD lines.
 *
 *   <name>:<value>[:<value>...]|<type>[|@<rate>][|#<k>:<v>,<k2>:<v2>][|c:<id>][|T<ts>]
 *
 * Types: c (counter), g (gauge, "+n"/"-n" is a delta), ms (timer, in
 * milliseconds), h (histogram), d (distribution), s (set: the value is a
 * member, not a number). Several values per line (DogStatsD 1.1) share the
 * type, rate and tags. Container ids (|c:) and client timestamps (|T) are
 * accepted and ignored: the agent aggregates, it does not back-date.
 *
 * The parser allocates nothing: a parsed line points into the datagram,
 * which the caller keeps alive for the duration of the callback.
 */
#ifndef OTR_METRICS_STATSD_H
#define OTR_METRICS_STATSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATSD_MAX_TAGS 32
#define STATSD_MAX_VALUES 64

enum statsd_type {
    STATSD_COUNTER = 0,
    STATSD_GAUGE,
    STATSD_TIMER,
    STATSD_HISTOGRAM,
    STATSD_DISTRIBUTION,
    STATSD_SET,
};

/* Why a line was rejected. STATSD_OK is 0. */
enum statsd_error {
    STATSD_OK = 0,
    STATSD_E_NAME,   /* empty name or no ':' */
    STATSD_E_VALUE,  /* a value is not a finite number (or a negative counter) */
    STATSD_E_TYPE,   /* unknown or missing type */
    STATSD_E_RATE,   /* sample rate outside (0, 1] */
    STATSD_E_TAGS,   /* more than STATSD_MAX_TAGS tags or an empty tag key */
    STATSD_E_FIELD,  /* an unknown |field */
    STATSD_E_TOO_MANY_VALUES,
};

struct statsd_span {
    const char *p;
    uint32_t n;
};

struct statsd_tag {
    struct statsd_span key, value; /* value.n == 0 for a tag without ':' */
};

/* One parsed line; spans point into the caller's buffer. */
struct statsd_line {
    struct statsd_span name;
    enum statsd_type type;
    bool delta;        /* gauge: values are increments ("+3", "-2") */
    double rate;       /* 1.0 unless |@rate */
    uint32_t n_values; /* numbers in values[], or 1 for a set */
    double values[STATSD_MAX_VALUES];
    struct statsd_span member; /* STATSD_SET: the member */
    uint32_t n_tags;
    struct statsd_tag tags[STATSD_MAX_TAGS];
};

/* Parses one line (without its '\n'; a trailing '\r' is ignored) into
 * *out. Returns STATSD_OK or the reason for rejecting it. */
enum statsd_error statsd_parse_line(const char *p, size_t n, struct statsd_line *out);

/* Counts of one datagram. */
struct statsd_counts {
    uint64_t lines;     /* non-empty lines seen */
    uint64_t malformed; /* lines rejected */
};

typedef void (*statsd_line_cb)(void *arg, const struct statsd_line *line);

/* Splits a datagram into lines, parses each and calls cb for each valid
 * one; adds to *counts. Empty lines are skipped silently. The line struct
 * passed to cb is scratch owned by the caller (scratch). */
void statsd_parse_datagram(const char *p, size_t n, struct statsd_line *scratch, statsd_line_cb cb, void *arg,
                           struct statsd_counts *counts);

/* A short English reason for an error code. */
const char *statsd_strerror(enum statsd_error e);

#endif

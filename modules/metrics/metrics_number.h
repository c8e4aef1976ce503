/*
 * metrics_number: number parsing and formatting shared by the parsers and
 * the exposition. Spans need no NUL terminator.
 */
#ifndef OTR_METRICS_NUMBER_H
#define OTR_METRICS_NUMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses a decimal number in p[0..n): optional sign, digits, fraction,
 * exponent. Returns false unless the whole span is one finite number. */
bool metrics_parse_double(const char *p, size_t n, double *out);

/* Like metrics_parse_double but also accepts the Prometheus spellings of
 * non-finite values: NaN, +Inf, -Inf, Inf (any case). */
bool metrics_parse_prom_value(const char *p, size_t n, double *out);

/* Parses an optionally signed decimal integer filling p[0..n). */
bool metrics_parse_int64(const char *p, size_t n, int64_t *out);

/* Formats v the way Prometheus reads it back exactly: integers without a
 * fraction, "NaN", "+Inf", "-Inf", otherwise the shortest of %.15g..%.17g
 * that round-trips. buf must hold METRICS_NUM_MAX bytes; returns the length
 * and NUL-terminates. */
#define METRICS_NUM_MAX 32
size_t metrics_format_double(char *buf, double v);

/* Formats a signed integer; buf holds METRICS_NUM_MAX bytes. */
size_t metrics_format_int64(char *buf, int64_t v);

#endif

/*
 * logs_encode: a record as one JSON line, the wire form every output uses
 * (stdout, file, TCP, HTTP, forward) and the body of syslog messages:
 *
 *   {"time":"2026-11-25T19:33:01.123456789Z","stream":"stdout","message":"...",
 *    "namespace":"shop","pod":"cart-1",...}
 *
 * A JSON-lines record keeps its object's members after the agent's fields.
 */
#ifndef LOGS_ENCODE_H
#define LOGS_ENCODE_H

#include <stddef.h>

#include "logs_buf.h"
#include "logs_record.h"

/* Appends `,"key":"value"` for a metadata field to meta (built once per
 * source and reused for each of its records). Returns 0 or -1 (memory). */
int logs_meta_add(struct logs_buf *meta, const char *key, const char *value);

/* Appends rec as a JSON object followed by a newline to out. meta is a
 * fragment built by logs_meta_add (may be empty). Returns 0 or -1. */
int logs_encode_json(struct logs_buf *out, const struct logs_rec *rec, const char *meta, size_t meta_len);

#endif

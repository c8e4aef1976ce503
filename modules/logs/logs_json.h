/*
 * logs_json: the little JSON the logs module needs on its hot path, without
 * a DOM: escaping strings for output, validating an object, decoding one
 * string value, and finding a member of an object.
 */
#ifndef LOGS_JSON_H
#define LOGS_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "logs_buf.h"

/* Appends s[0..n) to b as the contents of a JSON string (no quotes).
 * Invalid UTF-8 becomes U+FFFD so the output is always valid JSON.
 * Returns 0 or -1 when out of memory. */
int logs_json_escape(struct logs_buf *b, const char *s, size_t n);

/* Validates one JSON value starting at p (leading white space allowed) and
 * returns a pointer just past it, or NULL if malformed (including invalid
 * UTF-8 in strings or nesting deeper than 64). */
const char *logs_json_skip_value(const char *p, const char *end);

/* Whether [p, end) holds exactly one JSON object, with optional white space
 * around it. */
bool logs_json_is_object(const char *p, const char *end);

/* Decodes the JSON string starting at the quote *p into out (replacing its
 * contents) and returns a pointer past the closing quote, or NULL if
 * malformed. */
const char *logs_json_decode_string(const char *p, const char *end, struct logs_buf *out);

#endif

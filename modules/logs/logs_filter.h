/*
 * logs_filter: a record as a Lua table for the filter(record) hook, and the
 * hook's answer back as a JSON line.
 *
 * For a bus record the table holds time, source (the stream) and the
 * record's fields, plus node and role.
 *
 * For a line, the table holds time (RFC 3339 string), stream ("stdout"/"stderr", absent
 * otherwise), message (the text; for JSON-lines input the object's text,
 * with json = true), the source's metadata (namespace, pod, container, node,
 * role, file, ...), split = true / malformed = true when flagged.
 *
 * The function returns the record (the same table changed, or a new one) to
 * keep it, or nil/false to drop it. Values may be strings, numbers,
 * booleans and nested tables (encoded as JSON objects, or arrays when they
 * are sequences), up to 16 levels; other types are skipped.
 */
#ifndef LOGS_FILTER_H
#define LOGS_FILTER_H

#include <stddef.h>

#include "logs_buf.h"
#include "logs_record.h"

struct lua_State;

/* Metadata of a source as key/value pairs (for the Lua table). */
struct logs_kv {
    const char *key, *value;
};

struct otr_field;

struct logs_filter_call {
    const struct logs_rec *rec;  /* a parsed line; NULL for a bus record: */
    uint64_t time_ns;            /* bus record: its time, */
    const char *source;          /* its stream name */
    const struct otr_field *fields; /* and its fields */
    size_t n_fields;
    const struct logs_kv *meta;
    size_t n_meta;
    struct logs_buf *out; /* receives the JSON line of a kept record */
};

enum { LOGS_FILTER_KEEP = 0, LOGS_FILTER_DROP = 1 };

/* push() for hook_run: one argument, the record table. */
int logs_filter_push(struct lua_State *L, void *arg);
/* pull() for hook_run: LOGS_FILTER_KEEP (out holds the line),
 * LOGS_FILTER_DROP, or a negative error when the result is not a table,
 * nil or false (the caller applies the fallback). */
int logs_filter_pull(struct lua_State *L, int nres, void *arg);

#endif

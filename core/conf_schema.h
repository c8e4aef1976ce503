/*
 * conf_schema: turns a JSON object into a C struct described by a table of
 * struct otr_conf_field (see outrider/module.h), for core's own section and
 * every module's, so that all configuration errors read alike. Also prints
 * the reference documentation from the same tables (--describe).
 */
#ifndef OTR_CONF_SCHEMA_H
#define OTR_CONF_SCHEMA_H

#include <jansson.h>
#include <stdio.h>

#include "diag.h"
#include "outrider/module.h"

/*
 * Fills dst (zeroed by the caller, sized for the table) from obj, a JSON
 * object or NULL (all defaults). path is the object's own path for messages
 * ("proxy", "" for the top level); role picks def_sidecar/def_node.
 *
 * - Every string read (user values and defaults) has ${VAR} and
 *   ${VAR:-default} expanded from the environment.
 * - A JSON null counts as an absent key (a role overlay can reset a value to
 *   its default); REQUIRED keys must be present and not null.
 * - INT, DOUBLE, SIZE and BOOL also take strings that parse fully
 *   ("${PORT}"); DURATION takes only strings (the unit is mandatory).
 * - Bounds: both 0 means unbounded; max < min means "at least min". They
 *   bound values (INT, DOUBLE, DURATION in ms, SIZE in bytes), the length
 *   in bytes (STRING) or the number of items (ARRAY, MAP). An ARRAY keeps at
 *   most max items (2^20 when it has no max), so memory follows the table.
 * - Unknown keys are errors, with "did you mean" when a known key is close;
 *   keys listed in `allow` (NULL-terminated, may be NULL) are skipped
 *   silently at this level (core uses it for module sections).
 *
 * Returns the number of errors added to d (0: success). On errors dst may be
 * partly filled; free it with otr_conf_free anyway.
 */
int otr_conf_parse(const struct otr_conf_field *fields, json_t *obj, void *dst, const char *path,
                   enum otr_role role, const char *const *allow, struct otr_diag *d);

/* Frees what otr_conf_parse allocated inside dst (not dst itself). */
void otr_conf_free(const struct otr_conf_field *fields, void *dst);

/* Prints the reference of a table as Markdown: one row per key with its
 * full path (section.key, section.list[].key), type, default (per role when
 * they differ), bounds or choices, and help. */
void otr_conf_describe(FILE *out, const char *section, const struct otr_conf_field *fields);

/* "250ms", "1.5s", "2m", "1h", "3d", "1m30s" to ms. A unit is required
 * (except for "0"): a bare "30" is the classic seconds-or-milliseconds bug.
 * Fractions must give whole milliseconds. Returns 0, or UV_EINVAL. */
int otr_parse_duration(const char *s, uint64_t *ms);
/* 4096, "64KiB", "64KB" (=KiB), "64K", "1MiB", "2GiB", "1TiB", "512B",
 * "1.5MiB" to bytes; units are case-insensitive and may follow a space.
 * 0 or UV_EINVAL (also on overflow). */
int otr_parse_size(const char *s, uint64_t *bytes);
/* Parses "host:port", "[v6]:port", ":port" or "unix:/path" into *out,
 * allocating its strings (free with otr_conf_address_free). Ports are
 * 0..65535 (0: any free port). 0, or UV_EINVAL with a static reason in why
 * and nothing allocated. */
int otr_parse_address(const char *s, struct otr_conf_address *out, const char **why);

/* Expands ${VAR} and ${VAR:-default} in s (":-" as in the shell: the
 * default also replaces an empty value; defaults may nest ${...}). "$$" is
 * a literal "$"; any other "$" is kept as is. Returns a malloc'd string, or
 * NULL with the reason written to errbuf ("environment variable \"PORT\" is
 * not set"). */
char *otr_env_expand(const char *s, char *errbuf, size_t errlen);

/* Frees an address's strings and zeroes it. */
void otr_conf_address_free(struct otr_conf_address *a);

/* Shortest exact rendering of ms ("1m30s" style is not used: "90s"), and of
 * bytes ("64KiB", "1500B"), for messages and --describe. */
void otr_format_duration(uint64_t ms, char *buf, size_t len);
void otr_format_size(uint64_t bytes, char *buf, size_t len);

/* A key from the file as it may appear in a message path: control
 * characters as \xNN (one error stays one line), cut with "..." after 128
 * bytes. Writes at most len bytes including the NUL. */
void otr_conf_key_text(const char *key, char *buf, size_t len);

/* Compact JSON text of v for messages, cut with "..." to fit len. */
void otr_json_render(const json_t *v, char *buf, size_t len);

/* The closest of candidates (NULL-terminated) and of extra (may be NULL) to
 * word: edit distance <= 2, else one being a prefix of the other; NULL if
 * none is close. */
const char *otr_suggest(const char *word, const char *const *candidates, const char *const *extra);

/* A field's bounds as text, in its own units: "1..65535", ">= 1",
 * "100ms..1m", "4KiB..1GiB"; "" when unbounded. For --describe and messages. */
void otr_conf_bounds_text(const struct otr_conf_field *f, char *buf, size_t len);

/* The default that applies to role (def_sidecar / def_node over def), or NULL. */
const char *otr_conf_default_for(const struct otr_conf_field *f, enum otr_role role);

/* Allocation for the config layer: small, bounded by input already in
 * memory, so out-of-memory aborts with file and line rather than turning
 * into a misleading config error. */
void *otr_conf_xrealloc(void *p, size_t n);
char *otr_conf_xstrdup(const char *s);

/* Levenshtein distance, for "did you mean" suggestions. */
size_t otr_edit_distance(const char *a, const char *b);

#endif

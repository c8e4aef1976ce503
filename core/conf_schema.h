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
 * Every string read (user values and defaults) has ${VAR} and
 * ${VAR:-default} expanded from the environment. Unknown keys are errors,
 * with "did you mean" when a known key is close; keys listed in `allow`
 * (NULL-terminated, may be NULL) are skipped silently (core uses it for
 * module sections). Returns the number of errors added to d (0: success).
 * On errors dst may be partly filled; free it with otr_conf_free anyway.
 */
int otr_conf_parse(const struct otr_conf_field *fields, json_t *obj, void *dst, const char *path,
                   enum otr_role role, const char *const *allow, struct otr_diag *d);

/* Frees what otr_conf_parse allocated inside dst (not dst itself). */
void otr_conf_free(const struct otr_conf_field *fields, void *dst);

/* Prints the reference of a table as Markdown: one row per key with its
 * full path (section.key, section.list[].key), type, default (per role when
 * they differ), bounds or choices, and help. */
void otr_conf_describe(FILE *out, const char *section, const struct otr_conf_field *fields);

/* "250ms", "1.5s", "2m", "1h", "3d" (and a bare integer: milliseconds) to ms.
 * Returns 0, or UV_EINVAL. */
int otr_parse_duration(const char *s, uint64_t *ms);
/* 4096, "64KiB", "64KB" (=KiB), "1MiB", "2GiB", "512B" to bytes. 0 or UV_EINVAL. */
int otr_parse_size(const char *s, uint64_t *bytes);
/* Parses "host:port", "[v6]:port", ":port" or "unix:/path" into *out,
 * allocating its strings. 0, or UV_EINVAL with a reason in why. */
int otr_parse_address(const char *s, struct otr_conf_address *out, const char **why);

/* Expands ${VAR} and ${VAR:-default} in s. Returns a malloc'd string, or NULL
 * with *err set to a static-or-malloc'd explanation in errbuf. "$$" is a
 * literal "$". */
char *otr_env_expand(const char *s, char *errbuf, size_t errlen);

/* Levenshtein distance, for "did you mean" suggestions. */
size_t otr_edit_distance(const char *a, const char *b);

#endif

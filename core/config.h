/*
 * config: reads the JSON configuration file and resolves the role.
 *
 *   1. otr_config_read: the file to a json_t, syntax errors as
 *      "<file>:<line>:<column>: <what>" (jansson's position, 1-based).
 *   2. otr_config_merge_role: roles.<role> merged over the base (objects merge
 *      key by key, recursively; arrays and scalars replace), "roles" removed.
 *      roles may only hold "sidecar" and "node".
 *   3. core's section and each module's are parsed by conf_schema.
 */
#ifndef OTR_CONFIG_H
#define OTR_CONFIG_H

#include <jansson.h>

#include "diag.h"
#include "outrider/module.h"

/* Returns a new reference, or NULL with an error in d. The top level must be
 * an object. */
json_t *otr_config_read(const char *path, struct otr_diag *d);
/* Same from a buffer (tests, fuzzing); name is used in messages. */
json_t *otr_config_read_buffer(const char *buf, size_t len, struct otr_diag *d);
/* Merges roles.<role> into root in place and deletes "roles". Returns the
 * number of errors added (unknown role names under "roles", non-objects). */
int otr_config_merge_role(json_t *root, enum otr_role role, struct otr_diag *d);
/* "sidecar" / "node" to the role; 0 if neither. */
enum otr_role otr_role_parse(const char *s);
const char *otr_role_name(enum otr_role r);

#endif

/*
 * config: reading the JSON file and applying the role overlay (see config.h).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "conf_schema.h"

/* Jansson's column points at the last character of the offending token and
 * is 0 for an empty input; clamp to 1 so positions stay 1-based. */
static void config_report_syntax(struct otr_diag *d, const json_error_t *err)
{
    const char *file = d->file ? d->file : "config";
    if (err->line < 1)
        otr_diag_raw(d, "%s: %s", file, err->text);
    else
        otr_diag_raw(d, "%s:%d:%d: %s", file, err->line, err->column < 1 ? 1 : err->column, err->text);
}

/* Duplicate keys are rejected by jansson itself (JSON_REJECT_DUPLICATES):
 * a silently ignored first value is a classic source of surprise. */
static json_t *config_check_top(json_t *root, struct otr_diag *d)
{
    if (json_is_object(root))
        return root;
    char got[96];
    otr_json_render(root, got, sizeof got);
    otr_diag_at(d, NULL, "expected a JSON object at the top level, got %s", got);
    json_decref(root);
    return NULL;
}

/* Opened here rather than by json_load_file so that a directory or a device
 * gets its own message instead of a puzzling syntax error at 1:1. */
json_t *otr_config_read(const char *path, struct otr_diag *d)
{
    json_error_t err;
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        otr_diag_at(d, NULL, "cannot open: %s", strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        otr_diag_at(d, NULL, "not a regular file");
        fclose(f);
        return NULL;
    }
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
    fclose(f);
    if (root == NULL) {
        config_report_syntax(d, &err);
        return NULL;
    }
    return config_check_top(root, d);
}

json_t *otr_config_read_buffer(const char *buf, size_t len, struct otr_diag *d)
{
    json_error_t err;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        config_report_syntax(d, &err);
        return NULL;
    }
    return config_check_top(root, d);
}

/* Objects merge key by key; anything else (arrays included) replaces, so a
 * role can swap a whole list of listeners rather than append to it. */
static void config_merge_object(json_t *base, json_t *over)
{
    const char *key;
    json_t *val;
    json_object_foreach(over, key, val) {
        json_t *cur = json_object_get(base, key);
        if (json_is_object(cur) && json_is_object(val))
            config_merge_object(cur, val);
        else
            json_object_set(base, key, val);
    }
}

static const char *const config_role_names[] = {"sidecar", "node", NULL};

int otr_config_merge_role(json_t *root, enum otr_role role, struct otr_diag *d)
{
    size_t before = d->n;
    json_t *roles = json_object_get(root, "roles");
    if (roles == NULL)
        return 0;
    char got[96];
    if (!json_is_object(roles)) {
        otr_json_render(roles, got, sizeof got);
        otr_diag_at(d, "roles", "expected an object with \"sidecar\" and/or \"node\", got %s", got);
        json_object_del(root, "roles");
        return (int)(d->n - before);
    }
    const char *key;
    json_t *val;
    json_t *chosen = NULL;
    json_object_foreach(roles, key, val) {
        char text[4 * 128 + 8], path[sizeof text + 8];
        otr_conf_key_text(key, text, sizeof text);
        snprintf(path, sizeof path, "roles.%s", text);
        enum otr_role r = otr_role_parse(key);
        if (r == 0) {
            const char *hint = otr_suggest(key, config_role_names, NULL);
            if (hint)
                otr_diag_at(d, path, "unknown role (did you mean \"%s\"?)", hint);
            else
                otr_diag_at(d, path, "unknown role (expected \"sidecar\" or \"node\")");
            continue;
        }
        if (!json_is_object(val)) {
            otr_json_render(val, got, sizeof got);
            otr_diag_at(d, path, "expected an object, got %s", got);
            continue;
        }
        if (json_object_get(val, "roles") != NULL) {
            otr_diag_at(d, path, "\"roles\" cannot be nested inside a role");
            continue;
        }
        if (r == role)
            chosen = val;
    }
    if (chosen != NULL && d->n == before) {
        json_incref(chosen);
        json_object_del(root, "roles");
        config_merge_object(root, chosen);
        json_decref(chosen);
    } else {
        json_object_del(root, "roles");
    }
    return (int)(d->n - before);
}

enum otr_role otr_role_parse(const char *s)
{
    if (s == NULL)
        return 0;
    if (strcmp(s, "sidecar") == 0)
        return OTR_ROLE_SIDECAR;
    if (strcmp(s, "node") == 0)
        return OTR_ROLE_NODE;
    return 0;
}

const char *otr_role_name(enum otr_role r)
{
    switch (r) {
    case OTR_ROLE_SIDECAR:
        return "sidecar";
    case OTR_ROLE_NODE:
        return "node";
    default:
        return "unknown";
    }
}

/*
 * conf_describe: the configuration reference (`outrider --describe`), printed
 * as a Markdown table from the very tables the parser uses, so the docs cannot
 * drift from what is accepted.
 */
#include <stdlib.h>
#include <string.h>

#include "conf_schema.h"

/* Writes s with the characters that would break a table row escaped. */
static void md_cell(FILE *out, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\n')
            fputc(' ', out);
        else
            fputc(*s, out);
    }
}

static const char *type_name(enum otr_conf_type t)
{
    switch (t) {
    case OTR_CONF_BOOL:
        return "bool";
    case OTR_CONF_INT:
        return "integer";
    case OTR_CONF_DOUBLE:
        return "number";
    case OTR_CONF_STRING:
        return "string";
    case OTR_CONF_DURATION:
        return "duration";
    case OTR_CONF_SIZE:
        return "size";
    case OTR_CONF_ENUM:
        return "enum";
    case OTR_CONF_ADDRESS:
        return "address";
    case OTR_CONF_OBJECT:
        return "object";
    case OTR_CONF_ARRAY:
        return "array";
    case OTR_CONF_MAP:
        return "map of strings";
    default:
        return "?";
    }
}

static const struct otr_conf_field *describe_elem(const struct otr_conf_field *f)
{
    static const struct otr_conf_field object_elem = {.type = OTR_CONF_OBJECT};
    if (f->type != OTR_CONF_ARRAY)
        return NULL;
    return f->elem ? f->elem : f->fields ? &object_elem : NULL;
}

static void describe_type(FILE *out, const struct otr_conf_field *f)
{
    const struct otr_conf_field *elem = describe_elem(f);
    if (elem != NULL)
        fprintf(out, "array of %s", elem->type == OTR_CONF_OBJECT ? "objects" : type_name(elem->type));
    else
        fputs(type_name(f->type), out);
}

static void describe_default_text(FILE *out, const char *text)
{
    if (text == NULL) {
        fputs("none", out);
        return;
    }
    fputc('`', out);
    md_cell(out, text);
    fputc('`', out);
}

static void describe_default(FILE *out, const struct otr_conf_field *f)
{
    if (f->flags & OTR_CONF_REQUIRED) {
        fputs("required", out);
        return;
    }
    const char *s = otr_conf_default_for(f, OTR_ROLE_SIDECAR), *n = otr_conf_default_for(f, OTR_ROLE_NODE);
    if (s != n && (s == NULL || n == NULL || strcmp(s, n) != 0)) {
        fputs("sidecar: ", out);
        describe_default_text(out, s);
        fputs("<br>node: ", out);
        describe_default_text(out, n);
    } else if (s != NULL) {
        describe_default_text(out, s);
    }
}

/* Bounds or choices of one scalar field, in the words of its type. */
static void describe_limits(FILE *out, const struct otr_conf_field *f)
{
    char b[100];
    otr_conf_bounds_text(f, b, sizeof b);
    switch (f->type) {
    case OTR_CONF_ENUM:
        for (const char *p = f->choices ? f->choices : ""; *p;) {
            size_t n = strcspn(p, "|");
            fprintf(out, "%s`%.*s`", p == f->choices ? "" : ", ", (int)n, p);
            p += n + (p[n] == '|');
        }
        break;
    case OTR_CONF_STRING:
        if (*b && f->min == 0)
            fprintf(out, "max %.0f bytes", f->max);
        else if (*b)
            fprintf(out, "%s bytes", b);
        break;
    case OTR_CONF_ARRAY:
    case OTR_CONF_MAP:
        if (*b)
            fprintf(out, "%s %s", b, f->type == OTR_CONF_ARRAY ? "items" : "keys");
        break;
    default:
        fputs(b, out);
        break;
    }
}

static void describe_fields(FILE *out, const char *prefix, const struct otr_conf_field *fields)
{
    for (const struct otr_conf_field *f = fields; f != NULL && f->type != OTR_CONF_END; f++) {
        size_t plen = strlen(prefix) + strlen(f->key) + 4;
        char *path = malloc(plen);
        if (path == NULL)
            return;
        snprintf(path, plen, "%s%s%s", prefix, *prefix ? "." : "", f->key);
        fputs("| `", out);
        md_cell(out, path);
        fputs("` | ", out);
        describe_type(out, f);
        fputs(" | ", out);
        describe_default(out, f);
        fputs(" | ", out);
        describe_limits(out, f);
        const struct otr_conf_field *elem = describe_elem(f);
        if (elem != NULL && elem->type != OTR_CONF_OBJECT && (elem->min != 0 || elem->max != 0 || elem->choices)) {
            fputs(f->min != 0 || f->max != 0 ? "; each " : "each ", out);
            describe_limits(out, elem);
        }
        fputs(" | ", out);
        md_cell(out, f->help);
        fputs(" |\n", out);
        if (f->type == OTR_CONF_OBJECT) {
            describe_fields(out, path, f->fields);
        } else if (elem != NULL && elem->type == OTR_CONF_OBJECT) {
            strcat(path, "[]");
            describe_fields(out, path, f->elem ? f->elem->fields : f->fields);
        }
        free(path);
    }
}

void otr_conf_describe(FILE *out, const char *section, const struct otr_conf_field *fields)
{
    fputs("| key | type | default | bounds | description |\n", out);
    fputs("|---|---|---|---|---|\n", out);
    describe_fields(out, section ? section : "", fields);
}

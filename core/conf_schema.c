/*
 * conf_schema: table-driven parsing of configuration sections (see
 * conf_schema.h). One walker serves user values and defaults alike, so a
 * default is validated exactly like input and errors always read
 *
 *     <file>: <path>: expected <what the table wants>, got <JSON of the value>
 *
 * Parsing never stops at the first error: every field is visited and every
 * problem is added to the diag, and whatever did parse is kept in dst so that
 * otr_conf_free can release it.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf_schema.h"

struct parse_ctx {
    struct otr_diag *d;
    enum otr_role role;
    char *path; /* the current path, grown and cut as the walk goes */
    size_t len, cap;
    const char *default_note; /* non-NULL while parsing a table default */
};

/* ---- paths ------------------------------------------------------------------ */

static void path_add(struct parse_ctx *c, const char *s, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        c->cap = (c->len + n + 1) * 2;
        c->path = otr_conf_xrealloc(c->path, c->cap);
    }
    memcpy(c->path + c->len, s, n);
    c->len += n;
    c->path[c->len] = '\0';
}

static size_t path_push_key(struct parse_ctx *c, const char *key)
{
    size_t old = c->len;
    char text[4 * 128 + 8];
    otr_conf_key_text(key, text, sizeof text);
    if (c->len > 0)
        path_add(c, ".", 1);
    path_add(c, text, strlen(text));
    return old;
}

static size_t path_push_index(struct parse_ctx *c, size_t i)
{
    size_t old = c->len;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "[%zu]", i);
    path_add(c, buf, (size_t)n);
    return old;
}

static void path_pop(struct parse_ctx *c, size_t old)
{
    c->len = old;
    c->path[old] = '\0';
}

/* ---- messages --------------------------------------------------------------- */

static void conf_error(struct parse_ctx *c, const char *fmt, ...) OTR_PRINTF(2, 3);
static void conf_error(struct parse_ctx *c, const char *fmt, ...)
{
    char body[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    if (c->default_note)
        otr_diag_at(c->d, c->path, "%s (%s)", body, c->default_note);
    else
        otr_diag_at(c->d, c->path, "%s", body);
}

static bool bounded(const struct otr_conf_field *f)
{
    return f->min != 0 || f->max != 0;
}

static bool in_bounds(const struct otr_conf_field *f, double x)
{
    if (!bounded(f))
        return true;
    if (f->max < f->min)
        return x >= f->min;
    return x >= f->min && x <= f->max;
}

typedef void (*bound_fmt)(double v, char *buf, size_t len);

static void fmt_integer(double v, char *buf, size_t len)
{
    snprintf(buf, len, "%.0f", v);
}

static void fmt_number(double v, char *buf, size_t len)
{
    snprintf(buf, len, "%g", v);
}

static void fmt_duration(double v, char *buf, size_t len)
{
    otr_format_duration(v <= 0 ? 0 : (uint64_t)v, buf, len);
}

static void fmt_size(double v, char *buf, size_t len)
{
    otr_format_size(v <= 0 ? 0 : (uint64_t)v, buf, len);
}

void otr_conf_bounds_text(const struct otr_conf_field *f, char *buf, size_t len)
{
    bound_fmt fmt;
    char lo[48], hi[48];
    switch (f->type) {
    case OTR_CONF_DOUBLE:
        fmt = fmt_number;
        break;
    case OTR_CONF_DURATION:
        fmt = fmt_duration;
        break;
    case OTR_CONF_SIZE:
        fmt = fmt_size;
        break;
    default:
        fmt = fmt_integer;
        break;
    }
    if (!bounded(f)) {
        snprintf(buf, len, "%s", "");
        return;
    }
    fmt(f->min, lo, sizeof lo);
    if (f->max < f->min) {
        snprintf(buf, len, ">= %s", lo);
        return;
    }
    fmt(f->max, hi, sizeof hi);
    snprintf(buf, len, "%s..%s", lo, hi);
}

/* What a field wants, as the words after "expected ". */
static void expectation(const struct otr_conf_field *f, char *buf, size_t len)
{
    char b[100];
    otr_conf_bounds_text(f, b, sizeof b);
    switch (f->type) {
    case OTR_CONF_BOOL:
        snprintf(buf, len, "true or false");
        break;
    case OTR_CONF_INT:
        snprintf(buf, len, "an integer%s%s", *b ? " " : "", b);
        break;
    case OTR_CONF_DOUBLE:
        snprintf(buf, len, "a number%s%s", *b ? " " : "", b);
        break;
    case OTR_CONF_STRING:
        if (!bounded(f))
            snprintf(buf, len, "a string");
        else if (f->min == 0)
            snprintf(buf, len, "a string of at most %.0f bytes", f->max);
        else if (f->max < f->min)
            snprintf(buf, len, "a string of at least %.0f bytes", f->min);
        else
            snprintf(buf, len, "a string of %s bytes", b);
        break;
    case OTR_CONF_DURATION:
        if (*b)
            snprintf(buf, len, "a duration %s", b);
        else
            snprintf(buf, len, "a duration like \"250ms\"");
        break;
    case OTR_CONF_SIZE:
        if (*b)
            snprintf(buf, len, "a size %s", b);
        else
            snprintf(buf, len, "a size like \"64KiB\"");
        break;
    case OTR_CONF_ENUM: {
        size_t off = (size_t)snprintf(buf, len, "one of ");
        const char *p = f->choices ? f->choices : "";
        while (off < len) {
            size_t n = strcspn(p, "|");
            off += (size_t)snprintf(buf + off, len - off, "%s\"%.*s\"", p == f->choices ? "" : ", ", (int)n, p);
            if (p[n] == '\0')
                break;
            p += n + 1;
        }
        break;
    }
    case OTR_CONF_ADDRESS:
        snprintf(buf, len, "an address like \"127.0.0.1:8080\", \"[::1]:8080\" or \"unix:/path\"");
        break;
    case OTR_CONF_OBJECT:
        snprintf(buf, len, "an object");
        break;
    case OTR_CONF_ARRAY:
        snprintf(buf, len, "an array%s%s%s", *b ? " of " : "", b, *b ? " items" : "");
        break;
    case OTR_CONF_MAP:
        snprintf(buf, len, "an object of strings%s%s%s", *b ? " with " : "", b, *b ? " keys" : "");
        break;
    default:
        snprintf(buf, len, "nothing (unknown field type %d)", (int)f->type);
        break;
    }
}

/* Reports "expected <...>, got <v>", showing the expanded text of a string
 * and where it came from when ${VAR} changed it; why is appended in
 * parentheses when set. */
static void conf_bad(struct parse_ctx *c, const struct otr_conf_field *f, const json_t *v, const char *expanded,
                     const char *why)
{
    char want[512], got[128], from[112] = "";
    expectation(f, want, sizeof want);
    if (expanded != NULL && json_is_string(v) && strcmp(expanded, json_string_value(v)) != 0) {
        json_t *e = json_string(expanded);
        otr_json_render(e, got, sizeof got);
        json_decref(e);
        char orig[96];
        otr_json_render(v, orig, sizeof orig);
        snprintf(from, sizeof from, " (from %s)", orig);
    } else {
        otr_json_render(v, got, sizeof got);
    }
    conf_error(c, "expected %s, got %s%s%s%s%s", want, got, from, why ? " (" : "", why ? why : "", why ? ")" : "");
}

/* The expanded text of a JSON string, or NULL after reporting why not. */
static char *conf_expand(struct parse_ctx *c, const json_t *v)
{
    char err[256];
    char *s = otr_env_expand(json_string_value(v), err, sizeof err);
    if (s == NULL)
        conf_error(c, "%s", err);
    return s;
}

/* ---- scalars ------------------------------------------------------------------ */

/* Whole-string integer: optional "-", then decimal digits only. */
static bool text_to_int(const char *s, int64_t *out)
{
    const char *digits = s[0] == '-' ? s + 1 : s;
    char *end;
    if (*digits < '0' || *digits > '9')
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

/* Whole-string decimal number; no hex, inf or nan, which strtod accepts. */
static bool text_to_double(const char *s, double *out)
{
    char *end;
    const char *p = s[0] == '-' ? s + 1 : s;
    if (!((*p >= '0' && *p <= '9') || *p == '.') || strpbrk(s, "xXpP") != NULL)
        return false;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* The ${VAR}-expanded text of a field that must be a JSON string (freed by
 * the caller), or NULL once the error is reported. */
static char *string_value(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v)
{
    if (!json_is_string(v)) {
        conf_bad(c, f, v, NULL, NULL);
        return NULL;
    }
    return conf_expand(c, v);
}

static void parse_bool(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    if (json_is_boolean(v)) {
        *(bool *)slot = json_is_true(v);
        return;
    }
    char *s = string_value(c, f, v);
    if (s == NULL)
        return;
    if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)
        *(bool *)slot = s[0] == 't';
    else
        conf_bad(c, f, v, s, NULL);
    free(s);
}

/* OTR_CONF_INT (integer, an int64_t slot) or OTR_CONF_DOUBLE (any number,
 * a double slot): a JSON number or a string (expanded, then read as text),
 * within the field's bounds. */
static void parse_number(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot, bool integer)
{
    int64_t i = 0;
    double x = 0;
    char *s = NULL;
    bool ok = false;
    if (integer ? json_is_integer(v) : json_is_number(v)) {
        if (integer)
            i = json_integer_value(v);
        else
            x = json_number_value(v);
        ok = true;
    } else if (json_is_string(v)) {
        if ((s = conf_expand(c, v)) == NULL)
            return;
        ok = integer ? text_to_int(s, &i) : text_to_double(s, &x);
    }
    if (integer)
        x = (double)i;
    if (ok && in_bounds(f, x)) {
        if (integer)
            *(int64_t *)slot = i;
        else
            *(double *)slot = x;
    } else {
        conf_bad(c, f, v, s, NULL);
    }
    free(s);
}

static void parse_string(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    char *s = string_value(c, f, v);
    if (s == NULL)
        return;
    if (!in_bounds(f, (double)strlen(s))) {
        conf_bad(c, f, v, s, NULL);
        free(s);
        return;
    }
    *(char **)slot = s;
}

/* Durations must be strings with a unit: a JSON number would leave the
 * unit to guesswork. */
static void parse_duration(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    uint64_t ms;
    char *s = string_value(c, f, v);
    if (s == NULL)
        return;
    if (otr_parse_duration(s, &ms) != 0 || !in_bounds(f, (double)ms))
        conf_bad(c, f, v, s, NULL);
    else
        *(uint64_t *)slot = ms;
    free(s);
}

static void parse_size(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    uint64_t bytes = 0;
    char *s = NULL;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        bytes = (uint64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        if ((s = conf_expand(c, v)) == NULL)
            return;
        if (otr_parse_size(s, &bytes) != 0)
            goto bad;
    } else {
        goto bad;
    }
    if (!in_bounds(f, (double)bytes))
        goto bad;
    *(uint64_t *)slot = bytes;
    free(s);
    return;
bad:
    conf_bad(c, f, v, s, NULL);
    free(s);
}

/* The choices of an ENUM as a NULL-terminated array pointing into *store,
 * a private copy of the choices text; free both. */
static const char **enum_split(const char *choices, char **store)
{
    size_t n = 2;
    for (const char *p = choices; *p; p++)
        n += *p == '|';
    const char **list = otr_conf_xrealloc(NULL, n * sizeof *list);
    char *copy = otr_conf_xstrdup(choices);
    size_t i = 0;
    for (char *tok = copy, *next; tok != NULL; tok = next) {
        next = strchr(tok, '|');
        if (next != NULL)
            *next++ = '\0';
        list[i++] = tok;
    }
    list[i] = NULL;
    *store = copy;
    return list;
}

static void parse_enum(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    char *s = string_value(c, f, v);
    if (s == NULL)
        return;
    char *store;
    const char **list = enum_split(f->choices ? f->choices : "", &store);
    size_t i = 0;
    for (; list[i] != NULL; i++) {
        if (strcmp(list[i], s) == 0)
            break;
    }
    if (list[i] != NULL) {
        *(int *)slot = (int)i;
    } else {
        const char *hint = otr_suggest(s, list, NULL);
        char why[128];
        snprintf(why, sizeof why, "did you mean \"%.100s\"?", hint ? hint : "");
        conf_bad(c, f, v, s, hint ? why : NULL);
    }
    free(list);
    free(store);
    free(s);
}

static void parse_address(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    char *s = string_value(c, f, v);
    if (s == NULL)
        return;
    const char *why = NULL;
    struct otr_conf_address a = {0};
    if (otr_parse_address(s, &a, &why) != 0)
        conf_bad(c, f, v, s, why);
    else
        *(struct otr_conf_address *)slot = a;
    free(s);
}

/* ---- containers --------------------------------------------------------------- */

static void parse_value(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot);
static void parse_fields(struct parse_ctx *c, const struct otr_conf_field *fields, json_t *obj, void *base,
                         const char *const *allow);

/* An array's element description: .elem, or objects of .fields. */
static const struct otr_conf_field *array_elem(const struct otr_conf_field *f, struct otr_conf_field *tmp)
{
    if (f->elem != NULL)
        return f->elem;
    memset(tmp, 0, sizeof *tmp);
    tmp->type = OTR_CONF_OBJECT;
    tmp->fields = f->fields;
    return f->fields != NULL ? tmp : NULL;
}

/* Arrays whose table sets no maximum still stop here. */
#define ARRAY_ITEMS_MAX (1 << 20)

static void parse_array(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    struct otr_conf_array *arr = slot;
    struct otr_conf_field tmp;
    const struct otr_conf_field *elem = array_elem(f, &tmp);
    if (elem == NULL || f->elem_size == 0) {
        conf_error(c, "table error: array without element description or elem_size");
        return;
    }
    if (!json_is_array(v)) {
        conf_bad(c, f, v, NULL, NULL);
        return;
    }
    size_t n = json_array_size(v);
    if (!in_bounds(f, (double)n)) {
        char want[128];
        expectation(f, want, sizeof want);
        conf_error(c, "expected %s, got %zu item%s", want, n, n == 1 ? "" : "s");
    }
    /* Elements are checked even when the count is wrong, to report every
     * error, but memory stays bounded by the table (or the hard cap), not
     * by what the file asks for. */
    size_t limit = bounded(f) && f->max >= f->min ? (size_t)f->max : ARRAY_ITEMS_MAX;
    if (n > limit) {
        if (limit == ARRAY_ITEMS_MAX)
            conf_error(c, "expected at most %d items, got %zu", ARRAY_ITEMS_MAX, n);
        n = limit;
    }
    if (n > 0) {
        arr->items = otr_conf_xrealloc(NULL, n * f->elem_size);
        memset(arr->items, 0, n * f->elem_size);
    }
    arr->n = n;
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push_index(c, i);
        parse_value(c, elem, json_array_get(v, i), (char *)arr->items + i * f->elem_size + elem->offset);
        path_pop(c, old);
    }
}

static void parse_map(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    struct otr_conf_map *map = slot;
    static const struct otr_conf_field string_field = {.type = OTR_CONF_STRING};
    if (!json_is_object(v)) {
        conf_bad(c, f, v, NULL, NULL);
        return;
    }
    size_t n = json_object_size(v);
    if (!in_bounds(f, (double)n)) {
        char want[128];
        expectation(f, want, sizeof want);
        conf_error(c, "expected %s, got %zu key%s", want, n, n == 1 ? "" : "s");
    }
    if (n > 0)
        map->items = otr_conf_xrealloc(NULL, n * sizeof *map->items);
    map->n = 0;
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        size_t old = path_push_key(c, key);
        char *s = NULL;
        if (!json_is_string(val))
            conf_bad(c, &string_field, val, NULL, NULL);
        else
            s = conf_expand(c, val);
        if (s != NULL) {
            map->items[map->n].key = otr_conf_xstrdup(key);
            map->items[map->n].value = s;
            map->n++;
        }
        path_pop(c, old);
    }
}

static void parse_object(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    if (!json_is_object(v)) {
        conf_bad(c, f, v, NULL, NULL);
        return;
    }
    parse_fields(c, f->fields, v, slot, NULL);
}

static void parse_int(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    parse_number(c, f, v, slot, true);
}

static void parse_double(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    parse_number(c, f, v, slot, false);
}

typedef void (*parse_fn)(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot);

static void parse_value(struct parse_ctx *c, const struct otr_conf_field *f, json_t *v, void *slot)
{
    static const parse_fn parsers[] = {
        [OTR_CONF_BOOL] = parse_bool,       [OTR_CONF_INT] = parse_int,
        [OTR_CONF_DOUBLE] = parse_double,   [OTR_CONF_STRING] = parse_string,
        [OTR_CONF_DURATION] = parse_duration, [OTR_CONF_SIZE] = parse_size,
        [OTR_CONF_ENUM] = parse_enum,       [OTR_CONF_ADDRESS] = parse_address,
        [OTR_CONF_OBJECT] = parse_object,   [OTR_CONF_ARRAY] = parse_array,
        [OTR_CONF_MAP] = parse_map,
    };
    if ((unsigned)f->type >= sizeof parsers / sizeof *parsers || !parsers[f->type]) {
        conf_error(c, "table error: unknown field type %d", (int)f->type);
        return;
    }
    parsers[f->type](c, f, v, slot);
}

const char *otr_conf_default_for(const struct otr_conf_field *f, enum otr_role role)
{
    if (role == OTR_ROLE_SIDECAR && f->def_sidecar != NULL)
        return f->def_sidecar;
    if (role == OTR_ROLE_NODE && f->def_node != NULL)
        return f->def_node;
    return f->def;
}

/* Defaults are JSON text parsed by the same code as user input. An object
 * without a default still gets its own fields' defaults. */
static void apply_default(struct parse_ctx *c, const struct otr_conf_field *f, void *slot)
{
    const char *text = otr_conf_default_for(f, c->role);
    if (text == NULL) {
        if (f->type == OTR_CONF_OBJECT)
            parse_fields(c, f->fields, NULL, slot, NULL);
        return;
    }
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (v == NULL) {
        conf_error(c, "table error: default %s is not JSON: %s", text, err.text);
        return;
    }
    const char *saved = c->default_note;
    if (saved == NULL)
        c->default_note = text == f->def ? "default" : c->role == OTR_ROLE_SIDECAR ? "sidecar default" : "node default";
    parse_value(c, f, v, slot);
    c->default_note = saved;
    json_decref(v);
}

static bool key_allowed(const char *key, const char *const *allow)
{
    for (; allow != NULL && *allow != NULL; allow++) {
        if (strcmp(*allow, key) == 0)
            return true;
    }
    return false;
}

static const struct otr_conf_field *field_find(const struct otr_conf_field *fields, const char *key)
{
    for (const struct otr_conf_field *f = fields; f != NULL && f->type != OTR_CONF_END; f++) {
        if (f->key != NULL && strcmp(f->key, key) == 0)
            return f;
    }
    return NULL;
}

static void report_unknown_keys(struct parse_ctx *c, const struct otr_conf_field *fields, json_t *obj,
                                const char *const *allow)
{
    size_t n = 0;
    for (const struct otr_conf_field *f = fields; f != NULL && f->type != OTR_CONF_END; f++)
        n++;
    const char **keys = otr_conf_xrealloc(NULL, (n + 1) * sizeof *keys);
    for (size_t i = 0; i < n; i++)
        keys[i] = fields[i].key ? fields[i].key : "";
    keys[n] = NULL;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        if (field_find(fields, key) != NULL || key_allowed(key, allow))
            continue;
        size_t old = path_push_key(c, key);
        const char *hint = otr_suggest(key, keys, allow);
        if (hint != NULL)
            conf_error(c, "unknown key (did you mean \"%s\"?)", hint);
        else
            conf_error(c, "unknown key");
        path_pop(c, old);
    }
    free(keys);
}

static void parse_fields(struct parse_ctx *c, const struct otr_conf_field *fields, json_t *obj, void *base,
                         const char *const *allow)
{
    for (const struct otr_conf_field *f = fields; f != NULL && f->type != OTR_CONF_END; f++) {
        json_t *v = obj ? json_object_get(obj, f->key) : NULL;
        void *slot = (char *)base + f->offset;
        size_t old = path_push_key(c, f->key);
        if (v != NULL && !json_is_null(v))
            parse_value(c, f, v, slot);
        else if (f->flags & OTR_CONF_REQUIRED)
            conf_error(c, "missing required key");
        else
            apply_default(c, f, slot);
        path_pop(c, old);
    }
    if (obj != NULL)
        report_unknown_keys(c, fields, obj, allow);
}

int otr_conf_parse(const struct otr_conf_field *fields, json_t *obj, void *dst, const char *path,
                   enum otr_role role, const char *const *allow, struct otr_diag *d)
{
    struct parse_ctx c = {.d = d, .role = role};
    size_t before = d->n;
    path_add(&c, path ? path : "", path ? strlen(path) : 0);
    if (obj != NULL && !json_is_object(obj)) {
        static const struct otr_conf_field section = {.type = OTR_CONF_OBJECT};
        conf_bad(&c, &section, obj, NULL, NULL);
    } else {
        parse_fields(&c, fields, obj, dst, allow);
    }
    free(c.path);
    return (int)(d->n - before);
}

/* ---- freeing -------------------------------------------------------------------- */

static void free_value(const struct otr_conf_field *f, void *slot)
{
    switch (f->type) {
    case OTR_CONF_STRING:
        free(*(char **)slot);
        *(char **)slot = NULL;
        break;
    case OTR_CONF_ADDRESS:
        otr_conf_address_free(slot);
        break;
    case OTR_CONF_OBJECT:
        otr_conf_free(f->fields, slot);
        break;
    case OTR_CONF_ARRAY: {
        struct otr_conf_array *arr = slot;
        struct otr_conf_field tmp;
        const struct otr_conf_field *elem = array_elem(f, &tmp);
        for (size_t i = 0; elem != NULL && i < arr->n; i++)
            free_value(elem, (char *)arr->items + i * f->elem_size + elem->offset);
        free(arr->items);
        arr->items = NULL;
        arr->n = 0;
        break;
    }
    case OTR_CONF_MAP: {
        struct otr_conf_map *map = slot;
        for (size_t i = 0; i < map->n; i++) {
            free(map->items[i].key);
            free(map->items[i].value);
        }
        free(map->items);
        map->items = NULL;
        map->n = 0;
        break;
    }
    default:
        break;
    }
}

void otr_conf_free(const struct otr_conf_field *fields, void *dst)
{
    for (const struct otr_conf_field *f = fields; f != NULL && f->type != OTR_CONF_END; f++)
        free_value(f, (char *)dst + f->offset);
}

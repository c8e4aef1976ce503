/*
 * Prometheus text format parser. Line oriented: a line is a comment
 * (HELP, TYPE, UNIT, EOF or free text), blank, or a sample:
 *
 *   name[{label="value",...}] value [timestamp] [# exemplar]
 *
 * The parser remembers the metadata (HELP/TYPE) of the current family
 * only: the format requires a family's lines to be contiguous, and a
 * sample that does not belong to the current family starts an untyped one.
 */
#include "metrics_promtext.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "metrics_number.h"

struct parser {
    char *line, *end; /* current line [line, end) */
    unsigned lineno;
    unsigned flags;
    struct prom_error *err;
    struct prom_str meta_name, meta_help;
    enum prom_type meta_type;
    bool meta_has_type, meta_has_help, meta_has_samples;
    struct prom_sample s;
};

static const char *const type_names[] = {
    [PROM_UNTYPED] = "untyped", [PROM_COUNTER] = "counter",     [PROM_GAUGE] = "gauge",
    [PROM_HISTOGRAM] = "histogram", [PROM_SUMMARY] = "summary", [PROM_GAUGEHISTOGRAM] = "gaugehistogram",
    [PROM_INFO] = "info",       [PROM_STATESET] = "stateset",
};

const char *prom_type_name(enum prom_type t)
{
    switch (t) {
    case PROM_GAUGEHISTOGRAM: return "histogram";
    case PROM_INFO: return "gauge";
    case PROM_STATESET: return "gauge";
    default: return type_names[t];
    }
}

__attribute__((format(printf, 3, 4))) static int fail(struct parser *ps, const char *at, const char *fmt, ...)
{
    ps->err->line = ps->lineno;
    ps->err->col = (unsigned)(at - ps->line) + 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err->msg, sizeof ps->err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

bool prom_valid_metric_name(const char *p, size_t n)
{
    if (n == 0 || !(is_name_start(p[0]) || p[0] == ':'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_name_char(p[i]) && p[i] != ':')
            return false;
    return true;
}

bool prom_valid_label_name(const char *p, size_t n)
{
    if (n == 0 || !is_name_start(p[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_name_char(p[i]))
            return false;
    return true;
}

bool prom_valid_utf8(const char *s, size_t n)
{
    if (n == 0)
        return true; /* s may be NULL then */
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t len;
        unsigned min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) < len)
            return false;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        p += len;
    }
    return true;
}

static char *skip_blanks(char *p, char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static char *scan_token(char *p, char *end)
{
    while (p < end && *p != ' ' && *p != '\t')
        p++;
    return p;
}

static char *scan_metric_name(char *p, char *end)
{
    if (p < end && (is_name_start(*p) || *p == ':'))
        for (p++; p < end && (is_name_char(*p) || *p == ':'); p++)
            ;
    return p;
}

/* Whether sample name `name` belongs to the family `fam` of type t. */
static bool has_family_suffix(struct prom_str fam, enum prom_type t, const char *name, size_t n)
{
    static const char *const counter[] = {"", "_total", "_created", NULL};
    static const char *const plain[] = {"", NULL};
    static const char *const histogram[] = {"_bucket", "_sum", "_count", "_created", NULL};
    static const char *const gaugehistogram[] = {"_bucket", "_gsum", "_gcount", NULL};
    static const char *const summary[] = {"", "_sum", "_count", "_created", NULL};
    static const char *const info[] = {"_info", NULL};
    const char *const *sfx;
    switch (t) {
    case PROM_COUNTER: sfx = counter; break;
    case PROM_HISTOGRAM: sfx = histogram; break;
    case PROM_GAUGEHISTOGRAM: sfx = gaugehistogram; break;
    case PROM_SUMMARY: sfx = summary; break;
    case PROM_INFO: sfx = info; break;
    default: sfx = plain; break;
    }
    if (n < fam.n || memcmp(name, fam.p, fam.n) != 0)
        return false;
    for (; *sfx; sfx++)
        if (strlen(*sfx) == n - fam.n && memcmp(name + fam.n, *sfx, n - fam.n) == 0)
            return true;
    return false;
}

static void meta_reset(struct parser *ps, const char *name, size_t n)
{
    ps->meta_name = (struct prom_str){name, n};
    ps->meta_help = (struct prom_str){NULL, 0};
    ps->meta_type = PROM_UNTYPED;
    ps->meta_has_type = ps->meta_has_help = ps->meta_has_samples = false;
}

static bool meta_is(const struct parser *ps, const char *name, size_t n)
{
    return ps->meta_name.n == n && memcmp(ps->meta_name.p, name, n) == 0;
}

/* HELP text: \\ and \n are escapes; any other backslash stays literal, as
 * the format asks. Unescapes in place; returns the new length. */
static size_t unescape_help(char *p, char *end)
{
    char *w = p;
    for (char *r = p; r < end; r++) {
        if (*r == '\\' && r + 1 < end && (r[1] == '\\' || r[1] == 'n')) {
            *w++ = r[1] == 'n' ? '\n' : '\\';
            r++;
        } else {
            *w++ = *r;
        }
    }
    return (size_t)(w - p);
}

static int parse_type_word(const char *p, size_t n, enum prom_type *out)
{
    static const struct {
        const char *w;
        enum prom_type t;
    } words[] = {
        {"counter", PROM_COUNTER},     {"gauge", PROM_GAUGE},     {"histogram", PROM_HISTOGRAM},
        {"summary", PROM_SUMMARY},     {"untyped", PROM_UNTYPED}, {"unknown", PROM_UNTYPED},
        {"gaugehistogram", PROM_GAUGEHISTOGRAM}, {"info", PROM_INFO}, {"stateset", PROM_STATESET},
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i].w) == n && memcmp(words[i].w, p, n) == 0) {
            *out = words[i].t;
            return 0;
        }
    return -1;
}

/* "# HELP name text", "# TYPE name type", "# UNIT name unit", "# EOF", or
 * free text. Returns 1 for EOF, 0 to go on, -1 on error. */
static int parse_comment(struct parser *ps)
{
    char *p = skip_blanks(ps->line + 1, ps->end);
    char *kw_end = scan_token(p, ps->end);
    size_t kw = (size_t)(kw_end - p);
    bool help = kw == 4 && memcmp(p, "HELP", 4) == 0;
    bool type = kw == 4 && memcmp(p, "TYPE", 4) == 0;
    bool unit = kw == 4 && memcmp(p, "UNIT", 4) == 0;
    if (kw == 3 && memcmp(p, "EOF", 3) == 0 && skip_blanks(kw_end, ps->end) == ps->end)
        return 1;
    if (!help && !type && !unit)
        return 0;
    char *name = skip_blanks(kw_end, ps->end);
    char *name_end = scan_metric_name(name, ps->end);
    if (name_end == name || (name_end < ps->end && *name_end != ' ' && *name_end != '\t'))
        return fail(ps, name, "invalid metric name in %.4s line", p);
    size_t nn = (size_t)(name_end - name);
    char *rest = name_end < ps->end ? name_end + 1 : name_end;
    if (!meta_is(ps, name, nn))
        meta_reset(ps, name, nn);
    if (help) {
        if (ps->meta_has_help)
            return fail(ps, p, "second HELP line for %.*s", (int)nn, name);
        size_t hn = unescape_help(rest, ps->end);
        if (!prom_valid_utf8(rest, hn))
            return fail(ps, rest, "HELP text is not valid UTF-8");
        ps->meta_help = (struct prom_str){rest, hn};
        ps->meta_has_help = true;
    } else if (type) {
        char *w = skip_blanks(rest, ps->end);
        char *w_end = scan_token(w, ps->end);
        if (ps->meta_has_type)
            return fail(ps, p, "second TYPE line for %.*s", (int)nn, name);
        if (ps->meta_has_samples)
            return fail(ps, p, "TYPE line for %.*s after its samples", (int)nn, name);
        if (parse_type_word(w, (size_t)(w_end - w), &ps->meta_type) < 0 || skip_blanks(w_end, ps->end) != ps->end)
            return fail(ps, w, "unknown metric type \"%.*s\"", (int)(w_end - w), w);
        ps->meta_has_type = true;
    }
    return 0;
}

/* A quoted label value starting after '"': unescapes in place, stores the
 * value and returns the position after the closing quote, or NULL. */
static char *parse_label_value(struct parser *ps, char *p, struct prom_str *out)
{
    char *w = p;
    for (char *r = p; r < ps->end; r++) {
        if (*r == '"') {
            *out = (struct prom_str){p, (size_t)(w - p)};
            if (!prom_valid_utf8(p, out->n)) {
                fail(ps, p, "label value is not valid UTF-8");
                return NULL;
            }
            return r + 1;
        }
        if (*r == '\\') {
            if (r + 1 == ps->end)
                break;
            r++;
            switch (*r) {
            case '\\': *w++ = '\\'; break;
            case '"': *w++ = '"'; break;
            case 'n': *w++ = '\n'; break;
            default:
                fail(ps, r - 1, "invalid escape sequence '\\%c' in label value", *r);
                return NULL;
            }
        } else {
            *w++ = *r;
        }
    }
    fail(ps, p - 1, "unterminated label value");
    return NULL;
}

/* "{name="value",...}" starting at '{'; returns the position after '}'. */
static char *parse_labels(struct parser *ps, char *p)
{
    struct prom_sample *s = &ps->s;
    p = skip_blanks(p + 1, ps->end);
    while (p < ps->end && *p != '}') {
        char *name = p;
        while (p < ps->end && is_name_char(*p))
            p++;
        if (!prom_valid_label_name(name, (size_t)(p - name))) {
            fail(ps, name, "invalid label name");
            return NULL;
        }
        struct prom_str ln = {name, (size_t)(p - name)};
        p = skip_blanks(p, ps->end);
        if (p == ps->end || *p != '=') {
            fail(ps, p, "expected '=' after label name");
            return NULL;
        }
        p = skip_blanks(p + 1, ps->end);
        if (p == ps->end || *p != '"') {
            fail(ps, p, "expected '\"' to start the label value");
            return NULL;
        }
        for (size_t i = 0; i < s->n_labels; i++)
            if (s->labels[i].name.n == ln.n && memcmp(s->labels[i].name.p, ln.p, ln.n) == 0) {
                fail(ps, name, "duplicate label name \"%.*s\"", (int)ln.n, ln.p);
                return NULL;
            }
        if (s->n_labels == PROM_MAX_LABELS) {
            fail(ps, name, "more than %d labels", PROM_MAX_LABELS);
            return NULL;
        }
        struct prom_label *l = &s->labels[s->n_labels++];
        l->name = ln;
        if (!(p = parse_label_value(ps, p + 1, &l->value)))
            return NULL;
        p = skip_blanks(p, ps->end);
        if (p < ps->end && *p == ',')
            p = skip_blanks(p + 1, ps->end);
        else if (p < ps->end && *p != '}') {
            fail(ps, p, "expected ',' or '}' after label value");
            return NULL;
        }
    }
    if (p == ps->end) {
        fail(ps, p, "unterminated label set");
        return NULL;
    }
    return p + 1;
}

static int parse_timestamp(struct parser *ps, char *p, char *end)
{
    struct prom_sample *s = &ps->s;
    if (ps->flags & PROM_OPENMETRICS) {
        double secs;
        if (!metrics_parse_double(p, (size_t)(end - p), &secs) || fabs(secs) > 9.2e15)
            return fail(ps, p, "invalid timestamp");
        s->ts_ms = (int64_t)llround(secs * 1000.0);
    } else if (!metrics_parse_int64(p, (size_t)(end - p), &s->ts_ms)) {
        return fail(ps, p, "invalid timestamp");
    }
    s->has_ts = true;
    return 0;
}

static int parse_sample(struct parser *ps, prom_sample_cb cb, void *arg)
{
    struct prom_sample *s = &ps->s;
    char *p = ps->line;
    char *name_end = scan_metric_name(p, ps->end);
    if (name_end == p)
        return fail(ps, p, "expected a metric name");
    size_t nn = (size_t)(name_end - p);
    s->name = (struct prom_str){p, nn};
    s->n_labels = 0;
    s->has_ts = false;
    s->ts_ms = 0;
    p = name_end;
    if (p < ps->end && *p == '{') {
        if (!(p = parse_labels(ps, p)))
            return -1;
    }
    if (p == ps->end || (*p != ' ' && *p != '\t'))
        return fail(ps, p, "expected a space before the value");
    char *v = skip_blanks(p, ps->end);
    char *v_end = scan_token(v, ps->end);
    if (!metrics_parse_prom_value(v, (size_t)(v_end - v), &s->value))
        return fail(ps, v, "invalid value \"%.*s\"", (int)(v_end - v > 32 ? 32 : v_end - v), v);
    p = skip_blanks(v_end, ps->end);
    if (p < ps->end && *p != '#') {
        char *t_end = scan_token(p, ps->end);
        if (parse_timestamp(ps, p, t_end) < 0)
            return -1;
        p = skip_blanks(t_end, ps->end);
    }
    /* Exemplars ("# {trace_id="..."} 1 1.5e9") carry trace references we
     * do not keep; anything else after the value is an error. */
    if (p < ps->end && *p != '#')
        return fail(ps, p, "unexpected text after the sample");

    if (ps->meta_name.n && has_family_suffix(ps->meta_name, ps->meta_type, s->name.p, nn)) {
        ps->meta_has_samples = true;
    } else {
        meta_reset(ps, s->name.p, nn);
        ps->meta_has_samples = true;
    }
    s->family = ps->meta_name;
    s->type = ps->meta_type;
    s->help = ps->meta_help;
    return cb(arg, s);
}

int prom_parse(char *buf, size_t n, unsigned flags, prom_sample_cb cb, void *arg, struct prom_error *err)
{
    struct parser ps = {.flags = flags, .err = err};
    char *end = buf + n;
    for (char *line = buf; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        char *line_end = nl ? nl : end;
        ps.lineno++;
        ps.line = line;
        ps.end = line_end > line && line_end[-1] == '\r' ? line_end - 1 : line_end;
        char *first = skip_blanks(line, ps.end);
        int rc = 0;
        if (first == ps.end) {
            rc = 0;
        } else if (*first == '#') {
            ps.line = first;
            rc = parse_comment(&ps);
            if (rc == 1)
                return 0;
        } else {
            ps.line = first;
            rc = parse_sample(&ps, cb, arg);
        }
        if (rc != 0) {
            if (rc == -1)
                err->col += (unsigned)(first - line);
            return rc;
        }
        line = nl ? nl + 1 : end;
    }
    return 0;
}

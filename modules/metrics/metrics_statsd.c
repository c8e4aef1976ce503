/*
 * statsd line parser. One pass over the line, no allocation: the result
 * points into the datagram. Every rejected line has one reason, so the
 * agent can count malformed input by cause.
 */
#include "metrics_statsd.h"

#include <string.h>

#include "metrics_number.h"

const char *statsd_strerror(enum statsd_error e)
{
    switch (e) {
    case STATSD_OK: return "ok";
    case STATSD_E_NAME: return "missing name or ':'";
    case STATSD_E_VALUE: return "bad value";
    case STATSD_E_TYPE: return "unknown type";
    case STATSD_E_RATE: return "sample rate outside (0, 1]";
    case STATSD_E_TAGS: return "bad tags";
    case STATSD_E_FIELD: return "unknown field";
    case STATSD_E_TOO_MANY_VALUES: return "too many values";
    }
    return "?";
}

static const char *span_find(const char *p, const char *end, char c)
{
    const char *q = memchr(p, c, (size_t)(end - p));
    return q ? q : end;
}

static enum statsd_error parse_type(const char *p, size_t n, enum statsd_type *out)
{
    if (n == 1) {
        switch (p[0]) {
        case 'c': *out = STATSD_COUNTER; return STATSD_OK;
        case 'g': *out = STATSD_GAUGE; return STATSD_OK;
        case 'h': *out = STATSD_HISTOGRAM; return STATSD_OK;
        case 'd': *out = STATSD_DISTRIBUTION; return STATSD_OK;
        case 's': *out = STATSD_SET; return STATSD_OK;
        }
    } else if (n == 2 && p[0] == 'm' && p[1] == 's') {
        *out = STATSD_TIMER;
        return STATSD_OK;
    }
    return STATSD_E_TYPE;
}

/* "#k:v,k2:v2,flag": tags without a key are an error; empty items between
 * commas are skipped. */
static enum statsd_error parse_tags(const char *p, const char *end, struct statsd_line *out)
{
    while (p < end) {
        const char *comma = span_find(p, end, ',');
        if (comma > p) {
            if (out->n_tags == STATSD_MAX_TAGS)
                return STATSD_E_TAGS;
            const char *colon = span_find(p, comma, ':');
            if (colon == p)
                return STATSD_E_TAGS;
            struct statsd_tag *t = &out->tags[out->n_tags++];
            t->key = (struct statsd_span){p, (uint32_t)(colon - p)};
            if (colon < comma)
                t->value = (struct statsd_span){colon + 1, (uint32_t)(comma - colon - 1)};
            else
                t->value = (struct statsd_span){comma, 0};
        }
        p = comma + 1;
    }
    return STATSD_OK;
}

/* The values between the name's ':' and the first '|'. */
static enum statsd_error parse_values(const char *p, const char *end, struct statsd_line *out)
{
    if (out->type == STATSD_SET) {
        if (p == end)
            return STATSD_E_VALUE;
        out->member = (struct statsd_span){p, (uint32_t)(end - p)};
        out->n_values = 1;
        return STATSD_OK;
    }
    out->delta = out->type == STATSD_GAUGE && p < end && (*p == '+' || *p == '-');
    while (1) {
        const char *colon = span_find(p, end, ':');
        double v;
        if (out->n_values == STATSD_MAX_VALUES)
            return STATSD_E_TOO_MANY_VALUES;
        if (!metrics_parse_double(p, (size_t)(colon - p), &v))
            return STATSD_E_VALUE;
        if (out->type == STATSD_COUNTER && v < 0)
            return STATSD_E_VALUE;
        /* A gauge line is either all deltas or one absolute value. */
        if (out->type == STATSD_GAUGE && out->n_values > 0 && !(out->delta && (*p == '+' || *p == '-')))
            return STATSD_E_VALUE;
        out->values[out->n_values++] = v;
        if (colon == end)
            return STATSD_OK;
        p = colon + 1;
    }
}

enum statsd_error statsd_parse_line(const char *p, size_t n, struct statsd_line *out)
{
    const char *end = p + n;
    if (n > 0 && end[-1] == '\r')
        end--;
    out->n_values = 0;
    out->n_tags = 0;
    out->rate = 1.0;
    out->delta = false;
    out->member = (struct statsd_span){NULL, 0};

    const char *colon = span_find(p, end, ':');
    const char *bar = span_find(p, end, '|');
    if (colon == p || colon >= bar)
        return STATSD_E_NAME;
    out->name = (struct statsd_span){p, (uint32_t)(colon - p)};
    if (bar == end)
        return STATSD_E_TYPE;

    const char *type_end = span_find(bar + 1, end, '|');
    enum statsd_error e = parse_type(bar + 1, (size_t)(type_end - bar - 1), &out->type);
    if (e)
        return e;
    if ((e = parse_values(colon + 1, bar, out)))
        return e;

    for (const char *f = type_end; f < end;) {
        const char *fend = span_find(f + 1, end, '|');
        const char *v = f + 2;
        size_t vn = (size_t)(fend - f - 1);
        if (vn == 0)
            return STATSD_E_FIELD;
        switch (f[1]) {
        case '@':
            if (!metrics_parse_double(v, vn - 1, &out->rate) || !(out->rate > 0 && out->rate <= 1))
                return STATSD_E_RATE;
            break;
        case '#':
            if ((e = parse_tags(v, fend, out)))
                return e;
            break;
        case 'c':
            /* DogStatsD container id: "c:<id>". */
            if (vn < 2 || v[0] != ':')
                return STATSD_E_FIELD;
            break;
        case 'T':
            /* DogStatsD client timestamp: digits only. */
            for (const char *q = v; q < fend; q++)
                if (*q < '0' || *q > '9')
                    return STATSD_E_FIELD;
            break;
        default:
            return STATSD_E_FIELD;
        }
        f = fend;
    }
    return STATSD_OK;
}

void statsd_parse_datagram(const char *p, size_t n, struct statsd_line *scratch, statsd_line_cb cb, void *arg,
                           struct statsd_counts *counts)
{
    const char *end = p + n;
    while (p < end) {
        const char *nl = span_find(p, end, '\n');
        size_t len = (size_t)(nl - p);
        if (len > 0 && !(len == 1 && *p == '\r')) {
            counts->lines++;
            if (statsd_parse_line(p, len, scratch) == STATSD_OK)
                cb(arg, scratch);
            else
                counts->malformed++;
        }
        p = nl + 1;
    }
}

/*
 * logs_docker: Docker json-file lines, decoded member by member without a
 * DOM: only "log", "stream" and "time" are read, others are validated and
 * skipped.
 */
#include "logs_docker.h"

#include <string.h>

#include "logs_json.h"
#include "logs_time.h"

static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* Whether the raw JSON string [k, kend) (quotes included) is "name". */
static bool key_is(const char *k, const char *kend, const char *name)
{
    size_t n = strlen(name);
    return (size_t)(kend - k) == n + 2 && memcmp(k + 1, name, n) == 0;
}

int logs_docker_split(const char *p, size_t n, struct logs_buf *scratch, struct logs_docker_line *out)
{
    const char *end = p + n;
    bool have_log = false;
    out->time_ns = 0;
    out->stream = LOGS_STREAM_NONE;
    p = ws(p, end);
    if (p >= end || *p != '{')
        return -1;
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        return -1;
    for (;;) {
        const char *k = p;
        if (p >= end || *p != '"')
            return -1;
        const char *kend = logs_json_skip_value(p, end);
        if (!kend)
            return -1;
        p = ws(kend, end);
        if (p >= end || *p != ':')
            return -1;
        const char *v = ws(p + 1, end);
        if (key_is(k, kend, "log")) {
            p = logs_json_decode_string(v, end, scratch);
            have_log = p != NULL;
        } else {
            p = logs_json_skip_value(v, end);
            if (p && key_is(k, kend, "stream")) {
                if (p - v == 8 && memcmp(v, "\"stdout\"", 8) == 0)
                    out->stream = LOGS_STREAM_STDOUT;
                else if (p - v == 8 && memcmp(v, "\"stderr\"", 8) == 0)
                    out->stream = LOGS_STREAM_STDERR;
            } else if (p && key_is(k, kend, "time")) {
                if (*v != '"' || logs_time_parse(v + 1, (size_t)(p - v - 2), &out->time_ns))
                    return -1;
            }
        }
        if (!p)
            return -1;
        p = ws(p, end);
        if (p >= end)
            return -1;
        if (*p == '}')
            break;
        if (*p != ',')
            return -1;
        p = ws(p + 1, end);
    }
    if (!have_log || ws(p + 1, end) != end)
        return -1;
    out->msg = scratch->p;
    out->len = scratch->n;
    out->partial = !(out->len > 0 && out->msg[out->len - 1] == '\n');
    if (!out->partial)
        out->len--;
    return 0;
}

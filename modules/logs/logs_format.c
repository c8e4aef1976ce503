/*
 * logs_format: reframing a batch of JSON lines for outputs that need
 * another shape: syslog (RFC 5424 in RFC 6587 octet counting),
 * Elasticsearch _bulk, Loki push. The records were encoded by this module,
 * so each line starts with {"time":"<RFC 3339 with 9 digits>" unless a Lua
 * filter rebuilt it without a time.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "logs_json.h"
#include "logs_output.h"
#include "logs_time.h"

#define TIME_PREFIX "{\"time\":\""
#define TIME_PREFIX_LEN 9

#define LIT(b, s) logs_buf_append((b), (s), sizeof(s) - 1)

/* Calls fn for every line (without its newline) of the batch. */
#define FOR_EACH_LINE(bufs, n, line, len, body)                                               \
    for (size_t i_ = 0; i_ < (n); i_++) {                                                     \
        const char *p_ = (bufs)[i_].base, *e_ = p_ + (bufs)[i_].len;                          \
        while (p_ < e_) {                                                                     \
            const char *nl_ = memchr(p_, '\n', (size_t)(e_ - p_));                            \
            if (!nl_)                                                                         \
                nl_ = e_;                                                                     \
            const char *line = p_;                                                            \
            size_t len = (size_t)(nl_ - p_);                                                  \
            body;                                                                             \
            p_ = nl_ + 1;                                                                     \
        }                                                                                     \
    }

/* The record's time as written by logs_encode, or NULL. */
static const char *line_time(const char *line, size_t len)
{
    if (len >= TIME_PREFIX_LEN + LOGS_TIME_LEN + 1 && memcmp(line, TIME_PREFIX, TIME_PREFIX_LEN) == 0 &&
        line[TIME_PREFIX_LEN + LOGS_TIME_LEN] == '"')
        return line + TIME_PREFIX_LEN;
    return NULL;
}

int logs_format_syslog(struct logs_buf *out, const uv_buf_t *bufs, size_t n, const char *app, const char *host)
{
    char head[600];
    int rc = 0;
    FOR_EACH_LINE(bufs, n, line, len, {
        const char *t = line_time(line, len);
        /* user.info, or user.err for a container's stderr. */
        bool err = t && len > 58 && memcmp(line + 40, ",\"stream\":\"stderr\"", 18) == 0;
        /* RFC 5424 allows at most 6 fraction digits. */
        int hl = t ? snprintf(head, sizeof head, "<%d>1 %.26sZ %s %s - - - ", err ? 11 : 14, t, host, app)
                   : snprintf(head, sizeof head, "<%d>1 - %s %s - - - ", err ? 11 : 14, host, app);
        char count[24];
        int cl = snprintf(count, sizeof count, "%zu ", (size_t)hl + len);
        if (logs_buf_append(out, count, (size_t)cl) || logs_buf_append(out, head, (size_t)hl) ||
            logs_buf_append(out, line, len))
            rc = -1;
    })
    return rc;
}

int logs_format_es_bulk(struct logs_buf *out, const uv_buf_t *bufs, size_t n)
{
    int rc = 0;
    FOR_EACH_LINE(bufs, n, line, len, {
        if (LIT(out, "{\"index\":{}}\n") || logs_buf_append(out, line, len) || LIT(out, "\n"))
            rc = -1;
    })
    return rc;
}

int logs_format_loki(struct logs_buf *out, const uv_buf_t *bufs, size_t n, const char *labels)
{
    int rc = LIT(out, "{\"streams\":[{\"stream\":") || logs_buf_append(out, labels, strlen(labels)) ||
             LIT(out, ",\"values\":[");
    bool first = true;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    FOR_EACH_LINE(bufs, n, line, len, {
        const char *t = line_time(line, len);
        uint64_t ns = now_ns;
        if (t && logs_time_parse(t, LOGS_TIME_LEN, &ns))
            ns = now_ns;
        char ts[32];
        int tl = snprintf(ts, sizeof ts, "%s[\"%llu\",\"", first ? "" : ",", (unsigned long long)ns);
        first = false;
        if (logs_buf_append(out, ts, (size_t)tl) || logs_json_escape(out, line, len) || LIT(out, "\"]"))
            rc = -1;
    })
    if (LIT(out, "]}]}"))
        rc = -1;
    return rc;
}

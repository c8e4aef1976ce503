/*
 * logs_encode: JSON-lines encoding of records.
 */
#include "logs_encode.h"

#include "logs_json.h"
#include "logs_time.h"

#define LIT(b, s) logs_buf_append((b), (s), sizeof(s) - 1)

int logs_meta_add(struct logs_buf *meta, const char *key, const char *value)
{
    if (LIT(meta, ",\"") || logs_json_escape(meta, key, strlen(key)) || LIT(meta, "\":\"") ||
        logs_json_escape(meta, value, strlen(value)) || LIT(meta, "\""))
        return -1;
    return 0;
}

static const char *const stream_names[] = {"", "stdout", "stderr"};

int logs_encode_json(struct logs_buf *out, const struct logs_rec *rec, const char *meta, size_t meta_len)
{
    /* Reserve the fixed parts at once; the message reserves its own. */
    if (logs_buf_reserve(out, 64 + LOGS_TIME_LEN + meta_len))
        return -1;
    char *o = out->p + out->n;
    memcpy(o, "{\"time\":\"", 9);
    o += 9;
    o += logs_time_format(rec->time_ns, o);
    *o++ = '"';
    if (rec->stream == LOGS_STREAM_STDOUT || rec->stream == LOGS_STREAM_STDERR) {
        memcpy(o, ",\"stream\":\"", 11);
        memcpy(o + 11, stream_names[rec->stream], 6);
        o[17] = '"';
        o += 18;
    }
    memcpy(o, meta, meta_len);
    o += meta_len;
    out->n = (size_t)(o - out->p);
    if (rec->flags & LOGS_REC_SPLIT && LIT(out, ",\"split\":true"))
        return -1;
    if (rec->flags & LOGS_REC_MALFORMED && LIT(out, ",\"malformed\":true"))
        return -1;
    if (rec->flags & LOGS_REC_JSON) {
        /* Splice the object's members in: drop its braces (validated by the
         * parser, so the first and last non-space bytes are '{' and '}'). */
        const char *s = rec->msg, *e = rec->msg + rec->len;
        while (*s != '{')
            s++;
        while (e[-1] != '}')
            e--;
        s++, e--;
        const char *t = s;
        while (t < e && (*t == ' ' || *t == '\t' || *t == '\r' || *t == '\n'))
            t++;
        if (t < e && (LIT(out, ",") || logs_buf_append(out, s, (size_t)(e - s))))
            return -1;
        return LIT(out, "}\n");
    }
    if (LIT(out, ",\"message\":\"") || logs_json_escape(out, rec->msg, rec->len) || LIT(out, "\"}\n"))
        return -1;
    return 0;
}

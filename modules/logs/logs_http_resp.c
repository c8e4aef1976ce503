/*
 * logs_http_resp: the http output's response reader (see the header).
 * Lines are collected in a fixed buffer; bodies are only counted.
 */
#include "logs_http_resp.h"

#include <string.h>
#include <strings.h>

#define LENGTH_MAX ((uint64_t)1 << 62)

static void resp_reset_head(struct logs_http_resp *r)
{
    r->state = LOGS_HTTP_RESP_HEAD;
    r->status = 0;
    r->minor = 0;
    r->has_length = r->chunked = r->conn_close = r->conn_keep_alive = false;
    r->length = 0;
    r->line_n = 0;
}

void logs_http_resp_init(struct logs_http_resp *r)
{
    resp_reset_head(r);
    r->keep_alive = false;
    r->remaining = 0;
    r->head_bytes = 0;
    r->error = NULL;
}

static int resp_fail(struct logs_http_resp *r, const char *why)
{
    r->error = why;
    return -1;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* "HTTP/1.<d> <3 digits>[ <reason>]" */
static int resp_status_line(struct logs_http_resp *r, const char *l, size_t n)
{
    if (n < 12 || memcmp(l, "HTTP/1.", 7) || l[7] < '0' || l[7] > '9' || l[8] != ' ')
        return resp_fail(r, "malformed status line");
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (l[i] < '0' || l[i] > '9')
            return resp_fail(r, "malformed status code");
        status = status * 10 + (l[i] - '0');
    }
    if (n > 12 && l[12] != ' ')
        return resp_fail(r, "malformed status line");
    if (status < 100)
        return resp_fail(r, "malformed status code");
    r->minor = l[7] - '0';
    r->status = status;
    return 0;
}

/* Whether the comma-separated list v (n bytes) holds token tok. */
static bool list_has(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && is_ows(v[e - 1]))
            e--;
        if (e - s == tl && !strncasecmp(v + s, tok, tl))
            return true;
    }
    return false;
}

/* The last token of the list: the transfer coding applied last. */
static bool list_ends_with_chunked(const char *v, size_t n)
{
    size_t e = n;
    while (e > 0 && (is_ows(v[e - 1]) || v[e - 1] == ','))
        e--;
    size_t s = e;
    while (s > 0 && v[s - 1] != ',' && !is_ows(v[s - 1]))
        s--;
    return e - s == 7 && !strncasecmp(v + s, "chunked", 7);
}

static int resp_header(struct logs_http_resp *r, const char *l, size_t n)
{
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l)
        return resp_fail(r, "malformed header line");
    size_t nl = (size_t)(colon - l);
    for (size_t i = 0; i < nl; i++)
        if (is_ows(l[i]) || (unsigned char)l[i] < 0x21 || l[i] == 0x7f)
            return resp_fail(r, "malformed header name");
    const char *v = colon + 1, *end = l + n;
    while (v < end && is_ows(*v))
        v++;
    while (end > v && is_ows(end[-1]))
        end--;
    size_t vn = (size_t)(end - v);
    if (nl == 14 && !strncasecmp(l, "content-length", 14)) {
        uint64_t len = 0;
        if (!vn)
            return resp_fail(r, "malformed Content-Length");
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9' || len > LENGTH_MAX / 10)
                return resp_fail(r, "malformed Content-Length");
            len = len * 10 + (uint64_t)(v[i] - '0');
        }
        if (r->has_length && r->length != len)
            return resp_fail(r, "conflicting Content-Length headers");
        r->has_length = true;
        r->length = len;
    } else if (nl == 17 && !strncasecmp(l, "transfer-encoding", 17)) {
        r->chunked = list_ends_with_chunked(v, vn);
        if (!r->chunked)
            r->has_length = false; /* another coding: the body ends at close */
    } else if (nl == 10 && !strncasecmp(l, "connection", 10)) {
        r->conn_close |= list_has(v, vn, "close");
        r->conn_keep_alive |= list_has(v, vn, "keep-alive");
    }
    return 0;
}

/* The empty line after the headers: decides how the body is delimited. */
static void resp_head_done(struct logs_http_resp *r)
{
    if (r->status < 200) {
        resp_reset_head(r); /* an interim response: the real one follows */
        return;
    }
    r->keep_alive = !r->conn_close && (r->minor >= 1 || r->conn_keep_alive);
    if (r->status == 204 || r->status == 304) {
        r->state = LOGS_HTTP_RESP_DONE;
    } else if (r->chunked) {
        r->state = LOGS_HTTP_RESP_CHUNK_SIZE;
    } else if (r->has_length) {
        r->remaining = r->length;
        r->state = r->length ? LOGS_HTTP_RESP_BODY_LENGTH : LOGS_HTTP_RESP_DONE;
    } else {
        r->keep_alive = false; /* the close is what ends the body */
        r->state = LOGS_HTTP_RESP_BODY_TO_EOF;
    }
}

static int resp_chunk_size(struct logs_http_resp *r, const char *l, size_t n)
{
    uint64_t size = 0;
    size_t i = 0;
    for (; i < n; i++) {
        char c = l[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            break;
        if (size > LENGTH_MAX / 16)
            return resp_fail(r, "chunk size too large");
        size = size * 16 + (uint64_t)d;
    }
    if (i == 0 || (i < n && l[i] != ';' && !is_ows(l[i])))
        return resp_fail(r, "malformed chunk size");
    r->remaining = size;
    r->state = size ? LOGS_HTTP_RESP_CHUNK_DATA : LOGS_HTTP_RESP_TRAILER;
    return 0;
}

/* One complete line (without its CR LF) in the state that expects it. */
static int resp_line(struct logs_http_resp *r, const char *l, size_t n)
{
    switch (r->state) {
    case LOGS_HTTP_RESP_HEAD:
        if (!r->status)
            return resp_status_line(r, l, n);
        if (!n) {
            resp_head_done(r);
            return 0;
        }
        return resp_header(r, l, n);
    case LOGS_HTTP_RESP_CHUNK_SIZE:
        return resp_chunk_size(r, l, n);
    case LOGS_HTTP_RESP_CHUNK_CRLF:
        if (n)
            return resp_fail(r, "chunk data longer than its size");
        r->state = LOGS_HTTP_RESP_CHUNK_SIZE;
        return 0;
    case LOGS_HTTP_RESP_TRAILER:
        if (!n)
            r->state = LOGS_HTTP_RESP_DONE;
        return 0;
    default:
        return resp_fail(r, "internal: no line expected");
    }
}

/* Collects bytes up to a LF into r->line (*took: how many) and handles the
 * line once it is complete. Returns 1 for a complete line, 0 for a partial
 * one, -1 on error. */
static int resp_take_line(struct logs_http_resp *r, const char *p, size_t n, size_t *took)
{
    const char *lf = memchr(p, '\n', n);
    size_t len = lf ? (size_t)(lf - p) : n;
    if (r->line_n + len >= sizeof r->line)
        return resp_fail(r, "line too long");
    if (r->state == LOGS_HTTP_RESP_HEAD) {
        r->head_bytes += len + (lf ? 1 : 0);
        if (r->head_bytes > LOGS_HTTP_RESP_MAX_HEAD)
            return resp_fail(r, "response head too large");
    }
    memcpy(r->line + r->line_n, p, len);
    r->line_n += len;
    *took = len + (lf ? 1 : 0);
    if (!lf)
        return 0;
    size_t ln = r->line_n;
    if (ln && r->line[ln - 1] == '\r')
        ln--;
    r->line_n = 0;
    return resp_line(r, r->line, ln) ? -1 : 1;
}

int logs_http_resp_feed(struct logs_http_resp *r, const char *p, size_t n, size_t *used)
{
    size_t i = 0;
    while (r->state != LOGS_HTTP_RESP_DONE && i < n) {
        size_t take;
        switch (r->state) {
        case LOGS_HTTP_RESP_BODY_LENGTH:
        case LOGS_HTTP_RESP_CHUNK_DATA:
            take = n - i < r->remaining ? n - i : (size_t)r->remaining;
            r->remaining -= take;
            if (!r->remaining)
                r->state = r->state == LOGS_HTTP_RESP_CHUNK_DATA ? LOGS_HTTP_RESP_CHUNK_CRLF : LOGS_HTTP_RESP_DONE;
            break;
        case LOGS_HTTP_RESP_BODY_TO_EOF:
            take = n - i;
            break;
        default:
            if (resp_take_line(r, p + i, n - i, &take) < 0) {
                *used = i;
                return -1;
            }
            break;
        }
        i += take;
    }
    *used = i;
    return r->state == LOGS_HTTP_RESP_DONE ? 1 : 0;
}

int logs_http_resp_eof(struct logs_http_resp *r)
{
    if (r->state == LOGS_HTTP_RESP_BODY_TO_EOF) {
        r->state = LOGS_HTTP_RESP_DONE;
        return 1;
    }
    if (r->state == LOGS_HTTP_RESP_DONE)
        return 1;
    return resp_fail(r, r->status ? "connection closed inside the response" : "connection closed before a response");
}

/*
 * admin_http: the admin endpoint's HTTP/1.1 request parser and the otr_buf
 * helpers its handlers write into.
 *
 * The parser is deliberately strict (RFC 9112): lines end in CRLF only, a
 * bare CR or LF anywhere is an error, obs-fold is refused, field names are
 * tokens followed directly by the colon, Content-Length is digits only and
 * must not conflict, HTTP/1.1 needs exactly one Host. Only origin-form
 * targets ("/path?query") are accepted. A Transfer-Encoding header gets
 * OTR_ADMIN_PARSE_UNSUPPORTED (the server answers 501): the admin endpoint
 * never needs chunked bodies, and refusing them removes a whole class of
 * request-smuggling ambiguities.
 *
 * It is stateless: each call parses from the start of the buffer, and the
 * server calls it again when more bytes arrived. The head is bounded, so a
 * call costs at most max_head bytes of scanning.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"

/* ------------------------------------------------------------------------ */
/* otr_buf                                                                   */

static void buf_reserve(struct otr_buf *b, size_t more)
{
    if (b->cap - b->len > more)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        fprintf(stderr, "%s:%d: out of memory (%zu bytes)\n", __FILE__, __LINE__, cap);
        abort();
    }
    b->p = p;
    b->cap = cap;
}

void otr_buf_append(struct otr_buf *b, const char *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void otr_buf_printf(struct otr_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void otr_buf_emit(void *buf, const char *p, size_t n)
{
    otr_buf_append(buf, p, n);
}

void otr_buf_fini(struct otr_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* Request parser                                                            */

/* tchar from RFC 9110 §5.6.2. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar (VCHAR / obs-text), SP and HTAB. */
static bool is_field_char(unsigned char c)
{
    return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

/* Characters allowed in an origin-form target: visible ASCII except '#'
 * (a fragment never goes on the wire). */
static bool is_target_char(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '#';
}

struct line {
    const char *p;
    size_t n; /* without the CRLF */
};

/* Finds the next line starting at *pos. Returns 1 with the line, 0 when
 * it is not complete yet, -1 on a bare CR or LF. */
static int next_line(const char *buf, size_t len, size_t *pos, struct line *l)
{
    size_t i = *pos;
    for (; i < len; i++) {
        if (buf[i] == '\n')
            return -1; /* LF without CR */
        if (buf[i] == '\r') {
            if (i + 1 == len)
                return 0;
            if (buf[i + 1] != '\n')
                return -1; /* CR not followed by LF */
            l->p = buf + *pos;
            l->n = i - *pos;
            *pos = i + 2;
            return 1;
        }
    }
    return 0;
}

/* Whether s[0..n) equals the lower-case word w, ignoring case. */
static bool word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

struct head_state {
    int minor; /* HTTP/1.<minor> */
    bool has_length, has_host, has_te;
};

static enum otr_admin_parse parse_request_line(struct line l, struct otr_admin_request *req, struct head_state *st)
{
    const char *p = l.p, *end = l.p + l.n;
    const char *m = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    size_t mlen = (size_t)(p - m);
    if (mlen == 0 || mlen >= sizeof req->method || p == end || *p != ' ')
        return OTR_ADMIN_PARSE_BAD;
    memcpy(req->method, m, mlen);
    req->method[mlen] = '\0';
    const char *t = ++p;
    while (p < end && is_target_char((unsigned char)*p))
        p++;
    size_t tlen = (size_t)(p - t);
    if (tlen == 0 || t[0] != '/' || p == end || *p != ' ')
        return OTR_ADMIN_PARSE_BAD;
    const char *q = memchr(t, '?', tlen);
    size_t plen = q ? (size_t)(q - t) : tlen;
    if (plen >= sizeof req->path)
        return OTR_ADMIN_PARSE_BAD;
    memcpy(req->path, t, plen);
    req->path[plen] = '\0';
    p++;
    if (end - p != 8 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9')
        return OTR_ADMIN_PARSE_BAD;
    st->minor = p[7] - '0';
    req->keep_alive = st->minor >= 1;
    return OTR_ADMIN_PARSE_DONE;
}

/* Applies the tokens of a Connection header value. */
static void parse_connection(const char *v, size_t n, struct otr_admin_request *req)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ',' || v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (word_is(v + s, i - s, "close"))
            req->keep_alive = false;
        else if (word_is(v + s, i - s, "keep-alive"))
            req->keep_alive = true;
    }
}

/* Content-Length: 1*DIGIT, no list, no sign, no overflow. */
static bool parse_length(const char *v, size_t n, size_t *out)
{
    if (n == 0 || n > 18)
        return false;
    size_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (size_t)(v[i] - '0');
    }
    *out = x;
    return true;
}


static enum otr_admin_parse parse_field(struct line l, struct otr_admin_request *req, struct head_state *st)
{
    if (l.n && (l.p[0] == ' ' || l.p[0] == '\t'))
        return OTR_ADMIN_PARSE_BAD; /* obs-fold */
    const char *p = l.p, *end = l.p + l.n;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    size_t nlen = (size_t)(p - l.p);
    if (nlen == 0 || p == end || *p != ':')
        return OTR_ADMIN_PARSE_BAD; /* no name, whitespace before ':', or no ':' */
    p++;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const char *v = p;
    for (; p < end; p++)
        if (!is_field_char((unsigned char)*p))
            return OTR_ADMIN_PARSE_BAD;
    const char *vend = end;
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    size_t vlen = (size_t)(vend - v);
    const char *name = l.p;

    if (word_is(name, nlen, "content-length")) {
        size_t n;
        if (!parse_length(v, vlen, &n))
            return OTR_ADMIN_PARSE_BAD;
        if (st->has_length && n != req->content_length)
            return OTR_ADMIN_PARSE_BAD;
        st->has_length = true;
        req->content_length = n;
    } else if (word_is(name, nlen, "transfer-encoding")) {
        st->has_te = true;
    } else if (word_is(name, nlen, "host")) {
        if (st->has_host)
            return OTR_ADMIN_PARSE_BAD;
        st->has_host = true;
    } else if (word_is(name, nlen, "connection")) {
        parse_connection(v, vlen, req);
    } else if (word_is(name, nlen, "accept")) {
        /* Several Accept fields form one list; keep what fits. */
        size_t have = strlen(req->accept);
        size_t room = sizeof req->accept - 1 - have;
        if (have && room >= 2) {
            memcpy(req->accept + have, ", ", 2);
            have += 2;
            room -= 2;
        }
        size_t n = vlen < room ? vlen : room;
        memcpy(req->accept + have, v, n);
        req->accept[have + n] = '\0';
    }
    return OTR_ADMIN_PARSE_MORE;
}

enum otr_admin_parse otr_admin_parse(const char *buf, size_t len, size_t max_head, size_t max_body,
                                     struct otr_admin_request *req)
{
    memset(req, 0, sizeof *req);
    struct head_state st = {0};
    size_t pos = 0;
    struct line l;
    /* RFC 9112 §2.2: ignore empty lines before the request line (some
     * clients send a CRLF after a body). They count against the head. */
    for (;;) {
        int r = next_line(buf, len, &pos, &l);
        if (r < 0)
            return pos >= max_head ? OTR_ADMIN_PARSE_TOO_LARGE : OTR_ADMIN_PARSE_BAD;
        if (r == 0)
            return len >= max_head ? OTR_ADMIN_PARSE_TOO_LARGE : OTR_ADMIN_PARSE_MORE;
        if (pos > max_head)
            return OTR_ADMIN_PARSE_TOO_LARGE;
        if (l.n)
            break;
    }
    enum otr_admin_parse rc = parse_request_line(l, req, &st);
    if (rc != OTR_ADMIN_PARSE_DONE)
        return rc;
    for (;;) {
        int r = next_line(buf, len, &pos, &l);
        if (r < 0)
            return OTR_ADMIN_PARSE_BAD;
        if (r == 0)
            return len >= max_head ? OTR_ADMIN_PARSE_TOO_LARGE : OTR_ADMIN_PARSE_MORE;
        if (pos > max_head)
            return OTR_ADMIN_PARSE_TOO_LARGE;
        if (l.n == 0)
            break;
        rc = parse_field(l, req, &st);
        if (rc != OTR_ADMIN_PARSE_MORE)
            return rc;
    }
    if (st.has_te)
        return OTR_ADMIN_PARSE_UNSUPPORTED;
    if (!st.has_host && st.minor >= 1)
        return OTR_ADMIN_PARSE_BAD; /* HTTP/1.1 requires Host (RFC 9112 §3.2) */
    if (req->content_length > max_body)
        return OTR_ADMIN_PARSE_TOO_LARGE;
    req->consumed = pos + req->content_length;
    if (len < req->consumed)
        return OTR_ADMIN_PARSE_MORE;
    return OTR_ADMIN_PARSE_DONE;
}

/*
 * proxy_h1_parse: strict incremental HTTP/1.1 head parser and chunked
 * decoder. See proxy_h1_parse.h for the contract and the policy choices.
 *
 * The head parser works line by line: it searches for LF with memchr from
 * where the previous call stopped, and validates a line once it is whole.
 * Each byte is thus searched once and validated once, whatever the split.
 */
#include "proxy_h1_parse.h"

#include <string.h>

const struct proxy_h1_limits proxy_h1_limits_default = {
    .max_start_line = 8192,
    .max_head = 32768,
    .max_fields = 100,
    .max_chunk_ext = 256,
    .max_trailers = 8192,
};

/* Character classes, one bit each, for table lookups in the hot loops. */
enum {
    C_TCHAR = 1u << 0,  /* token character (RFC 9110 5.6.2) */
    C_VALUE = 1u << 1,  /* field-vchar or SP/HTAB: allowed inside a value */
    C_TARGET = 1u << 2, /* allowed in a request target: VCHAR except '#' */
    C_HOST = 1u << 3,   /* reg-name: unreserved, sub-delims, '%' */
    C_HEX = 1u << 4,
    C_WS = 1u << 5, /* SP or HTAB */
};

static uint8_t cclass[256];

static void cclass_init_once(void)
{
    static const char tchar_punct[] = "!#$%&'*+-.^_`|~";
    static const char host_punct[] = "-._~!$&'()*+,;=%";
    if (cclass['a'])
        return;
    for (int c = 0; c < 256; c++) {
        uint8_t k = 0;
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (alnum || (c && strchr(tchar_punct, c)))
            k |= C_TCHAR;
        if ((c >= 0x21 && c <= 0x7e) || c >= 0x80 || c == ' ' || c == '\t')
            k |= C_VALUE;
        if (c >= 0x21 && c <= 0x7e && c != '#')
            k |= C_TARGET;
        if (alnum || (c && strchr(host_punct, c)))
            k |= C_HOST;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            k |= C_HEX;
        if (c == ' ' || c == '\t')
            k |= C_WS;
        cclass[c] = k;
    }
}

/* The table is filled on first use; the constructor makes that happen
 * before any worker thread can race on it. */
__attribute__((constructor)) static void cclass_ctor(void)
{
    cclass_init_once();
}

#define IS(c, k) (cclass[(uint8_t)(c)] & (k))

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static bool mem_eq_lower(const char *s, size_t n, const char *lower_name, size_t ln)
{
    if (n != ln)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != lower_name[i])
            return false;
    return true;
}

static inline uint64_t load64(const char *s)
{
    uint64_t x;
    memcpy(&x, s, 8);
    return x;
}

static inline uint32_t load32(const char *s)
{
    uint32_t x;
    memcpy(&x, s, 4);
    return x;
}

/*
 * mem_eq_lower for the names the parser looks for in tokens and field
 * values, a word at a time (overlapping loads cover the tail). lc holds
 * only lower-case letters, digits and '-', which all have bit 0x20 set, so
 * setting that bit in s folds its case; it also maps control characters
 * 0x0d and 0x10..0x19 onto '-' and digits, but tokens and validated field
 * values never hold those.
 */
static bool token_eq_lower(const char *s, size_t n, const char *lc, size_t ln)
{
    if (n != ln)
        return false;
    if (n >= 8) {
        const uint64_t fold = 0x2020202020202020ull;
        for (size_t i = 0; i + 8 < n; i += 8)
            if ((load64(s + i) | fold) != load64(lc + i))
                return false;
        return (load64(s + n - 8) | fold) == load64(lc + n - 8);
    }
    if (n >= 4) {
        const uint32_t fold = 0x20202020u;
        return (load32(s) | fold) == load32(lc) && (load32(s + n - 4) | fold) == load32(lc + n - 4);
    }
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != lc[i])
            return false;
    return true;
}

bool proxy_h1_span_eq_lower(const char *buf, struct proxy_h1_span s, const char *lower_name)
{
    return mem_eq_lower(buf + s.off, s.len, lower_name, strlen(lower_name));
}

enum { S_START = PROXY_H1_PS_START, S_FIELDS = PROXY_H1_PS_FIELDS, S_DONE = PROXY_H1_PS_DONE, S_ERROR = PROXY_H1_PS_ERROR };

void proxy_h1_parser_init(struct proxy_h1_parser *p, enum proxy_h1_kind kind, const struct proxy_h1_limits *limits,
                          enum proxy_h1_method req_method)
{
    /* Only the header of the head is cleared: the field table is written
     * before it is read, and clearing 2 KiB per message shows in profiles. */
    memset(p, 0, offsetof(struct proxy_h1_parser, head) + offsetof(struct proxy_h1_head, fields));
    p->limits = limits ? *limits : proxy_h1_limits_default;
    if (p->limits.max_fields > PROXY_H1_FIELDS_CAP)
        p->limits.max_fields = PROXY_H1_FIELDS_CAP;
    p->kind = (uint8_t)kind;
    p->req_method = (uint8_t)req_method;
}

/* Records an error at offset off. A CR where another character was
 * expected is reported as a bare CR, whatever the position. */
static int fail(struct proxy_h1_parser *p, const char *buf, size_t off, int err)
{
    if (buf && buf[off] == '\r')
        err = PROXY_H1_E_BARE_CR;
    p->state = S_ERROR;
    p->err = (uint32_t)-err;
    p->err_off = (uint32_t)off;
    return err;
}

/* --- start lines ------------------------------------------------------ */

static uint8_t method_id(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (!memcmp(m, "GET", 3))
            return PROXY_H1_M_GET;
        if (!memcmp(m, "PUT", 3))
            return PROXY_H1_M_PUT;
        break;
    case 4:
        if (!memcmp(m, "POST", 4))
            return PROXY_H1_M_POST;
        if (!memcmp(m, "HEAD", 4))
            return PROXY_H1_M_HEAD;
        break;
    case 5:
        if (!memcmp(m, "PATCH", 5))
            return PROXY_H1_M_PATCH;
        if (!memcmp(m, "TRACE", 5))
            return PROXY_H1_M_TRACE;
        break;
    case 6:
        if (!memcmp(m, "DELETE", 6))
            return PROXY_H1_M_DELETE;
        break;
    case 7:
        if (!memcmp(m, "OPTIONS", 7))
            return PROXY_H1_M_OPTIONS;
        if (!memcmp(m, "CONNECT", 7))
            return PROXY_H1_M_CONNECT;
        break;
    }
    return PROXY_H1_M_OTHER;
}

/* Checks "HTTP/d.d" at buf[off..off+8) and sets version_minor. Returns 0
 * or an error. */
static int parse_version(struct proxy_h1_parser *p, const char *buf, size_t off, size_t end)
{
    const char *v = buf + off;
    if (end - off < 8 || memcmp(v, "HTTP/", 5) != 0 || !(v[5] >= '0' && v[5] <= '9') || v[6] != '.' ||
        !(v[7] >= '0' && v[7] <= '9')) {
        size_t bad = off;
        while (bad < end && bad < off + 8 && (bad - off >= 5 || v[bad - off] == "HTTP/"[bad - off]))
            bad++;
        return fail(p, buf, bad < end ? bad : off, PROXY_H1_E_VERSION);
    }
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return fail(p, NULL, off, PROXY_H1_E_VERSION_UNSUPPORTED);
    p->head.version_minor = (uint8_t)(v[7] - '0');
    return 0;
}

/* Validates an authority (uri-host [":" port]) in buf[off..end): a
 * reg-name or IPv4 address, or a bracketed IP literal, then an optional
 * port of digits. userinfo ("user@host") is refused (RFC 9110 4.2.4). */
static bool authority_valid(const char *buf, size_t off, size_t end)
{
    size_t i = off;
    if (i < end && buf[i] == '[') {
        i++;
        size_t start = i;
        while (i < end && (IS(buf[i], C_HEX) || buf[i] == ':' || buf[i] == '.'))
            i++;
        if (i == start || i >= end || buf[i] != ']')
            return false;
        i++;
    } else {
        while (i < end && IS(buf[i], C_HOST))
            i++;
    }
    if (i < end && buf[i] == ':') {
        i++;
        size_t digits = 0;
        while (i < end && buf[i] >= '0' && buf[i] <= '9' && digits < 5)
            i++, digits++;
    }
    return i == end;
}

/* Validates buf[off..end) as origin-form path and query: visible ASCII
 * other than '#', and every '%' followed by two hex digits. Returns the
 * offset of the first bad byte, or end. */
static size_t target_scan(const char *buf, size_t off, size_t end)
{
    for (size_t i = off; i < end; i++) {
        char c = buf[i];
        if (!IS(c, C_TARGET))
            return i;
        if (c == '%') {
            if (i + 2 >= end || !IS(buf[i + 1], C_HEX) || !IS(buf[i + 2], C_HEX))
                return i;
            i += 2;
        }
    }
    return end;
}

static int parse_target(struct proxy_h1_parser *p, const char *buf, size_t off, size_t end)
{
    struct proxy_h1_head *h = &p->head;
    size_t bad = target_scan(buf, off, end);
    if (bad != end)
        return fail(p, buf, bad, PROXY_H1_E_TARGET);
    h->target = (struct proxy_h1_span){ (uint32_t)off, (uint32_t)(end - off) };
    if (buf[off] == '/') {
        if (h->method_id == PROXY_H1_M_CONNECT)
            return fail(p, NULL, off, PROXY_H1_E_TARGET);
        h->target_form = PROXY_H1_T_ORIGIN;
        h->path = h->target;
        return 0;
    }
    if (h->method_id == PROXY_H1_M_CONNECT) {
        if (!authority_valid(buf, off, end) || !memchr(buf + off, ':', end - off))
            return fail(p, NULL, off, PROXY_H1_E_TARGET);
        h->target_form = PROXY_H1_T_AUTHORITY;
        h->authority = h->target;
        return 0;
    }
    if (end - off == 1 && buf[off] == '*') {
        if (h->method_id != PROXY_H1_M_OPTIONS)
            return fail(p, NULL, off, PROXY_H1_E_TARGET);
        h->target_form = PROXY_H1_T_ASTERISK;
        h->path = h->target;
        return 0;
    }
    size_t scheme = 0;
    if (end - off > 7 && mem_eq_lower(buf + off, 7, "http://", 7))
        scheme = 7;
    else if (end - off > 8 && mem_eq_lower(buf + off, 8, "https://", 8))
        scheme = 8;
    if (!scheme)
        return fail(p, NULL, off, PROXY_H1_E_TARGET);
    size_t a = off + scheme, ae = a;
    while (ae < end && buf[ae] != '/' && buf[ae] != '?')
        ae++;
    if (ae == a || !authority_valid(buf, a, ae))
        return fail(p, NULL, a, PROXY_H1_E_TARGET);
    h->target_form = PROXY_H1_T_ABSOLUTE;
    h->authority = (struct proxy_h1_span){ (uint32_t)a, (uint32_t)(ae - a) };
    h->path = (struct proxy_h1_span){ (uint32_t)ae, (uint32_t)(end - ae) };
    return 0;
}

/* request-line = method SP request-target SP HTTP-version */
static int parse_request_line(struct proxy_h1_parser *p, const char *buf, size_t off, size_t end)
{
    struct proxy_h1_head *h = &p->head;
    size_t i = off;
    while (i < end && IS(buf[i], C_TCHAR))
        i++;
    if (i == off)
        return fail(p, buf, i, buf[i] == ' ' ? PROXY_H1_E_START_LINE : PROXY_H1_E_METHOD);
    if (i == end || buf[i] != ' ')
        return fail(p, buf, i, PROXY_H1_E_METHOD);
    h->method = (struct proxy_h1_span){ (uint32_t)off, (uint32_t)(i - off) };
    h->method_id = method_id(buf + off, i - off);
    size_t t = ++i;
    while (i < end && buf[i] != ' ')
        i++;
    if (i == t || i == end)
        return fail(p, buf, i == end ? end - 1 : i, PROXY_H1_E_START_LINE);
    int r = parse_target(p, buf, t, i);
    if (r)
        return r;
    i++;
    if (i < end && buf[i] == ' ')
        return fail(p, NULL, i, PROXY_H1_E_START_LINE);
    if ((r = parse_version(p, buf, i, end)))
        return r;
    if (end - i != 8)
        return fail(p, buf, i + 8, PROXY_H1_E_START_LINE);
    return 0;
}

/* status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ]. A line that
 * ends right after the code (no SP) is accepted too: common, and harmless
 * since the reason is never used for framing. */
static int parse_status_line(struct proxy_h1_parser *p, const char *buf, size_t off, size_t end)
{
    struct proxy_h1_head *h = &p->head;
    int r = parse_version(p, buf, off, end);
    if (r)
        return r;
    size_t i = off + 8;
    if (i == end || buf[i] != ' ')
        return fail(p, buf, i < end ? i : end - 1, PROXY_H1_E_START_LINE);
    i++;
    if (end - i < 3)
        return fail(p, NULL, i, PROXY_H1_E_STATUS);
    unsigned code = 0;
    for (int k = 0; k < 3; k++) {
        char c = buf[i + k];
        if (c < '0' || c > '9')
            return fail(p, buf, i + k, PROXY_H1_E_STATUS);
        code = code * 10 + (unsigned)(c - '0');
    }
    if (code < 100)
        return fail(p, NULL, i, PROXY_H1_E_STATUS);
    h->status = (uint16_t)code;
    i += 3;
    if (i == end)
        return 0;
    if (buf[i] != ' ')
        return fail(p, buf, i, PROXY_H1_E_STATUS);
    i++;
    for (size_t k = i; k < end; k++)
        if (!IS(buf[k], C_VALUE))
            return fail(p, buf, k, PROXY_H1_E_START_LINE);
    h->reason = (struct proxy_h1_span){ (uint32_t)i, (uint32_t)(end - i) };
    return 0;
}

/* --- fields ----------------------------------------------------------- */

static uint8_t field_id(const char *n, size_t len)
{
    /* Switch on length first: most names are rejected by one compare. */
    switch (len) {
    case 2:
        if (token_eq_lower(n, len, "te", 2))
            return PROXY_H1_F_TE;
        break;
    case 3:
        if (token_eq_lower(n, len, "via", 3))
            return PROXY_H1_F_VIA;
        break;
    case 4:
        if (token_eq_lower(n, len, "host", 4))
            return PROXY_H1_F_HOST;
        break;
    case 6:
        if (token_eq_lower(n, len, "expect", 6))
            return PROXY_H1_F_EXPECT;
        break;
    case 7:
        if (token_eq_lower(n, len, "upgrade", 7))
            return PROXY_H1_F_UPGRADE;
        if (token_eq_lower(n, len, "trailer", 7))
            return PROXY_H1_F_TRAILER;
        break;
    case 10:
        if (token_eq_lower(n, len, "connection", 10))
            return PROXY_H1_F_CONNECTION;
        if (token_eq_lower(n, len, "keep-alive", 10))
            return PROXY_H1_F_KEEP_ALIVE;
        break;
    case 14:
        if (token_eq_lower(n, len, "content-length", 14))
            return PROXY_H1_F_CONTENT_LENGTH;
        break;
    case 15:
        if (token_eq_lower(n, len, "x-forwarded-for", 15))
            return PROXY_H1_F_X_FORWARDED_FOR;
        break;
    case 16:
        if (token_eq_lower(n, len, "proxy-connection", 16))
            return PROXY_H1_F_PROXY_CONNECTION;
        break;
    case 17:
        if (token_eq_lower(n, len, "transfer-encoding", 17))
            return PROXY_H1_F_TRANSFER_ENCODING;
        break;
    }
    return PROXY_H1_F_OTHER;
}

/*
 * Walks a comma-separated list of tokens in v[0..n) (RFC 9110 5.6.1),
 * calling fn for each element. Empty elements are reported with len 0 so
 * the caller decides whether to tolerate them. Returns false on a
 * non-token character or when fn returns false.
 */
typedef bool (*list_fn)(struct proxy_h1_parser *p, const char *e, size_t len);

static bool list_walk(struct proxy_h1_parser *p, const char *v, size_t n, list_fn fn)
{
    size_t i = 0;
    for (;;) {
        while (i < n && IS(v[i], C_WS))
            i++;
        size_t s = i;
        while (i < n && IS(v[i], C_TCHAR))
            i++;
        size_t e = i;
        while (i < n && IS(v[i], C_WS))
            i++;
        if (i < n && v[i] != ',')
            return false;
        if (!fn(p, v + s, e - s))
            return false;
        if (i == n)
            return true;
        i++;
    }
}

static bool te_element(struct proxy_h1_parser *p, const char *e, size_t len)
{
    if (len == 0 || p->te_chunked)
        return false; /* empty element, or anything after chunked */
    if (!token_eq_lower(e, len, "chunked", 7)) {
        /* Valid syntax, but a coding the proxy cannot apply: 501. */
        p->err = (uint32_t)-PROXY_H1_E_TE_UNSUPPORTED;
        return false;
    }
    p->te_chunked = true;
    return true;
}

static bool connection_element(struct proxy_h1_parser *p, const char *e, size_t len)
{
    if (token_eq_lower(e, len, "close", 5))
        p->head.flags |= PROXY_H1_CONN_CLOSE;
    else if (token_eq_lower(e, len, "keep-alive", 10))
        p->head.flags |= PROXY_H1_CONN_KEEP_ALIVE;
    else if (token_eq_lower(e, len, "upgrade", 7))
        p->head.flags |= PROXY_H1_CONN_UPGRADE;
    else if (len)
        p->conn_names = true;
    return true;
}

static bool te_header_element(struct proxy_h1_parser *p, const char *e, size_t len)
{
    if (token_eq_lower(e, len, "trailers", 8))
        p->head.flags |= PROXY_H1_TE_TRAILERS;
    return true;
}

static int parse_content_length(struct proxy_h1_parser *p, const char *buf, const struct proxy_h1_field *f)
{
    struct proxy_h1_head *h = &p->head;
    if (h->flags & PROXY_H1_HAS_CL)
        return fail(p, NULL, f->name_off, PROXY_H1_E_DUP_CONTENT_LENGTH);
    h->flags |= PROXY_H1_HAS_CL;
    if (f->value_len == 0 || f->value_len > 18)
        return fail(p, NULL, f->value_off, PROXY_H1_E_CONTENT_LENGTH);
    uint64_t v = 0;
    for (uint32_t k = 0; k < f->value_len; k++) {
        char c = buf[f->value_off + k];
        if (c < '0' || c > '9')
            return fail(p, NULL, f->value_off + k, PROXY_H1_E_CONTENT_LENGTH);
        v = v * 10 + (uint64_t)(c - '0');
    }
    h->content_length = v;
    return 0;
}

/* Semantics of the fields the parser knows, checked as each arrives. */
static int field_semantics(struct proxy_h1_parser *p, const char *buf, struct proxy_h1_field *f)
{
    struct proxy_h1_head *h = &p->head;
    const char *v = buf + f->value_off;
    bool request = p->kind == PROXY_H1_REQUEST;
    switch (f->id) {
    case PROXY_H1_F_HOST:
        if (!request)
            return 0;
        if (++p->n_host > 1 || !authority_valid(buf, f->value_off, f->value_off + f->value_len))
            return fail(p, NULL, f->value_off, PROXY_H1_E_HOST);
        if (h->target_form != PROXY_H1_T_ABSOLUTE && h->target_form != PROXY_H1_T_AUTHORITY)
            h->authority = (struct proxy_h1_span){ f->value_off, f->value_len };
        return 0;
    case PROXY_H1_F_CONTENT_LENGTH: {
        int r = parse_content_length(p, buf, f);
        if (r)
            return r;
        if (request && (h->flags & PROXY_H1_HAS_TE))
            return fail(p, NULL, f->name_off, PROXY_H1_E_CL_AND_TE);
        return 0;
    }
    case PROXY_H1_F_TRANSFER_ENCODING:
        f->flags |= PROXY_H1_FIELD_HOP;
        h->flags |= PROXY_H1_HAS_TE;
        if (h->version_minor == 0)
            return fail(p, NULL, f->name_off, PROXY_H1_E_TE_HTTP10);
        if (request && (h->flags & PROXY_H1_HAS_CL))
            return fail(p, NULL, f->name_off, PROXY_H1_E_CL_AND_TE);
        if (!list_walk(p, v, f->value_len, te_element)) {
            int err = p->err == (uint32_t)-PROXY_H1_E_TE_UNSUPPORTED ? PROXY_H1_E_TE_UNSUPPORTED
                                                                     : PROXY_H1_E_TRANSFER_ENCODING;
            return fail(p, NULL, f->value_off, err);
        }
        return 0;
    case PROXY_H1_F_CONNECTION:
        f->flags |= PROXY_H1_FIELD_HOP;
        p->n_connection++;
        /* Nearly every Connection field is one of these two alone: the
         * list walk would find just that element. */
        if (token_eq_lower(v, f->value_len, "keep-alive", 10)) {
            h->flags |= PROXY_H1_CONN_KEEP_ALIVE;
            return 0;
        }
        if (token_eq_lower(v, f->value_len, "close", 5)) {
            h->flags |= PROXY_H1_CONN_CLOSE;
            return 0;
        }
        if (!list_walk(p, v, f->value_len, connection_element))
            return fail(p, NULL, f->value_off, PROXY_H1_E_CONNECTION);
        return 0;
    case PROXY_H1_F_TE:
        f->flags |= PROXY_H1_FIELD_HOP;
        /* TE may carry parameters ("trailers, deflate;q=0.5"); only the
         * trailers token matters to us, so malformed lists are ignored
         * rather than rejected: the field is never forwarded anyway. */
        list_walk(p, v, f->value_len, te_header_element);
        return 0;
    case PROXY_H1_F_KEEP_ALIVE:
    case PROXY_H1_F_PROXY_CONNECTION:
    case PROXY_H1_F_UPGRADE:
        f->flags |= PROXY_H1_FIELD_HOP;
        return 0;
    case PROXY_H1_F_EXPECT:
        if (request && h->version_minor == 1)
            h->flags |= token_eq_lower(v, f->value_len, "100-continue", 12) ? PROXY_H1_EXPECT_CONTINUE
                                                                        : PROXY_H1_EXPECT_OTHER;
        return 0;
    default:
        return 0;
    }
}

/*
 * Skips field-value characters from i, 8 bytes at a time: a word is clean
 * when none of its bytes is below 0x20 or equal to 0x7f (bytes >= 0x80 are
 * obs-text and fine). A dirty word, which may only hold an HTAB, is finished
 * byte by byte. Returns the offset of the first byte that is not allowed in
 * a value, or end.
 */
static size_t value_scan(const char *buf, size_t i, size_t end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - i >= 8) {
        uint64_t x;
        memcpy(&x, buf + i, 8);
        uint64_t below = (x - ones * 0x20) & ~x & highs;
        uint64_t del = x ^ (ones * 0x7f);
        del = (del - ones) & ~del & highs;
        if (below | del)
            break;
        i += 8;
    }
    while (i < end && IS(buf[i], C_VALUE))
        i++;
    return i;
}

/* field-line = field-name ":" OWS field-value OWS, in buf[off..end). */
static int parse_field_line(struct proxy_h1_parser *p, const char *buf, size_t off, size_t end)
{
    struct proxy_h1_head *h = &p->head;
    if (IS(buf[off], C_WS))
        return fail(p, NULL, off, h->n_fields ? PROXY_H1_E_OBS_FOLD : PROXY_H1_E_LEADING_WS);
    /* buf[end] is the line's CR, which stops the scans below (neither a
     * token nor a value character) without a bounds check per byte. */
    size_t i = off;
    while (IS(buf[i], C_TCHAR) && IS(buf[i + 1], C_TCHAR) && IS(buf[i + 2], C_TCHAR) && IS(buf[i + 3], C_TCHAR))
        i += 4;
    while (IS(buf[i], C_TCHAR))
        i++;
    if (i == end)
        return fail(p, NULL, end, PROXY_H1_E_NO_COLON);
    if (buf[i] != ':') {
        size_t k = i;
        while (k < end && IS(buf[k], C_WS))
            k++;
        if (k > i && k < end && buf[k] == ':')
            return fail(p, NULL, i, PROXY_H1_E_WS_BEFORE_COLON);
        return fail(p, buf, i, PROXY_H1_E_FIELD_NAME);
    }
    if (i == off)
        return fail(p, NULL, off, PROXY_H1_E_FIELD_NAME);
    if (h->n_fields >= p->limits.max_fields)
        return fail(p, NULL, off, PROXY_H1_E_TOO_MANY_FIELDS);
    size_t name_end = i++;
    while (IS(buf[i], C_WS))
        i++;
    size_t vs = i;
    /* The hot loop: most bytes of a head are field values. */
    i = value_scan(buf, i, end);
    if (i != end)
        return fail(p, buf, i, PROXY_H1_E_FIELD_VALUE);
    while (i > vs && IS(buf[i - 1], C_WS))
        i--;
    struct proxy_h1_field *f = &h->fields[h->n_fields++];
    f->name_off = (uint32_t)off;
    f->name_len = (uint16_t)(name_end - off);
    f->value_off = (uint32_t)vs;
    f->value_len = (uint32_t)(i - vs);
    f->flags = 0;
    f->id = field_id(buf + off, name_end - off);
    return f->id ? field_semantics(p, buf, f) : 0;
}

/* Marks the fields that a Connection field names as hop-by-hop. */
static void mark_connection_named(struct proxy_h1_parser *p, const char *buf)
{
    struct proxy_h1_head *h = &p->head;
    for (uint32_t c = 0; c < h->n_fields; c++) {
        const struct proxy_h1_field *cf = &h->fields[c];
        if (cf->id != PROXY_H1_F_CONNECTION)
            continue;
        const char *v = buf + cf->value_off;
        size_t n = cf->value_len, i = 0;
        while (i < n) {
            while (i < n && (IS(v[i], C_WS) || v[i] == ','))
                i++;
            size_t s = i;
            while (i < n && IS(v[i], C_TCHAR))
                i++;
            if (i == s)
                break;
            for (uint32_t k = 0; k < h->n_fields; k++) {
                struct proxy_h1_field *f = &h->fields[k];
                if (f->name_len == i - s) {
                    size_t m = 0;
                    while (m < f->name_len && lower(buf[f->name_off + m]) == lower(v[s + m]))
                        m++;
                    if (m == f->name_len)
                        f->flags |= PROXY_H1_FIELD_HOP;
                }
            }
        }
    }
}

/* Decides the body's framing once the head is complete (RFC 9112 6.3). */
static int head_finish(struct proxy_h1_parser *p, const char *buf, size_t head_len)
{
    struct proxy_h1_head *h = &p->head;
    h->head_len = (uint32_t)head_len;
    if (p->conn_names)
        mark_connection_named(p, buf);
    if ((h->flags & PROXY_H1_HAS_TE) && !p->te_chunked)
        return fail(p, NULL, 0, PROXY_H1_E_TRANSFER_ENCODING);
    if (p->kind == PROXY_H1_REQUEST) {
        if (h->version_minor == 1 && p->n_host == 0)
            return fail(p, NULL, 0, PROXY_H1_E_HOST);
        if (h->flags & PROXY_H1_HAS_TE)
            h->framing = PROXY_H1_BODY_CHUNKED;
        else if (h->content_length)
            h->framing = PROXY_H1_BODY_LENGTH;
        else
            h->framing = PROXY_H1_BODY_NONE;
        return (int)head_len;
    }
    /* A response carrying both is an attack or a broken server: refuse it
     * rather than let Transfer-Encoding win silently. */
    if ((h->flags & PROXY_H1_HAS_TE) && (h->flags & PROXY_H1_HAS_CL))
        return fail(p, NULL, 0, PROXY_H1_E_CL_AND_TE);
    unsigned s = h->status;
    if (s < 200 || s == 204 || s == 304 || p->req_method == PROXY_H1_M_HEAD ||
        (p->req_method == PROXY_H1_M_CONNECT && s < 300))
        h->framing = PROXY_H1_BODY_NONE;
    else if (h->flags & PROXY_H1_HAS_TE)
        h->framing = PROXY_H1_BODY_CHUNKED;
    else if (h->flags & PROXY_H1_HAS_CL)
        h->framing = h->content_length ? PROXY_H1_BODY_LENGTH : PROXY_H1_BODY_NONE;
    else
        h->framing = PROXY_H1_BODY_CLOSE;
    return (int)head_len;
}

int proxy_h1_head_parse(struct proxy_h1_parser *p, const char *buf, size_t len)
{
    if (p->state == S_DONE)
        return (int)p->head.head_len;
    if (p->state == S_ERROR)
        return -(int)p->err;
    for (;;) {
        const char *lf = p->scan < len ? memchr(buf + p->scan, '\n', len - p->scan) : NULL;
        size_t line_end = lf ? (size_t)(lf - buf) + 1 : len;
        /* Limits apply to what is buffered even before the line is whole,
         * so a peer that never sends LF cannot grow the buffer. */
        if (p->state == S_START && line_end - p->line_start > p->limits.max_start_line)
            return fail(p, NULL, p->line_start, PROXY_H1_E_START_LINE_TOO_LONG);
        if (line_end > p->limits.max_head)
            return fail(p, NULL, p->line_start, PROXY_H1_E_HEAD_TOO_LARGE);
        if (!lf) {
            p->scan = (uint32_t)len;
            return 0;
        }
        size_t lf_off = line_end - 1, start = p->line_start;
        p->scan = (uint32_t)line_end;
        if (lf_off == start || buf[lf_off - 1] != '\r')
            return fail(p, NULL, lf_off, PROXY_H1_E_BARE_LF);
        size_t end = lf_off - 1; /* content is buf[start..end) */
        p->line_start = (uint32_t)line_end;
        int r;
        if (p->state == S_START) {
            if (end == start) {
                /* RFC 9112 2.2: empty lines before a request line are
                 * ignored (clients add CRLF after a POST body). */
                if (p->kind == PROXY_H1_REQUEST)
                    continue;
                return fail(p, NULL, start, PROXY_H1_E_START_LINE);
            }
            r = p->kind == PROXY_H1_REQUEST ? parse_request_line(p, buf, start, end)
                                            : parse_status_line(p, buf, start, end);
            if (r)
                return r;
            p->state = S_FIELDS;
            continue;
        }
        if (end == start) {
            r = head_finish(p, buf, line_end);
            if (r > 0)
                p->state = S_DONE;
            return r;
        }
        if ((r = parse_field_line(p, buf, start, end)))
            return r;
    }
}

int proxy_h1_error_status(int err)
{
    switch (err) {
    case PROXY_H1_E_START_LINE_TOO_LONG:
        return 414;
    case PROXY_H1_E_HEAD_TOO_LARGE:
    case PROXY_H1_E_TOO_MANY_FIELDS:
        return 431;
    case PROXY_H1_E_VERSION_UNSUPPORTED:
        return 505;
    case PROXY_H1_E_TE_UNSUPPORTED:
        return 501;
    default:
        return 400;
    }
}

const char *proxy_h1_error_str(int err)
{
    switch (err) {
    case PROXY_H1_OK: return "ok";
    case PROXY_H1_E_BARE_CR: return "bare CR";
    case PROXY_H1_E_BARE_LF: return "bare LF (lines must end in CRLF)";
    case PROXY_H1_E_METHOD: return "invalid method";
    case PROXY_H1_E_TARGET: return "invalid request target";
    case PROXY_H1_E_VERSION: return "malformed HTTP version";
    case PROXY_H1_E_VERSION_UNSUPPORTED: return "unsupported HTTP version";
    case PROXY_H1_E_START_LINE: return "malformed start line";
    case PROXY_H1_E_STATUS: return "invalid status code";
    case PROXY_H1_E_FIELD_NAME: return "invalid field name";
    case PROXY_H1_E_WS_BEFORE_COLON: return "whitespace between field name and colon";
    case PROXY_H1_E_NO_COLON: return "field line without colon";
    case PROXY_H1_E_FIELD_VALUE: return "invalid character in field value";
    case PROXY_H1_E_OBS_FOLD: return "obsolete line folding";
    case PROXY_H1_E_LEADING_WS: return "whitespace before first field line";
    case PROXY_H1_E_CONTENT_LENGTH: return "invalid Content-Length";
    case PROXY_H1_E_DUP_CONTENT_LENGTH: return "repeated Content-Length";
    case PROXY_H1_E_CL_AND_TE: return "both Content-Length and Transfer-Encoding";
    case PROXY_H1_E_TRANSFER_ENCODING: return "invalid Transfer-Encoding (chunked must be last, once)";
    case PROXY_H1_E_TE_HTTP10: return "Transfer-Encoding in an HTTP/1.0 message";
    case PROXY_H1_E_HOST: return "missing, repeated or invalid Host";
    case PROXY_H1_E_START_LINE_TOO_LONG: return "start line too long";
    case PROXY_H1_E_HEAD_TOO_LARGE: return "header section too large";
    case PROXY_H1_E_TOO_MANY_FIELDS: return "too many header fields";
    case PROXY_H1_E_CHUNK_SIZE: return "invalid chunk size";
    case PROXY_H1_E_CHUNK_EXT: return "invalid chunk extension";
    case PROXY_H1_E_CHUNK_EXT_TOO_LONG: return "chunk extensions too long";
    case PROXY_H1_E_CHUNK_DATA_END: return "chunk data not followed by CRLF";
    case PROXY_H1_E_TRAILER: return "invalid trailer field";
    case PROXY_H1_E_TRAILER_TOO_LARGE: return "trailer section too large";
    case PROXY_H1_E_TE_UNSUPPORTED: return "unsupported transfer coding";
    case PROXY_H1_E_CONNECTION: return "invalid Connection field";
    }
    return "unknown error";
}

/* --- chunked decoding --------------------------------------------------- */

enum {
    K_SIZE = 0,      /* first hex digit of a chunk size */
    K_SIZE_MORE,     /* more hex digits, ';', BWS or CR */
    K_WS_NEED_SEMI,  /* BWS seen: only more BWS or ';' may follow */
    K_EXT_NAME0,     /* BWS, then the first character of an ext-name */
    K_EXT_NAME,      /* ext-name characters */
    K_EXT_AFTER_NAME, /* BWS after a name: '=', ';' or CR */
    K_EXT_VAL0,      /* BWS, then a token or '"' */
    K_EXT_VAL_TOKEN,
    K_EXT_VAL_QUOTED,
    K_EXT_VAL_ESC,   /* after '\' in a quoted string */
    K_EXT_AFTER_QUOTE, /* closing '"' seen: ';', BWS or CR */
    K_SIZE_LF,       /* CR seen at the end of a size line */
    K_DATA,
    K_DATA_CR,
    K_DATA_LF,
    K_TRAILER_LINE,  /* start of a trailer line, or the final CRLF */
    K_TRAILER_NAME,
    K_TRAILER_VALUE,
    K_TRAILER_LF,
    K_FINAL_LF,
    K_DONE,
    K_ERROR,
};

void proxy_h1_chunked_init(struct proxy_h1_chunked *c, const struct proxy_h1_limits *limits)
{
    memset(c, 0, sizeof *c);
    if (!limits)
        limits = &proxy_h1_limits_default;
    c->max_chunk_ext = limits->max_chunk_ext;
    c->max_trailers = limits->max_trailers;
}

static inline int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    return lower(ch) - 'a' + 10;
}

static ssize_t chunk_fail(struct proxy_h1_chunked *c, char ch, int err)
{
    c->state = K_ERROR;
    if (ch == '\n')
        err = PROXY_H1_E_BARE_LF;
    c->remaining = (uint64_t)-err; /* remembered for later calls */
    return err;
}

/* What may end a chunk size, an ext-name, an ext-value token or a quoted
 * value: ';' starts the next extension, CR ends the size line, BWS moves to
 * ws_state (where only more BWS and what may follow it are allowed).
 * False for any other byte. */
static inline bool ext_delim(struct proxy_h1_chunked *c, char ch, uint8_t ws_state)
{
    if (ch == ';')
        c->state = K_EXT_NAME0;
    else if (ch == '\r')
        c->state = K_SIZE_LF;
    else if (IS(ch, C_WS))
        c->state = ws_state;
    else
        return false;
    return true;
}

/* After BWS: more BWS, ';' (the next extension) or, after a name, '='.
 * BWS may not end the line, so CR is refused. */
static inline bool ext_after_bws(struct proxy_h1_chunked *c, char ch, bool after_name)
{
    if (ch == ';')
        c->state = K_EXT_NAME0;
    else if (after_name && ch == '=')
        c->state = K_EXT_VAL0;
    else if (!IS(ch, C_WS))
        return false;
    return true;
}

ssize_t proxy_h1_chunked_decode(struct proxy_h1_chunked *c, const char *buf, size_t len, struct proxy_h1_piece *out)
{
    memset(out, 0, sizeof *out);
    if (c->state == K_ERROR)
        return -(ssize_t)c->remaining;
    size_t i = 0, trailer_from = SIZE_MAX;
    while (i < len && c->state != K_DONE) {
        char ch = buf[i];
        if (c->state == K_DATA) {
            size_t n = len - i;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            out->data = buf + i;
            out->len = n;
            c->remaining -= n;
            if (!c->remaining)
                c->state = K_DATA_CR;
            return (ssize_t)(i + n);
        }
        if (c->state >= K_WS_NEED_SEMI && c->state <= K_EXT_AFTER_QUOTE && ++c->ext_len > c->max_chunk_ext)
            return chunk_fail(c, 0, PROXY_H1_E_CHUNK_EXT_TOO_LONG);
        switch (c->state) {
        case K_SIZE:
            if (!IS(ch, C_HEX))
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_SIZE);
            c->remaining = (uint64_t)hexval(ch);
            c->digits = 1;
            c->ext_len = 0;
            c->state = K_SIZE_MORE;
            break;
        case K_SIZE_MORE:
            if (IS(ch, C_HEX)) {
                /* 15 digits keep the size below 2^60: no overflow, and
                 * far beyond any body we would accept anyway. */
                if (++c->digits > 15)
                    return chunk_fail(c, ch, PROXY_H1_E_CHUNK_SIZE);
                c->remaining = (c->remaining << 4) | (uint64_t)hexval(ch);
            } else if (!ext_delim(c, ch, K_WS_NEED_SEMI)) {
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_SIZE);
            }
            break;
        case K_WS_NEED_SEMI:
            if (!ext_after_bws(c, ch, false))
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_EXT);
            break;
        case K_EXT_NAME0:
            if (IS(ch, C_TCHAR))
                c->state = K_EXT_NAME;
            else if (!IS(ch, C_WS))
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_EXT);
            break;
        case K_EXT_NAME:
            if (IS(ch, C_TCHAR))
                break;
            if (ch == '=')
                c->state = K_EXT_VAL0;
            else if (!ext_delim(c, ch, K_EXT_AFTER_NAME))
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_EXT);
            break;
        case K_EXT_AFTER_NAME:
            if (!ext_after_bws(c, ch, true))
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_EXT);
            break;
        case K_EXT_VAL0:
            if (ch == '"')
                c->state = K_EXT_VAL_QUOTED;
            else if (IS(ch, C_TCHAR))
                c->state = K_EXT_VAL_TOKEN;
            else if (!IS(ch, C_WS))
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_EXT);
            break;
        case K_EXT_VAL_TOKEN:
            if (IS(ch, C_TCHAR))
                break;
            if (!ext_delim(c, ch, K_WS_NEED_SEMI))
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_EXT);
            break;
        case K_EXT_VAL_QUOTED:
            if (ch == '"')
                c->state = K_EXT_AFTER_QUOTE;
            else if (ch == '\\')
                c->state = K_EXT_VAL_ESC;
            else if (!IS(ch, C_VALUE))
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_EXT);
            break;
        case K_EXT_VAL_ESC:
            if (!IS(ch, C_VALUE))
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_EXT);
            c->state = K_EXT_VAL_QUOTED;
            break;
        case K_EXT_AFTER_QUOTE:
            if (!ext_delim(c, ch, K_WS_NEED_SEMI))
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_EXT);
            break;
        case K_SIZE_LF:
            if (ch != '\n')
                return chunk_fail(c, 0, PROXY_H1_E_BARE_CR);
            if (c->remaining) {
                c->state = K_DATA;
            } else {
                c->state = K_TRAILER_LINE;
                c->trailer_len = 0;
            }
            break;
        case K_DATA_CR:
            if (ch != '\r')
                return chunk_fail(c, ch, PROXY_H1_E_CHUNK_DATA_END);
            c->state = K_DATA_LF;
            break;
        case K_DATA_LF:
            if (ch != '\n')
                return chunk_fail(c, 0, PROXY_H1_E_BARE_CR);
            c->state = K_SIZE;
            break;
        case K_TRAILER_LINE:
            if (ch == '\r') {
                c->state = K_FINAL_LF;
                break;
            }
            if (!IS(ch, C_TCHAR))
                return chunk_fail(c, ch, PROXY_H1_E_TRAILER);
            c->state = K_TRAILER_NAME;
            goto trailer_byte;
        case K_TRAILER_NAME:
            if (ch == ':')
                c->state = K_TRAILER_VALUE;
            else if (!IS(ch, C_TCHAR))
                return chunk_fail(c, ch, PROXY_H1_E_TRAILER);
            goto trailer_byte;
        case K_TRAILER_VALUE:
            if (ch == '\r')
                c->state = K_TRAILER_LF;
            else if (!IS(ch, C_VALUE))
                return chunk_fail(c, ch, PROXY_H1_E_TRAILER);
            goto trailer_byte;
        case K_TRAILER_LF:
            if (ch != '\n')
                return chunk_fail(c, 0, PROXY_H1_E_BARE_CR);
            c->state = K_TRAILER_LINE;
            goto trailer_byte;
        case K_FINAL_LF:
            if (ch != '\n')
                return chunk_fail(c, 0, PROXY_H1_E_BARE_CR);
            c->state = K_DONE;
            out->done = true;
            break;
        }
        i++;
        continue;
    trailer_byte:
        if (++c->trailer_len > c->max_trailers)
            return chunk_fail(c, 0, PROXY_H1_E_TRAILER_TOO_LARGE);
        if (trailer_from == SIZE_MAX)
            trailer_from = i;
        out->trailer = buf + trailer_from;
        out->trailer_len = i + 1 - trailer_from;
        i++;
    }
    return (ssize_t)i;
}

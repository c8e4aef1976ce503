/*
 * The HTTP/1.1 parser against a table of valid messages, request smuggling
 * attempts and malformed input. Every case is parsed whole, one byte at a
 * time, and split in two at every position; the outcome must not depend on
 * the split. Each delivery is copied into a buffer of exactly the delivered
 * size, so a read past the end is caught by ASan.
 */
#include "tap.h"

/* Table rows give only the columns that matter for them. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "../../modules/proxy/proxy_h1_parse.c"

struct hcase {
    const char *name;
    enum proxy_h1_kind kind;
    const char *in;
    size_t in_len;
    int want;            /* > 0: the head must be complete (value unused); else the error */
    int framing;         /* expected framing when valid */
    long long clen;      /* expected content length when framing is LENGTH */
    enum proxy_h1_method req_method; /* responses: the request's method */
};

#define OK 1
#define IN(s) s, sizeof(s) - 1
#define RQ PROXY_H1_REQUEST
#define RS PROXY_H1_RESPONSE
#define NONE PROXY_H1_BODY_NONE
#define LEN PROXY_H1_BODY_LENGTH
#define CHUNKED PROXY_H1_BODY_CHUNKED
#define CLOSE PROXY_H1_BODY_CLOSE

static const struct hcase cases[] = {
    /* --- valid requests --- */
    { "simple GET", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), OK, NONE, 0 },
    { "GET with fields", RQ, IN("GET /p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n"), OK, NONE, 0 },
    { "POST with length", RQ, IN("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n"), OK, LEN, 12 },
    { "POST chunked", RQ, IN("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), OK, CHUNKED, 0 },
    { "chunked, mixed case", RQ, IN("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n"), OK, CHUNKED, 0 },
    { "Content-Length 0", RQ, IN("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), OK, NONE, 0 },
    { "HTTP/1.0 without Host", RQ, IN("GET / HTTP/1.0\r\n\r\n"), OK, NONE, 0 },
    { "leading empty lines", RQ, IN("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), OK, NONE, 0 },
    { "absolute-form", RQ, IN("GET http://b.example/z?1 HTTP/1.1\r\nHost: a\r\n\r\n"), OK, NONE, 0 },
    { "OPTIONS *", RQ, IN("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), OK, NONE, 0 },
    { "CONNECT authority", RQ, IN("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"), OK, NONE, 0 },
    { "empty value", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n"), OK, NONE, 0 },
    { "OWS trimmed, tab inside", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX-V: \t a\tb \t\r\n\r\n"), OK, NONE, 0 },
    { "obs-text in value", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX-U: caf\xc3\xa9\r\n\r\n"), OK, NONE, 0 },
    { "IPv6 host", RQ, IN("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), OK, NONE, 0 },
    { "empty Host (RFC 9112 3.2)", RQ, IN("GET / HTTP/1.1\r\nHost:\r\n\r\n"), OK, NONE, 0 },
    { "Expect 100-continue", RQ, IN("PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"), OK, LEN, 3 },
    { "percent-encoded target", RQ, IN("GET /a%20b HTTP/1.1\r\nHost: a\r\n\r\n"), OK, NONE, 0 },
    { "custom method", RQ, IN("PURGE /c HTTP/1.1\r\nHost: a\r\n\r\n"), OK, NONE, 0 },
    /* --- valid responses --- */
    { "200 with length", RS, IN("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), OK, LEN, 5 },
    { "200 chunked", RS, IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), OK, CHUNKED, 0 },
    { "200 until close", RS, IN("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), OK, CLOSE, 0 },
    { "HTTP/1.0 response until close", RS, IN("HTTP/1.0 200 OK\r\n\r\n"), OK, CLOSE, 0 },
    { "204 has no body", RS, IN("HTTP/1.1 204 No Content\r\n\r\n"), OK, NONE, 0 },
    { "304 ignores length", RS, IN("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), OK, NONE, 0 },
    { "100 Continue", RS, IN("HTTP/1.1 100 Continue\r\n\r\n"), OK, NONE, 0 },
    { "HEAD response with length", RS, IN("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"), OK, NONE, 0, PROXY_H1_M_HEAD },
    { "empty reason", RS, IN("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"), OK, NONE, 0 },
    { "no reason, no SP", RS, IN("HTTP/1.1 500\r\nContent-Length: 1\r\n\r\n"), OK, LEN, 1 },

    /* --- smuggling: framing conflicts --- */
    { "CL and TE", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), PROXY_H1_E_CL_AND_TE },
    { "TE and CL", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), PROXY_H1_E_CL_AND_TE },
    { "CL and TE in response", RS, IN("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), PROXY_H1_E_CL_AND_TE },
    { "two CL, different", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), PROXY_H1_E_DUP_CONTENT_LENGTH },
    { "two CL, same", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), PROXY_H1_E_DUP_CONTENT_LENGTH },
    { "CL list", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), PROXY_H1_E_CONTENT_LENGTH },
    { "CL with sign", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), PROXY_H1_E_CONTENT_LENGTH },
    { "CL negative", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), PROXY_H1_E_CONTENT_LENGTH },
    { "CL hex", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"), PROXY_H1_E_CONTENT_LENGTH },
    { "CL empty", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), PROXY_H1_E_CONTENT_LENGTH },
    { "CL space inside", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"), PROXY_H1_E_CONTENT_LENGTH },
    { "CL overflow", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"), PROXY_H1_E_CONTENT_LENGTH },
    { "CL in response, bad", RS, IN("HTTP/1.1 200 OK\r\nContent-Length: 1a\r\n\r\n"), PROXY_H1_E_CONTENT_LENGTH },
    { "TE chunked not last", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), PROXY_H1_E_TRANSFER_ENCODING },
    { "TE chunked twice", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), PROXY_H1_E_TRANSFER_ENCODING },
    { "TE split over lines, chunked first", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"), PROXY_H1_E_TRANSFER_ENCODING },
    { "TE gzip only", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), PROXY_H1_E_TE_UNSUPPORTED },
    { "TE gzip, chunked", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), PROXY_H1_E_TE_UNSUPPORTED },
    { "TE identity", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), PROXY_H1_E_TE_UNSUPPORTED },
    { "TE xchunked", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), PROXY_H1_E_TE_UNSUPPORTED },
    { "TE quoted", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"), PROXY_H1_E_TRANSFER_ENCODING },
    { "TE empty element", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n"), PROXY_H1_E_TRANSFER_ENCODING },
    { "TE empty", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), PROXY_H1_E_TRANSFER_ENCODING },
    { "TE with vertical tab", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0b" "chunked\r\n\r\n"), PROXY_H1_E_FIELD_VALUE },
    { "TE in HTTP/1.0", RQ, IN("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), PROXY_H1_E_TE_HTTP10 },
    { "TE name with space before colon", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"), PROXY_H1_E_WS_BEFORE_COLON },
    { "TE empty then folded", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"), PROXY_H1_E_TRANSFER_ENCODING },
    { "TE obs-folded", RQ, IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n , identity\r\n\r\n"), PROXY_H1_E_OBS_FOLD },
    { "response TE not chunked", RS, IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), PROXY_H1_E_TE_UNSUPPORTED },

    /* --- line ends --- */
    { "bare LF after request line", RQ, IN("GET / HTTP/1.1\nHost: a\r\n\r\n"), PROXY_H1_E_BARE_LF },
    { "bare LF ends head", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\n\n"), PROXY_H1_E_BARE_LF },
    { "bare LF in field", RQ, IN("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), PROXY_H1_E_BARE_LF },
    { "bare CR in value", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), PROXY_H1_E_BARE_CR },
    { "bare CR in request line", RQ, IN("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_BARE_CR },
    { "CR CR LF", RQ, IN("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n"), PROXY_H1_E_BARE_CR },
    { "bare CR in name", RQ, IN("GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n"), PROXY_H1_E_BARE_CR },
    { "bare CR in response", RS, IN("HTTP/1.1 200 OK\r\nX: \r\r\n\r\n"), PROXY_H1_E_BARE_CR },

    /* --- fields --- */
    { "obs-fold", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  b\r\n\r\n"), PROXY_H1_E_OBS_FOLD },
    { "obs-fold with tab", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"), PROXY_H1_E_OBS_FOLD },
    { "whitespace before first field", RQ, IN("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), PROXY_H1_E_LEADING_WS },
    { "space before colon", RQ, IN("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), PROXY_H1_E_WS_BEFORE_COLON },
    { "tab before colon", RQ, IN("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), PROXY_H1_E_WS_BEFORE_COLON },
    { "no colon", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nJunk\r\n\r\n"), PROXY_H1_E_NO_COLON },
    { "empty name", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n"), PROXY_H1_E_FIELD_NAME },
    { "name with slash", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX/Y: v\r\n\r\n"), PROXY_H1_E_FIELD_NAME },
    { "name with space", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX Y: v\r\n\r\n"), PROXY_H1_E_FIELD_NAME },
    { "name with NUL", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX\0Y: v\r\n\r\n"), PROXY_H1_E_FIELD_NAME },
    { "name with non-ASCII", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX\xffY: v\r\n\r\n"), PROXY_H1_E_FIELD_NAME },
    { "NUL in value", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), PROXY_H1_E_FIELD_VALUE },
    { "DEL in value", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), PROXY_H1_E_FIELD_VALUE },
    { "ESC in value", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n\r\n"), PROXY_H1_E_FIELD_VALUE },
    { "bad Connection list", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nConnection: close;x\r\n\r\n"), PROXY_H1_E_CONNECTION },

    /* --- Host --- */
    { "HTTP/1.1 without Host", RQ, IN("GET / HTTP/1.1\r\nX: a\r\n\r\n"), PROXY_H1_E_HOST },
    { "two Hosts", RQ, IN("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), PROXY_H1_E_HOST },
    { "Host with path", RQ, IN("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), PROXY_H1_E_HOST },
    { "Host with userinfo", RQ, IN("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), PROXY_H1_E_HOST },
    { "Host with space", RQ, IN("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), PROXY_H1_E_HOST },
    { "Host with bad port", RQ, IN("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), PROXY_H1_E_HOST },
    { "Host, two Hosts in list", RQ, IN("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"), PROXY_H1_E_HOST },

    /* --- start lines --- */
    { "lower-case version", RQ, IN("GET / http/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_VERSION },
    { "HTTP/2.0", RQ, IN("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), PROXY_H1_E_VERSION_UNSUPPORTED },
    { "HTTP/1.2", RQ, IN("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), PROXY_H1_E_VERSION_UNSUPPORTED },
    { "HTTP/0.9 line", RQ, IN("GET /\r\n\r\n"), PROXY_H1_E_START_LINE },
    { "version junk after", RQ, IN("GET / HTTP/1.1x\r\nHost: a\r\n\r\n"), PROXY_H1_E_START_LINE },
    { "version too short", RQ, IN("GET / HTTP/1\r\nHost: a\r\n\r\n"), PROXY_H1_E_VERSION },
    { "two spaces after method", RQ, IN("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_START_LINE },
    { "two spaces before version", RQ, IN("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_START_LINE },
    { "tab separator", RQ, IN("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_METHOD },
    { "leading space", RQ, IN(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_START_LINE },
    { "method with slash", RQ, IN("GE/T / HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_METHOD },
    { "target with fragment", RQ, IN("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_TARGET },
    { "target with non-ASCII", RQ, IN("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_TARGET },
    { "target with control", RQ, IN("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_TARGET },
    { "bad percent", RQ, IN("GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_TARGET },
    { "truncated percent", RQ, IN("GET /a% HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_TARGET },
    { "relative target", RQ, IN("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_TARGET },
    { "asterisk with GET", RQ, IN("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_TARGET },
    { "absolute with userinfo", RQ, IN("GET http://u@b/ HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_TARGET },
    { "absolute, other scheme", RQ, IN("GET ftp://b/ HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_TARGET },
    { "CONNECT with path", RQ, IN("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n"), PROXY_H1_E_TARGET },
    { "status 2 digits", RS, IN("HTTP/1.1 20 OK\r\n\r\n"), PROXY_H1_E_STATUS },
    { "status 4 digits", RS, IN("HTTP/1.1 2000 OK\r\n\r\n"), PROXY_H1_E_STATUS },
    { "status 099", RS, IN("HTTP/1.1 099 X\r\n\r\n"), PROXY_H1_E_STATUS },
    { "status letters", RS, IN("HTTP/1.1 2x0 OK\r\n\r\n"), PROXY_H1_E_STATUS },
    { "response leading empty line", RS, IN("\r\nHTTP/1.1 200 OK\r\n\r\n"), PROXY_H1_E_START_LINE },
    { "reason with control", RS, IN("HTTP/1.1 200 O\x01K\r\n\r\n"), PROXY_H1_E_START_LINE },
};

/* Parses in according to a split plan: cuts[] are the lengths delivered
 * successively (the last equals strlen). Returns the final result. */
static int parse_split(const struct hcase *c, size_t len, const size_t *cuts, size_t n_cuts, struct proxy_h1_parser *p,
                       bool *early)
{
    proxy_h1_parser_init(p, c->kind, NULL, c->req_method);
    int r = 0;
    *early = false;
    for (size_t k = 0; k < n_cuts; k++) {
        char *copy = malloc(cuts[k] ? cuts[k] : 1);
        memcpy(copy, c->in, cuts[k]);
        r = proxy_h1_head_parse(p, copy, cuts[k]);
        free(copy);
        if (r != 0) {
            if (k + 1 < n_cuts && r > 0)
                *early = true; /* complete before all bytes were seen: only fine for errors */
            return r;
        }
    }
    (void)len;
    return r;
}

static void check_case(const struct hcase *c)
{
    size_t len = c->in_len;
    struct proxy_h1_parser p;
    bool early;
    size_t whole = len;
    int r = parse_split(c, len, &whole, 1, &p, &early);
    if (c->want > 0) {
        if (!is_int(r, (int)len, "%s: complete, head is %zu bytes", c->name, len))
            diag("error: %s at %u", proxy_h1_error_str(r), p.err_off);
        is_int(p.head.framing, c->framing, "%s: framing", c->name);
        if (c->framing == LEN)
            is_int((long long)p.head.content_length, c->clen, "%s: content length", c->name);
    } else {
        if (!is_int(r, c->want, "%s: rejected as '%s'", c->name, proxy_h1_error_str(c->want)))
            diag("got: %s", r < 0 ? proxy_h1_error_str(r) : "accepted");
    }
    /* One byte at a time. */
    size_t *cuts = calloc(len + 1, sizeof *cuts);
    for (size_t k = 0; k < len; k++)
        cuts[k] = k + 1;
    struct proxy_h1_parser q;
    int rb = parse_split(c, len, cuts, len, &q, &early);
    free(cuts);
    ok(rb == r && !early, "%s: byte by byte gives the same result", c->name);
    /* Every two-piece split. */
    bool same = true;
    for (size_t k = 1; k < len && same; k++) {
        size_t two[2] = { k, len };
        int rs = parse_split(c, len, two, 2, &q, &early);
        if (rs != r || (r > 0 && early)) {
            same = false;
            diag("split at %zu: got %d, whole gave %d", k, rs, r);
        }
    }
    ok(same, "%s: every two-piece split gives the same result", c->name);
}

static void test_fields_and_spans(void)
{
    static const char req[] = "POST http://svc.ns:8080/api/v1?x=1 HTTP/1.1\r\n"
                              "Host: ignored.example\r\n"
                              "Connection: keep-alive, X-Hop\r\n"
                              "X-Hop: 1\r\n"
                              "Keep-Alive: timeout=5\r\n"
                              "TE: trailers\r\n"
                              "Content-Length: 3\r\n"
                              "X-Keep:  value with spaces  \r\n"
                              "\r\n"
                              "abc";
    struct proxy_h1_parser p;
    proxy_h1_parser_init(&p, PROXY_H1_REQUEST, NULL, 0);
    int r = proxy_h1_head_parse(&p, req, sizeof req - 1);
    is_int(r, (int)(sizeof req - 1 - 3), "head length excludes the body");
    struct proxy_h1_head *h = &p.head;
    ok(proxy_h1_span_eq_lower(req, h->method, "post") && h->method_id == PROXY_H1_M_POST, "method");
    ok(h->target_form == PROXY_H1_T_ABSOLUTE, "absolute-form target");
    ok(proxy_h1_span_eq_lower(req, h->authority, "svc.ns:8080"), "authority from the target, not Host");
    ok(proxy_h1_span_eq_lower(req, h->path, "/api/v1?x=1"), "path from the target");
    ok(h->flags & PROXY_H1_CONN_KEEP_ALIVE, "Connection: keep-alive seen");
    ok(h->flags & PROXY_H1_TE_TRAILERS, "TE: trailers seen");
    is_int(h->n_fields, 7, "seven fields");
    int hop = 0, kept = 0;
    for (uint32_t i = 0; i < h->n_fields; i++) {
        struct proxy_h1_field *f = &h->fields[i];
        struct proxy_h1_span n = { f->name_off, f->name_len };
        if (f->flags & PROXY_H1_FIELD_HOP)
            hop++;
        else
            kept++;
        if (proxy_h1_span_eq_lower(req, n, "x-hop"))
            ok(f->flags & PROXY_H1_FIELD_HOP, "a field named by Connection is hop-by-hop");
        if (proxy_h1_span_eq_lower(req, n, "x-keep")) {
            struct proxy_h1_span v = { f->value_off, f->value_len };
            ok(proxy_h1_span_eq_lower(req, v, "value with spaces"), "value trimmed of OWS, inner spaces kept");
        }
    }
    is_int(hop, 4, "Connection, X-Hop, Keep-Alive, TE are hop-by-hop");
    is_int(kept, 3, "Host, Content-Length, X-Keep are end-to-end");
}

static void test_limits(void)
{
    struct proxy_h1_limits lim = proxy_h1_limits_default;
    lim.max_start_line = 32;
    lim.max_head = 64;
    lim.max_fields = 2;
    struct proxy_h1_parser p;
    const char *longline = "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n";
    proxy_h1_parser_init(&p, PROXY_H1_REQUEST, &lim, 0);
    int r = proxy_h1_head_parse(&p, longline, strlen(longline));
    is_int(r, PROXY_H1_E_START_LINE_TOO_LONG, "start line over the limit");
    is_int(proxy_h1_error_status(r), 414, "answered 414");
    proxy_h1_parser_init(&p, PROXY_H1_REQUEST, &lim, 0);
    is_int(proxy_h1_head_parse(&p, longline, 33), PROXY_H1_E_START_LINE_TOO_LONG,
           "start line over the limit is refused before its LF arrives");

    const char *bighead = "GET / HTTP/1.1\r\nHost: a\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    proxy_h1_parser_init(&p, PROXY_H1_REQUEST, &lim, 0);
    r = proxy_h1_head_parse(&p, bighead, strlen(bighead));
    is_int(r, PROXY_H1_E_HEAD_TOO_LARGE, "head over the limit");
    is_int(proxy_h1_error_status(r), 431, "answered 431");
    /* A peer that never ends its line cannot make us buffer more. */
    char junk[200];
    memset(junk, 'a', sizeof junk);
    memcpy(junk, "GET / HTTP/1.1\r\nX: ", 19);
    proxy_h1_parser_init(&p, PROXY_H1_REQUEST, &lim, 0);
    is_int(proxy_h1_head_parse(&p, junk, 65), PROXY_H1_E_HEAD_TOO_LARGE, "unterminated field line refused at the limit");

    const char *many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    proxy_h1_parser_init(&p, PROXY_H1_REQUEST, &lim, 0);
    r = proxy_h1_head_parse(&p, many, strlen(many));
    is_int(r, PROXY_H1_E_TOO_MANY_FIELDS, "three fields with max_fields 2");
    is_int(proxy_h1_error_status(r), 431, "answered 431");
    is_int(proxy_h1_error_status(PROXY_H1_E_VERSION_UNSUPPORTED), 505, "HTTP/2.0 request line answered 505");
    is_int(proxy_h1_error_status(PROXY_H1_E_TE_UNSUPPORTED), 501, "unknown transfer coding answered 501");
    is_int(proxy_h1_error_status(PROXY_H1_E_CL_AND_TE), 400, "CL+TE answered 400");
    is_str(proxy_h1_error_str(PROXY_H1_E_OBS_FOLD), "obsolete line folding", "errors have a description");
}

static void test_pipelined(void)
{
    static const char two[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n";
    struct proxy_h1_parser p;
    proxy_h1_parser_init(&p, PROXY_H1_REQUEST, NULL, 0);
    int r = proxy_h1_head_parse(&p, two, sizeof two - 1);
    ok(r > 0 && proxy_h1_span_eq_lower(two, p.head.path, "/1"), "first pipelined request");
    const char *next = two + r;
    proxy_h1_parser_init(&p, PROXY_H1_REQUEST, NULL, 0);
    int r2 = proxy_h1_head_parse(&p, next, sizeof two - 1 - (size_t)r);
    ok(r2 > 0 && r + r2 == (int)sizeof two - 1, "second pipelined request");
    ok(proxy_h1_span_eq_lower(next, p.head.authority, "b"), "second request's Host");
}

/* --- chunked --- */

struct ccase {
    const char *name;
    const char *in;
    int want;          /* 1 valid, else error */
    const char *body;  /* decoded body when valid */
    const char *trailers;
    size_t rest;       /* bytes after the body left untouched */
};

static const struct ccase ccases[] = {
    { "one chunk", "5\r\nhello\r\n0\r\n\r\n", OK, "hello", "", 0 },
    { "two chunks", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", OK, "abcde", "", 0 },
    { "upper hex", "A\r\n0123456789\r\n0\r\n\r\n", OK, "0123456789", "", 0 },
    { "leading zeros", "0005\r\nhello\r\n000\r\n\r\n", OK, "hello", "", 0 },
    { "extension", "5;name=val\r\nhello\r\n0;x\r\n\r\n", OK, "hello", "", 0 },
    { "quoted extension", "5; a=\"b;c\\\"d\"\r\nhello\r\n0\r\n\r\n", OK, "hello", "", 0 },
    { "BWS around ext", "5 ; a = b ;c\r\nhello\r\n0\r\n\r\n", OK, "hello", "", 0 },
    { "trailers", "1\r\nx\r\n0\r\nGrpc-Status: 0\r\nX-T: y\r\n\r\n", OK, "x", "Grpc-Status: 0\r\nX-T: y\r\n", 0 },
    { "next message untouched", "1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n", OK, "x", "", 16 },
    { "empty body", "0\r\n\r\n", OK, "", "", 0 },
    { "empty size", "\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_SIZE },
    { "non-hex size", "g\r\n", PROXY_H1_E_CHUNK_SIZE },
    { "negative size", "-5\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_SIZE },
    { "0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_SIZE },
    { "size overflow", "10000000000000005\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_SIZE },
    { "space after size, no ext", "5 \r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_EXT },
    { "leading space", " 5\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_SIZE },
    { "bare LF after size", "5\nhello\r\n0\r\n\r\n", PROXY_H1_E_BARE_LF },
    { "bare CR after size", "5\rhello\r\n0\r\n\r\n", PROXY_H1_E_BARE_CR },
    { "bare LF in extension", "5;a\nhello\r\n0\r\n\r\n", PROXY_H1_E_BARE_LF },
    { "bare LF in quoted ext", "5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_BARE_LF },
    { "CR in quoted ext", "5;a=\"x\ry\"\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_EXT },
    { "ext without name", "5;=x\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_EXT },
    { "ext empty value", "5;a=\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_EXT },
    { "ext bad char", "5;a=b@c\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_EXT },
    { "ext junk after quote", "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_EXT },
    { "data longer than size", "3\r\nhello\r\n0\r\n\r\n", PROXY_H1_E_CHUNK_DATA_END },
    { "data without CRLF", "5\r\nhello0\r\n\r\n", PROXY_H1_E_CHUNK_DATA_END },
    { "data ends in bare LF", "5\r\nhello\n0\r\n\r\n", PROXY_H1_E_BARE_LF },
    { "data ends in bare CR", "5\r\nhello\rX0\r\n\r\n", PROXY_H1_E_BARE_CR },
    { "last chunk bare LF", "0\n\n", PROXY_H1_E_BARE_LF },
    { "final line bare LF", "0\r\n\n", PROXY_H1_E_BARE_LF },
    { "trailer obs-fold", "0\r\nA: b\r\n c\r\n\r\n", PROXY_H1_E_TRAILER },
    { "trailer no colon", "0\r\nAb\r\n\r\n", PROXY_H1_E_TRAILER },
    { "trailer space before colon", "0\r\nA : b\r\n\r\n", PROXY_H1_E_TRAILER },
    { "trailer bare LF", "0\r\nA: b\n\r\n", PROXY_H1_E_BARE_LF },
    { "trailer NUL", "0\r\nA: \x01\r\n\r\n", PROXY_H1_E_TRAILER },
};

/* Decodes in, delivered in pieces of step bytes (0: whole). */
static int decode_all(const struct ccase *c, size_t step, char *body, size_t *body_len, char *tr, size_t *tr_len,
                      size_t *rest, const struct proxy_h1_limits *lim)
{
    struct proxy_h1_chunked d;
    proxy_h1_chunked_init(&d, lim);
    size_t len = strlen(c->in), off = 0;
    *body_len = *tr_len = 0;
    bool done = false;
    while (off < len && !done) {
        size_t n = step && len - off > step ? step : len - off;
        char *copy = malloc(n);
        memcpy(copy, c->in + off, n);
        size_t used = 0;
        while (used < n && !done) {
            struct proxy_h1_piece piece;
            ssize_t k = proxy_h1_chunked_decode(&d, copy + used, n - used, &piece);
            if (k < 0) {
                free(copy);
                return (int)k;
            }
            if (k == 0 && !piece.done) {
                free(copy);
                return 99; /* no progress: a bug */
            }
            if (piece.data) {
                memcpy(body + *body_len, piece.data, piece.len);
                *body_len += piece.len;
            }
            if (piece.trailer) {
                memcpy(tr + *tr_len, piece.trailer, piece.trailer_len);
                *tr_len += piece.trailer_len;
            }
            done = piece.done;
            used += (size_t)k;
        }
        off += used;
        free(copy);
    }
    *rest = len - off;
    return done ? 1 : 0;
}

static void test_chunked(void)
{
    for (size_t i = 0; i < sizeof ccases / sizeof ccases[0]; i++) {
        const struct ccase *c = &ccases[i];
        char body[256], tr[256];
        size_t bl, tl, rest;
        int r = decode_all(c, 0, body, &bl, tr, &tl, &rest, NULL);
        if (c->want > 0) {
            is_int(r, 1, "chunked %s: complete", c->name);
            ok(bl == strlen(c->body) && !memcmp(body, c->body, bl), "chunked %s: body", c->name);
            ok(tl == strlen(c->trailers) && !memcmp(tr, c->trailers, tl), "chunked %s: trailers", c->name);
            is_int(rest, c->rest, "chunked %s: bytes after the body untouched", c->name);
        } else {
            if (!is_int(r, c->want, "chunked %s: rejected as '%s'", c->name, proxy_h1_error_str(c->want)))
                diag("got %s", r < 0 ? proxy_h1_error_str(r) : "accepted or incomplete");
        }
        bool same = true;
        for (size_t step = 1; step < strlen(c->in) && same; step++) {
            char b2[256], t2[256];
            size_t bl2, tl2, rest2;
            int r2 = decode_all(c, step, b2, &bl2, t2, &tl2, &rest2, NULL);
            if (r2 != r || (r > 0 && (bl2 != bl || memcmp(b2, body, bl) || tl2 != tl || memcmp(t2, tr, tl) ||
                                      rest2 != rest))) {
                same = false;
                diag("step %zu: got %d", step, r2);
            }
        }
        ok(same, "chunked %s: same result in pieces of every size", c->name);
    }
    struct proxy_h1_limits lim = proxy_h1_limits_default;
    lim.max_chunk_ext = 8;
    lim.max_trailers = 10;
    char body[256], tr[256];
    size_t bl, tl, rest;
    struct ccase longext = { .name = "long ext", .in = "1;aaaaaaaaaa=b\r\nx\r\n0\r\n\r\n" };
    is_int(decode_all(&longext, 0, body, &bl, tr, &tl, &rest, &lim), PROXY_H1_E_CHUNK_EXT_TOO_LONG,
           "chunk extensions over the limit");
    struct ccase longtr = { .name = "long trailers", .in = "0\r\nA: 0123456789\r\n\r\n" };
    is_int(decode_all(&longtr, 0, body, &bl, tr, &tl, &rest, &lim), PROXY_H1_E_TRAILER_TOO_LARGE,
           "trailers over the limit");
    struct ccase manyzero = { .name = "zeros", .in = "00000000000000001\r\nx\r\n0\r\n\r\n" };
    is_int(decode_all(&manyzero, 0, body, &bl, tr, &tl, &rest, NULL), PROXY_H1_E_CHUNK_SIZE,
           "more than 15 size digits refused even when leading zeros");
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
    test_fields_and_spans();
    test_limits();
    test_pipelined();
    test_chunked();
    return done_testing();
}

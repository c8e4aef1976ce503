/*
 * logs_http_resp: the http output's response reader. Every response is fed
 * whole and split at every byte position, and must give the same answer:
 * status, whether the connection may be reused, and where the response ends
 * (bytes after it are not taken).
 */
#include "tap.h"

#include "../../modules/logs/logs_http_resp.c"

struct want {
    int rc;          /* 1 complete, 0 needs more, -1 refused */
    int status;
    bool keep_alive;
};

/* Feeds text in two pieces split at cut; returns the result and the bytes
 * taken in total. */
static int feed_split(struct logs_http_resp *r, const char *text, size_t len, size_t cut, size_t *taken)
{
    logs_http_resp_init(r);
    size_t used = 0;
    int rc = logs_http_resp_feed(r, text, cut, &used);
    *taken = used;
    if (rc != 0)
        return rc;
    rc = logs_http_resp_feed(r, text + cut, len - cut, &used);
    *taken += used;
    return rc;
}

static void check(const char *name, const char *text, size_t resp_len, struct want w)
{
    static struct logs_http_resp r;
    size_t len = strlen(text);
    int bad = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        size_t taken = 0;
        int rc = feed_split(&r, text, len, cut, &taken);
        if (rc != w.rc || (rc == 1 && (r.status != w.status || r.keep_alive != w.keep_alive || taken != resp_len))) {
            if (!bad++)
                diag("%s: split at %zu: rc %d status %d keep %d taken %zu (%s)", name, cut, rc, r.status, r.keep_alive,
                     taken, r.error ? r.error : "");
        }
    }
    ok(!bad, "%s: same answer at every split", name);
}

static void test_eof(void)
{
    static struct logs_http_resp r;
    const char *t = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body";
    size_t used;
    logs_http_resp_init(&r);
    is_int(logs_http_resp_feed(&r, t, strlen(t), &used), 0, "no length: the body runs to the close");
    ok(!r.keep_alive, "and the connection cannot be reused");
    is_int(logs_http_resp_eof(&r), 1, "the close completes it");
    logs_http_resp_init(&r);
    t = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    logs_http_resp_feed(&r, t, strlen(t), &used);
    is_int(logs_http_resp_eof(&r), -1, "a close inside a Content-Length body is an error");
    ok(r.error && strstr(r.error, "inside the response"), "named: %s", r.error);
    logs_http_resp_init(&r);
    is_int(logs_http_resp_eof(&r), -1, "a close before any byte is an error");
}

int main(void)
{
    const char *ka = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    check("content-length", ka, strlen(ka), (struct want){1, 200, true});
    const char *more = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n";
    check("bytes after the response are not taken", more, strlen(ka), (struct want){1, 200, true});
    const char *cl = "HTTP/1.1 503 Busy\r\nconnection: Close\r\ncontent-length: 5\r\n\r\nbusy!";
    check("Connection: close", cl, strlen(cl), (struct want){1, 503, false});
    const char *tok = "HTTP/1.1 200 OK\r\nConnection: foo, close ,bar\r\nContent-Length: 0\r\n\r\n";
    check("close among other tokens", tok, strlen(tok), (struct want){1, 200, false});
    const char *h10 = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    check("HTTP/1.0 closes by default", h10, strlen(h10), (struct want){1, 200, false});
    const char *h10k = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
    check("HTTP/1.0 with keep-alive", h10k, strlen(h10k), (struct want){1, 200, true});
    const char *ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n"
                     "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
    check("chunked (over Content-Length), extensions and trailers", ch, strlen(ch), (struct want){1, 200, true});
    const char *lf = "HTTP/1.1 200 OK\nContent-Length: 1\n\nx";
    check("bare LF line ends", lf, strlen(lf), (struct want){1, 200, true});
    const char *cont = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    check("an interim 100 before the response", cont, strlen(cont), (struct want){1, 201, true});
    const char *nc = "HTTP/1.1 204 No Content\r\n\r\n";
    check("204 has no body", nc, strlen(nc), (struct want){1, 204, true});
    check("partial head", "HTTP/1.1 200 OK\r\nContent-Le", 0, (struct want){0, 0, false});
    check("partial chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 0,
          (struct want){0, 0, false});
    check("not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", 0, (struct want){-1, 0, false});
    check("bad status", "HTTP/1.1 2x0 OK\r\n\r\n", 0, (struct want){-1, 0, false});
    check("conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0,
          (struct want){-1, 0, false});
    check("bad length", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", 0, (struct want){-1, 0, false});
    check("huge length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", 0,
          (struct want){-1, 0, false});
    check("bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0,
          (struct want){-1, 0, false});
    check("chunk longer than its size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", 0,
          (struct want){-1, 0, false});
    check("header without colon", "HTTP/1.1 200 OK\r\nbroken\r\n\r\n", 0, (struct want){-1, 0, false});

    /* A head larger than the cap is refused, not buffered without end. */
    static struct logs_http_resp r;
    static char big[LOGS_HTTP_RESP_MAX_HEAD + 4096];
    size_t n = (size_t)sprintf(big, "HTTP/1.1 200 OK\r\n");
    while (n + 100 < sizeof big)
        n += (size_t)sprintf(big + n, "X-Filler: %080d\r\n", 0);
    size_t used;
    logs_http_resp_init(&r);
    is_int(logs_http_resp_feed(&r, big, n, &used), -1, "a head above %d bytes is refused", LOGS_HTTP_RESP_MAX_HEAD);
    is_str(r.error, "response head too large", "named");
    test_eof();
    return done_testing();
}

/*
 * admin: the request parser against a table of valid and malformed
 * requests (also delivered byte by byte), then the server on a real
 * loopback socket driven by real curl processes and raw libuv clients on
 * the same loop: every endpoint, pipelining, keep-alive, errors on the
 * wire, a slowloris client closed by the timeout while others are served,
 * the connection cap, and a clean stop (uv_loop_close() == 0).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"

#include "../../core/admin.c"
#include "../../core/admin_http.c"
#include "../../core/metrics_registry.c"

/* ------------------------------------------------------------------------ */
/* Parser                                                                    */

#define HEAD 8192
#define BODY 65536

struct pcase {
    const char *name;
    const char *in;
    enum otr_admin_parse rc;
    const char *method, *path;
    bool keep_alive;
    size_t content_length, consumed;
    const char *accept;
};

static const struct pcase pcases[] = {
    {"valid GET", "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: text/plain\r\n\r\n", OTR_ADMIN_PARSE_DONE, "GET",
     "/metrics", true, 0, 0, "text/plain"},
    {"POST with body", "POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", OTR_ADMIN_PARSE_DONE,
     "POST", "/reload", true, 5, 0, ""},
    {"body incomplete", "POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel", OTR_ADMIN_PARSE_MORE,
     "POST", "/reload", true, 5, 58, ""},
    {"pipelined: the first request only",
     "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_DONE, "GET", "/a", true,
     0, 28, ""},
    {"Connection: close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", OTR_ADMIN_PARSE_DONE, "GET", "/",
     false, 0, 0, ""},
    {"Connection list with close", "GET / HTTP/1.1\r\nHost: a\r\nconnection: TE, Close\r\n\r\n", OTR_ADMIN_PARSE_DONE,
     "GET", "/", false, 0, 0, ""},
    {"HTTP/1.0 closes by default", "GET / HTTP/1.0\r\n\r\n", OTR_ADMIN_PARSE_DONE, "GET", "/", false, 0, 0, ""},
    {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", OTR_ADMIN_PARSE_DONE, "GET", "/",
     true, 0, 0, ""},
    {"leading CRLF ignored", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_DONE, "GET", "/", true, 0, 0, ""},
    {"OWS trimmed, duplicate equal Content-Length",
     "POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length:  2 \r\nContent-Length: 2\r\n\r\nok", OTR_ADMIN_PARSE_DONE,
     "POST", "/reload", true, 2, 0, ""},
    {"two Accept fields joined", "GET / HTTP/1.1\r\nHost: a\r\nAccept: a/b\r\nAccept: c/d\r\n\r\n", OTR_ADMIN_PARSE_DONE,
     "GET", "/", true, 0, 0, "a/b, c/d"},
    {"incomplete head", "GET /metrics HTTP/1.1\r\nHost: a\r\n", OTR_ADMIN_PARSE_MORE, NULL, NULL, false, 0, 0, NULL},
    {"incomplete CR", "GET /metrics HTTP/1.1\r", OTR_ADMIN_PARSE_MORE, NULL, NULL, false, 0, 0, NULL},
    {"conflicting Content-Length",
     "POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"Content-Length list", "POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nab", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"Content-Length sign", "POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\nab", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"Content-Length empty", "POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"Content-Length huge", "POST /r HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
     OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"Transfer-Encoding", "POST /reload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     OTR_ADMIN_PARSE_UNSUPPORTED, NULL, NULL, false, 0, 0, NULL},
    {"Transfer-Encoding with Content-Length",
     "POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
     OTR_ADMIN_PARSE_UNSUPPORTED, NULL, NULL, false, 0, 0, NULL},
    {"header without colon", "GET / HTTP/1.1\r\nHost: a\r\nBogus\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"bare CR in a value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"bare LF line end", "GET / HTTP/1.1\nHost: a\n\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"bare LF in headers", "GET / HTTP/1.1\r\nHost: a\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"NUL in a value", "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"missing Host in 1.1", "GET / HTTP/1.1\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"lower-case method token is still a token", "get / HTTP/1.1\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_DONE, "get", "/",
     true, 0, 0, ""},
    {"method too long", "PROPPATCH / HTTP/1.1\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"no target", "GET  HTTP/1.1\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"absolute-form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"no version", "GET /\r\nHost: a\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
    {"garbage", "\x16\x03\x01\x02\x05\x01\x07\x01\xfc\x03\x03\r\n\r\n", OTR_ADMIN_PARSE_BAD, NULL, NULL, false, 0, 0, NULL},
};

static size_t case_len(const struct pcase *c)
{
    /* The one case with an embedded NUL ends at its final CRLF CRLF. */
    if (strcmp(c->name, "NUL in a value") == 0)
        return sizeof "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n" - 1;
    return strlen(c->in);
}

static void check_case(const struct pcase *c, const char *in, size_t len, const char *how)
{
    struct otr_admin_request req;
    enum otr_admin_parse rc = otr_admin_parse(in, len, HEAD, BODY, &req);
    if (!is_int(rc, c->rc, "%s%s: result", c->name, how))
        return;
    if (c->method) {
        is_str(req.method, c->method, "%s%s: method", c->name, how);
        is_str(req.path, c->path, "%s%s: path", c->name, how);
        is_int(req.keep_alive, c->keep_alive, "%s%s: keep-alive", c->name, how);
        is_int(req.content_length, c->content_length, "%s%s: content length", c->name, how);
        /* consumed 0 in the table: the whole input is one request. */
        is_int(req.consumed, c->consumed ? c->consumed : len, "%s%s: consumed", c->name, how);
        is_str(req.accept, c->accept, "%s%s: accept", c->name, how);
    }
}

/* Feeds a request one byte more at a time: every prefix must say MORE
 * (or already the final verdict for a malformed one), never DONE early. */
static void check_bytewise(const struct pcase *c)
{
    size_t len = case_len(c);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, c->in, len);
    bool fine = true;
    size_t i;
    for (i = 1; i < len && fine; i++) {
        struct otr_admin_request req;
        enum otr_admin_parse rc = otr_admin_parse(copy, i, HEAD, BODY, &req);
        if (rc == OTR_ADMIN_PARSE_MORE)
            continue;
        /* A malformed request may be refused as soon as its bad line is
         * complete; a valid one and the body of a pipeline must not end. */
        if (rc == c->rc && rc != OTR_ADMIN_PARSE_DONE)
            break;
        if (rc == OTR_ADMIN_PARSE_DONE && c->rc == OTR_ADMIN_PARSE_DONE && c->consumed && i >= c->consumed)
            break;
        fine = false;
    }
    ok(fine, "%s: byte by byte, no early or different verdict (at %zu)", c->name, i);
    check_case(c, copy, len, " (exact-size buffer)");
    free(copy);
}

static void test_parser(void)
{
    for (size_t i = 0; i < sizeof pcases / sizeof pcases[0]; i++) {
        check_case(&pcases[i], pcases[i].in, case_len(&pcases[i]), "");
        check_bytewise(&pcases[i]);
    }

    /* Limits. */
    struct otr_admin_request req;
    char big[HEAD + 64];
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(big + n, 'x', sizeof big - (size_t)n);
    is_int(otr_admin_parse(big, sizeof big, HEAD, BODY, &req), OTR_ADMIN_PARSE_TOO_LARGE,
           "a head over the limit without its end: too large");
    memcpy(big + HEAD + 10, "\r\n\r\n", 4);
    is_int(otr_admin_parse(big, sizeof big, HEAD, BODY, &req), OTR_ADMIN_PARSE_TOO_LARGE,
           "a complete head over the limit: too large");
    ok(req.content_length <= BODY, "a head too large is told apart from a body too large (431, not 413)");
    const char exact[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    is_int(otr_admin_parse(exact, sizeof exact - 1, sizeof exact - 1, 0, &req), OTR_ADMIN_PARSE_DONE,
           "a head exactly at the limit is fine");
    is_int(otr_admin_parse(exact, sizeof exact - 1, sizeof exact - 2, 0, &req), OTR_ADMIN_PARSE_TOO_LARGE,
           "one byte less is too large");
    const char body[] = "POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n";
    is_int(otr_admin_parse(body, sizeof body - 1, HEAD, BODY, &req), OTR_ADMIN_PARSE_TOO_LARGE,
           "a body over the limit is refused from its head alone");
    ok(req.content_length > BODY, "and reads as a body too large (413)");
    char lf[HEAD + 2];
    memset(lf, '\r', sizeof lf);
    is_int(otr_admin_parse(lf, sizeof lf, HEAD, BODY, &req), OTR_ADMIN_PARSE_BAD, "a run of CRs is bad");
    for (size_t i = 0; i < sizeof lf; i += 2)
        memcpy(lf + i, "\r\n", 2);
    is_int(otr_admin_parse(lf, sizeof lf, HEAD, BODY, &req), OTR_ADMIN_PARSE_TOO_LARGE,
           "empty lines count against the head");
}

/* ------------------------------------------------------------------------ */
/* Server: fake agent                                                        */

struct fake {
    bool ready;
    int ready_calls, metrics_calls, reload_calls;
    enum otr_metrics_format last_fmt;
    bool reload_fails;
    struct otr_registry *reg;
};

static bool fake_ready(void *arg)
{
    struct fake *f = arg;
    f->ready_calls++;
    return f->ready;
}

static void fake_metrics(void *arg, enum otr_metrics_format fmt, struct otr_buf *out)
{
    struct fake *f = arg;
    f->metrics_calls++;
    f->last_fmt = fmt;
    otr_registry_render(f->reg, fmt, otr_buf_emit, out);
}

static void fake_status(void *arg, struct otr_buf *out)
{
    otr_buf_printf(out, "{\"version\":\"test\"}");
}

static int fake_reload(void *arg, struct otr_buf *out)
{
    struct fake *f = arg;
    f->reload_calls++;
    if (!f->reload_fails)
        return 0;
    otr_buf_printf(out, "agent.conf: proxy.routes[0].timeout: expected a duration\n");
    return OTR_ECONFIG;
}

static uv_loop_t loop;
static int port;
static uv_timer_t tick;

static void tick_on_timer(uv_timer_t *t)
{
}

/* Runs the loop until *flag or ms elapse; the tick timer wakes it up. */
static bool run_until(const bool *flag, uint64_t ms)
{
    uint64_t end = uv_now(&loop) + ms;
    while (!*flag && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    return *flag;
}

/* ------------------------------------------------------------------------ */
/* curl, as a child process while the loop runs                              */

struct curl_result {
    int code;
    char *headers, *body;
};

struct proc {
    uv_process_t p;
    bool exited, closed;
    int64_t status;
};

static void proc_on_close(uv_handle_t *h)
{
    ((struct proc *)h->data)->closed = true;
}

static void proc_on_exit(uv_process_t *p, int64_t status, int sig)
{
    struct proc *pr = p->data;
    pr->exited = true;
    pr->status = sig ? -sig : status;
    uv_close((uv_handle_t *)p, proc_on_close);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    struct otr_buf b = {0};
    char chunk[4096];
    size_t n;
    otr_buf_append(&b, "", 0);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        otr_buf_append(&b, chunk, n);
    fclose(f);
    return b.p;
}

/* curl [extra...] http://127.0.0.1:<port><path> */
static void curl(const char *path, const char *const *extra, struct curl_result *res)
{
    char url[128], body[] = "/tmp/otr-admin-body-XXXXXX", hdr[] = "/tmp/otr-admin-hdr-XXXXXX",
                   code[] = "/tmp/otr-admin-code-XXXXXX";
    close(mkstemp(body));
    close(mkstemp(hdr));
    int code_fd = mkstemp(code);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    const char *args[32] = {"curl", "-sS", "--max-time", "5", "-o", body, "-D", hdr, "-w", "%{http_code}"};
    size_t n = 10;
    for (size_t i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n++] = url;
    args[n] = NULL;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, {.flags = UV_INHERIT_FD, .data.fd = code_fd}, {.flags = UV_INHERIT_FD, .data.fd = 2}};
    struct proc pr = {0};
    pr.p.data = &pr;
    uv_process_options_t opt = {
        .exit_cb = proc_on_exit, .file = "curl", .args = (char **)args, .stdio_count = 3, .stdio = stdio};
    int rc = uv_spawn(&loop, &pr.p, &opt);
    close(code_fd);
    if (rc == 0) {
        run_until(&pr.closed, 10000);
    } else {
        diag("uv_spawn curl: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&pr.p, proc_on_close);
        run_until(&pr.closed, 1000);
    }
    char *c = slurp(code);
    res->code = atoi(c);
    free(c);
    res->headers = slurp(hdr);
    res->body = slurp(body);
    unlink(body);
    unlink(hdr);
    unlink(code);
}

static void curl_free(struct curl_result *r)
{
    free(r->headers);
    free(r->body);
}

/* Whether the headers have a line starting with the given prefix. */
static bool has_header(const struct curl_result *r, const char *line)
{
    const char *p = r->headers;
    size_t n = strlen(line);
    while (p && *p) {
        if (strncasecmp(p, line, n) == 0)
            return true;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Raw clients on the same loop                                              */

struct raw {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_timer_t drip;
    const char *drip_data;
    size_t drip_pos, drip_len;
    char rx[65536];
    size_t rxlen;
    bool connected, eof, closed;
    int err;
    uint64_t t_connect, t_eof;
};

struct raw_write {
    uv_write_t w;
    char data[];
};

static void raw_on_close(uv_handle_t *h)
{
    struct raw *r = h->data;
    if (h == (uv_handle_t *)&r->tcp)
        r->closed = true;
}

static void raw_on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    struct raw *r = h->data;
    *b = uv_buf_init(r->rx + r->rxlen, (unsigned)(sizeof r->rx - 1 - r->rxlen));
}

static void raw_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct raw *r = s->data;
    if (n > 0) {
        r->rxlen += (size_t)n;
        r->rx[r->rxlen] = '\0';
    } else if (n < 0) {
        r->eof = true;
        r->err = (int)n;
        r->t_eof = uv_now(&loop);
        uv_read_stop(s);
        uv_timer_stop(&r->drip);
    }
}

static void raw_on_connect(uv_connect_t *c, int status)
{
    struct raw *r = c->data;
    r->connected = status == 0;
    r->t_connect = uv_now(&loop);
    if (status == 0)
        uv_read_start((uv_stream_t *)&r->tcp, raw_on_alloc, raw_on_read);
    else
        r->eof = true;
}

static bool raw_open(struct raw *r)
{
    memset(r, 0, sizeof *r);
    r->tcp.data = r;
    r->drip.data = r;
    r->connect.data = r;
    uv_tcp_init(&loop, &r->tcp);
    uv_timer_init(&loop, &r->drip);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_connect(&r->connect, &r->tcp, (const struct sockaddr *)&sa, raw_on_connect);
    bool done = false;
    uint64_t end = uv_now(&loop) + 2000;
    while (!r->connected && !r->eof && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    (void)done;
    return r->connected;
}

static void raw_on_write(uv_write_t *w, int status)
{
    free(w);
}

static void raw_send(struct raw *r, const char *p, size_t n)
{
    struct raw_write *w = malloc(sizeof *w + n);
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->w, (uv_stream_t *)&r->tcp, &b, 1, raw_on_write) != 0)
        free(w);
}

static void raw_on_drip(uv_timer_t *t)
{
    struct raw *r = t->data;
    if (r->eof || r->drip_pos >= r->drip_len) {
        uv_timer_stop(t);
        return;
    }
    raw_send(r, r->drip_data + r->drip_pos++, 1);
}

static void raw_close(struct raw *r)
{
    uv_close((uv_handle_t *)&r->drip, raw_on_close);
    uv_close((uv_handle_t *)&r->tcp, raw_on_close);
    run_until(&r->closed, 1000);
}

/* Sends one request's bytes and waits for the server to close. */
static void raw_exchange(const char *req, size_t len, struct raw *r)
{
    if (!raw_open(r))
        return;
    raw_send(r, req, len);
    run_until(&r->eof, 3000);
}

/* Counts occurrences of needle in s. */
static int count_of(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ------------------------------------------------------------------------ */
/* Server tests                                                              */

static void test_endpoints(struct fake *f)
{
    struct curl_result r;
    curl("/healthz", NULL, &r);
    is_int(r.code, 200, "GET /healthz: 200");
    is_str(r.body, "ok\n", "GET /healthz: body");
    ok(has_header(&r, "Content-Length: 3\r"), "GET /healthz: Content-Length");
    ok(has_header(&r, "Content-Type: text/plain"), "GET /healthz: Content-Type");
    curl_free(&r);

    curl("/healthz", (const char *const[]){"-I", NULL}, &r);
    is_int(r.code, 200, "HEAD /healthz: 200");
    ok(has_header(&r, "Content-Length: 3\r"), "HEAD /healthz: the GET's Content-Length");
    curl_free(&r);
    struct raw head;
    static const char head_req[] = "HEAD /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    raw_exchange(head_req, sizeof head_req - 1, &head);
    ok(head.eof && head.rxlen > 4 && strcmp(head.rx + head.rxlen - 4, "\r\n\r\n") == 0,
       "HEAD /healthz: the response ends with its head, no body");
    raw_close(&head);

    f->ready = true;
    curl("/ready", NULL, &r);
    is_int(r.code, 200, "GET /ready while ready: 200");
    curl_free(&r);
    f->ready = false;
    curl("/ready", NULL, &r);
    is_int(r.code, 503, "GET /ready while not ready: 503");
    is_str(r.body, "not ready\n", "its body");
    is_int(f->ready_calls, 2, "ops->ready asked once per request");
    curl_free(&r);

    curl("/metrics", NULL, &r);
    is_int(r.code, 200, "GET /metrics: 200");
    ok(has_header(&r, "Content-Type: text/plain; version=0.0.4"), "Prometheus text content type");
    is_int(f->last_fmt, OTR_METRICS_PROMETHEUS, "ops->metrics got the Prometheus format");
    ok(strstr(r.body, "admin_test_requests_total{path=\"/x\"} 7\n") != NULL, "registry rendered in the body");
    ok(strstr(r.body, "# EOF") == NULL, "no # EOF in Prometheus text");
    curl_free(&r);

    curl("/metrics", (const char *const[]){"-H", "Accept: application/openmetrics-text; version=1.0.0", NULL}, &r);
    is_int(r.code, 200, "GET /metrics with Accept OpenMetrics: 200");
    ok(has_header(&r, "Content-Type: application/openmetrics-text; version=1.0.0"), "OpenMetrics content type");
    is_int(f->last_fmt, OTR_METRICS_OPENMETRICS, "ops->metrics got the OpenMetrics format");
    ok(strstr(r.body, "# TYPE admin_test_requests counter\n") != NULL, "OpenMetrics family name");
    size_t bl = strlen(r.body);
    ok(bl >= 6 && strcmp(r.body + bl - 6, "# EOF\n") == 0, "ends with # EOF");
    is_int(f->metrics_calls, 2, "ops->metrics called once per scrape");
    curl_free(&r);

    curl("/status", NULL, &r);
    is_int(r.code, 200, "GET /status: 200");
    is_str(r.body, "{\"version\":\"test\"}", "status JSON from ops");
    ok(has_header(&r, "Content-Type: application/json"), "JSON content type");
    curl_free(&r);

    curl("/", NULL, &r);
    is_int(r.code, 200, "GET /: 200");
    ok(strstr(r.body, "<a href=\"/metrics\">") != NULL, "the status page links /metrics");
    curl_free(&r);

    curl("/reload", (const char *const[]){"-X", "POST", NULL}, &r);
    is_int(r.code, 200, "POST /reload: 200");
    is_str(r.body, "reloaded\n", "its body");
    is_int(f->reload_calls, 1, "ops->reload called");
    curl_free(&r);

    f->reload_fails = true;
    curl("/reload", (const char *const[]){"--data-binary", "why not", NULL}, &r);
    is_int(r.code, 500, "POST /reload (with a body) that fails: 500");
    is_str(r.body, "reload failed\nagent.conf: proxy.routes[0].timeout: expected a duration\n",
           "the errors are in the body");
    is_int(f->reload_calls, 2, "ops->reload called again");
    curl_free(&r);

    curl("/nope", NULL, &r);
    is_int(r.code, 404, "GET /nope: 404");
    curl_free(&r);

    curl("/healthz", (const char *const[]){"-X", "DELETE", NULL}, &r);
    is_int(r.code, 405, "DELETE /healthz: 405");
    ok(has_header(&r, "Allow: GET, HEAD\r"), "Allow: GET, HEAD");
    curl_free(&r);

    curl("/reload", NULL, &r);
    is_int(r.code, 405, "GET /reload: 405");
    ok(has_header(&r, "Allow: POST\r"), "Allow: POST");
    is_int(f->reload_calls, 2, "and no reload ran");
    curl_free(&r);
}

static void test_wire(void)
{
    struct raw r;
    static const char pipelined[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                                    "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
                                    "GET /ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    raw_exchange(pipelined, sizeof pipelined - 1, &r);
    ok(r.eof, "pipelined: closed after the request that said close");
    const char *a = strstr(r.rx, "\r\n\r\nok\n"), *b = strstr(r.rx, "404 Not Found"), *c = strstr(r.rx, "503");
    ok(a && b && c && a < b && b < c, "pipelined: three responses in request order");
    is_int(count_of(r.rx, "HTTP/1.1 "), 3, "pipelined: exactly three responses");
    ok(strstr(r.rx, "Connection: close") > b, "only the last response says close");
    raw_close(&r);

    /* Keep-alive: a second request on the same connection after the
     * first response. */
    ok(raw_open(&r), "keep-alive client connected");
    static const char one[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
    raw_send(&r, one, sizeof one - 1);
    uint64_t end = uv_now(&loop) + 2000;
    while (!strstr(r.rx, "ok\n") && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    ok(strstr(r.rx, "ok\n") && !r.eof, "first response, connection kept open");
    raw_send(&r, one, sizeof one - 1);
    end = uv_now(&loop) + 2000;
    while (count_of(r.rx, "ok\n") < 2 && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    is_int(count_of(r.rx, "HTTP/1.1 200 OK"), 2, "second response on the same connection");
    raw_close(&r);

    struct {
        const char *name, *req, *status;
    } errs[] = {
        {"header without colon", "GET / HTTP/1.1\r\nHost: a\r\nBogus\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
        {"bare LF", "GET / HTTP/1.1\nHost: a\n\n", "HTTP/1.1 400 Bad Request\r\n"},
        {"Transfer-Encoding", "POST /reload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         "HTTP/1.1 501 Not Implemented\r\n"},
        {"body too large", "POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nxxxx",
         "HTTP/1.1 413 Content Too Large\r\n"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        raw_exchange(errs[i].req, strlen(errs[i].req), &r);
        ok(strncmp(r.rx, errs[i].status, strlen(errs[i].status)) == 0, "%s on the wire: %.*s", errs[i].name,
           (int)strlen(errs[i].status) - 2, errs[i].status);
        ok(r.eof && strstr(r.rx, "Connection: close\r\n"), "%s: connection closed", errs[i].name);
        raw_close(&r);
    }

    /* A head over 8 KiB: 431, even though the client keeps sending. */
    size_t big_len = 20000;
    char *big = malloc(big_len);
    int n = snprintf(big, big_len, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(big + n, 'x', big_len - (size_t)n);
    raw_exchange(big, big_len, &r);
    ok(strncmp(r.rx, "HTTP/1.1 431 ", 13) == 0, "too large head on the wire: 431 (%.30s)", r.rx);
    ok(r.eof, "and closed");
    raw_close(&r);
    free(big);
}

static void test_slowloris(struct otr_admin *a)
{
    struct otr_admin_limits lim = otr_admin_default_limits;
    lim.timeout_ms = 1000;
    otr_admin_set_limits(a, &lim);

    struct raw slow;
    ok(raw_open(&slow), "slowloris connected");
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    slow.drip_data = req;
    slow.drip_len = sizeof req - 1;
    uv_timer_start(&slow.drip, raw_on_drip, 50, 50); /* 20 bytes/s: 4.5 s for the request */

    /* Another client is served meanwhile. */
    struct curl_result r;
    curl("/healthz", NULL, &r);
    is_int(r.code, 200, "a normal request is served while the slowloris trickles");
    ok(!slow.eof, "the slowloris is still connected then");
    curl_free(&r);

    run_until(&slow.eof, 4000);
    ok(slow.eof, "the slowloris is closed by the server");
    uint64_t held = slow.t_eof - slow.t_connect;
    ok(held >= 950 && held < 2500, "after the 1 s timeout, not before (held %llu ms)", (unsigned long long)held);
    is_int(slow.rxlen, 0, "and got no response");
    ok(slow.drip_pos < slow.drip_len, "before its request was complete (%zu of %zu bytes)", slow.drip_pos,
       slow.drip_len);
    raw_close(&slow);
    otr_admin_set_limits(a, &otr_admin_default_limits);
}

/* A client that pipelines requests and never reads the answers: the
 * server stops parsing once WRITE_HIGH bytes are queued, so memory stays
 * bounded, and the timeout closes the connection. */
static void test_unread_responses(struct otr_admin *a)
{
    struct otr_admin_limits lim = otr_admin_default_limits;
    lim.timeout_ms = 1000;
    otr_admin_set_limits(a, &lim);
    struct raw r;
    ok(raw_open(&r), "non-reading client connected");
    uv_read_stop((uv_stream_t *)&r.tcp);
    static const char one[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t n = 200000, len = n * (sizeof one - 1);
    char *many = malloc(len);
    for (size_t i = 0; i < n; i++)
        memcpy(many + i * (sizeof one - 1), one, sizeof one - 1);
    raw_send(&r, many, len);
    free(many);
    /* Watch the server's side of the connection until it is closed. */
    bool stopped = false, seen = false;
    size_t max_queued = 0, max_len = 0, max_buf = 0;
    uint64_t end = uv_now(&loop) + 5000;
    while (uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
        struct admin_conn *c = a->conns;
        if (!c) {
            if (seen)
                break;
            continue;
        }
        seen = true;
        stopped |= !c->reading && c->state == CONN_OPEN;
        max_queued = c->queued > max_queued ? c->queued : max_queued;
        max_len = c->len > max_len ? c->len : max_len;
        max_buf = c->max;
    }
    ok(seen, "the server held the connection");
    ok(stopped, "and stopped reading from it");
    ok(max_queued <= WRITE_HIGH + 1024, "responses queued in the server stay bounded (at most %zu bytes)",
       max_queued);
    ok(max_len <= max_buf, "as does its read buffer (at most %zu bytes)", max_len);
    is_int(a->n_conns, 0, "the timeout closes it");
    raw_close(&r);
    otr_admin_set_limits(a, &otr_admin_default_limits);
}

static void test_max_conns(struct otr_admin *a)
{
    struct otr_admin_limits lim = otr_admin_default_limits;
    lim.max_conns = 2;
    otr_admin_set_limits(a, &lim);
    struct raw c1, c2, c3;
    ok(raw_open(&c1) && raw_open(&c2), "two connections within the cap");
    ok(raw_open(&c3), "a third one connects (the kernel accepts it)");
    run_until(&c3.eof, 2000);
    ok(c3.eof && c3.rxlen == 0, "and is closed at once by the server");
    ok(!c1.eof && !c2.eof, "the first two stay open");
    raw_close(&c3);
    raw_close(&c1);
    raw_close(&c2);
    /* Their close reaches the server on the next turns of the loop. */
    bool never = false;
    run_until(&never, 100);
    struct curl_result r;
    curl("/healthz", NULL, &r);
    is_int(r.code, 200, "a slot is free again once they closed");
    curl_free(&r);
    otr_admin_set_limits(a, &otr_admin_default_limits);
}

static void test_server(void)
{
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_on_timer, 10, 10);

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    ok(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && getsockname(fd, (struct sockaddr *)&sa, &sl) == 0,
       "bound 127.0.0.1:0");
    port = ntohs(sa.sin_port);

    struct fake f = {.reg = otr_registry_new(1)};
    char err[128];
    otr_metric *m = otr_registry_metric(
        f.reg,
        &(struct otr_metric_desc){.name = "admin_test_requests_total", .help = "Test.", .type = OTR_METRIC_COUNTER,
                                  .label_names = (const char *const[]){"path", NULL}},
        err, sizeof err);
    otr_series_counter_add(otr_registry_series(m, 0, (const char *const[]){"/x"}), 7);
    struct otr_admin_ops ops = {
        .arg = &f, .ready = fake_ready, .metrics = fake_metrics, .status = fake_status, .reload = fake_reload};
    struct otr_admin *a;
    is_int(otr_admin_start(&loop, fd, &ops, &a), 0, "admin started on port %d", port);

    test_endpoints(&f);
    test_wire();
    test_slowloris(a);
    test_unread_responses(a);
    test_max_conns(a);

    /* Stop with a connection still open: it is closed too. */
    struct raw idle;
    ok(raw_open(&idle), "an idle client before stop");
    bool never = false;
    run_until(&never, 50);
    otr_admin_stop(a);
    run_until(&idle.eof, 1000);
    ok(idle.eof, "stop closes open connections");
    raw_close(&idle);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "uv_loop_close() == 0: every handle closed");
    otr_registry_free(f.reg);
}

int main(void)
{
    test_parser();
    test_server();
    return done_testing();
}

/*
 * The /metrics endpoint: a small HTTP/1.1 server with keep-alive (the way
 * Prometheus scrapes), one request at a time per connection. GET and HEAD
 * on the configured path render the exposition in the format the Accept
 * header asks for; anything else gets a short error status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "metrics_http_request.h"
#include "metrics_int.h"

#define REQ_MAX 8192
#define IDLE_TIMEOUT_MS 120000

struct metrics_endpoint {
    uv_tcp_t server;
    struct metrics_worker *mw;
    struct econn *conns;
    unsigned refs; /* the server handle and each connection */
};

/* The endpoint outlives its server handle while connections remain. */
static void ep_unref(struct metrics_endpoint *ep)
{
    if (--ep->refs == 0)
        free(ep);
}

struct econn {
    uv_tcp_t tcp;
    uv_timer_t idle;
    struct metrics_endpoint *ep;
    struct econn *prev, *next;
    char req[REQ_MAX];
    size_t len;
    char head[512];
    struct mbuf out; /* kept across requests: no page faults per scrape */
    uv_write_t wr;
    bool writing, close_after;
    int open; /* handles still open */
};

static void econn_on_close(uv_handle_t *h)
{
    struct econn *c = h->data;
    struct metrics_worker *mw = c->ep->mw;
    if (--c->open == 0) {
        if (c->prev)
            c->prev->next = c->next;
        else
            c->ep->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        mbuf_fini(&c->out);
        ep_unref(c->ep);
        free(c);
    }
    metrics_worker_closed(mw);
}

static void econn_close(struct econn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    uv_close((uv_handle_t *)&c->tcp, econn_on_close);
    uv_close((uv_handle_t *)&c->idle, econn_on_close);
}

static void econn_on_idle(uv_timer_t *t)
{
    econn_close(t->data);
}

static void econn_process(struct econn *c);
static void econn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void econn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct econn *c = h->data;
    *buf = uv_buf_init(c->req + c->len, (unsigned)(REQ_MAX - c->len));
}

static void econn_on_written(uv_write_t *wr, int status)
{
    struct econn *c = wr->data;
    c->writing = false;
    if (status < 0 || c->close_after) {
        econn_close(c);
        return;
    }
    /* Large bodies shrink back so one huge scrape does not pin memory. */
    if (c->out.cap > (64u << 20)) {
        mbuf_fini(&c->out);
        mbuf_init(&c->out);
    }
    c->out.len = 0;
    econn_process(c);
    if (!c->writing && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_read_start((uv_stream_t *)&c->tcp, econn_alloc, econn_on_read);
}

static void econn_send(struct econn *c, int status, const char *reason, const char *ctype, const char *extra,
                       bool head_only)
{
    int n = snprintf(c->head, sizeof c->head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n", status, reason, ctype,
                     c->out.len, extra ? extra : "", c->close_after ? "Connection: close\r\n" : "");
    uv_buf_t bufs[2] = {uv_buf_init(c->head, (unsigned)n), uv_buf_init(c->out.p, (unsigned)c->out.len)};
    c->writing = true;
    c->wr.data = c;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, bufs, head_only || !c->out.len ? 1 : 2, econn_on_written) < 0) {
        c->writing = false;
        econn_close(c);
    }
}

static void econn_error(struct econn *c, int status, const char *reason, bool close)
{
    c->close_after |= close;
    c->out.len = 0;
    mbuf_adds(&c->out, reason);
    mbuf_addc(&c->out, '\n');
    econn_send(c, status, reason, "text/plain; charset=utf-8", status == 405 ? "Allow: GET, HEAD\r\n" : NULL, false);
}

/* Handles one complete request head at the start of c->req, if any. */
static void econn_process(struct econn *c)
{
    struct mreq r;
    int rc = mreq_parse(c->req, c->len, &r);
    if (rc == 0) {
        if (c->len == REQ_MAX)
            econn_error(c, 431, "Request Header Fields Too Large", true);
        return;
    }
    if (rc < 0) {
        econn_error(c, 400, "Bad Request", true);
        return;
    }
    c->close_after = !r.keep_alive;
    const char *want = c->ep->mw->st->conf->path;
    bool match = r.path_len == strlen(want) && memcmp(r.path, want, r.path_len) == 0;
    /* Consume the head now: pipelined requests after it stay queued.
     * Bodies are not expected here; rather than skip one, answer and close. */
    memmove(c->req, c->req + r.head_len, c->len - r.head_len);
    c->len -= r.head_len;
    if (!match) {
        econn_error(c, 404, "Not Found", r.has_body);
        return;
    }
    if (!r.get && !r.head) {
        econn_error(c, 405, "Method Not Allowed", r.has_body);
        return;
    }
    if (r.has_body) {
        econn_error(c, 400, "Bad Request", true);
        return;
    }
    enum mexpo_format fmt = mexpo_negotiate(r.has_accept ? r.accept : NULL);
    c->out.len = 0;
    metrics_expose(c->ep->mw, fmt, 0, &c->out);
    econn_send(c, 200, "OK", mexpo_content_type(fmt), NULL, r.head);
}

static void econn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct econn *c = s->data;
    if (n < 0) {
        econn_close(c);
        return;
    }
    c->len += (size_t)n;
    uv_timer_again(&c->idle);
    if (!c->writing)
        econn_process(c);
}

static void ep_on_connection(uv_stream_t *server, int status)
{
    struct metrics_endpoint *ep = server->data;
    struct metrics_worker *mw = ep->mw;
    if (status < 0 || mw->draining)
        return;
    struct econn *c = xcalloc(1, sizeof *c);
    c->ep = ep;
    mbuf_init(&c->out);
    uv_tcp_init(mw->loop, &c->tcp);
    uv_timer_init(mw->loop, &c->idle);
    c->tcp.data = c->idle.data = c;
    c->open = 2;
    mw->open_handles += 2;
    ep->refs++;
    c->next = ep->conns;
    if (ep->conns)
        ep->conns->prev = c;
    ep->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        econn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->idle, econn_on_idle, IDLE_TIMEOUT_MS, IDLE_TIMEOUT_MS);
    uv_read_start((uv_stream_t *)&c->tcp, econn_alloc, econn_on_read);
}

static void ep_on_close(uv_handle_t *h)
{
    struct metrics_endpoint *ep = h->data;
    struct metrics_worker *mw = ep->mw;
    ep_unref(ep);
    metrics_worker_closed(mw);
}

int metrics_endpoint_start(struct metrics_worker *mw)
{
    const struct otr_host *h = mw->st->host;
    uv_os_sock_t fd;
    int rc = h->listener_socket(mw->st->http, mw->w, &fd);
    if (rc) {
        h->log(mw->st->ctx, OTR_LOG_ERROR, "listen socket: %s", uv_strerror(rc));
        return rc;
    }
    struct metrics_endpoint *ep = xcalloc(1, sizeof *ep);
    ep->mw = mw;
    ep->refs = 1;
    uv_tcp_init(mw->loop, &ep->server);
    ep->server.data = ep;
    mw->open_handles++;
    mw->endpoint = ep;
    if ((rc = uv_tcp_open(&ep->server, fd)) != 0)
        close(fd); /* not the handle's yet; the handle itself closes on drain */
    if (rc != 0 || (rc = uv_listen((uv_stream_t *)&ep->server, 511, ep_on_connection)) != 0) {
        h->log(mw->st->ctx, OTR_LOG_ERROR, "listen on %s: %s", h->listener_address(mw->st->http), uv_strerror(rc));
        return rc;
    }
    return 0;
}

void metrics_endpoint_stop(struct metrics_worker *mw)
{
    struct metrics_endpoint *ep = mw->endpoint;
    if (!ep)
        return;
    mw->endpoint = NULL;
    for (struct econn *c = ep->conns; c; c = c->next) {
        if (c->writing)
            c->close_after = true; /* the response in flight completes first */
        else
            econn_close(c);
    }
    uv_close((uv_handle_t *)&ep->server, ep_on_close);
}

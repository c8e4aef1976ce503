/*
 * logs_out_net: the outputs over TCP: "tcp" (JSON lines), "syslog"
 * (RFC 5424 with octet-counting framing, RFC 6587), "http" (one POST per
 * batch: JSON lines, Elasticsearch _bulk or Loki push) and "forward" (to
 * another outrider, which acknowledges each batch once its own outputs
 * have it).
 *
 * A connection is made when a batch is due and kept for the next ones.
 * http keeps it too (HTTP/1.1 keep-alive) once the response was read to its
 * end, unless the server answered "Connection: close" or non-2xx, the body
 * ran to the close, or it stayed idle for keepalive_ms (0: one connection
 * per batch).
 * A kept connection the server closed meanwhile is noticed by the read side
 * while idle; if it closes just as a batch goes out (no reply byte yet),
 * the batch is sent again at once on a new connection. Any other error
 * closes it; the driver retries the batch after its backoff, on a new
 * connection.
 *
 * Acknowledgement: tcp and syslog when the kernel took the bytes (what the
 * protocols offer); http on a 2xx status; forward on "OK <seq>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logs_http_resp.h"
#include "logs_output.h"

enum net_state { NET_IDLE = 0, NET_RESOLVING, NET_CONNECTING, NET_CONNECTED, NET_CLOSING };

struct out_net {
    struct logs_output *o;
    enum net_state state;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_getaddrinfo_t gai;
    uv_timer_t timer;          /* connect and reply timeout; idle timeout between batches */
    bool in_flight;            /* a batch is out and not yet reported */
    bool awaiting_reply;       /* http, forward: written, waiting for the answer */
    bool writing;              /* a uv_write is pending */
    bool reused;               /* http: the batch went out on a kept connection */
    bool got_reply;            /* http: a byte of the response arrived */
    bool gai_pending;
    const uv_buf_t *bufs;      /* the batch being sent */
    size_t n, bytes;
    uv_buf_t *wbufs;
    size_t wcap;
    char head[512];
    struct logs_buf rbuf;
    uint64_t fwd_seq;
    struct logs_http_resp *resp; /* http only */
    char port[8];
    void (*close_done)(struct logs_output *o);
};

static void net_close_tcp(struct out_net *n);
static void net_on_closed_all(uv_handle_t *h);

/* Reports the batch in flight (once) and, on failure, drops the
 * connection. */
static void net_report(struct out_net *n, int status, const char *why)
{
    uv_timer_stop(&n->timer);
    if (status)
        net_close_tcp(n);
    if (!n->in_flight)
        return;
    n->in_flight = false;
    n->awaiting_reply = false;
    logs_output_sent(n->o, status, why);
}

static void net_connect(struct out_net *n);

static void net_on_tcp_closed(uv_handle_t *h)
{
    struct out_net *n = h->data;
    n->state = NET_IDLE;
    if (n->close_done)
        uv_close((uv_handle_t *)&n->timer, net_on_closed_all);
    else if (n->in_flight)
        net_connect(n); /* a batch came while the old connection closed */
}

static void net_close_tcp(struct out_net *n)
{
    if (n->state == NET_CONNECTING || n->state == NET_CONNECTED) {
        n->state = NET_CLOSING;
        uv_close((uv_handle_t *)&n->tcp, net_on_tcp_closed);
    }
}

static bool net_retry_stale(struct out_net *n);

static void net_on_write(uv_write_t *req, int status)
{
    struct out_net *n = req->data;
    n->writing = false;
    if (status == UV_ECANCELED)
        return; /* we closed the connection, and whoever did took care of the batch */
    if (status < 0) {
        if (!net_retry_stale(n))
            net_report(n, status, NULL);
        return;
    }
    if (!n->in_flight)
        return; /* answered (or failed) before the request was all written */
    if (n->o->conf->kind == LOGS_OUT_HTTP || n->o->conf->kind == LOGS_OUT_FORWARD)
        n->awaiting_reply = true; /* the timer keeps running for the reply */
    else
        net_report(n, 0, NULL);
}

static void net_write_batch(struct out_net *n)
{
    const struct logs_output_conf *c = n->o->conf;
    struct logs_output *o = n->o;
    const uv_buf_t *body = n->bufs;
    uv_buf_t one; /* the reframed batch; copied into wbufs below */
    size_t nb = n->n, bytes = n->bytes;
    /* Kinds with another framing get the batch rewritten once. */
    if (c->kind == LOGS_OUT_SYSLOG || (c->kind == LOGS_OUT_HTTP && c->http_format != LOGS_HTTP_JSON)) {
        o->fmt.n = 0;
        int rc = c->kind == LOGS_OUT_SYSLOG ? logs_format_syslog(&o->fmt, n->bufs, n->n, c->syslog_app, c->syslog_host)
                 : c->http_format == LOGS_HTTP_ES_BULK ? logs_format_es_bulk(&o->fmt, n->bufs, n->n)
                                                       : logs_format_loki(&o->fmt, n->bufs, n->n, c->loki_labels);
        if (rc) {
            net_report(n, UV_ENOMEM, "out of memory formatting a batch");
            return;
        }
        one = uv_buf_init(o->fmt.p, (unsigned)o->fmt.n);
        body = &one;
        nb = 1;
        bytes = o->fmt.n;
    }
    size_t hlen = 0;
    if (c->kind == LOGS_OUT_HTTP) {
        static const char *const types[] = {"application/x-ndjson", "application/x-ndjson", "application/json"};
        hlen = (size_t)snprintf(n->head, sizeof n->head,
                                "POST %s HTTP/1.1\r\nHost: %s:%u\r\nUser-Agent: outrider\r\nContent-Type: %s\r\n"
                                "Content-Length: %zu\r\n%s\r\n",
                                c->http_path, c->host, c->port, types[c->http_format], bytes,
                                c->keepalive_ms ? "" : "Connection: close\r\n");
        logs_http_resp_init(n->resp);
        n->got_reply = false;
    } else if (c->kind == LOGS_OUT_FORWARD) {
        hlen = (size_t)snprintf(n->head, sizeof n->head, "OTRF %llu %zu\n", (unsigned long long)++n->fwd_seq, bytes);
    }
    if (nb + 1 > n->wcap) {
        uv_buf_t *w = realloc(n->wbufs, (nb + 1) * sizeof *w);
        if (!w) {
            net_report(n, UV_ENOMEM, NULL);
            return;
        }
        n->wbufs = w;
        n->wcap = nb + 1;
    }
    size_t k = 0;
    if (hlen)
        n->wbufs[k++] = uv_buf_init(n->head, (unsigned)hlen);
    memcpy(n->wbufs + k, body, nb * sizeof *body);
    k += nb;
    n->rbuf.n = 0;
    int rc = uv_write(&n->wreq, (uv_stream_t *)&n->tcp, n->wbufs, (unsigned)k, net_on_write);
    if (rc)
        net_report(n, rc, NULL);
    else
        n->writing = true;
}

static void net_on_timeout(uv_timer_t *h)
{
    struct out_net *n = h->data;
    if (!n->in_flight) {
        net_close_tcp(n); /* a kept http connection idle for keepalive_ms */
        return;
    }
    net_report(n, UV_ETIMEDOUT, n->awaiting_reply ? "no reply in time" : "connect timed out");
}

/* A kept http connection failed before any byte of the answer: the server
 * most likely closed it as the batch went out (idle timeouts race with
 * reuse). The batch goes out again at once on a new connection, once: it
 * is at least once either way, and a real failure then counts as usual. */
static bool net_retry_stale(struct out_net *n)
{
    if (!n->in_flight || !n->reused || n->got_reply || n->close_done)
        return false;
    n->reused = false;
    n->awaiting_reply = false;
    net_close_tcp(n); /* its close callback connects again for the batch in flight */
    return true;
}

/* The response ended (complete, or at the close for a body without length). */
static void net_http_done(struct out_net *n, bool keep)
{
    int status = n->resp->status;
    char why[64];
    snprintf(why, sizeof why, "HTTP status %d", status);
    /* A connection the server will not reuse is closed first, so the next
     * batch does not go out on it; so is one still writing a request the
     * server answered early (its remaining bytes would be read as the next
     * request). */
    if (!keep || !n->resp->keep_alive || n->writing || !n->o->conf->keepalive_ms)
        net_close_tcp(n);
    net_report(n, status >= 200 && status < 300 ? 0 : UV_EPROTO, why);
    if (!n->in_flight && n->state == NET_CONNECTED)
        uv_timer_start(&n->timer, net_on_timeout, n->o->conf->keepalive_ms, 0);
}

/* Response bytes: fed to the reader as they come, never kept. */
static void net_http_read(struct out_net *n, const char *p, size_t len)
{
    if (!n->in_flight) {
        net_close_tcp(n); /* bytes nobody asked for: the connection is not reusable */
        return;
    }
    n->got_reply = true;
    size_t used;
    int rc = logs_http_resp_feed(n->resp, p, len, &used);
    if (rc < 0) {
        char why[96];
        snprintf(why, sizeof why, "bad HTTP response: %s", n->resp->error);
        net_report(n, UV_EPROTO, why);
    } else if (rc > 0) {
        net_http_done(n, used == len); /* bytes after the response: not reusable */
    }
}

/* The http server closed the connection (or it failed). */
static void net_http_closed(struct out_net *n, int status)
{
    if (!n->in_flight) {
        net_close_tcp(n); /* a kept connection closed while idle */
        return;
    }
    if (net_retry_stale(n))
        return;
    if (status == UV_EOF && n->got_reply && logs_http_resp_eof(n->resp) == 1) {
        net_http_done(n, false);
        return;
    }
    net_report(n, status, status == UV_EOF ? "peer closed the connection" : NULL);
}

/* Reads replies: "OK <seq>" lines for forward (http responses go to
 * logs_http_resp as they arrive); anything a tcp/syslog peer sends is
 * ignored. */
static void net_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct out_net *n = h->data;
    if (n->rbuf.n > 65536)
        n->rbuf.n = 0; /* nothing we wait for is that long */
    if (logs_buf_reserve(&n->rbuf, 4096)) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    /* One byte stays free for the NUL the reply parsing needs. */
    *buf = uv_buf_init(n->rbuf.p + n->rbuf.n, (unsigned)(n->rbuf.cap - n->rbuf.n - 1));
}

static void net_check_reply(struct out_net *n)
{
    const struct logs_output_conf *c = n->o->conf;
    char *nl = memchr(n->rbuf.p, '\n', n->rbuf.n);
    if (c->kind == LOGS_OUT_FORWARD) {
        while (nl) {
            unsigned long long seq;
            size_t len = (size_t)(nl - n->rbuf.p) + 1;
            bool ok = sscanf(n->rbuf.p, "OK %llu", &seq) == 1 && n->awaiting_reply && seq == n->fwd_seq;
            memmove(n->rbuf.p, n->rbuf.p + len, n->rbuf.n - len + 1); /* with the NUL */
            n->rbuf.n -= len;
            if (ok) {
                net_report(n, 0, NULL);
                return;
            }
            nl = memchr(n->rbuf.p, '\n', n->rbuf.n);
        }
        return;
    }
    if (c->kind == LOGS_OUT_TCP || c->kind == LOGS_OUT_SYSLOG)
        n->rbuf.n = 0;
}

static void net_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct out_net *n = s->data;
    bool http = n->o->conf->kind == LOGS_OUT_HTTP;
    if (nread < 0) {
        if (http) {
            net_http_closed(n, (int)nread);
        } else {
            net_report(n, (int)nread, nread == UV_EOF ? "peer closed the connection" : NULL);
        }
        net_close_tcp(n);
        return;
    }
    if (http) {
        net_http_read(n, buf->base, (size_t)nread);
        return;
    }
    n->rbuf.n += (size_t)nread;
    n->rbuf.p[n->rbuf.n] = 0;
    net_check_reply(n);
}

static void net_on_connect(uv_connect_t *req, int status)
{
    struct out_net *n = req->data;
    if (status < 0 || n->state != NET_CONNECTING) {
        net_report(n, status < 0 ? status : UV_ECANCELED, NULL);
        return;
    }
    n->state = NET_CONNECTED;
    uv_tcp_nodelay(&n->tcp, 1);
    uv_read_start((uv_stream_t *)&n->tcp, net_on_alloc, net_on_read);
    if (n->in_flight)
        net_write_batch(n);
}

static void net_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct out_net *n = req->data;
    n->gai_pending = false;
    if (n->close_done) {
        uv_freeaddrinfo(res);
        uv_close((uv_handle_t *)&n->timer, net_on_closed_all);
        return;
    }
    if (status < 0) {
        n->state = NET_IDLE;
        net_report(n, status, "cannot resolve the host");
        return;
    }
    uv_tcp_init(n->o->loop, &n->tcp);
    n->tcp.data = n;
    n->state = NET_CONNECTING;
    int rc = uv_tcp_connect(&n->creq, &n->tcp, res->ai_addr, net_on_connect);
    uv_freeaddrinfo(res);
    if (rc)
        net_report(n, rc, NULL);
}

static void net_send(struct logs_output *o, const uv_buf_t *bufs, size_t nb, size_t bytes, uint32_t records)
{
    struct out_net *n = o->impl;
    n->bufs = bufs;
    n->n = nb;
    n->bytes = bytes;
    n->in_flight = true;
    n->reused = n->state == NET_CONNECTED;
    uv_timer_start(&n->timer, net_on_timeout, o->conf->timeout_ms, 0);
    if (n->state == NET_CONNECTED)
        net_write_batch(n);
    else if (n->state == NET_IDLE)
        net_connect(n);
    /* else connecting or closing: the batch goes out once connected */
}

static void net_connect(struct out_net *n)
{
    struct logs_output *o = n->o;
    n->state = NET_RESOLVING;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    n->gai.data = n;
    int rc = uv_getaddrinfo(o->loop, &n->gai, net_on_resolved, o->conf->host, n->port, &hints);
    if (rc) {
        n->state = NET_IDLE;
        net_report(n, rc, "cannot resolve the host");
        return;
    }
    n->gai_pending = true;
}

static void net_on_closed_all(uv_handle_t *h)
{
    struct out_net *n = h->data;
    n->close_done(n->o);
}

static void net_close(struct logs_output *o, void (*done)(struct logs_output *o))
{
    struct out_net *n = o->impl;
    n->close_done = done;
    n->in_flight = false;
    uv_timer_stop(&n->timer);
    if (n->gai_pending) {
        uv_cancel((uv_req_t *)&n->gai); /* its callback closes the timer */
        return;
    }
    if (n->state == NET_CONNECTING || n->state == NET_CONNECTED)
        net_close_tcp(n); /* its close callback closes the timer */
    else if (n->state == NET_CLOSING)
        return;
    else
        uv_close((uv_handle_t *)&n->timer, net_on_closed_all);
}

static void net_free(struct logs_output *o)
{
    struct out_net *n = o->impl;
    if (!n)
        return;
    logs_buf_free(&n->rbuf);
    free(n->resp);
    free(n->wbufs);
    free(n);
}

static const struct logs_output_ops net_ops = {.send = net_send, .close = net_close, .free = net_free};

int logs_out_net_init(struct logs_output *o, char *err, size_t errlen)
{
    struct out_net *n = calloc(1, sizeof *n);
    if (!n)
        return UV_ENOMEM;
    n->o = o;
    if (o->conf->kind == LOGS_OUT_HTTP && !(n->resp = malloc(sizeof *n->resp))) {
        free(n);
        return UV_ENOMEM;
    }
    snprintf(n->port, sizeof n->port, "%u", o->conf->port);
    uv_timer_init(o->loop, &n->timer);
    n->timer.data = n;
    n->wreq.data = n;
    n->creq.data = n;
    o->impl = n;
    o->ops = &net_ops;
    return 0;
}

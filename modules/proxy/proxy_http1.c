/*
 * proxy_http1: the client side of HTTP/1.1 proxying. One request at a time
 * per connection (pipelined requests wait in the buffer, answered in
 * order); the request head is rewritten (hop-by-hop fields dropped, route
 * header edits, X-Forwarded-For, Via, framing) and bodies stream through as
 * slices of the buffers they were read into. Chunked bodies are decoded and
 * re-framed, never passed through raw: the upstream sees only chunking we
 * produced, which keeps a lenient upstream parser from disagreeing with us.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proxy.h"
#include "proxy_h2.h"
#include "proxy_lua.h"

static const char crlf[] = "\r\n";
static const char last_chunk[] = "0\r\n";
static const char last_chunk_empty[] = "0\r\n\r\n";

static void conn_close(struct proxy_conn *c);
static void conn_finish_exchange(struct proxy_conn *c);
static void conn_pump_request(struct proxy_conn *c);
static void conn_process(struct proxy_conn *c);
static bool conn_may_retry(struct proxy_conn *c, enum proxy_retry_cause cause, int status);
static void conn_retry(struct proxy_conn *c);
static void conn_discard_response(struct proxy_conn *c, struct proxy_upconn *u, size_t head_len);

/* --- pumping bodies -------------------------------------------------------- */

struct pump {
    uv_buf_t iov[PROXY_IOV_MAX];
    unsigned n;
    char (*lines)[24];
    unsigned n_lines;
};

/* An empty pump. Not an initializer: that would zero all of iov, 0.8 KiB
 * twice per request, where only the first n entries are ever read. */
static void pump_init(struct pump *pm, char (*lines)[24])
{
    pm->n = 0;
    pm->lines = lines;
    pm->n_lines = 0;
}

static void pump_add(struct pump *pm, const char *p, size_t n)
{
    if (n)
        pm->iov[pm->n++] = uv_buf_init((char *)p, (unsigned)n);
}

static bool pump_room(const struct pump *pm)
{
    return pm->n + 5 <= PROXY_IOV_MAX && pm->n_lines < PROXY_PUMP_LINES;
}

static void pump_chunk(struct pump *pm, const char *data, size_t n)
{
    char *line = pm->lines[pm->n_lines++];
    int k = snprintf(line, 24, "%zx\r\n", n);
    pump_add(pm, line, (size_t)k);
    pump_add(pm, data, n);
    pump_add(pm, crlf, 2);
}

struct body {
    uint8_t in_framing;
    bool out_chunked;
    uint64_t *left;
    struct proxy_h1_chunked *dec;
    bool *last_chunk_sent;
};

/* Moves body bytes src[*pos..len) into pm per the framing; sets *done at
 * the body's end. Returns 0 or a negative proxy_h1 error. */
static int pump_body(struct pump *pm, const struct body *b, const char *src, size_t *pos, size_t len, bool *done)
{
    while (!*done && pump_room(pm)) {
        size_t avail = len - *pos;
        switch (b->in_framing) {
        case PROXY_H1_BODY_NONE:
            *done = true;
            return 0;
        case PROXY_H1_BODY_LENGTH: {
            if (!avail)
                return 0;
            size_t k = avail < *b->left ? avail : (size_t)*b->left;
            pump_add(pm, src + *pos, k);
            *pos += k;
            *b->left -= k;
            if (!*b->left)
                *done = true;
            return 0;
        }
        case PROXY_H1_BODY_CLOSE:
            if (!avail)
                return 0;
            if (b->out_chunked)
                pump_chunk(pm, src + *pos, avail);
            else
                pump_add(pm, src + *pos, avail);
            *pos += avail;
            return 0;
        case PROXY_H1_BODY_CHUNKED: {
            if (!avail)
                return 0;
            struct proxy_h1_piece piece;
            ssize_t k = proxy_h1_chunked_decode(b->dec, src + *pos, avail, &piece);
            if (k < 0)
                return (int)k;
            *pos += (size_t)k;
            if (piece.data && piece.len)
                pump_chunk(pm, piece.data, piece.len);
            if ((piece.trailer || piece.done) && !*b->last_chunk_sent) {
                pump_add(pm, last_chunk, 3);
                *b->last_chunk_sent = true;
            }
            if (piece.trailer)
                pump_add(pm, piece.trailer, piece.trailer_len);
            if (piece.done) {
                pump_add(pm, crlf, 2);
                *done = true;
            }
            if (k == 0)
                return 0;
            break;
        }
        }
    }
    return 0;
}

/* --- generated responses ---------------------------------------------------- */

const char *proxy_status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 429: return "Too Many Requests";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 400 ? "" : "Error";
    }
}

static void conn_start_reading(struct proxy_conn *c);
static void conn_on_timer(uv_timer_t *t);
static void conn_timer_set(struct proxy_conn *c, uint64_t ms);
static void conn_timer_stop(struct proxy_conn *c);

/* How long a connection closed after an error keeps draining input. */
#define LINGER_MS 2000
/* When a new connection's timer is due at the latest (proxy_conn_accept). */
#define CONN_FIRST_DUE_MS 1000

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    struct proxy_conn *c = req->data;
    if (c->closes_pending)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* Closing with unread input makes the kernel send RST, which can
     * destroy the error response before the client read it. So read and
     * discard until the client closes too, for a short while. */
    c->lingering = true;
    c->len = 0;
    conn_start_reading(c);
    conn_timer_set(c, LINGER_MS);
}

static void conn_on_write_then_close(uv_write_t *req, int status)
{
    struct proxy_conn *c = req->data;
    c->writing = false;
    if (c->closes_pending)
        return;
    c->shut.data = c;
    if (status < 0 || uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, conn_on_shutdown) != 0)
        conn_close(c);
}

static void conn_publish(struct proxy_conn *c);

/* Answers the client with a short error and closes the connection. When
 * the response has started already, all we can do is close. */
static void conn_respond_error(struct proxy_conn *c, int status, const char *why)
{
    struct proxy_worker *pw = c->pw;
    if (c->state == CONN_CLOSING)
        return;
    proxy_h1h2_end(c);
    proxy_delay_cancel(c->retry_delay);
    c->retry_delay = NULL;
    if (c->up) {
        c->up->reusable = false;
        proxy_upconn_close(c->up);
        c->up = NULL;
    }
    if (c->connecting) {
        /* Let the connect finish for the pool, without us. */
        c->connecting->down = NULL;
        c->connecting = NULL;
    }
    if (c->ep) {
        c->ep->active--;
        c->ep = NULL;
    }
    proxy_upstream_unqueue(c);
    pw->st->host->log(pw->st->ctx, OTR_LOG_DEBUG, "client %s: %d %s", proxy_conn_peer(c), status, why);
    if (c->resp_head_sent || c->writing) {
        c->status = c->status ? c->status : status;
        c->reason = why;
        conn_publish(c);
        conn_close(c);
        return;
    }
    c->status = status;
    c->reason = why;
    conn_publish(c);
    conn_timer_stop(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    struct proxy_head_out o = { &c->resp_head, &c->resp_head_cap, &c->resp_head_len, false };
    char line[256];
    c->resp_head_len = 0;
    int body_len = snprintf(line, sizeof line, "%s\n", why);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
                     status, proxy_status_reason(status), body_len);
    proxy_head_put(&o, head, (size_t)n);
    if (c->parser.head.method_id != PROXY_H1_M_HEAD || c->parser.state != PROXY_H1_PS_DONE)
        proxy_head_put(&o, line, (size_t)body_len);
    if (o.failed) {
        conn_close(c);
        return;
    }
    c->state = CONN_CLOSING;
    c->reading = false;
    uv_buf_t b = uv_buf_init(c->resp_head, (unsigned)c->resp_head_len);
    c->wreq.data = c;
    c->writing = true;
    c->bytes_out += b.len;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write_then_close) != 0) {
        c->writing = false;
        c->state = CONN_READ_HEAD; /* let conn_close run */
        conn_close(c);
    }
}

/* --- lifecycle --------------------------------------------------------------- */

/* Closed client connections a worker keeps, with their buffers, for the
 * next accepts: with a connection per request (Connection: close) each
 * one otherwise mallocs and frees its ~40 KiB, and glibc trims and regrows
 * its arena under that churn (madvise, mprotect). Emptied once the worker
 * has had no connection for PROXY_IDLE_TRIM_MS; nothing is kept under ASan
 * (a use after free must reach its quarantine). */
#ifdef PROXY_MEM_ASAN
#define CONN_CACHE_MAX 0
#else
#define CONN_CACHE_MAX 64
#endif
/* How long a worker without connections keeps its caches. */
#define PROXY_IDLE_TRIM_MS 1000

static void conn_free(struct proxy_conn *c)
{
    free(c->buf);
    free(c->lua);
    free(c->caller);
    proxy_cmetrics_conn_free(c);
    free(c->req_head);
    free(c->resp_head);
    free(c);
}

static void conn_release(struct proxy_worker *pw, struct proxy_conn *c)
{
    if (pw->n_conn_cache + 1 > CONN_CACHE_MAX) { /* not ">=": CONN_CACHE_MAX may be 0 */
        conn_free(c);
        return;
    }
    free(c->lua); /* scripts and mesh hops are rare: not worth keeping */
    c->lua = NULL;
    free(c->caller);
    c->caller = NULL;
    proxy_cmetrics_conn_free(c);
    c->next = pw->conn_cache;
    pw->conn_cache = c;
    pw->n_conn_cache++;
}

static void conns_cache_free(struct proxy_worker *pw)
{
    while (pw->conn_cache) {
        struct proxy_conn *c = pw->conn_cache;
        pw->conn_cache = c->next;
        conn_free(c);
    }
    pw->n_conn_cache = 0;
}

/* Zeroes c but for the tables that are always written before they are
 * read: the request parser's field table (proxy_h1_parser_init leaves it
 * too) and the chunk-size lines. They are 2.8 of the struct's 3.7 KiB, and
 * clearing them was the largest single cost of a connection per request. */
static void conn_zero(struct proxy_conn *c)
{
    enum { after_fields_end = offsetof(struct proxy_conn, parser.head.fields) + sizeof c->parser.head.fields };
    char *p = (char *)c;
    size_t fields = offsetof(struct proxy_conn, parser.head.fields);
    size_t after_fields = offsetof(struct proxy_conn, chunked);
    size_t lines = offsetof(struct proxy_conn, req_lines);
    size_t after_lines = offsetof(struct proxy_conn, t_start_ms);
    _Static_assert(offsetof(struct proxy_conn, chunked) - after_fields_end < 8, "only the field table is skipped");
    _Static_assert(offsetof(struct proxy_conn, t_start_ms) - offsetof(struct proxy_conn, req_lines) -
                       2 * sizeof c->req_lines < 8, "only the chunk-size lines are skipped");
    memset(p, 0, fields);
    memset(p + after_fields, 0, lines - after_fields);
    memset(p + after_lines, 0, sizeof *c - after_lines);
}

/* A zeroed connection with a read buffer of cap bytes, from the cache
 * when it has one (its head buffers come along), or NULL. */
static struct proxy_conn *conn_new(struct proxy_worker *pw, size_t cap)
{
    struct proxy_conn *c = pw->conn_cache;
    if (c) {
        pw->conn_cache = c->next;
        pw->n_conn_cache--;
        if (c->cap == cap) {
            char *buf = c->buf, *req_head = c->req_head, *resp_head = c->resp_head;
            size_t req_head_cap = c->req_head_cap, resp_head_cap = c->resp_head_cap;
            conn_zero(c);
            c->buf = buf;
            c->cap = cap;
            c->req_head = req_head;
            c->req_head_cap = req_head_cap;
            c->resp_head = resp_head;
            c->resp_head_cap = resp_head_cap;
            return c;
        }
        conn_free(c); /* buffer_size changed (reload) */
    }
    if (!(c = calloc(1, sizeof *c)))
        return NULL;
    c->cap = cap;
    if (!(c->buf = malloc(cap))) {
        free(c);
        return NULL;
    }
    return c;
}

void proxy_conns_idle_trim(struct proxy_worker *pw)
{
    if (pw->n_conns)
        return;
    proxy_mem_trim(&pw->mem);
    conns_cache_free(pw);
}

static void worker_on_idle_trim(uv_timer_t *t)
{
    proxy_conns_idle_trim(t->data);
}

static void conn_on_handle_closed(uv_handle_t *h)
{
    struct proxy_conn *c = h->data;
    if (--c->closes_pending)
        return;
    struct proxy_worker *pw = c->pw;
    if (c->prev)
        c->prev->next = c->next;
    else
        pw->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pw->n_conns--;
    if (pw->s_client_conns)
        pw->st->host->gauge_add(pw->s_client_conns, -1);
    proxy_h2_conn_free(c);
    conn_release(pw, c);
    if (!pw->n_conns) {
        /* Idle: give the caches back, but not at once. With a connection
         * per request the worker is often without one for a moment between
         * bursts, and refilling the cache each time cost more than the
         * rest of a connection's set-up. */
        if (pw->idle_trim_open && !uv_is_closing((uv_handle_t *)&pw->idle_trim))
            uv_timer_start(&pw->idle_trim, worker_on_idle_trim, PROXY_IDLE_TRIM_MS, 0);
        else
            proxy_conns_idle_trim(pw);
    }
    proxy_worker_maybe_drained(pw);
}

void proxy_conn_close(struct proxy_conn *c)
{
    conn_close(c);
}

void proxy_conn_respond_error(struct proxy_conn *c, int status, const char *why)
{
    conn_respond_error(c, status, why);
}

void proxy_conn_exchange_done(struct proxy_conn *c)
{
    proxy_h1h2_end(c);
    conn_finish_exchange(c);
}

void proxy_conn_read_start(struct proxy_conn *c)
{
    conn_start_reading(c);
}

/* How long a client connection may wait for its next request: the
 * configured idle timeout, or while draining until halfway to the drain
 * deadline (as HTTP/2 sessions do), and at least a short grace. Closing an
 * idle keep-alive connection races with a client sending on it; waiting
 * lets most clients send once more and be answered "Connection: close". */
static uint64_t idle_timeout(struct proxy_worker *pw)
{
    uint64_t t = pw->st->conf->client_idle_timeout;
    if (!pw->draining)
        return t;
    uint64_t half = pw->drain_timer_open ? uv_timer_get_due_in(&pw->drain_timer) / 2 : 0;
    uint64_t grace = half > PROXY_DRAIN_IDLE_GRACE_MS ? half : PROXY_DRAIN_IDLE_GRACE_MS;
    return grace < t ? grace : t;
}

void proxy_conn_idle_start(struct proxy_conn *c)
{
    conn_timer_set(c, idle_timeout(c->pw));
}

static void conn_close(struct proxy_conn *c)
{
    if (c->closes_pending)
        return;
    c->state = CONN_CLOSING;
    proxy_h2_conn_shutdown(c);
    proxy_h1h2_end(c);
    proxy_delay_cancel(c->retry_delay);
    c->retry_delay = NULL;
    if (c->up) {
        c->up->reusable = false;
        proxy_upconn_close(c->up);
        c->up = NULL;
    }
    if (c->connecting) {
        /* Let the connect finish for the pool, without us. */
        c->connecting->down = NULL;
        c->connecting = NULL;
    }
    if (c->ep) {
        c->ep->active--;
        c->ep = NULL;
    }
    proxy_upstream_unqueue(c);
    c->closes_pending = 2;
    uv_close((uv_handle_t *)&c->tcp, conn_on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_on_handle_closed);
}

/* Sets c's timeout to ms from now. A request changes it twice (request
 * timeout, then idle timeout), and restarting a libuv timer is two heap
 * operations: a timer due no later than the new deadline keeps running and,
 * when it fires early, waits for the rest (conn_on_timer). */
static void conn_timer_set(struct proxy_conn *c, uint64_t ms)
{
    c->timer_at = uv_now(c->pw->loop) + ms;
    if (uv_is_active((uv_handle_t *)&c->timer) && uv_timer_get_due_in(&c->timer) <= ms)
        return;
    uv_timer_start(&c->timer, conn_on_timer, ms, 0);
}

/* No timeout: a timer still running lapses when it fires. */
static void conn_timer_stop(struct proxy_conn *c)
{
    c->timer_at = UINT64_MAX;
}

static void conn_on_timer(uv_timer_t *t)
{
    struct proxy_conn *c = t->data;
    uint64_t now = uv_now(t->loop);
    if (now < c->timer_at) {
        /* Due earlier than the timeout set since (or none is set). */
        if (c->timer_at != UINT64_MAX)
            uv_timer_start(&c->timer, conn_on_timer, c->timer_at - now, 0);
        return;
    }
    if (c->lingering || c->state == CONN_CLOSING) {
        conn_close(c);
        return;
    }
    if (c->h2) {
        /* An HTTP/2 session idle for the whole timeout (no streams). */
        if (c->h2->n_streams == 0)
            conn_close(c);
        return;
    }
    if (c->state == CONN_READ_HEAD) {
        /* Idle between requests (or a client that never finishes its
         * head): close quietly, as servers do at keep-alive timeout. */
        conn_close(c);
        return;
    }
    /* The request timed out before the response began: the endpoint's
     * failure (its own, or the HTTP/2 stream's for an h2 cluster). */
    struct proxy_endpoint *late = c->h2st ? c->h2st->ep : c->ep;
    bool began = c->h2st ? c->h2st->resp_headers_done : c->resp_head_sent;
    if (late && !began)
        proxy_outlier_report(late, true);
    conn_respond_error(c, 504, "upstream request timeout");
}

static void conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct proxy_conn *c = h->data;
    b->base = c->buf + c->len;
    b->len = c->cap - c->len;
}

static void conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct proxy_conn *c = s->data;
    if (n == 0)
        return;
    if (c->lingering) {
        if (n < 0)
            conn_close(c);
        else
            c->len = 0;
        return;
    }
    if (n < 0) {
        /* The client is gone (or half-closed: HTTP/1.1 gives no meaning to
         * a half-close, and curl never does it). */
        if (c->state == CONN_FORWARDING || c->state == CONN_WAIT_UPSTREAM) {
            c->status = c->status ? c->status : 499;
            conn_publish(c);
        }
        conn_close(c);
        return;
    }
    if (c->h2) {
        proxy_h2_conn_on_read(c, (const uint8_t *)c->buf, (size_t)n);
        return;
    }
    c->len += (size_t)n;
    c->bytes_in += (uint64_t)n;
    if (c->len == c->cap) {
        uv_read_stop(s);
        c->reading = false;
    }
    conn_process(c);
}

static void conn_start_reading(struct proxy_conn *c)
{
    if (c->reading || c->state == CONN_CLOSING || c->len == c->cap)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read) == 0)
        c->reading = true;
}

const char *proxy_conn_peer(struct proxy_conn *c)
{
    if (c->peer_known)
        return c->peer_text;
    c->peer_known = true;
    int sl = sizeof c->peer_sa;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer_sa, &sl) == 0) {
        if (c->peer_sa.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&c->peer_sa, c->peer_text, sizeof c->peer_text);
        else if (c->peer_sa.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&c->peer_sa, c->peer_text, sizeof c->peer_text);
    }
    return c->peer_text;
}

const struct sockaddr *proxy_conn_peer_sa(struct proxy_conn *c)
{
    return proxy_conn_peer(c)[0] ? (const struct sockaddr *)&c->peer_sa : NULL;
}

/* Whether this configuration may ask for a client's address: then it is
 * looked up at once, while the connection surely has one (after a reset
 * getpeername fails). Otherwise the system call is saved, and a rare late
 * asker (a subscriber that came later, say) looks it up then. */
static bool conn_peer_wanted(const struct proxy_worker *pw, enum proxy_listener_id l)
{
    const struct proxy_state *st = pw->st;
    return st->conf->xff != PROXY_XFF_OFF || pw->mesh || st->hook || st->host->bus_has_subscribers(st->ctx, "access") ||
           proxy_cmetrics_by_address(pw, l) || st->host->log_enabled(st->ctx, OTR_LOG_DEBUG);
}

void proxy_conn_accept(struct proxy_worker *pw, uv_stream_t *server, enum proxy_listener_id l)
{
    struct proxy_state *st = pw->st;
    size_t cap = st->buffer_size;
    if (cap < st->limits.max_head + 1)
        cap = st->limits.max_head + 1;
    struct proxy_conn *c = conn_new(pw, cap);
    if (!c)
        return;
    c->pw = pw;
    c->listener = (uint8_t)l;
    uv_tcp_init(pw->loop, &c->tcp);
    uv_timer_init(pw->loop, &c->timer);
    c->tcp.data = c->timer.data = c->wreq.data = c;
    c->next = pw->conns;
    if (pw->conns)
        pw->conns->prev = c;
    pw->conns = c;
    pw->n_conns++;
    if (pw->s_client_conns)
        st->host->gauge_add(pw->s_client_conns, 1);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    /* TCP_NODELAY: inherited from the listener (proxy.c) */
    if (conn_peer_wanted(pw, l))
        proxy_conn_peer(c);
    proxy_h1_parser_init(&c->parser, PROXY_H1_REQUEST, &st->limits, 0);
    c->state = CONN_READ_HEAD;
    /* The idle timeout, with the timer due early: the request that
     * usually follows at once sets a nearer deadline (request_timeout),
     * and moving a running timer earlier costs two heap operations, while
     * one due early only waits for the rest (conn_on_timer). */
    uint64_t idle = st->conf->client_idle_timeout;
    c->timer_at = uv_now(pw->loop) + idle;
    uv_timer_start(&c->timer, conn_on_timer, idle < CONN_FIRST_DUE_MS ? idle : CONN_FIRST_DUE_MS, 0);
    conn_start_reading(c);
}

/* --- the request ------------------------------------------------------------ */

/* Writes the upstream request head into c->req_head. */
static int build_request_head(struct proxy_conn *c)
{
    const struct proxy_conf *conf = c->pw->st->conf;
    const struct proxy_h1_head *h = &c->parser.head;
    const char *b = c->buf;
    const struct proxy_route_conf *rc = c->route ? c->route->conf : NULL;
    struct proxy_head_out o = { &c->req_head, &c->req_head_cap, &c->req_head_len, false };
    c->req_head_len = 0;
    proxy_head_put(&o, b + h->method.off, h->method.len);
    proxy_head_put(&o, " ", 1);
    if (h->path.len)
        proxy_head_put(&o, b + h->path.off, h->path.len);
    else
        proxy_head_put(&o, "/", 1);
    proxy_head_put(&o, " HTTP/1.1\r\n", 11);
    const char *peer = conf->xff != PROXY_XFF_OFF ? proxy_conn_peer(c) : "";
    int last_xff = -1;
    if (conf->xff == PROXY_XFF_APPEND)
        for (uint32_t i = 0; i < h->n_fields; i++)
            if (h->fields[i].id == PROXY_H1_F_X_FORWARDED_FOR)
                last_xff = (int)i;
    bool host_sent = false;
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct proxy_h1_field *f = &h->fields[i];
        const char *name = b + f->name_off;
        if (f->flags & PROXY_H1_FIELD_HOP)
            continue;
        if (proxy_route_drops_header(rc, name, f->name_len))
            continue;
        if (c->lua && proxy_lua_sets(c->lua, name, f->name_len))
            continue;
        if (f->id == PROXY_H1_F_X_FORWARDED_FOR && conf->xff == PROXY_XFF_REPLACE)
            continue;
        if (f->id == PROXY_H1_F_HOST) {
            /* An absolute-form target overrides Host (RFC 9112 3.2.2). */
            proxy_head_field(&o, name, f->name_len, b + h->authority.off, h->authority.len);
            host_sent = true;
            continue;
        }
        if ((int)i != last_xff || !peer[0]) {
            proxy_head_field(&o, name, f->name_len, b + f->value_off, f->value_len);
            continue;
        }
        proxy_head_put(&o, name, f->name_len);
        proxy_head_put(&o, ": ", 2);
        proxy_head_put(&o, b + f->value_off, f->value_len);
        proxy_head_put(&o, ", ", 2);
        proxy_head_str(&o, peer);
        proxy_head_put(&o, crlf, 2);
    }
    if (!host_sent)
        proxy_head_field(&o, "Host", 4, b + h->authority.off, h->authority.len);
    if (rc)
        for (size_t i = 0; i < rc->add_headers.n; i++)
            proxy_head_field(&o, rc->add_headers.items[i].key, strlen(rc->add_headers.items[i].key),
                      rc->add_headers.items[i].value, strlen(rc->add_headers.items[i].value));
    for (unsigned i = 0; c->lua && i < c->lua->n_set; i++)
        proxy_head_field(&o, c->lua->store + c->lua->set[i].name_off, c->lua->set[i].name_len,
                  c->lua->store + c->lua->set[i].value_off, c->lua->set[i].value_len);
    if (conf->xff != PROXY_XFF_OFF && last_xff < 0 && peer[0])
        proxy_head_field(&o, "X-Forwarded-For", 15, peer, strlen(peer));
    if (conf->via) {
        proxy_head_str(&o, h->version_minor ? "Via: 1.1 " : "Via: 1.0 ");
        proxy_head_str(&o, conf->via_name);
        proxy_head_put(&o, crlf, 2);
    }
    if (h->framing == PROXY_H1_BODY_CHUNKED)
        proxy_head_str(&o, "Transfer-Encoding: chunked\r\n");
    proxy_head_put(&o, crlf, 2);
    return o.failed ? UV_ENOMEM : 0;
}

static bool h1_header_eq(const void *arg, const char *name, const char *value)
{
    const struct proxy_conn *c = arg;
    const struct proxy_h1_head *h = &c->parser.head;
    size_t nl = strlen(name), vl = strlen(value);
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct proxy_h1_field *f = &h->fields[i];
        if (f->name_len == nl && strncasecmp(c->buf + f->name_off, name, nl) == 0 && f->value_len == vl &&
            memcmp(c->buf + f->value_off, value, vl) == 0)
            return true;
    }
    return false;
}

static void h1_push_headers(lua_State *L, const void *arg)
{
    const struct proxy_conn *c = arg;
    const struct proxy_h1_head *h = &c->parser.head;
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct proxy_h1_field *f = &h->fields[i];
        if (!(f->flags & PROXY_H1_FIELD_HOP))
            proxy_lua_push_header(L, c->buf + f->name_off, f->name_len, c->buf + f->value_off, f->value_len);
    }
}

/* Runs the route script. Returns the cluster it chose (>= 0), -1 for no
 * choice, or -2 when the request was answered (denied). */
static int conn_run_script(struct proxy_conn *c)
{
    struct proxy_worker *pw = c->pw;
    struct proxy_state *st = pw->st;
    const struct proxy_h1_head *h = &c->parser.head;
    if (!c->lua && !(c->lua = malloc(sizeof *c->lua))) {
        conn_respond_error(c, 503, "out of memory");
        return -2;
    }
    struct proxy_caller caller;
    const struct otr_pod *pod =
        proxy_caller_get(st, proxy_conn_peer_sa(c), c->caller, true, &caller);
    struct proxy_lua_call call = {
        c->buf + h->method.off, c->buf + h->path.off, c->buf + h->authority.off, h->method.len, h->path.len,
        h->authority.len, c->listener == PROXY_OUTBOUND ? "outbound" : "inbound", "HTTP/1.1", h1_push_headers, c,
        pod, c->lua, st,
    };
    int rc = proxy_lua_route(pw, &call);
    proxy_caller_put(st, &caller);
    if (rc && st->conf->script_failure == PROXY_SCRIPT_DENY) {
        conn_respond_error(c, 503, "route script failed");
        return -2;
    }
    if (c->lua->deny) {
        c->keep_alive = false;
        conn_respond_error(c, c->lua->deny, c->lua->reason[0] ? c->lua->reason : "denied by route script");
        return -2;
    }
    return c->lua->cluster;
}

/* The mesh's verdict on the request (proxy_mesh_incoming): a cluster, -1
 * (route as usual) or -2 (answered). */
static int conn_mesh_incoming(struct proxy_conn *c)
{
    const struct proxy_h1_head *h = &c->parser.head;
    const char *value = NULL, *cvalue = NULL;
    size_t len = 0, clen = 0;
    unsigned count = 0, ccount = 0;
    if (!c->pw->mesh)
        return -1;
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct proxy_h1_field *f = &h->fields[i];
        if (f->name_len == PROXY_MESH_DST_LEN && strncasecmp(c->buf + f->name_off, PROXY_MESH_DST, f->name_len) == 0 &&
            !count++) {
            value = c->buf + f->value_off;
            len = f->value_len;
        }
        if (f->name_len == PROXY_MESH_CALLER_LEN &&
            strncasecmp(c->buf + f->name_off, PROXY_MESH_CALLER, f->name_len) == 0 && !ccount++) {
            cvalue = c->buf + f->value_off;
            clen = f->value_len;
        }
    }
    proxy_caller_take(c->pw, (enum proxy_listener_id)c->listener, proxy_conn_peer_sa(c),
                      &c->caller, cvalue, clen, ccount);
    int status;
    char why[160];
    int ci = proxy_mesh_incoming(c->pw, (enum proxy_listener_id)c->listener, false, value, len, count, proxy_conn_peer(c),
                                 &status, why, sizeof why);
    if (ci == -2)
        conn_respond_error(c, status, why);
    return ci;
}

static void conn_start_request(struct proxy_conn *c)
{
    struct proxy_worker *pw = c->pw;
    struct proxy_state *st = pw->st;
    const struct proxy_h1_head *h = &c->parser.head;
    c->t_start_ms = uv_now(pw->loop);
    c->status = 0;
    c->req_head_sent = c->req_done = c->resp_head_sent = c->resp_done = false;
    c->req_last_chunk = c->resp_last_chunk = false;
    c->up_reused = false;
    /* A body is kept in the buffer for a replay until it outgrows it or
     * retry_buffer. Not with 100-continue: the client sent the body once,
     * after a 100 it saw. */
    c->req_held = h->framing != PROXY_H1_BODY_NONE && !(h->flags & PROXY_H1_EXPECT_CONTINUE);
    c->retries = 0;
    c->avoid_ep = 0;
    c->route = NULL;
    c->wc = NULL;
    c->body_pos = h->head_len;
    c->keep_alive = h->version_minor ? !(h->flags & PROXY_H1_CONN_CLOSE) : !!(h->flags & PROXY_H1_CONN_KEEP_ALIVE);
    if (pw->draining)
        c->keep_alive = false;
    c->req_body_left = h->content_length;
    if (h->framing == PROXY_H1_BODY_CHUNKED)
        proxy_h1_chunked_init(&c->chunked, &st->limits);
    c->state = CONN_WAIT_UPSTREAM;
    if (h->flags & PROXY_H1_EXPECT_OTHER) {
        conn_respond_error(c, 417, "unsupported expectation");
        return;
    }
    if (h->method_id == PROXY_H1_M_CONNECT) {
        conn_respond_error(c, 501, "CONNECT is not supported");
        return;
    }
    int script_cluster = -1;
    if (c->lua)
        c->lua->n_set = 0;
    /* A request from another agent for a local pod goes there directly;
     * the route script still runs on it (deny, set_headers: the
     * destination's policy, with the real caller), its cluster unused. */
    int mesh_cluster = conn_mesh_incoming(c);
    if (mesh_cluster == -2)
        return;
    if (st->hook && (script_cluster = conn_run_script(c)) == -2)
        return;
    struct proxy_req_view v = { c->buf + h->method.off, c->buf + h->authority.off, c->buf + h->path.off,
                                h->method.len, h->authority.len, h->path.len, h1_header_eq, c };
    c->route = mesh_cluster < 0 ? proxy_route_match(st, (enum proxy_listener_id)c->listener, &v) : NULL;
    int ci = mesh_cluster >= 0   ? mesh_cluster
             : script_cluster >= 0 ? script_cluster
             : c->route         ? proxy_route_cluster(c->route, &pw->rng)
                                : st->default_cluster[c->listener];
    if (ci < 0) {
        conn_respond_error(c, 404, "no route");
        return;
    }
    uint64_t timeout = c->route && c->route->conf->timeout ? c->route->conf->timeout
                                                          : st->clusters[ci].conf->request_timeout;
    if (timeout)
        conn_timer_set(c, timeout);
    else
        conn_timer_stop(c);
    if (st->clusters[ci].conf->protocol == PROXY_PROTO_H2) {
        proxy_h1h2_start(c, &pw->clusters[ci]);
        return;
    }
    if (build_request_head(c) != 0) {
        conn_respond_error(c, 503, "out of memory");
        return;
    }
    pw->clusters[ci].budget_requests++;
    proxy_upstream_dispatch(c, &pw->clusters[ci]);
}

/* Parses what is buffered when waiting for a head; pushes body bytes
 * when forwarding. */
static void conn_process(struct proxy_conn *c)
{
    if (c->state == CONN_READ_HEAD && c->n_requests == 0 && c->buf[0] == 'P') {
        /* The HTTP/2 preface, on a connection's first bytes only. */
        size_t k = c->len < PROXY_H2_PREFACE_LEN ? c->len : PROXY_H2_PREFACE_LEN;
        if (memcmp(c->buf, PROXY_H2_PREFACE, k) == 0) {
            if (k < PROXY_H2_PREFACE_LEN) {
                conn_start_reading(c);
                return;
            }
            conn_timer_stop(c);
            if (proxy_h2_conn_start(c) != 0)
                conn_close(c);
            return;
        }
    }
    if (c->state == CONN_READ_HEAD) {
        int r = proxy_h1_head_parse(&c->parser, c->buf, c->len);
        if (r < 0) {
            struct proxy_worker *pw = c->pw;
            if (pw->s_errors_parse)
                pw->st->host->counter_add(pw->s_errors_parse, 1);
            char why[128];
            snprintf(why, sizeof why, "%s (byte %u)", proxy_h1_error_str(r), c->parser.err_off);
            c->keep_alive = false;
            conn_respond_error(c, proxy_h1_error_status(r), why);
            return;
        }
        if (r == 0) {
            conn_start_reading(c);
            return;
        }
        c->n_requests++;
        conn_start_request(c);
        return;
    }
    if (c->state == CONN_FORWARDING && c->h2st)
        proxy_h1h2_pump_request(c);
    else if (c->state == CONN_FORWARDING)
        conn_pump_request(c);
}

/* What the request's bytes written to u (status: 0 or the write's error)
 * lead to. Runs in the write callback, or right away when the socket took
 * everything at once. */
static void up_request_written(struct proxy_upconn *u, int status)
{
    u->writing = false;
    struct proxy_conn *c = u->down;
    if (!c || status == UV_ECANCELED)
        return;
    if (status < 0) {
        /* The response may still come (an early error reply); reading
         * will tell. The connection cannot be reused. */
        u->reusable = false;
        c->req_done = true;
        c->keep_alive = false;
        return;
    }
    /* Body bytes before body_pos were written: drop them, keeping the
     * head (the access record reads it). What follows (body not sent yet,
     * a pipelined request) moves down. A body held for a replay stays
     * while the buffer has room to read more and it is within retry_buffer. */
    size_t keep = c->parser.head.head_len;
    if (c->req_held && (c->len == c->cap || c->body_pos - keep > c->wc->c->conf->retry_buffer))
        c->req_held = false;
    if (c->body_pos > keep && !c->req_held) {
        memmove(c->buf + keep, c->buf + c->body_pos, c->len - c->body_pos);
        c->len -= c->body_pos - keep;
        c->body_pos = keep;
    }
    if (!c->req_done) {
        conn_pump_request(c);
        conn_start_reading(c);
    } else if (c->resp_done) {
        conn_finish_exchange(c);
    }
}

/* The caller's name for a hop's x-outrider-caller, kept in c->caller->hop
 * until the head is written; 0 when unknown. */
static size_t conn_hop_caller(struct proxy_conn *c)
{
    if (!c->caller && !(c->caller = calloc(1, sizeof *c->caller)))
        return 0;
    return proxy_caller_text(c->pw->st, proxy_conn_peer_sa(c), c->caller,
                             c->caller->hop);
}

static void up_on_request_written(uv_write_t *req, int status)
{
    up_request_written(req->data, status);
}

static void conn_pump_request(struct proxy_conn *c)
{
    struct proxy_upconn *u = c->up;
    if (!u || u->writing || c->state != CONN_FORWARDING)
        return;
    struct pump pm;
    pump_init(&pm, c->req_lines);
    size_t hop_len;
    const char *hop = !c->req_head_sent && c->ep ? proxy_mesh_hop(c->ep, u->mesh_hop, &hop_len) : NULL;
    if (hop) {
        /* The destination travels to the agent as the head's last field. */
        pump_add(&pm, c->req_head, c->req_head_len - 2);
        pump_add(&pm, PROXY_MESH_DST ": ", PROXY_MESH_DST_LEN + 2);
        pump_add(&pm, hop, hop_len);
        pump_add(&pm, crlf, 2);
        size_t cl = conn_hop_caller(c);
        if (cl) {
            pump_add(&pm, PROXY_MESH_CALLER ": ", PROXY_MESH_CALLER_LEN + 2);
            pump_add(&pm, c->caller->hop, cl);
            pump_add(&pm, crlf, 2);
        }
        pump_add(&pm, crlf, 2);
        c->req_head_sent = true;
        c->t_sent_ms = uv_now(c->pw->loop);
    } else if (!c->req_head_sent) {
        pump_add(&pm, c->req_head, c->req_head_len);
        c->req_head_sent = true;
        c->t_sent_ms = uv_now(c->pw->loop);
    }
    const struct proxy_h1_head *h = &c->parser.head;
    struct body b = { h->framing, true, &c->req_body_left, &c->chunked, &c->req_last_chunk };
    if (!c->req_done) {
        int r = pump_body(&pm, &b, c->buf, &c->body_pos, c->len, &c->req_done);
        if (r < 0) {
            char why[128];
            snprintf(why, sizeof why, "request body: %s", proxy_h1_error_str(r));
            c->keep_alive = false;
            conn_respond_error(c, 400, why);
            return;
        }
    }
    if (!pm.n)
        return;
    u->wreq.data = u;
    int r = proxy_write((uv_stream_t *)&u->tcp, &u->wreq, pm.iov, pm.n, up_on_request_written);
    if (r == 0)
        u->writing = true;
    else
        up_request_written(u, r < 0 ? r : 0); /* an error as from the callback: reading tells the rest */
}

void proxy_conn_upstream_ready(struct proxy_conn *c, struct proxy_upconn *u)
{
    c->connecting = NULL;
    c->up = u;
    u->down = c;
    c->up_reused = u->used;
    c->state = CONN_FORWARDING;
    u->len = u->pos = 0;
    proxy_h1_parser_init(&u->parser, PROXY_H1_RESPONSE, &c->pw->st->limits,
                         (enum proxy_h1_method)c->parser.head.method_id);
    conn_pump_request(c);
    proxy_upconn_read_start(u);
}

/* Whether a request whose attempt failed (cause; status for a response
 * head) before any response byte reached the client may be sent again:
 * the cluster retries that cause, the method is idempotent, its body (if
 * any) is still held, attempts and the retry budget are left.
 * Counts the retry when it says yes. */
static bool conn_may_retry(struct proxy_conn *c, enum proxy_retry_cause cause, int status)
{
    struct proxy_wcluster *wc = c->wc;
    const struct proxy_h1_head *h = &c->parser.head;
    const struct proxy_route_conf *rc = c->route ? c->route->conf : NULL;
    if (!wc || c->resp_head_sent || c->writing || (h->framing != PROXY_H1_BODY_NONE && !c->req_held) ||
        !proxy_retry_wanted(wc->c->conf, rc, cause, status, -1, false))
        return false;
    switch (h->method_id) {
    case PROXY_H1_M_GET: case PROXY_H1_M_HEAD: case PROXY_H1_M_OPTIONS: case PROXY_H1_M_PUT:
    case PROXY_H1_M_DELETE: case PROXY_H1_M_TRACE:
        break;
    default:
        return false;
    }
    return proxy_retry_take(wc, rc, &c->retries);
}

static void conn_on_retry_delay(void *arg)
{
    struct proxy_conn *c = arg;
    c->retry_delay = NULL;
    proxy_upstream_dispatch(c, c->wc);
}

/* Sends the request again, to another endpoint than the one that failed
 * when there is one, after the backoff delay. */
static void conn_retry(struct proxy_conn *c)
{
    c->avoid_ep = c->ep ? c->ep->id : 0;
    if (c->ep) {
        c->ep->active--;
        c->ep = NULL;
    }
    c->up = NULL;
    c->req_head_sent = false;
    c->req_done = false;
    if (c->req_held) {
        /* The body is sent again from its first byte. */
        const struct proxy_h1_head *h = &c->parser.head;
        c->body_pos = h->head_len;
        c->req_body_left = h->content_length;
        c->req_last_chunk = false;
        if (h->framing == PROXY_H1_BODY_CHUNKED)
            proxy_h1_chunked_init(&c->chunked, &c->pw->st->limits);
    }
    c->state = CONN_WAIT_UPSTREAM;
    uint64_t delay = proxy_retry_delay_ms(c->wc, c->retries);
    if (delay && (c->retry_delay = proxy_delay_start(c->pw->loop, delay, conn_on_retry_delay, c)))
        return;
    proxy_upstream_dispatch(c, c->wc);
}

/* Lets go of a response that will not be forwarded: its connection goes
 * back to the pool when the exchange on it is cleanly over (the whole,
 * known-length body is in the buffer, the request fully written), else it
 * is closed. head_len: the response head's bytes at u->pos. */
static void conn_discard_response(struct proxy_conn *c, struct proxy_upconn *u, size_t head_len)
{
    const struct proxy_h1_head *h = &u->parser.head;
    bool keep = h->version_minor ? !(h->flags & PROXY_H1_CONN_CLOSE) : !!(h->flags & PROXY_H1_CONN_KEEP_ALIVE);
    size_t rest = u->len - u->pos - head_len;
    bool whole = h->framing == PROXY_H1_BODY_NONE ? rest == 0
                 : h->framing == PROXY_H1_BODY_LENGTH && rest == h->content_length;
    c->up = NULL;
    u->reusable = keep && whole && c->req_done && !u->writing && !u->eof;
    proxy_upconn_release(u);
}

void proxy_conn_upstream_failed(struct proxy_conn *c, int status, const char *why)
{
    c->connecting = NULL; /* the failed connection is closing already */
    if (c->state != CONN_CLOSING && conn_may_retry(c, PROXY_RETRY_CAUSE_CONNECT, 0)) {
        c->pw->st->host->log(c->pw->st->ctx, OTR_LOG_DEBUG, "retrying after: %s", why);
        conn_retry(c);
        return;
    }
    if (c->ep) {
        c->ep->active--;
        c->ep = NULL;
    }
    c->up = NULL;
    c->keep_alive = false;
    conn_respond_error(c, status, why);
}

/* --- the response ------------------------------------------------------------- */

static int build_response_head(struct proxy_conn *c, const char *b, const struct proxy_h1_head *h)
{
    const struct proxy_conf *conf = c->pw->st->conf;
    const struct proxy_h1_head *rq = &c->parser.head;
    struct proxy_head_out o = { &c->resp_head, &c->resp_head_cap, &c->resp_head_len, false };
    /* The parser took exactly three digits: no printf needed. */
    char line[] = "HTTP/1.1 000 ";
    line[9] = (char)('0' + h->status / 100);
    line[10] = (char)('0' + h->status / 10 % 10);
    line[11] = (char)('0' + h->status % 10);
    c->resp_head_len = 0;
    proxy_head_put(&o, line, sizeof line - 1);
    proxy_head_put(&o, b + h->reason.off, h->reason.len);
    proxy_head_put(&o, crlf, 2);
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct proxy_h1_field *f = &h->fields[i];
        if (f->flags & PROXY_H1_FIELD_HOP)
            continue;
        proxy_head_field(&o, b + f->name_off, f->name_len, b + f->value_off, f->value_len);
    }
    if (conf->via) {
        proxy_head_str(&o, h->version_minor ? "Via: 1.1 " : "Via: 1.0 ");
        proxy_head_str(&o, conf->via_name);
        proxy_head_put(&o, crlf, 2);
    }
    if (h->status >= 200) {
        if (c->resp_out_framing == PROXY_H1_BODY_CHUNKED)
            proxy_head_str(&o, "Transfer-Encoding: chunked\r\n");
        if (!c->keep_alive)
            proxy_head_str(&o, "Connection: close\r\n");
        else if (rq->version_minor == 0)
            proxy_head_str(&o, "Connection: keep-alive\r\n");
    }
    proxy_head_put(&o, crlf, 2);
    return o.failed ? UV_ENOMEM : 0;
}

/* What the response bytes written to the client (status: 0 or the write's
 * error) lead to: in the write callback, or right away when the socket took
 * everything at once. */
static void conn_response_written(struct proxy_conn *c, int status)
{
    c->writing = false;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    struct proxy_upconn *u = c->up;
    if (u && u->pos) {
        memmove(u->buf, u->buf + u->pos, u->len - u->pos);
        u->len -= u->pos;
        u->pos = 0;
    }
    if (c->resp_done) {
        conn_finish_exchange(c);
        return;
    }
    if (u) {
        /* Reading first: forwarding more may finish the exchange and hand
         * u back to the pool. */
        proxy_upconn_read_start(u);
        proxy_conn_on_response_data(c);
    }
}

static void conn_on_response_written(uv_write_t *req, int status)
{
    conn_response_written(req->data, status);
}

/* Parses a response head at u->buf[u->pos..len). Returns 1 when a final
 * head was taken (and its bytes queued in pm), 0 when more bytes are needed,
 * -1 after answering an error or sending the request again (a status the
 * cluster retries). Interim 1xx responses are relayed. */
static int response_head(struct proxy_conn *c, struct proxy_upconn *u, struct pump *pm)
{
    for (;;) {
        int r = proxy_h1_head_parse(&u->parser, u->buf + u->pos, u->len - u->pos);
        if (r < 0) {
            char why[128];
            snprintf(why, sizeof why, "invalid upstream response: %s", proxy_h1_error_str(r));
            if (c->ep)
                proxy_outlier_report(c->ep, true);
            conn_respond_error(c, 502, why);
            return -1;
        }
        if (r == 0) {
            if (u->len == u->cap && u->pos == 0) {
                conn_respond_error(c, 502, "upstream response head too large");
                return -1;
            }
            return 0;
        }
        const struct proxy_h1_head *h = &u->parser.head;
        const char *b = u->buf + u->pos;
        if (h->status == 101) {
            conn_respond_error(c, 502, "upstream switched protocols (upgrades are not proxied)");
            return -1;
        }
        if (h->status < 200) {
            /* 100 Continue and other interim responses go to the client as
             * they are (HTTP/1.0 clients cannot take them). */
            if (c->parser.head.version_minor) {
                if (build_response_head(c, b, h) != 0) {
                    conn_respond_error(c, 502, "out of memory");
                    return -1;
                }
                /* Written alone: the final head reuses resp_head after. */
                pump_add(pm, c->resp_head, c->resp_head_len);
                u->pos += (size_t)r;
                proxy_h1_parser_init(&u->parser, PROXY_H1_RESPONSE, &c->pw->st->limits,
                                     (enum proxy_h1_method)c->parser.head.method_id);
                return 2;
            }
            u->pos += (size_t)r;
            proxy_h1_parser_init(&u->parser, PROXY_H1_RESPONSE, &c->pw->st->limits,
                                 (enum proxy_h1_method)c->parser.head.method_id);
            continue;
        }
        if (conn_may_retry(c, PROXY_RETRY_CAUSE_STATUS, h->status)) {
            c->pw->st->host->log(c->pw->st->ctx, OTR_LOG_DEBUG, "retrying after status %u from %s", h->status,
                                 c->ep ? c->ep->addr.text : "");
            conn_discard_response(c, u, (size_t)r);
            conn_retry(c);
            return -1;
        }
        bool up_keep = h->version_minor ? !(h->flags & PROXY_H1_CONN_CLOSE) : !!(h->flags & PROXY_H1_CONN_KEEP_ALIVE);
        u->reusable = up_keep && h->framing != PROXY_H1_BODY_CLOSE;
        c->resp_out_framing = h->framing;
        if (h->framing == PROXY_H1_BODY_CHUNKED || h->framing == PROXY_H1_BODY_CLOSE) {
            if (c->parser.head.version_minor) {
                c->resp_out_framing = PROXY_H1_BODY_CHUNKED;
            } else {
                c->resp_out_framing = PROXY_H1_BODY_CLOSE;
                c->keep_alive = false;
            }
        }
        c->status = h->status;
        if (c->ep)
            proxy_outlier_report(c->ep, h->status >= 500);
        if (build_response_head(c, b, h) != 0) {
            conn_respond_error(c, 502, "out of memory");
            return -1;
        }
        pump_add(pm, c->resp_head, c->resp_head_len);
        c->resp_head_sent = true;
        c->resp_body_left = h->content_length;
        if (h->framing == PROXY_H1_BODY_CHUNKED)
            proxy_h1_chunked_init(&u->chunked, &c->pw->st->limits);
        u->pos += (size_t)r;
        return 1;
    }
}

void proxy_conn_on_response_data(struct proxy_conn *c)
{
    struct proxy_upconn *u = c->up;
    if (!u || c->writing || c->state != CONN_FORWARDING)
        return;
    struct pump pm;
    pump_init(&pm, c->resp_lines);
    if (!c->resp_head_sent) {
        int r = response_head(c, u, &pm);
        if (r < 0)
            return;
    }
    if (c->resp_head_sent && !c->resp_done) {
        const struct proxy_h1_head *h = &u->parser.head;
        struct body b = { h->framing, c->resp_out_framing == PROXY_H1_BODY_CHUNKED, &c->resp_body_left, &u->chunked,
                          &c->resp_last_chunk };
        int r = pump_body(&pm, &b, u->buf, &u->pos, u->len, &c->resp_done);
        if (r < 0) {
            c->pw->st->host->log(c->pw->st->ctx, OTR_LOG_WARN, "upstream %s: response body: %s",
                                 c->ep ? proxy_endpoint_text(c->ep) : "?", proxy_h1_error_str(r));
            conn_respond_error(c, 502, "invalid upstream response body");
            return;
        }
        if (c->resp_done && u->pos != u->len)
            u->reusable = false; /* bytes after the response: not trustworthy */
        if (!c->resp_done && u->eof && h->framing == PROXY_H1_BODY_CLOSE && u->pos == u->len && pump_room(&pm)) {
            if (c->resp_out_framing == PROXY_H1_BODY_CHUNKED)
                pump_add(&pm, last_chunk_empty, 5);
            c->resp_done = true;
        }
    }
    if (!pm.n) {
        if (c->resp_done && c->req_done)
            conn_finish_exchange(c);
        return;
    }
    for (unsigned i = 0; i < pm.n; i++)
        c->bytes_out += pm.iov[i].len;
    c->wreq.data = c;
    int r = proxy_write((uv_stream_t *)&c->tcp, &c->wreq, pm.iov, pm.n, conn_on_response_written);
    if (r == 0)
        c->writing = true;
    else
        conn_response_written(c, r < 0 ? r : 0);
}

void proxy_conn_on_upstream_eof(struct proxy_conn *c, int err)
{
    struct proxy_upconn *u = c->up;
    if (!u)
        return;
    u->reusable = false;
    u->eof = true;
    if (c->resp_done)
        return;
    if (c->resp_head_sent && u->parser.head.framing == PROXY_H1_BODY_CLOSE && err == UV_EOF) {
        /* The body ran until close, as announced: on_response_data
         * flushes the rest and ends the stream. */
        proxy_conn_on_response_data(c);
        return;
    }
    if (!c->resp_head_sent && u->len == 0 && c->up_reused && c->req_done &&
        c->parser.head.framing == PROXY_H1_BODY_NONE) {
        /* A pooled connection the server had closed before our request
         * reached it: nothing was processed, so send it again on a new
         * connection (once: a new connection is never "reused"). */
        c->up = NULL;
        proxy_upconn_close(u);
        if (c->ep) {
            c->ep->active--;
            c->ep = NULL;
        }
        c->req_head_sent = false;
        c->state = CONN_WAIT_UPSTREAM;
        proxy_upstream_dispatch(c, c->wc);
        return;
    }
    if (!c->resp_head_sent && c->ep)
        proxy_outlier_report(c->ep, true); /* refused to answer: reset or closed */
    if (!c->resp_head_sent && u->len == 0 && conn_may_retry(c, PROXY_RETRY_CAUSE_RESET, 0)) {
        /* Nothing of the response came: an idempotent request without a
         * body may go to another endpoint. */
        c->up = NULL;
        proxy_upconn_close(u);
        conn_retry(c);
        return;
    }
    if (!c->resp_head_sent) {
        conn_respond_error(c, 502, err == UV_EOF ? "upstream closed the connection before responding"
                                                 : uv_strerror(err));
        return;
    }
    /* Cut mid-body: the client must see the response is incomplete. */
    c->pw->st->host->log(c->pw->st->ctx, OTR_LOG_DEBUG, "upstream closed mid-response: %s", uv_strerror(err));
    c->status = c->status ? c->status : 502;
    conn_publish(c);
    conn_close(c);
}

/* --- after the exchange -------------------------------------------------------- */

static int status_class(int status)
{
    return status >= 100 && status < 600 ? status / 100 : 0;
}

static void conn_publish(struct proxy_conn *c)
{
    struct proxy_worker *pw = c->pw;
    struct proxy_state *st = pw->st;
    const struct otr_host *host = st->host;
    uint64_t now = uv_now(pw->loop);
    double ms = (double)(now - c->t_start_ms);
    if (c->wc) {
        otr_series *s = c->wc->s_requests[status_class(c->status)];
        if (s)
            host->counter_add(s, 1);
        if (c->wc->s_duration)
            host->observe(c->wc->s_duration, ms / 1000.0);
        proxy_cmetrics_count(c, c->caller, c->wc, status_class(c->status), ms / 1000.0);
    }
    if (!host->bus_has_subscribers(st->ctx, "access"))
        return;
    const struct proxy_h1_head *h = &c->parser.head;
    const char *b = c->buf;
    const char *upstream = c->ep ? proxy_endpoint_text(c->ep) : "";
    const char *cluster = c->wc ? c->wc->c->conf->name : "";
    const char *reason = c->reason ? c->reason : "";
    c->reason = NULL;
    struct proxy_caller caller;
    const struct otr_pod *pod =
        proxy_caller_get(st, proxy_conn_peer_sa(c), c->caller, false, &caller);
    /* The head's bytes may have been compacted away after an error; only
     * trust them while the parser says the head is complete. */
    bool have_head = c->parser.state == PROXY_H1_PS_DONE && c->parser.head.head_len <= c->len;
    struct otr_field f[] = {
        { .key = "protocol", .type = OTR_VAL_STR, .v.s = { "HTTP/1.1", 8 } },
        { .key = "method", .type = OTR_VAL_STR, .v.s = { have_head ? b + h->method.off : "", have_head ? h->method.len : 0 } },
        { .key = "authority", .type = OTR_VAL_STR, .v.s = { have_head ? b + h->authority.off : "", have_head ? h->authority.len : 0 } },
        { .key = "path", .type = OTR_VAL_STR, .v.s = { have_head ? b + h->path.off : "", have_head ? h->path.len : 0 } },
        { .key = "status", .type = OTR_VAL_INT, .v.i = c->status },
        { .key = "grpc_status", .type = OTR_VAL_INT, .v.i = -1 },
        { .key = "bytes_in", .type = OTR_VAL_INT, .v.i = (int64_t)c->bytes_in },
        { .key = "bytes_out", .type = OTR_VAL_INT, .v.i = (int64_t)c->bytes_out },
        { .key = "duration_ms", .type = OTR_VAL_DOUBLE, .v.d = ms },
        { .key = "upstream", .type = OTR_VAL_STR, .v.s = { upstream, strlen(upstream) } },
        { .key = "retries", .type = OTR_VAL_INT, .v.i = c->retries },
        { .key = "cluster", .type = OTR_VAL_STR, .v.s = { cluster, strlen(cluster) } },
        { .key = "caller_namespace", .type = OTR_VAL_STR, .v.s = { pod ? pod->namespace_ : "", pod ? strlen(pod->namespace_) : 0 } },
        { .key = "caller_pod", .type = OTR_VAL_STR, .v.s = { pod ? pod->name : "", pod ? strlen(pod->name) : 0 } },
        { .key = "reason", .type = OTR_VAL_STR, .v.s = { reason, strlen(reason) } },
    };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct otr_record rec = { .time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, .fields = f,
                              .n_fields = sizeof f / sizeof f[0] };
    host->bus_publish(st->ctx, pw->w, "access", &rec);
    proxy_caller_put(st, &caller);
}

static void conn_finish_exchange(struct proxy_conn *c)
{
    struct proxy_worker *pw = c->pw;
    struct proxy_upconn *u = c->up;
    if (c->writing)
        return;
    if (!c->req_done) {
        /* The server answered before taking the whole request body (an
         * early 413, say): neither connection is in a known state. */
        c->keep_alive = false;
        if (u)
            u->reusable = false;
    } else if (u && u->writing) {
        return; /* the request's last write finishes the exchange */
    }
    conn_publish(c);
    if (c->ep) {
        uint64_t now = uv_now(pw->loop);
        proxy_lb_sample(c->ep, now, (double)(now - c->t_sent_ms));
        c->ep->active--;
        c->ep = NULL;
    }
    if (u) {
        c->up = NULL;
        proxy_upconn_release(u);
    }
    c->bytes_in = c->bytes_out = 0;
    if (!c->keep_alive) {
        conn_close(c);
        return;
    }
    /* Next request: what follows the body in the buffer is its start. */
    if (c->body_pos) {
        memmove(c->buf, c->buf + c->body_pos, c->len - c->body_pos);
        c->len -= c->body_pos;
        c->body_pos = 0;
    }
    c->state = CONN_READ_HEAD;
    c->wc = NULL;
    proxy_h1_parser_init(&c->parser, PROXY_H1_REQUEST, &pw->st->limits, 0);
    conn_timer_set(c, idle_timeout(pw));
    if (c->len)
        conn_process(c);
    else
        conn_start_reading(c);
}

/* --- draining --------------------------------------------------------------------- */

/* A keep-alive connection is not closed the moment draining starts: its
 * client may be sending the next request right now, and would see the
 * connection reset. It gets a short grace instead; a request arriving in it
 * is served with "Connection: close". Only a client idle for the whole
 * grace risks the race, as with any idle timeout. */
void proxy_conns_drain(struct proxy_worker *pw)
{
    struct proxy_conn *next;
    for (struct proxy_conn *c = pw->conns; c; c = next) {
        next = c->next;
        if (c->h2)
            proxy_h2_conn_drain(c);
        else if (c->state == CONN_READ_HEAD && c->len == 0)
            conn_timer_set(c, idle_timeout(pw));
        else if (!c->resp_head_sent)
            c->keep_alive = false;
        /* A response already announced keep-alive: the connection waits for
         * the next request, which is answered with "Connection: close". */
    }
}

void proxy_conns_close_all(struct proxy_worker *pw)
{
    struct proxy_conn *next;
    for (struct proxy_conn *c = pw->conns; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

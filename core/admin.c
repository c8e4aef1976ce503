/*
 * admin: the HTTP/1.1 admin server (see admin.h); the request parser is in
 * admin_http.c.
 *
 * A connection reads into one buffer bounded by max_head + max_body, so a
 * whole request always fits and nothing a client sends grows memory past
 * it. Requests are answered synchronously as they complete, which keeps
 * pipelined responses in order. When a client does not read its responses,
 * we stop parsing (and reading) once WRITE_HIGH bytes are queued.
 *
 * Closing after a response (an error, or Connection: close) lingers: we
 * send FIN with uv_shutdown and read and discard what the client still
 * sends until it closes or LINGER_MS pass. Closing with unread input would
 * make the kernel send RST, which can destroy the response in flight.
 */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics_registry.h"

#define WRITE_HIGH (256 * 1024)
#define LINGER_MS 2000

const struct otr_admin_limits otr_admin_default_limits = {
    .max_head = 8 * 1024,
    .max_body = 64 * 1024,
    .timeout_ms = 10 * 1000,
    .max_conns = 64,
};

enum conn_state {
    CONN_OPEN,    /* reading and answering requests */
    CONN_LINGER,  /* last response queued or sent: discard input, then close */
    CONN_CLOSING, /* handles closing */
};

struct admin_conn {
    struct otr_admin *admin;
    struct admin_conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    int open_handles;
    enum conn_state state;
    bool reading;
    bool close_after_write; /* the last queued response ends the connection */
    bool wait_newline;      /* the head is incomplete: reparse only after a LF */
    size_t need;            /* bytes needed before a reparse is useful (body) */
    size_t queued;          /* response bytes not yet written */
    size_t max_head, max_body; /* the limits when accepted */
    char *buf;
    size_t len, cap, max;
};

struct otr_admin {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listener_open;
    bool stopping;
    struct otr_admin_ops ops;
    struct otr_admin_limits lim;
    struct admin_conn *conns;
    unsigned n_conns;
};

struct write_req {
    uv_write_t req;
    struct admin_conn *conn;
    size_t len;
    char data[];
};

static void conn_process(struct admin_conn *c);
static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                  */

static void admin_maybe_free(struct otr_admin *a)
{
    if (a->stopping && !a->listener_open && a->n_conns == 0)
        free(a);
}

static void conn_on_close(uv_handle_t *h)
{
    struct admin_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    struct otr_admin *a = c->admin;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->n_conns--;
    free(c->buf);
    free(c);
    admin_maybe_free(a);
}

static void conn_close(struct admin_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    /* Pending writes and the shutdown get their callbacks with
     * UV_ECANCELED before conn_on_close runs. */
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
    uv_close((uv_handle_t *)&c->timer, conn_on_close);
}

static void conn_on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void conn_arm_timer(struct admin_conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, conn_on_timeout, ms, 0);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct admin_conn *c = h->data;
    if (c->state == CONN_LINGER)
        c->len = 0; /* input is discarded from now on */
    if (c->len == c->cap && c->cap < c->max) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        if (cap > c->max)
            cap = c->max;
        char *p = realloc(c->buf, cap);
        if (p) {
            c->buf = p;
            c->cap = cap;
        }
    }
    *out = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
    if (c->cap == c->len)
        *out = uv_buf_init(NULL, 0); /* UV_ENOBUFS: conn_on_read stops reading */
}

static void conn_read_start(struct admin_conn *c)
{
    if (c->reading || c->state == CONN_CLOSING)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read) == 0)
        c->reading = true;
    else
        conn_close(c);
}

static void conn_read_stop(struct admin_conn *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct admin_conn *c = s->data;
    if (nread == UV_ENOBUFS) {
        conn_read_stop(c); /* resumed when the buffer drains */
        return;
    }
    if (nread < 0) {
        /* EOF or an error. A half-closed client still gets the responses
         * already queued; nothing more will come, so close after them. */
        conn_read_stop(c);
        if (nread == UV_EOF && c->state == CONN_OPEN && c->queued) {
            c->close_after_write = true;
            return;
        }
        conn_close(c);
        return;
    }
    if (c->state != CONN_OPEN || nread == 0)
        return;
    const char *fresh = buf->base;
    c->len += (size_t)nread;
    if (c->wait_newline && !memchr(fresh, '\n', (size_t)nread) && c->len < c->max_head)
        return;
    if (c->need > c->len)
        return;
    conn_process(c);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    struct admin_conn *c = req->data;
    if (status < 0)
        conn_close(c);
}

/* Everything for this connection is sent: half-close and drain input. */
static void conn_linger(struct admin_conn *c)
{
    c->state = CONN_LINGER;
    c->len = 0;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, conn_on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    uint64_t ms = c->admin->lim.timeout_ms < LINGER_MS ? c->admin->lim.timeout_ms : LINGER_MS;
    conn_arm_timer(c, ms);
    conn_read_start(c);
}

static void conn_on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct admin_conn *c = w->conn;
    c->queued -= w->len;
    free(w);
    if (c->state != CONN_OPEN)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after_write) {
        if (c->queued == 0)
            conn_linger(c);
        return;
    }
    if (!c->reading)
        conn_process(c);
}

static const char *status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    }
    return "Unknown";
}

struct response {
    int status;
    const char *content_type;
    const char *allow; /* for 405 */
    struct otr_buf body;
    bool head_only; /* HEAD: headers as for GET, no body */
    bool close;
};

/* Queues one response; the write request owns a copy of the bytes. */
static void conn_respond(struct admin_conn *c, struct response *r)
{
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                      "%s%s%s%s\r\n",
                      r->status, status_reason(r->status), r->content_type, r->body.len,
                      r->allow ? "Allow: " : "", r->allow ? r->allow : "", r->allow ? "\r\n" : "",
                      r->close ? "Connection: close\r\n" : "");
    size_t blen = r->head_only ? 0 : r->body.len;
    size_t len = (size_t)hn + blen;
    struct write_req *w = malloc(sizeof *w + len);
    if (!w) {
        fprintf(stderr, "%s:%d: out of memory (%zu bytes)\n", __FILE__, __LINE__, len);
        abort();
    }
    memcpy(w->data, head, (size_t)hn);
    if (blen)
        memcpy(w->data + hn, r->body.p, blen);
    w->conn = c;
    w->len = len;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write) != 0) {
        free(w);
        conn_close(c);
        return;
    }
    c->queued += len;
    if (r->close)
        c->close_after_write = true;
}

/* ------------------------------------------------------------------------ */
/* Routes                                                                    */

static bool is_get(const struct otr_admin_request *req, struct response *r)
{
    if (strcmp(req->method, "GET") == 0)
        return true;
    if (strcmp(req->method, "HEAD") == 0) {
        r->head_only = true;
        return true;
    }
    return false;
}

static void set_text(struct response *r, int status, const char *text)
{
    r->status = status;
    r->content_type = "text/plain; charset=utf-8";
    r->body.len = 0;
    otr_buf_append(&r->body, text, strlen(text));
}

static void route_get(struct otr_admin *a, const struct otr_admin_request *req, struct response *r)
{
    const struct otr_admin_ops *ops = &a->ops;
    if (strcmp(req->path, "/healthz") == 0) {
        set_text(r, 200, "ok\n");
    } else if (strcmp(req->path, "/ready") == 0) {
        bool ready = !ops->ready || ops->ready(ops->arg);
        set_text(r, ready ? 200 : 503, ready ? "ready\n" : "not ready\n");
    } else if (strcmp(req->path, "/metrics") == 0) {
        enum otr_metrics_format fmt = otr_metrics_negotiate(req->accept[0] ? req->accept : NULL);
        r->status = 200;
        r->content_type = otr_metrics_content_type(fmt);
        if (ops->metrics)
            ops->metrics(ops->arg, fmt, &r->body);
    } else if (strcmp(req->path, "/status") == 0) {
        r->status = 200;
        r->content_type = "application/json";
        if (ops->status)
            ops->status(ops->arg, &r->body);
        else
            otr_buf_append(&r->body, "{}", 2);
    } else if (ops->html) {
        r->status = 200;
        r->content_type = "text/html; charset=utf-8";
        ops->html(ops->arg, &r->body);
    } else {
        r->status = 200;
        r->content_type = "text/html; charset=utf-8";
        otr_buf_printf(&r->body,
                       "<!DOCTYPE html>\n<html><head><title>outrider</title></head><body>\n"
                       "<h1>outrider</h1>\n<ul>\n"
                       "<li><a href=\"/status\">/status</a></li>\n"
                       "<li><a href=\"/metrics\">/metrics</a></li>\n"
                       "<li><a href=\"/ready\">/ready</a></li>\n"
                       "<li><a href=\"/healthz\">/healthz</a></li>\n"
                       "</ul>\n</body></html>\n");
    }
}

static void route(struct otr_admin *a, const struct otr_admin_request *req, struct response *r)
{
    static const char *const get_paths[] = {"/", "/healthz", "/ready", "/metrics", "/status", NULL};
    for (size_t i = 0; get_paths[i]; i++) {
        if (strcmp(req->path, get_paths[i]) != 0)
            continue;
        if (is_get(req, r)) {
            route_get(a, req, r);
        } else {
            set_text(r, 405, "method not allowed\n");
            r->allow = "GET, HEAD";
        }
        return;
    }
    if (strcmp(req->path, "/reload") == 0) {
        if (strcmp(req->method, "POST") != 0) {
            set_text(r, 405, "method not allowed\n");
            r->allow = "POST";
            return;
        }
        if (!a->ops.reload) {
            set_text(r, 501, "reload is not available\n");
            return;
        }
        struct otr_buf errors = {0};
        int rc = a->ops.reload(a->ops.arg, &errors);
        set_text(r, rc == 0 ? 200 : 500, rc == 0 ? "reloaded\n" : "reload failed\n");
        if (errors.len)
            otr_buf_append(&r->body, errors.p, errors.len);
        otr_buf_fini(&errors);
        return;
    }
    set_text(r, 404, "not found\n");
}

/* Answers a malformed request and ends the connection. */
static void conn_reject(struct admin_conn *c, enum otr_admin_parse rc, const struct otr_admin_request *req)
{
    struct response r = {.close = true};
    if (rc == OTR_ADMIN_PARSE_UNSUPPORTED)
        set_text(&r, 501, "transfer codings are not supported\n");
    else if (rc == OTR_ADMIN_PARSE_TOO_LARGE && req->content_length > c->max_body)
        set_text(&r, 413, "request body too large\n");
    else if (rc == OTR_ADMIN_PARSE_TOO_LARGE)
        set_text(&r, 431, "request head too large\n");
    else
        set_text(&r, 400, "bad request\n");
    conn_respond(c, &r);
    otr_buf_fini(&r.body);
    c->len = 0;
}

/* Answers every complete request in the buffer, in order. */
static void conn_process(struct admin_conn *c)
{
    struct otr_admin *a = c->admin;
    while (c->state == CONN_OPEN && !c->close_after_write) {
        if (c->queued > WRITE_HIGH) {
            conn_read_stop(c); /* the client is not reading: wait for conn_on_write */
            return;
        }
        struct otr_admin_request req;
        enum otr_admin_parse rc = otr_admin_parse(c->buf, c->len, c->max_head, c->max_body, &req);
        if (rc == OTR_ADMIN_PARSE_MORE) {
            c->wait_newline = req.consumed == 0;
            c->need = req.consumed;
            conn_read_start(c);
            return;
        }
        if (rc != OTR_ADMIN_PARSE_DONE) {
            conn_reject(c, rc, &req);
            return;
        }
        struct response r = {.close = !req.keep_alive};
        route(a, &req, &r);
        conn_respond(c, &r);
        otr_buf_fini(&r.body);
        memmove(c->buf, c->buf + req.consumed, c->len - req.consumed);
        c->len -= req.consumed;
        c->wait_newline = false;
        c->need = 0;
        /* A new request may take its full time from now. */
        if (c->state == CONN_OPEN)
            conn_arm_timer(c, a->lim.timeout_ms);
    }
}

/* ------------------------------------------------------------------------ */
/* Accepting                                                                 */

static void admin_on_connection(uv_stream_t *server, int status)
{
    struct otr_admin *a = server->data;
    if (status < 0 || a->stopping)
        return;
    struct admin_conn *c = calloc(1, sizeof *c);
    if (!c) {
        /* Not accepting would stall the listener for good (libuv waits for
         * the uv_accept); a small fixed allocation failing is fatal. */
        fprintf(stderr, "%s:%d: out of memory (%zu bytes)\n", __FILE__, __LINE__, sizeof *c);
        abort();
    }
    c->admin = a;
    c->max_head = a->lim.max_head;
    c->max_body = a->lim.max_body;
    c->max = c->max_head + c->max_body;
    c->tcp.data = c;
    c->timer.data = c;
    uv_tcp_init(a->loop, &c->tcp);
    uv_timer_init(a->loop, &c->timer);
    c->open_handles = 2;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || a->n_conns > a->lim.max_conns) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_arm_timer(c, a->lim.timeout_ms);
    conn_read_start(c);
}

static void admin_on_listener_close(uv_handle_t *h)
{
    struct otr_admin *a = h->data;
    a->listener_open = false;
    admin_maybe_free(a);
}

int otr_admin_start(uv_loop_t *loop, uv_os_sock_t fd, const struct otr_admin_ops *ops, struct otr_admin **out)
{
    *out = NULL;
    struct otr_admin *a = calloc(1, sizeof *a);
    if (!a)
        return UV_ENOMEM;
    a->loop = loop;
    a->ops = *ops;
    a->lim = otr_admin_default_limits;
    a->listener.data = a;
    int rc = uv_tcp_init(loop, &a->listener);
    if (rc != 0) {
        free(a);
        return rc;
    }
    a->listener_open = true;
    rc = uv_tcp_open(&a->listener, fd);
    if (rc != 0)
        close(fd); /* otherwise the handle owns it, and uv_close closes it */
    else
        rc = uv_listen((uv_stream_t *)&a->listener, 128, admin_on_connection);
    if (rc != 0) {
        /* The loop frees a when it runs the close callback. */
        a->stopping = true;
        uv_close((uv_handle_t *)&a->listener, admin_on_listener_close);
        return rc;
    }
    *out = a;
    return 0;
}

void otr_admin_set_limits(struct otr_admin *a, const struct otr_admin_limits *lim)
{
    a->lim = *lim;
}

void otr_admin_stop(struct otr_admin *a)
{
    if (!a || a->stopping)
        return;
    a->stopping = true;
    uv_close((uv_handle_t *)&a->listener, admin_on_listener_close);
    for (struct admin_conn *c = a->conns; c; c = c->next)
        conn_close(c);
}

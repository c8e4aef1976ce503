/*
 * HTTP/1.1 client for scrapes and pushes. The whole response is buffered
 * (bounded by max_body) and parsed once complete: scrape bodies are parsed
 * in one pass anyway.
 */
#include "metrics_http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metrics_buf.h"
#include "metrics_int.h"

#define HEAD_MAX 16384

struct mhttp_client {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_getaddrinfo_t resolve;
    struct addrinfo *addrs; /* a resolved name's addresses */
    struct addrinfo *next_addr;
    bool resolving;    /* the handles wait for the resolver's callback */
    bool reconnecting; /* tcp is closing, to be opened for the next address */
    uv_write_t wr;
    struct mbuf req, resp;
    size_t max_body;
    mhttp_done_cb cb;
    void *arg;
    void (*handle_closed)(void *owner);
    void *owner;
    int open;
    bool done;
    /* Known once the head is in. */
    long head_len;
    long long content_length;
    int status, chunked;
    char ctype[128];
};

static void client_on_close(uv_handle_t *h)
{
    struct mhttp_client *c = h->data;
    void (*closed)(void *) = c->handle_closed;
    void *owner = c->owner;
    if (--c->open == 0) {
        if (c->addrs)
            uv_freeaddrinfo(c->addrs);
        mbuf_fini(&c->req);
        mbuf_fini(&c->resp);
        free(c);
    }
    if (closed)
        closed(owner);
}

/* Closes both handles, but not under a pending name resolution (its
 * callback closes them) nor a tcp handle already closing to try the next
 * address (its close callback counts it). */
static void client_close_handles(struct mhttp_client *c)
{
    if (c->resolving) {
        uv_cancel((uv_req_t *)&c->resolve);
        return;
    }
    if (!c->reconnecting)
        uv_close((uv_handle_t *)&c->tcp, client_on_close);
    uv_close((uv_handle_t *)&c->timer, client_on_close);
}

/* Reports the outcome once and closes the handles. */
static void client_finish(struct mhttp_client *c, int err)
{
    if (c->done)
        return;
    c->done = true;
    uv_timer_stop(&c->timer);
    if (err == 0) {
        char *body = c->resp.p + c->head_len;
        long len = (long)(c->resp.len - (size_t)c->head_len);
        if (c->chunked)
            len = mhttp_dechunk(body, (size_t)len);
        else if (c->content_length >= 0 && len != c->content_length)
            len = -1;
        if (len < 0)
            err = UV_EPROTO;
        else
            c->cb(c->arg, 0, c->status, body, (size_t)len, c->ctype);
    }
    if (err)
        c->cb(c->arg, err, 0, NULL, 0, NULL);
    client_close_handles(c);
}

long mhttp_parse_head(const char *buf, size_t len, int *status, long long *content_length, int *chunked,
                      char *ctype, size_t ctype_cap)
{
    if (len >= 5 && memcmp(buf, "HTTP/", 5) != 0)
        return -1;
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len > HEAD_MAX ? -1 : 0;
    if (end - buf < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        st = st * 10 + (buf[i] - '0');
    }
    *status = st;
    *content_length = -1;
    *chunked = 0;
    if (ctype_cap)
        ctype[0] = '\0';
    const char *p = memchr(buf, '\n', (size_t)(end - buf));
    while (p && p < end) {
        p++;
        const char *eol = memchr(p, '\r', (size_t)(end + 2 - p));
        if (!eol)
            break;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            size_t kn = (size_t)(colon - p);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vn = (size_t)(eol - v);
            if (kn == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
                long long n = 0;
                if (vn == 0 || vn > 18)
                    return -1;
                for (size_t i = 0; i < vn; i++) {
                    if (v[i] < '0' || v[i] > '9')
                        return -1;
                    n = n * 10 + (v[i] - '0');
                }
                *content_length = n;
            } else if (kn == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
                *chunked = vn >= 7 && strncasecmp(v + vn - 7, "chunked", 7) == 0;
            } else if (kn == 12 && strncasecmp(p, "Content-Type", 12) == 0 && ctype_cap) {
                size_t n = vn < ctype_cap - 1 ? vn : ctype_cap - 1;
                memcpy(ctype, v, n);
                ctype[n] = '\0';
            }
        }
        p = eol + 1;
    }
    return (long)(end - buf) + 4;
}

long mhttp_dechunk(char *p, size_t len)
{
    size_t r = 0, w = 0;
    while (1) {
        size_t size = 0;
        int digits = 0;
        while (r < len) {
            char ch = p[r];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                                                       : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
            if (d < 0)
                break;
            if (++digits > 15)
                return -1;
            size = size * 16 + (size_t)d;
            r++;
        }
        if (digits == 0)
            return -1;
        /* Skip chunk extensions up to the CRLF. */
        char *eol = memmem(p + r, len - r, "\r\n", 2);
        if (!eol)
            return -1;
        r = (size_t)(eol - p) + 2;
        if (size == 0)
            return (long)w; /* trailers, if any, are ignored */
        if (len - r < size + 2 || p[r + size] != '\r' || p[r + size + 1] != '\n')
            return -1;
        memmove(p + w, p + r, size);
        w += size;
        r += size + 2;
    }
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct mhttp_client *c = h->data;
    char *p = mbuf_reserve(&c->resp, 65536);
    *buf = uv_buf_init(p, 65536);
}

static void client_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct mhttp_client *c = s->data;
    if (c->done)
        return;
    if (n == UV_EOF) {
        client_finish(c, c->head_len > 0 ? 0 : UV_EPROTO);
        return;
    }
    if (n < 0) {
        client_finish(c, (int)n);
        return;
    }
    c->resp.len += (size_t)n;
    if (c->head_len == 0) {
        c->head_len = mhttp_parse_head(c->resp.p, c->resp.len, &c->status, &c->content_length, &c->chunked, c->ctype,
                                       sizeof c->ctype);
        if (c->head_len < 0) {
            client_finish(c, UV_EPROTO);
            return;
        }
        if (c->content_length > (long long)c->max_body) {
            client_finish(c, UV_E2BIG);
            return;
        }
    }
    if (c->head_len > 0) {
        size_t body = c->resp.len - (size_t)c->head_len;
        if (body > c->max_body + (c->chunked ? c->max_body / 8 + 64 : 0)) {
            client_finish(c, UV_E2BIG);
            return;
        }
        if (c->content_length >= 0 && (long long)body >= c->content_length)
            client_finish(c, 0);
    }
}

static void client_on_written(uv_write_t *wr, int status)
{
    struct mhttp_client *c = wr->data;
    if (status < 0)
        client_finish(c, status);
}

static void client_on_connect(uv_connect_t *req, int status);

/* Connects to the next resolved address; false when none is left (err
 * is then the last error). */
static bool client_connect_next(struct mhttp_client *c, int *err)
{
    for (; c->next_addr; c->next_addr = c->next_addr->ai_next) {
        const struct addrinfo *a = c->next_addr;
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        c->next_addr = a->ai_next;
        if ((*err = uv_tcp_connect(&c->connect, &c->tcp, a->ai_addr, client_on_connect)) == 0)
            return true;
        return client_connect_next(c, err);
    }
    return false;
}

/* The tcp handle of a failed connect is closed; a new one tries the next
 * address (a name may resolve to several, e.g. ::1 and 127.0.0.1). */
static void client_on_tcp_reset(uv_handle_t *h)
{
    struct mhttp_client *c = h->data;
    c->reconnecting = false;
    if (c->done) {
        client_on_close(h); /* client_finish left this handle to us */
        return;
    }
    uv_tcp_init(c->loop, &c->tcp);
    c->tcp.data = c;
    int err = UV_ECONNREFUSED;
    if (!client_connect_next(c, &err))
        client_finish(c, err);
}

static void client_on_connect(uv_connect_t *req, int status)
{
    struct mhttp_client *c = req->data;
    if (c->done)
        return;
    if (status < 0 && c->next_addr) {
        c->reconnecting = true;
        uv_close((uv_handle_t *)&c->tcp, client_on_tcp_reset);
        return;
    }
    if (status < 0) {
        client_finish(c, status);
        return;
    }
    uv_buf_t b = uv_buf_init(c->req.p, (unsigned)c->req.len);
    c->wr.data = c;
    int rc = uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, client_on_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->tcp, client_alloc, client_on_read);
    if (rc < 0)
        client_finish(c, rc);
}

static void client_on_timeout(uv_timer_t *t)
{
    client_finish(t->data, UV_ETIMEDOUT);
}

static void client_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct mhttp_client *c = req->data;
    c->resolving = false;
    c->addrs = c->next_addr = res;
    if (c->done) {
        client_close_handles(c);
        return;
    }
    int err = status;
    if (status == 0 && !client_connect_next(c, &err))
        err = err ? err : UV_EAI_NONAME;
    if (err)
        client_finish(c, err);
}

struct mhttp_client *mhttp_start(uv_loop_t *loop, const struct mhttp_request *r, mhttp_done_cb cb, void *arg,
                                 void (*handle_closed)(void *owner), void *owner)
{
    struct mhttp_client *c = xcalloc(1, sizeof *c);
    c->loop = loop;
    c->cb = cb;
    c->arg = arg;
    c->max_body = r->max_body;
    c->handle_closed = handle_closed;
    c->owner = owner;
    mbuf_init(&c->req);
    mbuf_init(&c->resp);
    char line[512];
    snprintf(line, sizeof line, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: outrider-metrics\r\nConnection: close\r\n",
             r->method, r->url->path, r->url->hostport);
    mbuf_adds(&c->req, line);
    if (r->accept) {
        mbuf_adds(&c->req, "Accept: ");
        mbuf_adds(&c->req, r->accept);
        mbuf_adds(&c->req, "\r\n");
    }
    if (r->body) {
        snprintf(line, sizeof line, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                 r->content_type ? r->content_type : "text/plain", r->body_len);
        mbuf_adds(&c->req, line);
    }
    mbuf_adds(&c->req, "\r\n");
    if (r->body)
        mbuf_add(&c->req, r->body, r->body_len);

    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c->timer.data = c->connect.data = c;
    c->open = 2;
    uv_timer_start(&c->timer, client_on_timeout, r->timeout_ms, 0);

    struct sockaddr_storage addr;
    const char *host = r->url->host;
    int rc = uv_ip4_addr(host, r->url->port, (struct sockaddr_in *)&addr);
    if (rc)
        rc = uv_ip6_addr(host, r->url->port, (struct sockaddr_in6 *)&addr);
    if (rc == 0) {
        rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr, client_on_connect);
    } else {
        /* A name: resolved for every request, so a changed record (a
         * Service's endpoints, a DNS failover) is followed at the next
         * scrape. */
        char port[8];
        snprintf(port, sizeof port, "%u", r->url->port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        c->resolving = true;
        c->resolve.data = c;
        if ((rc = uv_getaddrinfo(loop, &c->resolve, client_on_resolved, host, port, &hints)) != 0)
            c->resolving = false;
    }
    if (rc < 0) {
        client_finish(c, rc);
        return NULL;
    }
    return c;
}

void mhttp_abort(struct mhttp_client *c)
{
    client_finish(c, UV_ECANCELED);
}

/* Letters, digits, '-', '_' and dots between non-empty labels. */
static bool is_dns_name(const char *h)
{
    size_t label = 0;
    for (const char *p = h; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                  *p == '_';
        if (*p == '.' && label > 0)
            label = 0;
        else if (ok && ++label <= 63)
            continue;
        else
            return false;
    }
    return *h != '\0';
}

int metrics_url_parse(const char *s, struct metrics_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (strncmp(s, "http://", 7) != 0) {
        snprintf(err, errlen, "expected an http:// URL, got \"%s\"", s);
        return -1;
    }
    const char *h = s + 7, *hend;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend) {
            snprintf(err, errlen, "unterminated IPv6 address in \"%s\"", s);
            return -1;
        }
        h++;
    } else {
        hend = h + strcspn(h, ":/");
    }
    size_t hn = (size_t)(hend - h);
    if (hn == 0 || hn >= sizeof u->host) {
        snprintf(err, errlen, "bad host in \"%s\"", s);
        return -1;
    }
    memcpy(u->host, h, hn);
    const char *p = hend + (*hend == ']');
    u->port = 80;
    if (*p == ':') {
        char *e;
        long port = strtol(p + 1, &e, 10);
        if (e == p + 1 || port < 1 || port > 65535) {
            snprintf(err, errlen, "bad port in \"%s\"", s);
            return -1;
        }
        u->port = (uint16_t)port;
        p = e;
    }
    if (*p && *p != '/') {
        snprintf(err, errlen, "unexpected \"%s\" in \"%s\"", p, s);
        return -1;
    }
    snprintf(u->path, sizeof u->path, "%s", *p ? p : "/");
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    if (uv_ip4_addr(u->host, 0, &a4) != 0 && uv_ip6_addr(u->host, 0, &a6) != 0 && !is_dns_name(u->host)) {
        snprintf(err, errlen, "host \"%s\" is neither an IP address nor a DNS name", u->host);
        return -1;
    }
    if (strchr(u->host, ':'))
        snprintf(u->hostport, sizeof u->hostport, "[%s]:%u", u->host, u->port);
    else
        snprintf(u->hostport, sizeof u->hostport, "%s:%u", u->host, u->port);
    return 0;
}

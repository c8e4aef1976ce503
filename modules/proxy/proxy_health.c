/*
 * proxy_health: active HTTP health checks. Every interval, each endpoint of
 * a cluster with a health_check path gets an HTTP/1.1 GET on a connection
 * of its own ("Connection: close"); the status line decides. An endpoint
 * is unhealthy until its first check passes, leaves after
 * unhealthy_threshold failures in a row and comes back after
 * healthy_threshold passes in a row. Unhealthy endpoints get no traffic
 * (proxy_endpoint_usable).
 *
 * Each worker checks its own endpoints. One checker sharing its verdicts
 * would save (workers - 1) small requests per endpoint and interval, but
 * would need state shared across threads and kept in step with each
 * worker's endpoint set (which discovery replaces); per-worker checks need
 * neither, and a worker's verdict always matches the endpoints it uses.
 * Checks of h2 clusters speak HTTP/2 with prior knowledge, like their
 * traffic: the same GET, or with health_check.grpc the gRPC health
 * protocol (grpc.health.v1.Health/Check), passing when the server says
 * SERVING.
 */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define GRPC_HEALTH_PATH "/grpc.health.v1.Health/Check"

/* A check in flight. The endpoint points to it while it runs; drain
 * detaches it (ep NULL) and closes it without a verdict. */
struct proxy_hcheck {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the check's timeout */
    uv_connect_t connect_req;
    uv_write_t wreq;
    struct proxy_worker *pw;
    const struct proxy_wcluster *wc;
    struct proxy_endpoint *ep;
    struct proxy_hcheck *prev, *next; /* pw->hchecks */
    uint8_t closes_pending;
    bool judged;   /* the verdict is in: the rest of the response is discarded */
    bool finished; /* closing */
    size_t len, req_len, req_sent;
    char buf[128]; /* HTTP/1.1: the start of the response (the status line is all we need);
                      gRPC: the start of the response message */
    char req[1400]; /* HTTP/1.1: the request; gRPC: the request message */
    /* HTTP/2 (h2 clusters) */
    nghttp2_session *h2;
    int status, grpc_status;
    uint8_t rbuf[4096];
};

/* One write of HTTP/2 frames, freed when done. */
struct hc_write {
    uv_write_t req;
    struct proxy_hcheck *k;
    size_t len;
    uint8_t data[];
};

static void h2_on_read(struct proxy_hcheck *k, size_t n);

static uint64_t varint(const uint8_t *b, size_t n, size_t *pos, bool *bad)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pos >= n) {
            *bad = true;
            return 0;
        }
        uint8_t c = b[(*pos)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    *bad = true;
    return 0;
}

int proxy_health_grpc_serving(const uint8_t *b, size_t n)
{
    if (n < 5 || b[0] != 0)
        return -1; /* no message, or compressed (never asked for) */
    uint32_t len = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
    if (len > n - 5)
        return -1;
    const uint8_t *m = b + 5;
    size_t pos = 0;
    bool bad = false;
    uint64_t status = 0; /* UNKNOWN unless said */
    while (pos < len && !bad) {
        uint64_t key = varint(m, len, &pos, &bad);
        uint64_t v;
        switch (key & 7) {
        case 0:
            v = varint(m, len, &pos, &bad);
            if (key >> 3 == 1)
                status = v;
            break;
        case 1:
        case 5: {
            size_t w = (key & 7) == 1 ? 8 : 4;
            if (len - pos < w)
                bad = true;
            else
                pos += w;
            break;
        }
        case 2:
            v = varint(m, len, &pos, &bad);
            if (!bad && v > len - pos)
                bad = true;
            else if (!bad)
                pos += (size_t)v;
            break;
        default:
            bad = true;
            break;
        }
    }
    if (bad)
        return -1;
    return status == 1; /* SERVING */
}

int proxy_health_parse_status(const char *b, size_t n)
{
    static const char prefix[] = "HTTP/1.";
    for (size_t i = 0; i < n && i < 7; i++)
        if (b[i] != prefix[i])
            return -1;
    if (n > 7 && (b[7] < '0' || b[7] > '9'))
        return -1;
    if (n > 8 && b[8] != ' ')
        return -1;
    int status = 0;
    for (size_t i = 9; i < n && i < 12; i++) {
        if (b[i] < '0' || b[i] > '9')
            return -1;
        status = status * 10 + (b[i] - '0');
    }
    if (n < 13)
        return 0;
    if (b[12] != ' ' && b[12] != '\r')
        return -1;
    return status >= 100 && status <= 599 ? status : -1;
}

static bool status_expected(const struct proxy_health_conf *hc, int status)
{
    if (hc->expected_statuses.n == 0)
        return status >= 200 && status <= 299;
    for (size_t i = 0; i < hc->expected_statuses.n; i++)
        if (OTR_CONF_AT(hc->expected_statuses, int64_t, i) == status)
            return true;
    return false;
}

/* Applies one check's verdict to ep, logging transitions. */
static void endpoint_verdict(struct proxy_endpoint *ep, bool ok, const char *why)
{
    struct proxy_wcluster *wc = ep->wc;
    const struct proxy_health_conf *hc = &wc->c->conf->health_check;
    const char *name = wc->c->conf->name, *addr = ep->addr.text;
    bool first = !ep->hc_checked;
    ep->hc_checked = true;
    if (ok) {
        ep->hc_fails = 0;
        if (!ep->unhealthy)
            return;
        if (!first && ++ep->hc_oks < hc->healthy_threshold)
            return;
        ep->unhealthy = false;
        ep->hc_oks = 0;
        proxy_outlier_log(wc->pw, OTR_LOG_INFO, "cluster %s: endpoint %s healthy", name, addr);
        proxy_outlier_gauge(wc);
        return;
    }
    if (wc->s_hc_failures)
        wc->pw->st->host->counter_add(wc->s_hc_failures, 1);
    ep->hc_oks = 0;
    if (ep->unhealthy) {
        if (first)
            proxy_outlier_log(wc->pw, OTR_LOG_WARN, "cluster %s: endpoint %s unhealthy: %s", name, addr, why);
        return;
    }
    if (++ep->hc_fails < hc->unhealthy_threshold)
        return;
    ep->unhealthy = true;
    ep->hc_fails = 0;
    proxy_outlier_log(wc->pw, OTR_LOG_WARN, "cluster %s: endpoint %s unhealthy: %s", name, addr, why);
    proxy_outlier_gauge(wc);
}

static void check_on_closed(uv_handle_t *h)
{
    struct proxy_hcheck *k = h->data;
    if (--k->closes_pending)
        return;
    struct proxy_worker *pw = k->pw;
    pw->n_health_handles -= 2;
    if (k->h2)
        nghttp2_session_del(k->h2);
    if (k->prev)
        k->prev->next = k->next;
    else
        pw->hchecks = k->next;
    if (k->next)
        k->next->prev = k->prev;
    free(k);
    proxy_worker_maybe_drained(pw);
}

/* Gives the check's verdict to its endpoint (unless detached), once. */
static void check_judge(struct proxy_hcheck *k, bool ok, const char *why)
{
    if (k->judged)
        return;
    k->judged = true;
    struct proxy_endpoint *ep = k->ep;
    k->ep = NULL;
    if (ep) {
        ep->hc = NULL;
        endpoint_verdict(ep, ok, why);
    }
}

/* Ends the check: the verdict if none was given yet, then the handles
 * close. */
static void check_finish(struct proxy_hcheck *k, bool ok, const char *why)
{
    if (k->finished)
        return;
    check_judge(k, ok, why);
    k->finished = true;
    k->closes_pending = 2;
    uv_close((uv_handle_t *)&k->tcp, check_on_closed);
    uv_close((uv_handle_t *)&k->timer, check_on_closed);
}

static void check_on_timeout(uv_timer_t *t)
{
    check_finish(t->data, false, "health check timed out");
}

static void check_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct proxy_hcheck *k = h->data;
    if (k->h2) {
        b->base = (char *)k->rbuf;
        b->len = sizeof k->rbuf;
        return;
    }
    if (k->judged)
        k->len = 0; /* discarding what follows the status line */
    b->base = k->buf + k->len;
    b->len = sizeof k->buf - k->len;
}

static void check_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct proxy_hcheck *k = s->data;
    if (n == 0 || k->finished)
        return;
    if (n < 0) {
        check_finish(k, false, n == UV_EOF ? "connection closed before a status line" : uv_strerror((int)n));
        return;
    }
    if (k->h2) {
        h2_on_read(k, (size_t)n);
        return;
    }
    if (k->judged)
        return;
    k->len += (size_t)n;
    int status = proxy_health_parse_status(k->buf, k->len);
    if (status == 0 && k->len < sizeof k->buf)
        return;
    if (status <= 0) {
        check_finish(k, false, "no HTTP/1.x status line in the response");
        return;
    }
    char why[64];
    snprintf(why, sizeof why, "health check answered %d", status);
    /* The verdict now; the connection is closed by the server (we asked
     * for it) or by the timeout, so that unread bytes never make our close
     * a reset the server has to log. */
    check_judge(k, status_expected(&k->wc->c->conf->health_check, status), why);
}

static void check_on_written(uv_write_t *req, int status)
{
    struct proxy_hcheck *k = req->data;
    if (status < 0 && !k->finished)
        check_finish(k, false, uv_strerror(status));
}

/* --- HTTP/2 checks (h2 clusters) ------------------------------------------------ */

static void h2_flush(struct proxy_hcheck *k);

static void h2_on_written(uv_write_t *req, int status)
{
    struct hc_write *w = req->data;
    struct proxy_hcheck *k = w->k;
    free(w);
    if (k->finished)
        return;
    if (status < 0) {
        check_finish(k, false, uv_strerror(status));
        return;
    }
    h2_flush(k);
}

/* Writes what the session has to send. Once the verdict is in and the
 * GOAWAY that follows it went out, the check is over. */
static void h2_flush(struct proxy_hcheck *k)
{
    struct hc_write *w = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(k->h2, &d);
        if (n < 0) {
            free(w);
            check_finish(k, false, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0)
            break;
        if (len + (size_t)n > cap) {
            size_t want = cap ? cap * 2 : 1024;
            while (want < len + (size_t)n)
                want *= 2;
            struct hc_write *g = realloc(w, sizeof *w + want);
            if (!g) {
                free(w);
                check_finish(k, false, "out of memory");
                return;
            }
            w = g;
            cap = want;
        }
        memcpy(w->data + len, d, (size_t)n);
        len += (size_t)n;
    }
    if (!len) {
        if (k->judged)
            check_finish(k, false, "done");
        return;
    }
    w->k = k;
    w->len = len;
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&k->tcp, &b, 1, h2_on_written) != 0) {
        free(w);
        check_finish(k, false, "upstream write failed");
    }
}

static void h2_on_read(struct proxy_hcheck *k, size_t n)
{
    ssize_t r = nghttp2_session_mem_recv(k->h2, k->rbuf, n);
    if (r < 0) {
        check_finish(k, false, nghttp2_strerror((int)r));
        return;
    }
    h2_flush(k);
}

/* The verdict on a complete HTTP/2 response (or its head, for a GET). */
static void h2_judge(struct proxy_hcheck *k)
{
    const struct proxy_health_conf *hc = &k->wc->c->conf->health_check;
    char why[64];
    bool ok;
    if (!hc->grpc || k->status != 200) {
        snprintf(why, sizeof why, "health check answered %d", k->status);
        ok = !hc->grpc && status_expected(hc, k->status);
    } else if (k->grpc_status != 0) {
        snprintf(why, sizeof why, "gRPC health check: grpc-status %d", k->grpc_status);
        ok = false;
    } else {
        int serving = proxy_health_grpc_serving((const uint8_t *)k->buf, k->len);
        snprintf(why, sizeof why, "gRPC health check: %s", serving < 0 ? "malformed response" : "not SERVING");
        ok = serving == 1;
    }
    check_judge(k, ok, why);
    nghttp2_session_terminate_session(k->h2, NGHTTP2_NO_ERROR);
}

static int h2_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                        const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    struct proxy_hcheck *k = user;
    int v = 0;
    for (size_t i = 0; i < vl && i < 4; i++)
        v = value[i] >= '0' && value[i] <= '9' ? v * 10 + (value[i] - '0') : -1000000;
    if (nl == 7 && memcmp(name, ":status", 7) == 0)
        k->status = vl == 3 && v >= 0 ? v : -1;
    else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
        k->grpc_status = vl >= 1 && vl <= 3 && v >= 0 ? v : -1;
    return 0;
}

static int h2_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
    struct proxy_hcheck *k = user;
    size_t room = sizeof k->buf - k->len, n = len < room ? len : room;
    memcpy(k->buf + k->len, data, n);
    k->len += n;
    return 0;
}

static int h2_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    struct proxy_hcheck *k = user;
    if (k->judged || f->hd.stream_id == 0 || (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA))
        return 0;
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    /* A GET is judged on its final head; gRPC needs the message and the
     * trailers. */
    if (end || (f->hd.type == NGHTTP2_HEADERS && k->status >= 200 && !k->wc->c->conf->health_check.grpc))
        h2_judge(k);
    return 0;
}

static int h2_on_stream_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *user)
{
    struct proxy_hcheck *k = user;
    if (!k->judged) {
        check_judge(k, false, "health check stream reset");
        nghttp2_session_terminate_session(s, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static ssize_t h2_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                            nghttp2_data_source *src, void *user)
{
    struct proxy_hcheck *k = user;
    size_t n = k->req_len - k->req_sent;
    if (n > length)
        n = length;
    memcpy(buf, k->req + k->req_sent, n);
    k->req_sent += n;
    if (k->req_sent == k->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

/* Opens the session and sends the request: the GET, or a gRPC
 * HealthCheckRequest { service = grpc_service } in its length-prefixed
 * message. Returns 0, UV_ENOMEM or an nghttp2 error. */
static int h2_start(struct proxy_hcheck *k)
{
    const struct proxy_health_conf *hc = &k->wc->c->conf->health_check;
    const char *host = hc->host[0] ? hc->host : k->wc->c->conf->name;
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb))
        return UV_ENOMEM;
    nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
    int rc = nghttp2_session_client_new(&k->h2, cb, k);
    nghttp2_session_callbacks_del(cb);
    if (rc)
        return UV_ENOMEM;
    nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 } };
    if ((rc = nghttp2_submit_settings(k->h2, NGHTTP2_FLAG_NONE, iv, 1)))
        return rc;
    k->status = k->grpc_status = -1;
    k->len = 0;
    if (hc->grpc) {
        size_t sl = strlen(hc->grpc_service); /* at most 127: one length byte */
        size_t ml = sl ? 2 + sl : 0;
        uint8_t *m = (uint8_t *)k->req;
        m[0] = 0;
        m[1] = m[2] = 0;
        m[3] = (uint8_t)(ml >> 8);
        m[4] = (uint8_t)ml;
        if (sl) {
            m[5] = 0x0a; /* field 1, length-delimited */
            m[6] = (uint8_t)sl;
            memcpy(m + 7, hc->grpc_service, sl);
        }
        k->req_len = 5 + ml;
        k->req_sent = 0;
        const nghttp2_nv nv[] = { NV(":method", "POST"), NV(":scheme", "http"), NV(":authority", host),
                                  NV(":path", GRPC_HEALTH_PATH), NV("content-type", "application/grpc"),
                                  NV("te", "trailers"), NV("user-agent", "outrider-health-check") };
        nghttp2_data_provider dp = { .source.ptr = NULL, .read_callback = h2_read_body };
        rc = nghttp2_submit_request(k->h2, NULL, nv, sizeof nv / sizeof nv[0], &dp, NULL);
    } else {
        const nghttp2_nv nv[] = { NV(":method", "GET"), NV(":scheme", "http"), NV(":authority", host),
                                  NV(":path", hc->path), NV("user-agent", "outrider-health-check") };
        rc = nghttp2_submit_request(k->h2, NULL, nv, sizeof nv / sizeof nv[0], NULL, NULL);
    }
    if (rc < 0)
        return rc;
    if ((rc = uv_read_start((uv_stream_t *)&k->tcp, check_on_alloc, check_on_read)))
        return rc;
    h2_flush(k);
    return 0;
}

static void check_on_connect(uv_connect_t *req, int status)
{
    struct proxy_hcheck *k = req->data;
    if (k->finished)
        return;
    if (status < 0) {
        check_finish(k, false, uv_strerror(status));
        return;
    }
    if (k->wc->c->conf->protocol == PROXY_PROTO_H2) {
        int rc = h2_start(k);
        if (rc)
            check_finish(k, false, "cannot start the HTTP/2 health check");
        return;
    }
    uv_buf_t b = uv_buf_init(k->req, (unsigned)k->req_len);
    k->wreq.data = k;
    int rc = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, check_on_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&k->tcp, check_on_alloc, check_on_read);
    if (rc)
        check_finish(k, false, uv_strerror(rc));
}

static void check_start(struct proxy_endpoint *ep)
{
    struct proxy_wcluster *wc = ep->wc;
    struct proxy_worker *pw = wc->pw;
    const struct proxy_health_conf *hc = &wc->c->conf->health_check;
    struct proxy_hcheck *k = calloc(1, sizeof *k);
    if (!k)
        return; /* tried again next interval */
    int n = snprintf(k->req, sizeof k->req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: outrider-health-check\r\nConnection: close\r\n\r\n",
                     hc->path, hc->host[0] ? hc->host : wc->c->conf->name);
    k->req_len = n > 0 && (size_t)n < sizeof k->req ? (size_t)n : 0;
    k->pw = pw;
    k->wc = wc;
    k->ep = ep;
    ep->hc = k;
    k->next = pw->hchecks;
    if (k->next)
        k->next->prev = k;
    pw->hchecks = k;
    uv_tcp_init(pw->loop, &k->tcp);
    uv_timer_init(pw->loop, &k->timer);
    k->tcp.data = k->timer.data = k->connect_req.data = k;
    pw->n_health_handles += 2;
    uv_timer_start(&k->timer, check_on_timeout, hc->timeout, 0);
    int rc = uv_tcp_connect(&k->connect_req, &k->tcp, (const struct sockaddr *)&ep->addr.sa,
                            check_on_connect);
    if (rc)
        check_finish(k, false, uv_strerror(rc));
}

static void round_on_timer(uv_timer_t *t)
{
    struct proxy_wcluster *wc = t->data;
    if (wc->pw->draining)
        return;
    for (size_t i = 0; i < wc->n_eps; i++)
        if (!wc->eps[i]->hc)
            check_start(wc->eps[i]);
}

static void round_timer_on_close(uv_handle_t *h)
{
    struct proxy_wcluster *wc = h->data;
    wc->hc_timer_open = false;
    wc->pw->n_health_handles--;
    proxy_worker_maybe_drained(wc->pw);
}

void proxy_health_start(struct proxy_worker *pw)
{
    for (size_t i = 0; i < pw->st->n_clusters; i++) {
        struct proxy_wcluster *wc = &pw->clusters[i];
        const struct proxy_health_conf *hc = &wc->c->conf->health_check;
        if (!hc->path[0] && !hc->grpc)
            continue;
        /* Unhealthy until a first check passes; until then no endpoint is
         * usable, so all are used (panic), as before checks existed. */
        for (size_t e = 0; e < wc->n_eps; e++)
            wc->eps[e]->unhealthy = true;
        uv_timer_init(pw->loop, &wc->hc_timer);
        wc->hc_timer.data = wc;
        wc->hc_timer_open = true;
        pw->n_health_handles++;
        uv_timer_start(&wc->hc_timer, round_on_timer, 0, hc->interval);
        proxy_outlier_gauge(wc);
    }
}

void proxy_health_endpoint_added(struct proxy_endpoint *ep)
{
    struct proxy_wcluster *wc = ep->wc;
    if (!wc->hc_timer_open || wc->pw->draining)
        return;
    /* As the endpoints at start: unhealthy until a first check passes,
     * which starts now rather than at the next round. */
    ep->unhealthy = true;
    check_start(ep);
}

void proxy_health_endpoint_removed(struct proxy_endpoint *ep)
{
    /* Its check in flight ends without a verdict: nobody reads it. */
    if (ep->hc) {
        ep->hc->ep = NULL;
        ep->hc = NULL;
    }
}

void proxy_health_stop(struct proxy_worker *pw)
{
    for (size_t i = 0; i < pw->st->n_clusters; i++) {
        struct proxy_wcluster *wc = &pw->clusters[i];
        if (wc->hc_timer_open && !uv_is_closing((uv_handle_t *)&wc->hc_timer))
            uv_close((uv_handle_t *)&wc->hc_timer, round_timer_on_close);
        for (size_t e = 0; e < wc->n_eps; e++)
            wc->eps[e]->hc = NULL;
    }
    /* Checks still open (in flight, or reading the rest of a response)
     * close without a verdict: nobody needs it any more. */
    for (struct proxy_hcheck *k = pw->hchecks; k; k = k->next) {
        k->ep = NULL;
        check_finish(k, false, "draining");
    }
}

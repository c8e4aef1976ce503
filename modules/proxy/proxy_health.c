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
 * Checks always speak HTTP/1.1, also for h2 clusters: checking one needs
 * endpoints that answer HTTP/1.1 as well (most gRPC servers do not: leave
 * the check off for them and rely on outlier ejection).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

/* A check in flight. The endpoint points to it while it runs; drain
 * detaches it (ep NULL) and closes it without a verdict. */
struct proxy_hcheck {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the check's timeout */
    uv_connect_t connect_req;
    uv_write_t wreq;
    struct proxy_worker *pw;
    struct proxy_endpoint *ep;
    struct proxy_hcheck *prev, *next; /* pw->hchecks */
    uint8_t closes_pending;
    bool judged;   /* the verdict is in: the rest of the response is discarded */
    bool finished; /* closing */
    size_t len, req_len;
    char buf[128]; /* the start of the response: the status line is all we need */
    char req[1400];
};

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
    const char *name = wc->c->conf->name, *addr = wc->c->addr_text[ep->index];
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
    check_judge(k, k->ep && status_expected(&k->ep->wc->c->conf->health_check, status), why);
}

static void check_on_written(uv_write_t *req, int status)
{
    struct proxy_hcheck *k = req->data;
    if (status < 0 && !k->finished)
        check_finish(k, false, uv_strerror(status));
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
    int rc = uv_tcp_connect(&k->connect_req, &k->tcp, (const struct sockaddr *)&wc->c->addrs[ep->index],
                            check_on_connect);
    if (rc)
        check_finish(k, false, uv_strerror(rc));
}

static void round_on_timer(uv_timer_t *t)
{
    struct proxy_wcluster *wc = t->data;
    if (wc->pw->draining)
        return;
    for (size_t i = 0; i < wc->c->n_endpoints; i++)
        if (!wc->eps[i].hc)
            check_start(&wc->eps[i]);
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
        if (!hc->path[0])
            continue;
        /* Unhealthy until a first check passes; until then no endpoint is
         * usable, so all are used (panic), as before checks existed. */
        for (size_t e = 0; e < wc->c->n_endpoints; e++)
            wc->eps[e].unhealthy = true;
        uv_timer_init(pw->loop, &wc->hc_timer);
        wc->hc_timer.data = wc;
        wc->hc_timer_open = true;
        pw->n_health_handles++;
        uv_timer_start(&wc->hc_timer, round_on_timer, 0, hc->interval);
        proxy_outlier_gauge(wc);
    }
}

void proxy_health_stop(struct proxy_worker *pw)
{
    for (size_t i = 0; i < pw->st->n_clusters; i++) {
        struct proxy_wcluster *wc = &pw->clusters[i];
        if (wc->hc_timer_open && !uv_is_closing((uv_handle_t *)&wc->hc_timer))
            uv_close((uv_handle_t *)&wc->hc_timer, round_timer_on_close);
        for (size_t e = 0; e < wc->c->n_endpoints; e++)
            wc->eps[e].hc = NULL;
    }
    /* Checks still open (in flight, or reading the rest of a response)
     * close without a verdict: nobody needs it any more. */
    for (struct proxy_hcheck *k = pw->hchecks; k; k = k->next) {
        k->ep = NULL;
        check_finish(k, false, "draining");
    }
}

/*
 * proxy_upstream: endpoint choice, the per-worker connection pool and the
 * upstream side of HTTP/1.1 connections (connect, read, timeouts). What is
 * done with the bytes is proxy_http1.c's business.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
#include "proxy_discovery.h"
#include "proxy_h2.h"

/* Latency memory of the EWMA: samples older than this weigh 1/e. */
#define EWMA_DECAY_MS 2000.0

/* The decay over one millisecond or less, which is how far apart samples
 * come under load: computed once rather than by exp() per response. Set
 * when the module is loaded, before any worker runs. */
static double ewma_w1;

__attribute__((constructor)) static void ewma_w1_init(void)
{
    ewma_w1 = exp(-1.0 / EWMA_DECAY_MS);
}

/* The latency estimate as of now: it decays while no sample comes, so an
 * endpoint left alone after one slow answer (a stall, a GC pause) is
 * tried again instead of being avoided for as long as it gets no traffic,
 * which would be forever. */
static double ewma_now(const struct proxy_endpoint *ep, uint64_t now)
{
    if (!ep->ewma_stamp || now <= ep->ewma_stamp)
        return ep->ewma_ms;
    return ep->ewma_ms * exp(-(double)(now - ep->ewma_stamp) / EWMA_DECAY_MS);
}

/* Of two endpoints, the one whose expected wait (latency times load) is
 * lower. */
static struct proxy_endpoint *p2c_better(struct proxy_endpoint *a, struct proxy_endpoint *b, uint64_t now)
{
    double ca = (ewma_now(a, now) + 1.0) * (a->active + 1);
    double cb = (ewma_now(b, now) + 1.0) * (b->active + 1);
    return ca <= cb ? a : b;
}

/* The policy's choice among the usable endpoints only, when the first
 * choice was not usable; NULL when none is (the caller then panics: it
 * uses the first choice anyway, as Envoy uses every endpoint when too few
 * are healthy, so a cluster whose checks all fail still gets its traffic
 * tried rather than refused). Linear, but only while endpoints are out. */
static struct proxy_endpoint *pick_usable(struct proxy_wcluster *wc, uint64_t now)
{
    size_t n = wc->n_eps, n_usable = 0;
    struct proxy_endpoint **eps = wc->eps;
    for (size_t i = 0; i < n; i++)
        n_usable += proxy_endpoint_usable(eps[i], now);
    if (n_usable == 0)
        return NULL;
    /* Round robin and least request continue from the cursor; p2c draws
     * its two among the usable ones. */
    size_t start = wc->c->conf->lb == PROXY_LB_P2C ? 0 : wc->rr++ % n;
    size_t a = SIZE_MAX, b = SIZE_MAX, best = SIZE_MAX;
    if (wc->c->conf->lb == PROXY_LB_P2C) {
        a = (size_t)(proxy_rand(&wc->pw->rng) % n_usable);
        b = n_usable > 1 ? (size_t)(proxy_rand(&wc->pw->rng) % (n_usable - 1)) : a;
        if (n_usable > 1 && b >= a)
            b++;
    }
    struct proxy_endpoint *ea = NULL, *eb = NULL;
    for (size_t k = 0, u = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (!proxy_endpoint_usable(eps[i], now))
            continue;
        if (wc->c->conf->lb == PROXY_LB_ROUND_ROBIN) {
            wc->rr = (unsigned)(i + 1);
            return eps[i];
        }
        if (wc->c->conf->lb == PROXY_LB_LEAST_REQUEST) {
            if (best == SIZE_MAX || eps[i]->active < eps[best]->active)
                best = i;
            continue;
        }
        if (u == a)
            ea = eps[i];
        if (u == b)
            eb = eps[i];
        u++;
    }
    if (wc->c->conf->lb == PROXY_LB_LEAST_REQUEST)
        return eps[best];
    return p2c_better(ea, eb, now);
}

struct proxy_endpoint *proxy_lb_pick(struct proxy_wcluster *wc)
{
    size_t n = wc->n_eps;
    struct proxy_endpoint **eps = wc->eps, *ep;
    if (n == 0)
        return NULL;
    if (n == 1)
        return eps[0];
    uint64_t now = uv_now(wc->pw->loop);
    switch (wc->c->conf->lb) {
    case PROXY_LB_ROUND_ROBIN:
        ep = eps[wc->rr++ % n];
        break;
    case PROXY_LB_LEAST_REQUEST: {
        /* The full scan starts at a rotating offset so ties spread. */
        size_t start = wc->rr++ % n, best = start;
        for (size_t k = 1; k < n; k++) {
            size_t i = (start + k) % n;
            if (eps[i]->active < eps[best]->active)
                best = i;
        }
        ep = eps[best];
        break;
    }
    default: {
        /* Power of two choices. */
        size_t a = (size_t)(proxy_rand(&wc->pw->rng) % n);
        size_t b = (size_t)(proxy_rand(&wc->pw->rng) % (n - 1));
        if (b >= a)
            b++;
        ep = p2c_better(eps[a], eps[b], now);
        break;
    }
    }
    if (proxy_endpoint_usable(ep, now))
        return ep;
    struct proxy_endpoint *u = pick_usable(wc, now);
    return u ? u : ep;
}

/* The endpoint after ep that a retry may use instead of the one that just
 * failed: a usable one if any. */
static struct proxy_endpoint *endpoint_other(struct proxy_wcluster *wc, struct proxy_endpoint *ep)
{
    size_t n = wc->n_eps;
    uint64_t now = uv_now(wc->pw->loop);
    for (size_t k = 1; k < n; k++) {
        struct proxy_endpoint *o = wc->eps[(ep->index + k) % n];
        if (proxy_endpoint_usable(o, now))
            return o;
    }
    return wc->eps[(ep->index + 1) % n];
}

struct proxy_endpoint *proxy_lb_pick_other(struct proxy_wcluster *wc, uint64_t avoid)
{
    struct proxy_endpoint *ep = proxy_lb_pick(wc);
    /* A retry goes to another endpoint when there is one. ep is in the
     * current set, so its index is its place in wc->eps. */
    if (ep && avoid && ep->id == avoid && wc->n_eps > 1)
        ep = endpoint_other(wc, ep);
    return ep;
}

void proxy_lb_sample(struct proxy_endpoint *ep, uint64_t now_ms, double latency_ms)
{
    /* Peak-sensitive: a slower sample is taken at once, faster ones decay
     * in, so a struggling endpoint sheds load quickly. */
    if (ep->ewma_stamp == 0 || latency_ms > ep->ewma_ms) {
        ep->ewma_ms = latency_ms;
    } else {
        double dt = (double)(now_ms - ep->ewma_stamp);
        double w = dt <= 1 ? ewma_w1 : exp(-dt / EWMA_DECAY_MS);
        ep->ewma_ms = ep->ewma_ms * w + latency_ms * (1 - w);
    }
    ep->ewma_stamp = now_ms ? now_ms : 1;
}

void proxy_upstream_no_endpoint_why(const struct proxy_wcluster *wc, char *out, size_t cap)
{
    snprintf(out, cap, "no endpoints in cluster %s (%s)", wc->c->conf->name, wc->empty_why);
}

/* --- connection lifetime ---------------------------------------------------- */

static void wcluster_pump_pending(struct proxy_wcluster *wc);

static void upconn_on_handle_closed(uv_handle_t *h)
{
    struct proxy_upconn *u = h->data;
    if (--u->closes_pending)
        return;
    struct proxy_wcluster *wc = u->ep->wc;
    struct proxy_worker *pw = wc->pw;
    wc->n_conns--;
    pw->n_upconns--;
    if (wc->s_conns)
        pw->st->host->gauge_add(wc->s_conns, -1);
    proxy_endpoint_unref(u->ep);
    free(u->buf);
    free(u);
    if (!pw->draining)
        wcluster_pump_pending(wc);
    else
        proxy_worker_maybe_drained(pw);
}

static void idle_unlink(struct proxy_upconn *u)
{
    struct proxy_endpoint *ep = u->ep;
    for (struct proxy_upconn **pp = &ep->idle; *pp; pp = &(*pp)->next_idle) {
        if (*pp == u) {
            *pp = u->next_idle;
            ep->n_idle--;
            break;
        }
    }
    u->next_idle = NULL;
}

/* An idle pooled connection to ep made active, or NULL if none. */
static struct proxy_upconn *pool_take(struct proxy_endpoint *ep)
{
    proxy_mesh_endpoint_check(ep);
    struct proxy_upconn *u = ep->idle;
    if (!u)
        return NULL;
    idle_unlink(u);
    /* The idle timer keeps running: it finds u active and lapses
     * (restarting timers on every request costs heap operations). */
    u->state = UP_ACTIVE;
    return u;
}

/* The oldest request waiting for a connection to wc, dequeued, or NULL. */
static struct proxy_conn *pending_pop(struct proxy_wcluster *wc)
{
    struct proxy_conn *c = wc->pending_head;
    if (!c)
        return NULL;
    wc->pending_head = c->pending_next;
    if (!wc->pending_head)
        wc->pending_tail = NULL;
    wc->n_pending--;
    return c;
}

void proxy_upconn_close(struct proxy_upconn *u)
{
    if (u->state == UP_CLOSING)
        return;
    if (u->state == UP_IDLE)
        idle_unlink(u);
    u->state = UP_CLOSING;
    u->down = NULL;
    u->h2st = NULL;
    u->closes_pending = 2;
    uv_close((uv_handle_t *)&u->tcp, upconn_on_handle_closed);
    uv_close((uv_handle_t *)&u->timer, upconn_on_handle_closed);
}

static void upconn_on_timer(uv_timer_t *t)
{
    struct proxy_upconn *u = t->data;
    if (u->state == UP_CONNECTING) {
        struct proxy_conn *c = u->down;
        struct proxy_h2stream *st = u->h2st;
        proxy_outlier_report(u->ep, true);
        proxy_upconn_close(u);
        if (c)
            proxy_conn_upstream_failed(c, 503, "upstream connect timeout");
        if (st)
            proxy_h2h1_failed(st, 503, "upstream connect timeout");
        return;
    }
    if (u->state != UP_IDLE)
        return;
    uint64_t now = uv_now(t->loop);
    if (now < u->idle_until)
        uv_timer_start(&u->timer, upconn_on_timer, u->idle_until - now, 0); /* idle again since */
    else
        proxy_upconn_close(u);
}

static void upconn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct proxy_upconn *u = h->data;
    b->base = u->buf + u->len;
    b->len = u->cap - u->len;
}

static void upconn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct proxy_upconn *u = s->data;
    if (n == 0)
        return;
    if (u->h2st) {
        proxy_h2h1_on_read(u->h2st, n);
        return;
    }
    if (u->state != UP_ACTIVE || !u->down) {
        /* An idle pooled connection said something (usually EOF: the
         * server's keep-alive timeout): it cannot be reused. */
        proxy_upconn_close(u);
        return;
    }
    if (n < 0) {
        uv_read_stop(s);
        u->reading = false;
        proxy_conn_on_upstream_eof(u->down, (int)n);
        return;
    }
    u->len += (size_t)n;
    if (u->len == u->cap) {
        uv_read_stop(s);
        u->reading = false;
    }
    proxy_conn_on_response_data(u->down);
}

void proxy_upconn_read_start(struct proxy_upconn *u)
{
    if (u->reading || u->state == UP_CLOSING || u->len == u->cap)
        return;
    if (uv_read_start((uv_stream_t *)&u->tcp, upconn_on_alloc, upconn_on_read) == 0)
        u->reading = true;
}

static void upconn_on_connect(uv_connect_t *req, int status)
{
    struct proxy_upconn *u = req->data;
    if (status == UV_ECANCELED || u->state == UP_CLOSING)
        return;
    uv_timer_stop(&u->timer);
    struct proxy_conn *c = u->down;
    struct proxy_h2stream *st = u->h2st;
    if (status < 0) {
        proxy_outlier_report(u->ep, true);
        proxy_upconn_close(u);
        if (c)
            proxy_conn_upstream_failed(c, 503, uv_strerror(status));
        if (st)
            proxy_h2h1_failed(st, 503, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&u->tcp, 1);
    if (st) {
        u->state = UP_ACTIVE;
        proxy_h2h1_ready(st, u);
        return;
    }
    if (!c) {
        /* The client went away while we connected: pool the connection. */
        u->reusable = true;
        u->state = UP_ACTIVE;
        proxy_upconn_release(u);
        return;
    }
    u->state = UP_ACTIVE;
    proxy_conn_upstream_ready(c, u);
}

static struct proxy_upconn *upconn_open(struct proxy_endpoint *ep, struct proxy_conn *c)
{
    struct proxy_wcluster *wc = ep->wc;
    struct proxy_worker *pw = wc->pw;
    struct proxy_upconn *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->cap = pw->st->buffer_size;
    u->buf = malloc(u->cap);
    if (!u->buf) {
        free(u);
        return NULL;
    }
    u->ep = ep;
    proxy_endpoint_ref(ep);
    u->down = c;
    uv_tcp_init(pw->loop, &u->tcp);
    uv_timer_init(pw->loop, &u->timer);
    u->tcp.data = u->timer.data = u->connect_req.data = u;
    wc->n_conns++;
    pw->n_upconns++;
    if (wc->s_conns)
        pw->st->host->gauge_add(wc->s_conns, 1);
    const struct sockaddr *sa = proxy_endpoint_connect_addr(ep, &u->mesh_hop);
    int rc = uv_tcp_connect(&u->connect_req, &u->tcp, sa, upconn_on_connect);
    if (rc) {
        proxy_upconn_close(u);
        return NULL;
    }
    uv_timer_start(&u->timer, upconn_on_timer, wc->c->conf->connect_timeout, 0);
    return u;
}

/* Gives c a connection to ep: a pooled one at once, or a new one. */
static void dispatch_to(struct proxy_conn *c, struct proxy_endpoint *ep)
{
    c->ep = ep;
    ep->active++;
    struct proxy_upconn *u = pool_take(ep);
    if (u) {
        u->down = c;
        proxy_conn_upstream_ready(c, u);
        return;
    }
    /* Remembered so that a client closing while we connect can let go of
     * it: the connect completion or timeout must not reach a freed client. */
    c->connecting = upconn_open(ep, c);
    if (!c->connecting)
        proxy_conn_upstream_failed(c, 503, "cannot open upstream connection");
}

bool proxy_upstream_admit(struct proxy_wcluster *wc, const char **why)
{
    int64_t max = wc->c->conf->max_requests;
    if (max <= 0)
        return true;
    /* Counted when asked rather than kept: requests end in many places,
     * and the endpoints' own counts are already kept right there. */
    uint64_t n = wc->n_pending;
    for (size_t i = 0; i < wc->n_eps; i++)
        n += wc->eps[i]->active;
    for (const struct proxy_endpoint *ep = wc->retired; ep; ep = ep->next_retired)
        n += ep->active; /* removed from the set, still answering */
    if (n < (uint64_t)max)
        return true;
    if (wc->s_cb_requests)
        wc->pw->st->host->counter_add(wc->s_cb_requests, 1);
    *why = "upstream overflow (max_requests reached)";
    return false;
}

static bool any_usable(const struct proxy_wcluster *wc, uint64_t now)
{
    for (size_t i = 0; i < wc->n_eps; i++)
        if (proxy_endpoint_usable(wc->eps[i], now))
            return true;
    return false;
}

void proxy_upstream_dispatch(struct proxy_conn *c, struct proxy_wcluster *wc)
{
    c->wc = wc;
    const char *why;
    if (!proxy_upstream_admit(wc, &why)) {
        proxy_conn_respond_error(c, 503, why);
        return;
    }
    struct proxy_endpoint *ep = proxy_lb_pick_other(wc, c->avoid_ep);
    if (!ep) {
        char empty[160];
        proxy_upstream_no_endpoint_why(wc, empty, sizeof empty);
        proxy_conn_respond_error(c, 503, empty);
        return;
    }
    if (!ep->idle && wc->n_conns >= (unsigned)wc->c->conf->max_connections) {
        /* Any endpoint with an idle connection will do before queueing. */
        uint64_t now = uv_now(wc->pw->loop);
        for (size_t i = 0; i < wc->n_eps; i++)
            if (wc->eps[i]->idle && proxy_endpoint_usable(wc->eps[i], now)) {
                dispatch_to(c, wc->eps[i]);
                return;
            }
        if (wc->n_pending >= (unsigned)wc->c->conf->max_pending) {
            if (wc->s_cb_pending)
                wc->pw->st->host->counter_add(wc->s_cb_pending, 1);
            proxy_conn_upstream_failed(c, 503, "upstream overflow (max_connections and max_pending reached)");
            return;
        }
        c->pending_next = NULL;
        if (wc->pending_tail)
            wc->pending_tail->pending_next = c;
        else
            wc->pending_head = c;
        wc->pending_tail = c;
        wc->n_pending++;
        return;
    }
    dispatch_to(c, ep);
}

void proxy_upstream_dispatch_h2(struct proxy_h2stream *st, struct proxy_wcluster *wc)
{
    /* A full or empty cluster is answered at once, not retried as a
     * connect failure: another attempt would only meet it again. */
    const char *why;
    if (!proxy_upstream_admit(wc, &why)) {
        proxy_h2stream_on_upstream_failed(st, 503, 14, why);
        return;
    }
    struct proxy_endpoint *ep = proxy_lb_pick_other(wc, st->avoid_ep);
    if (!ep) {
        char empty[160];
        proxy_upstream_no_endpoint_why(wc, empty, sizeof empty);
        proxy_h2stream_on_upstream_failed(st, 503, 14, empty);
        return;
    }
    uint64_t now = uv_now(wc->pw->loop);
    if (!ep->idle)
        for (size_t i = 0; i < wc->n_eps && wc->n_conns >= (unsigned)wc->c->conf->max_connections; i++)
            if (wc->eps[i]->idle && proxy_endpoint_usable(wc->eps[i], now))
                ep = wc->eps[i];
    if (st->ep)
        proxy_endpoint_unref(st->ep);
    proxy_endpoint_ref(ep);
    st->ep = ep;
    st->ep_active = true;
    ep->active++;
    struct proxy_upconn *u = pool_take(ep);
    if (u) {
        u->h2st = st;
        proxy_h2h1_ready(st, u);
        return;
    }
    /* HTTP/2 streams do not wait in the queue: over the limit is 503. */
    if (wc->n_conns >= (unsigned)wc->c->conf->max_connections && wc->s_cb_conns)
        wc->pw->st->host->counter_add(wc->s_cb_conns, 1);
    if (wc->n_conns >= (unsigned)wc->c->conf->max_connections || !(u = upconn_open(ep, NULL))) {
        proxy_h2h1_failed(st, 503, "no upstream connection available");
        return;
    }
    u->h2st = st;
    /* Remembered so that a stream ending while we connect lets go of it. */
    st->h1connecting = u;
}

void proxy_upstream_unqueue(struct proxy_conn *c)
{
    struct proxy_wcluster *wc = c->wc;
    if (!wc)
        return;
    struct proxy_conn *prev = NULL;
    for (struct proxy_conn *p = wc->pending_head; p; prev = p, p = p->pending_next) {
        if (p != c)
            continue;
        if (prev)
            prev->pending_next = p->pending_next;
        else
            wc->pending_head = p->pending_next;
        if (wc->pending_tail == p)
            wc->pending_tail = prev;
        wc->n_pending--;
        return;
    }
}

static void wcluster_pump_pending(struct proxy_wcluster *wc)
{
    while (wc->pending_head && wc->n_conns < (unsigned)wc->c->conf->max_connections) {
        struct proxy_endpoint *ep = proxy_lb_pick(wc);
        if (!ep) {
            char why[160];
            proxy_upstream_no_endpoint_why(wc, why, sizeof why);
            proxy_conn_respond_error(pending_pop(wc), 503, why);
            continue;
        }
        dispatch_to(pending_pop(wc), ep);
    }
}

void proxy_upconn_release(struct proxy_upconn *u)
{
    struct proxy_endpoint *ep = u->ep;
    struct proxy_wcluster *wc = ep->wc;
    u->down = NULL;
    u->h2st = NULL;
    if (!u->reusable || wc->pw->draining || u->state != UP_ACTIVE || ep->removed) {
        proxy_upconn_close(u);
        return;
    }
    u->len = u->pos = 0;
    u->reusable = false;
    u->used = true;
    /* A waiting request takes the connection directly, unless its
     * endpoint was ejected meanwhile and another is usable: then closing
     * it lets the queue move on to that one. */
    uint64_t now = uv_now(wc->pw->loop);
    if (wc->pending_head && !proxy_endpoint_usable(ep, now) && any_usable(wc, now)) {
        proxy_upconn_close(u);
        return;
    }
    struct proxy_conn *c = pending_pop(wc);
    if (c) {
        c->ep = ep;
        ep->active++;
        u->down = c;
        proxy_conn_upstream_ready(c, u);
        return;
    }
    if (ep->n_idle >= (unsigned)wc->c->conf->max_idle) {
        proxy_upconn_close(u);
        return;
    }
    u->state = UP_IDLE;
    u->next_idle = ep->idle;
    ep->idle = u;
    ep->n_idle++;
    /* Keep reading: a server closing an idle connection is noticed now,
     * not when the next request is written into it. */
    proxy_upconn_read_start(u);
    uint64_t idle = wc->c->conf->idle_timeout;
    u->idle_until = now + idle;
    if (!uv_is_active((uv_handle_t *)&u->timer) || uv_timer_get_due_in(&u->timer) > idle)
        uv_timer_start(&u->timer, upconn_on_timer, idle, 0);
}

void proxy_upstream_close_idle(struct proxy_worker *pw)
{
    for (size_t i = 0; i < pw->st->n_clusters; i++) {
        struct proxy_wcluster *wc = &pw->clusters[i];
        for (size_t e = 0; e < wc->n_eps; e++)
            while (wc->eps[e]->idle)
                proxy_upconn_close(wc->eps[e]->idle);
    }
}

/*
 * proxy_retry: the retry policy shared by every protocol path: which
 * failures a cluster retries (retry_on, retriable_status_codes,
 * retry_grpc_codes), which requests may be sent twice, the per-worker retry
 * budget, and the jittered backoff delay. The paths themselves decide when
 * an attempt failed and how to send it again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

/* The gRPC status number of each enum proxy_retry_grpc. */
static const int grpc_code_of[] = {
    [PROXY_RETRY_GRPC_CANCELLED] = 1,
    [PROXY_RETRY_GRPC_DEADLINE_EXCEEDED] = 4,
    [PROXY_RETRY_GRPC_INTERNAL] = 13,
    [PROXY_RETRY_GRPC_RESOURCE_EXHAUSTED] = 8,
    [PROXY_RETRY_GRPC_UNAVAILABLE] = 14,
};

/* Whether the retry conditions (the route's when it has its own) include what. */
static bool retry_on_has(const struct proxy_cluster_conf *cc, const struct proxy_route_conf *rc,
                         enum proxy_retry_on what)
{
    const struct otr_conf_array *on = rc && rc->retry_on.n ? &rc->retry_on : &cc->retry_on;
    for (size_t i = 0; i < on->n; i++)
        if (OTR_CONF_AT(*on, int, i) == (int)what)
            return true;
    return false;
}

int64_t proxy_retry_max(const struct proxy_cluster_conf *cc, const struct proxy_route_conf *rc)
{
    return rc && rc->retries >= 0 ? rc->retries : cc->retries;
}

int proxy_retry_conf_check(struct proxy_state *st)
{
    int errors = 0;
    char path[96];
    for (size_t i = 0; i < st->n_clusters; i++) {
        const struct proxy_cluster_conf *cc = st->clusters[i].conf;
        /* Envoy ignores the list silently without the condition; a list
         * that does nothing is more likely a mistake than a wish. */
        if (cc->retriable_status_codes.n && !retry_on_has(cc, NULL, PROXY_RETRY_STATUS_CODES)) {
            snprintf(path, sizeof path, "clusters[%zu].retriable_status_codes", i);
            st->host->conf_error(st->ctx, path, "has no effect unless retry_on lists \"retriable-status-codes\"");
            errors++;
        }
    }
    return errors ? OTR_ECONFIG : 0;
}

bool proxy_retry_method_ok(const char *m, size_t n)
{
    static const char *const idempotent[] = { "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE" };
    for (size_t i = 0; i < sizeof idempotent / sizeof idempotent[0]; i++)
        if (strlen(idempotent[i]) == n && memcmp(idempotent[i], m, n) == 0)
            return true;
    return false;
}

bool proxy_retry_wanted(const struct proxy_cluster_conf *cc, const struct proxy_route_conf *rc,
                        enum proxy_retry_cause cause, int status, int grpc_status, bool grpc)
{
    if (proxy_retry_max(cc, rc) <= 0)
        return false;
    switch (cause) {
    case PROXY_RETRY_CAUSE_CONNECT:
        return retry_on_has(cc, rc, PROXY_RETRY_CONNECT_FAILURE);
    case PROXY_RETRY_CAUSE_RESET:
        /* A gRPC call (a POST) the server may have started on is sent
         * again only for the statuses it was configured for. */
        return !grpc && retry_on_has(cc, rc, PROXY_RETRY_RESET);
    case PROXY_RETRY_CAUSE_STATUS:
        if (grpc) {
            for (size_t i = 0; i < cc->retry_grpc_codes.n; i++)
                if (grpc_code_of[OTR_CONF_AT(cc->retry_grpc_codes, int, i)] == grpc_status)
                    return true;
            return false;
        }
        if (status >= 500 && status <= 599 && retry_on_has(cc, rc, PROXY_RETRY_5XX))
            return true;
        if ((status == 502 || status == 503 || status == 504) && retry_on_has(cc, rc, PROXY_RETRY_GATEWAY_ERROR))
            return true;
        if (retry_on_has(cc, rc, PROXY_RETRY_STATUS_CODES))
            for (size_t i = 0; i < cc->retriable_status_codes.n; i++)
                if (OTR_CONF_AT(cc->retriable_status_codes, int64_t, i) == status)
                    return true;
        return false;
    }
    return false;
}

bool proxy_retry_take(struct proxy_wcluster *wc, const struct proxy_route_conf *rc, uint32_t *retries)
{
    const struct proxy_cluster_conf *cc = wc->c->conf;
    if (*retries >= (uint64_t)proxy_retry_max(cc, rc))
        return false;
    uint64_t now = uv_now(wc->pw->loop);
    if (now - wc->budget_window_ms >= 10000) {
        wc->budget_window_ms = now;
        wc->budget_requests = wc->budget_retries = 0;
    }
    if (wc->budget_retries >= 10 + (uint32_t)(wc->budget_requests * cc->retry_budget))
        return false;
    wc->budget_retries++;
    (*retries)++;
    if (wc->s_retries)
        wc->pw->st->host->counter_add(wc->s_retries, 1);
    return true;
}

uint64_t proxy_retry_delay_ms(struct proxy_wcluster *wc, uint32_t attempt)
{
    uint64_t base = wc->c->conf->retry_backoff;
    if (!base)
        return 0;
    /* Full jitter over an exponential ceiling: retries of many requests
     * that failed together spread out instead of arriving together. */
    uint64_t ceiling = base << (attempt > 1 ? (attempt - 1 < 4 ? attempt - 1 : 4) : 0);
    if (ceiling > base * 10)
        ceiling = base * 10; /* as Envoy: at most ten times the base */
    return proxy_rand(&wc->pw->rng) % (ceiling + 1);
}

/* --- the wait before a retry ------------------------------------------------ */

struct proxy_delay {
    uv_timer_t timer;
    void (*fire)(void *arg);
    void *arg;
};

static void delay_on_close(uv_handle_t *h)
{
    free(h->data);
}

static void delay_on_timer(uv_timer_t *t)
{
    struct proxy_delay *d = t->data;
    uv_close((uv_handle_t *)&d->timer, delay_on_close);
    d->fire(d->arg);
}

struct proxy_delay *proxy_delay_start(uv_loop_t *loop, uint64_t ms, void (*fire)(void *arg), void *arg)
{
    struct proxy_delay *d = malloc(sizeof *d);
    if (!d)
        return NULL;
    d->fire = fire;
    d->arg = arg;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, delay_on_timer, ms, 0);
    return d;
}

void proxy_delay_cancel(struct proxy_delay *d)
{
    if (d)
        uv_close((uv_handle_t *)&d->timer, delay_on_close);
}

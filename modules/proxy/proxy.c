/*
 * proxy: the module descriptor and its lifecycle: clusters resolved and
 * listeners bound in init (main thread), per-worker state and accept loops
 * in start, graceful drain.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
#include "proxy_discovery.h"
#include "proxy_h2.h"

static const double duration_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,    0.25,  0.5,    1,     2.5,  5,     10 };

/* Whether s can go into a request line or a header value as it is. */
static bool token_text(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

/* Cross-field checks of a cluster's health check and outlier settings. */
static int cluster_health_check(struct proxy_state *st, size_t i, const struct proxy_cluster_conf *cc)
{
    int errors = 0;
    char path[96];
    const struct proxy_health_conf *hc = &cc->health_check;
    if (hc->path[0] && (hc->path[0] != '/' || !token_text(hc->path))) {
        snprintf(path, sizeof path, "clusters[%zu].health_check.path", i);
        st->host->conf_error(st->ctx, path, "expected a path starting with \"/\" without spaces or control "
                             "characters, got \"%s\"", hc->path);
        errors++;
    }
    if (!token_text(hc->host)) {
        snprintf(path, sizeof path, "clusters[%zu].health_check.host", i);
        st->host->conf_error(st->ctx, path, "expected a host name without spaces or control characters");
        errors++;
    }
    if (hc->grpc && cc->protocol != PROXY_PROTO_H2) {
        snprintf(path, sizeof path, "clusters[%zu].health_check.grpc", i);
        st->host->conf_error(st->ctx, path, "gRPC health checks need a cluster with protocol h2");
        errors++;
    }
    if (!token_text(hc->grpc_service)) {
        snprintf(path, sizeof path, "clusters[%zu].health_check.grpc_service", i);
        st->host->conf_error(st->ctx, path, "expected a service name without spaces or control characters");
        errors++;
    }
    if (cc->outlier.max_ejection_time < cc->outlier.base_ejection_time) {
        snprintf(path, sizeof path, "clusters[%zu].outlier.max_ejection_time", i);
        st->host->conf_error(st->ctx, path, "must not be shorter than base_ejection_time");
        errors++;
    }
    return errors;
}

static int clusters_build(struct proxy_state *st)
{
    const struct proxy_conf *conf = st->conf;
    int errors = 0;
    char path[96];
    st->n_clusters = conf->clusters.n;
    /* Room for the mesh's slot clusters too, appended later by
     * proxy_mesh_build: the array never moves, as discovery keeps pointers
     * into it and each cluster's mutex must stay where it was made. */
    size_t slots = conf->mesh.enabled ? 2 * (size_t)conf->mesh.local_slots : 0;
    st->clusters = calloc(st->n_clusters + slots ? st->n_clusters + slots : 1, sizeof *st->clusters);
    if (!st->clusters)
        return UV_ENOMEM;
    for (size_t i = 0; i < st->n_clusters; i++) {
        struct proxy_cluster *c = &st->clusters[i];
        c->conf = &OTR_CONF_AT(conf->clusters, struct proxy_cluster_conf, i);
        for (size_t k = 0; k < i; k++)
            if (strcmp(st->clusters[k].conf->name, c->conf->name) == 0) {
                snprintf(path, sizeof path, "clusters[%zu].name", i);
                st->host->conf_error(st->ctx, path, "cluster \"%s\" is defined twice", c->conf->name);
                errors++;
            }
        errors += cluster_health_check(st, i, c->conf);
        int rc = proxy_cluster_endpoints_build(st, i);
        if (rc == OTR_ECONFIG)
            errors++;
        else if (rc)
            return rc;
    }
    return errors ? OTR_ECONFIG : 0;
}

static void state_free(struct proxy_state *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_clusters; i++)
        proxy_cluster_endpoints_free(&st->clusters[i]);
    free(st->clusters);
    if (st->wake_lock_init)
        uv_mutex_destroy(&st->wake_lock);
    proxy_routes_free(st);
    proxy_mesh_free(st);
    if (st->workers) {
        for (unsigned w = 0; w < st->n_workers; w++) {
            struct proxy_worker *pw = &st->workers[w];
            if (pw->clusters)
                for (size_t i = 0; i < st->n_clusters; i++)
                    proxy_wcluster_endpoints_free(&pw->clusters[i]);
            free(pw->clusters);
            proxy_cmetrics_worker_free(pw);
            proxy_conns_idle_trim(pw);
            proxy_mem_fini(&pw->mem);
        }
        free(st->workers);
    }
    free(st);
}

/* Builds routes and clusters into st; used by check (then thrown away) and
 * init. */
static int state_build(struct proxy_state *st)
{
    const struct proxy_conf *conf = st->conf;
    int rc = clusters_build(st);
    if (rc && rc != OTR_ECONFIG)
        return rc;
    int rr = proxy_routes_build(st);
    if (rr && rr != OTR_ECONFIG)
        return rr;
    if (!rc && proxy_retry_conf_check(st))
        rr = OTR_ECONFIG;
    if (rc || rr)
        return OTR_ECONFIG;
    if ((rc = proxy_mesh_build(st)))
        return rc;
    st->limits = proxy_h1_limits_default;
    st->limits.max_start_line = (uint32_t)conf->max_request_line;
    st->limits.max_head = (uint32_t)conf->max_header_size;
    st->limits.max_fields = (uint32_t)conf->max_headers;
    st->limits.max_trailers = (uint32_t)conf->max_trailer_size;
    st->buffer_size = (size_t)conf->buffer_size;
    return 0;
}

static int proxy_check(otr_ctx *ctx, const void *conf)
{
    struct proxy_state *st = calloc(1, sizeof *st);
    if (!st)
        return UV_ENOMEM;
    st->ctx = ctx;
    st->host = ctx->host;
    st->conf = conf;
    int rc = state_build(st);
    state_free(st);
    return rc;
}

static int metrics_register(struct proxy_state *st)
{
    const struct otr_host *host = st->host;
    static const char *const cluster_code[] = { "cluster", "code_class", NULL };
    static const char *const cluster_only[] = { "cluster", NULL };
    static const char *const worker_only[] = { "worker", NULL };
    static const char *const reason[] = { "reason", NULL };
    const struct otr_metric_desc requests = { "outrider_proxy_requests_total",
                                              "Requests proxied, by cluster and response status class.",
                                              OTR_METRIC_COUNTER, cluster_code, NULL, 0 };
    const struct otr_metric_desc duration = { "outrider_proxy_request_duration_seconds",
                                              "Time from request head to response end.", OTR_METRIC_HISTOGRAM,
                                              cluster_only, duration_buckets,
                                              sizeof duration_buckets / sizeof duration_buckets[0] };
    const struct otr_metric_desc upconns = { "outrider_proxy_upstream_connections",
                                             "Open upstream connections.", OTR_METRIC_GAUGE, cluster_only, NULL, 0 };
    const struct otr_metric_desc clients = { "outrider_proxy_client_connections", "Open client connections.",
                                             OTR_METRIC_GAUGE, worker_only, NULL, 0 };
    const struct otr_metric_desc errors = { "outrider_proxy_client_errors_total",
                                            "Client requests refused before routing.", OTR_METRIC_COUNTER, reason,
                                            NULL, 0 };
    st->m_requests = host->metric_new(st->ctx, &requests);
    st->m_duration = host->metric_new(st->ctx, &duration);
    st->m_upstream_conns = host->metric_new(st->ctx, &upconns);
    st->m_client_conns = host->metric_new(st->ctx, &clients);
    st->m_errors = host->metric_new(st->ctx, &errors);
    const struct otr_metric_desc retries = { "outrider_proxy_retries_total",
                                             "Requests sent again after a connection failure.", OTR_METRIC_COUNTER,
                                             cluster_only, NULL, 0 };
    st->m_retries = host->metric_new(st->ctx, &retries);
    static const char *const cluster_limit[] = { "cluster", "limit", NULL };
    const struct otr_metric_desc healthy = { "outrider_proxy_upstream_healthy",
                                             "Endpoints taking traffic (not ejected, passing health checks), the "
                                             "mean over workers.", OTR_METRIC_GAUGE, cluster_only, NULL, 0 };
    const struct otr_metric_desc ejections = { "outrider_proxy_ejections_total",
                                               "Endpoints ejected after failing in a row (summed over workers).",
                                               OTR_METRIC_COUNTER, cluster_only, NULL, 0 };
    const struct otr_metric_desc hc_failures = { "outrider_proxy_health_check_failures_total",
                                                 "Active health checks that failed.", OTR_METRIC_COUNTER,
                                                 cluster_only, NULL, 0 };
    const struct otr_metric_desc cb = { "outrider_proxy_circuit_breaker_rejections_total",
                                        "Requests answered 503 because a cluster limit was reached.",
                                        OTR_METRIC_COUNTER, cluster_limit, NULL, 0 };
    st->m_healthy = host->metric_new(st->ctx, &healthy);
    st->m_ejections = host->metric_new(st->ctx, &ejections);
    st->m_hc_failures = host->metric_new(st->ctx, &hc_failures);
    st->m_cb_rejections = host->metric_new(st->ctx, &cb);
    const struct otr_metric_desc endpoints = { "outrider_proxy_cluster_endpoints",
                                               "Endpoints a cluster currently balances over (static, DNS or file).",
                                               OTR_METRIC_GAUGE, cluster_only, NULL, 0 };
    static const char *const cluster_source[] = { "cluster", "source", NULL };
    const struct otr_metric_desc disc_failures = { "outrider_proxy_discovery_failures_total",
                                                   "Failed DNS resolutions and unusable endpoints files (the last "
                                                   "good endpoints are kept).",
                                                   OTR_METRIC_COUNTER, cluster_source, NULL, 0 };
    st->m_endpoints = host->metric_new(st->ctx, &endpoints);
    st->m_discovery_failures = host->metric_new(st->ctx, &disc_failures);
    if (!st->m_requests || !st->m_duration || !st->m_upstream_conns || !st->m_client_conns || !st->m_errors) {
        host->log(st->ctx, OTR_LOG_ERROR, "cannot register metrics");
        return UV_EINVAL;
    }
    return proxy_cmetrics_register(st, duration_buckets, sizeof duration_buckets / sizeof duration_buckets[0]);
}

static int proxy_init(otr_ctx *ctx, const void *conf_)
{
    const struct otr_host *host = ctx->host;
    const struct proxy_conf *conf = conf_;
    struct proxy_state *st = calloc(1, sizeof *st);
    if (!st)
        return UV_ENOMEM;
    st->ctx = ctx;
    st->host = host;
    st->conf = conf;
    host->set_data(ctx, st);
    if (uv_mutex_init(&st->wake_lock) != 0)
        return UV_ENOMEM;
    st->wake_lock_init = true;
    int rc = state_build(st);
    if (rc)
        return rc;
    st->n_workers = host->n_workers(ctx);
    st->workers = calloc(st->n_workers, sizeof *st->workers);
    if (!st->workers || proxy_ready_new(st))
        return UV_ENOMEM;
    if ((rc = metrics_register(st)) || (rc = proxy_mesh_metrics(st)))
        return rc;
    if (conf->script[0] && (rc = host->hook_declare(ctx, "script", conf->script, "route", &st->hook)))
        return rc;
    const struct proxy_listener_conf *lc[PROXY_LISTENERS] = { &conf->outbound, &conf->inbound };
    static const char *const names[PROXY_LISTENERS] = { "outbound", "inbound" };
    for (int l = 0; l < PROXY_LISTENERS; l++) {
        if (!lc[l]->enabled)
            continue;
        if ((rc = host->listener_open(ctx, names[l], &lc[l]->address, SOCK_STREAM, &st->listeners[l])))
            return rc;
    }
    return 0;
}

static void server_on_connection(uv_stream_t *server, int status)
{
    struct proxy_worker *pw = server->data;
    enum proxy_listener_id l = server == (uv_stream_t *)&pw->servers[PROXY_OUTBOUND] ? PROXY_OUTBOUND : PROXY_INBOUND;
    proxy_ready_accepted(pw->st, pw->st->host->worker_index(pw->w), l, status);
    if (status < 0 || pw->draining)
        return;
    proxy_conn_accept(pw, server, l);
}

static int worker_clusters_init(struct proxy_worker *pw)
{
    struct proxy_state *st = pw->st;
    const struct otr_host *host = st->host;
    pw->clusters = calloc(st->n_clusters ? st->n_clusters : 1, sizeof *pw->clusters);
    if (!pw->clusters)
        return UV_ENOMEM;
    for (size_t i = 0; i < st->n_clusters; i++) {
        struct proxy_wcluster *wc = &pw->clusters[i];
        wc->pw = pw;
        wc->c = &st->clusters[i];
        wc->index = (int)i;
        static const char *const classes[6] = { "error", "1xx", "2xx", "3xx", "4xx", "5xx" };
        for (int k = 0; k < 6; k++)
            wc->s_requests[k] = host->series(st->m_requests, pw->w, (const char *[]){ wc->c->conf->name, classes[k], NULL });
        wc->s_duration = host->series(st->m_duration, pw->w, (const char *[]){ wc->c->conf->name, NULL });
        wc->s_conns = host->series(st->m_upstream_conns, pw->w, (const char *[]){ wc->c->conf->name, NULL });
        if (st->m_retries)
            wc->s_retries = host->series(st->m_retries, pw->w, (const char *[]){ wc->c->conf->name, NULL });
        const char *name = wc->c->conf->name;
        if (st->m_healthy)
            wc->s_healthy = host->series(st->m_healthy, pw->w, (const char *[]){ name, NULL });
        if (st->m_ejections)
            wc->s_ejections = host->series(st->m_ejections, pw->w, (const char *[]){ name, NULL });
        if (st->m_hc_failures)
            wc->s_hc_failures = host->series(st->m_hc_failures, pw->w, (const char *[]){ name, NULL });
        if (st->m_cb_rejections) {
            wc->s_cb_requests = host->series(st->m_cb_rejections, pw->w, (const char *[]){ name, "max_requests", NULL });
            wc->s_cb_pending = host->series(st->m_cb_rejections, pw->w, (const char *[]){ name, "max_pending", NULL });
            wc->s_cb_conns = host->series(st->m_cb_rejections, pw->w, (const char *[]){ name, "max_connections", NULL });
        }
        proxy_outlier_gauge(wc);
    }
    return 0;
}

static int proxy_start(otr_ctx *ctx, otr_worker *w)
{
    const struct otr_host *host = ctx->host;
    struct proxy_state *st = host->data(ctx);
    struct proxy_worker *pw = &st->workers[host->worker_index(w)];
    pw->st = st;
    pw->w = w;
    pw->loop = host->loop(w);
    proxy_mem_init(&pw->mem);
    pw->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(uintptr_t)pw << 1) ^ uv_hrtime();
    if (!pw->rng)
        pw->rng = 1;
    int rc = worker_clusters_init(pw);
    if (rc || (rc = proxy_discovery_worker_start(pw)) || (rc = proxy_mesh_worker_start(pw)) ||
        (rc = proxy_cmetrics_worker_start(pw)))
        return rc;
    char idx[16];
    snprintf(idx, sizeof idx, "%u", host->worker_index(w));
    pw->s_client_conns = host->series(st->m_client_conns, w, (const char *[]){ idx, NULL });
    pw->s_errors_parse = host->series(st->m_errors, w, (const char *[]){ "malformed", NULL });
    uv_timer_init(pw->loop, &pw->drain_timer);
    pw->drain_timer.data = pw;
    pw->drain_timer_open = true;
    uv_idle_init(pw->loop, &pw->h2_idle);
    pw->h2_idle.data = pw;
    pw->h2_idle_open = true;
    proxy_outlier_start(pw);
    proxy_health_start(pw);
    uv_timer_init(pw->loop, &pw->h2_deadline_timer);
    pw->h2_deadline_timer.data = pw;
    pw->h2_deadline_open = true;
    uv_timer_init(pw->loop, &pw->idle_trim);
    pw->idle_trim.data = pw;
    pw->idle_trim_open = true;
    for (int l = 0; l < PROXY_LISTENERS; l++) {
        if (!st->listeners[l])
            continue;
        uv_os_sock_t fd;
        if ((rc = host->listener_socket(st->listeners[l], w, &fd)))
            return rc;
        uv_tcp_init(pw->loop, &pw->servers[l]);
        pw->servers[l].data = pw;
        pw->serving[l] = true;
        /* TCP_NODELAY here: Linux hands it down to every accepted socket,
         * a setsockopt per connection saved. */
        if ((rc = uv_tcp_open(&pw->servers[l], fd)) || (rc = uv_tcp_nodelay(&pw->servers[l], 1)) ||
            (rc = uv_listen((uv_stream_t *)&pw->servers[l], 511, server_on_connection))) {
            host->log(ctx, OTR_LOG_ERROR, "listener %s: %s", host->listener_address(st->listeners[l]),
                      uv_strerror(rc));
            proxy_ready_listening(st, host->worker_index(w), l, false);
            return rc;
        }
        proxy_ready_listening(st, host->worker_index(w), l, true);
    }
    return 0;
}

static void server_on_close(uv_handle_t *h)
{
    struct proxy_worker *pw = h->data;
    pw->serving[h == (uv_handle_t *)&pw->servers[PROXY_OUTBOUND] ? PROXY_OUTBOUND : PROXY_INBOUND] = false;
    proxy_worker_maybe_drained(pw);
}

static void h2_idle_on_close(uv_handle_t *h)
{
    struct proxy_worker *pw = h->data;
    pw->h2_idle_open = false;
    proxy_worker_maybe_drained(pw);
}

static void h2_deadline_on_close(uv_handle_t *h)
{
    struct proxy_worker *pw = h->data;
    pw->h2_deadline_open = false;
    proxy_worker_maybe_drained(pw);
}

static void idle_trim_on_close(uv_handle_t *h)
{
    struct proxy_worker *pw = h->data;
    pw->idle_trim_open = false;
    proxy_worker_maybe_drained(pw);
}

static void drain_timer_on_close(uv_handle_t *h)
{
    struct proxy_worker *pw = h->data;
    pw->drain_timer_open = false;
    proxy_worker_maybe_drained(pw);
}

void proxy_worker_maybe_drained(struct proxy_worker *pw)
{
    if (!pw->draining || pw->n_conns || pw->n_upconns || pw->n_health_handles)
        return;
    for (int l = 0; l < PROXY_LISTENERS; l++)
        if (pw->serving[l])
            return;
    if (pw->h2_dirty || pw->h2up_dirty)
        return; /* frames still to send; the idle callback comes back here */
    if (!proxy_discovery_worker_closed(pw))
        return; /* its close callbacks come back here */
    if (pw->drain_timer_open || pw->h2_idle_open || pw->h2_deadline_open || pw->idle_trim_open) {
        proxy_conns_idle_trim(pw);
        if (pw->idle_trim_open && !uv_is_closing((uv_handle_t *)&pw->idle_trim))
            uv_close((uv_handle_t *)&pw->idle_trim, idle_trim_on_close);
        if (pw->drain_timer_open && !uv_is_closing((uv_handle_t *)&pw->drain_timer))
            uv_close((uv_handle_t *)&pw->drain_timer, drain_timer_on_close);
        if (pw->h2_idle_open && !uv_is_closing((uv_handle_t *)&pw->h2_idle))
            uv_close((uv_handle_t *)&pw->h2_idle, h2_idle_on_close);
        if (pw->h2_deadline_open && !uv_is_closing((uv_handle_t *)&pw->h2_deadline_timer))
            uv_close((uv_handle_t *)&pw->h2_deadline_timer, h2_deadline_on_close);
        return;
    }
    pw->draining = false; /* report once */
    pw->st->host->drained(pw->st->ctx, pw->w);
}

static void drain_on_deadline(uv_timer_t *t)
{
    struct proxy_worker *pw = t->data;
    pw->st->host->log(pw->st->ctx, OTR_LOG_WARN, "drain deadline: closing %u client connections still open",
                      pw->n_conns);
    proxy_conns_close_all(pw);
    proxy_upstream_close_idle(pw);
    proxy_h2up_close_all(pw);
}

static void proxy_drain(otr_ctx *ctx, otr_worker *w, uint64_t deadline_ms)
{
    const struct otr_host *host = ctx->host;
    struct proxy_state *st = host->data(ctx);
    struct proxy_worker *pw = &st->workers[host->worker_index(w)];
    if (!pw->st) {
        /* start() never ran on this worker. */
        host->drained(ctx, w);
        return;
    }
    pw->draining = true;
    for (int l = 0; l < PROXY_LISTENERS; l++)
        if (pw->serving[l] && !uv_is_closing((uv_handle_t *)&pw->servers[l]))
            uv_close((uv_handle_t *)&pw->servers[l], server_on_close);
    /* The deadline first: HTTP/2 sessions time their GOAWAY from it. */
    uint64_t now = uv_now(pw->loop);
    if (pw->drain_timer_open)
        uv_timer_start(&pw->drain_timer, drain_on_deadline, deadline_ms > now ? deadline_ms - now : 0, 0);
    proxy_discovery_worker_stop(pw);
    proxy_health_stop(pw);
    proxy_outlier_stop(pw);
    proxy_conns_drain(pw);
    proxy_upstream_close_idle(pw);
    proxy_h2up_close_all(pw);
    proxy_worker_maybe_drained(pw);
}

static void proxy_fini(otr_ctx *ctx)
{
    proxy_ready_free(ctx->host->data(ctx));
    state_free(ctx->host->data(ctx));
    ctx->host->set_data(ctx, NULL);
}

static void proxy_status(otr_ctx *ctx, void (*emit)(void *, const char *, size_t), void *arg)
{
    struct proxy_state *st = ctx->host->data(ctx);
    char buf[512];
    int n = snprintf(buf, sizeof buf, "{\"clusters\":%zu,\"routes\":%zu}", st ? st->conf->clusters.n : 0,
                     st ? st->n_routes : 0);
    emit(arg, buf, (size_t)n);
}

OTR_MODULE_EXPORT const struct otr_module otr_module_proxy = {
    .magic = OTR_MODULE_MAGIC,
    .abi_major = OTR_ABI_MAJOR,
    .abi_minor = OTR_ABI_MINOR,
    .size = sizeof(struct otr_module),
    .build_sig = OTR_BUILD_SIG,
    .name = "proxy",
    .version = "0.1.0",
    .summary = "Service-mesh HTTP proxy: strict HTTP/1.1, routes, clusters, load balancing.",
    .roles = OTR_ROLE_ANY,
    .conf = proxy_conf_fields,
    .conf_size = sizeof(struct proxy_conf),
    .check = proxy_check,
    .init = proxy_init,
    .start = proxy_start,
    .drain = proxy_drain,
    .fini = proxy_fini,
    .status = proxy_status,
    .ready = proxy_ready,
};

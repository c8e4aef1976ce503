/*
 * proxy_caller_metrics: request counts and latencies by caller, what Istio
 * users know as source_workload / source_workload_namespace:
 * outrider_proxy_caller_requests_total{cluster,code_class,caller_namespace,
 * caller_workload} and outrider_proxy_caller_request_duration_seconds.
 *
 * The caller is the one proxy_caller.c determines (the pod owning the
 * source address, a trusted agent's x-outrider-caller), except that in
 * sidecar role the outbound listener's caller is always the own pod. Its
 * workload comes from proxy_workload.c. Label sets stay bounded: each
 * worker counts at most max_callers (namespace, workload) pairs, callers
 * beyond are counted as "other" (and in an overflow counter, with a log
 * line at most once a minute); a caller no pod matches is "unknown".
 *
 * The hot path (proxy_cmetrics_count in proxy.h) uses pointers cached on
 * the connection; this file holds the slow paths: a per-worker open
 * addressing table of callers, filled once per connection (or per change
 * of a mesh-named caller), and series created once per caller and cluster.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define CM(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_caller_metrics_conf, m, __VA_ARGS__)

static const struct otr_conf_field label_key_elem = {
    .type = OTR_CONF_STRING, .min = 1, .max = 317, .help = "A pod label key."};

const struct otr_conf_field proxy_caller_metrics_conf_fields[] = {
    CM("enabled", OTR_CONF_BOOL, enabled, .def = "true",
       .help = "Count requests by caller in outrider_proxy_caller_requests_total{cluster,code_class,"
               "caller_namespace,caller_workload} and outrider_proxy_caller_request_duration_seconds{cluster,"
               "caller_namespace,caller_workload}; a caller no pod matches counts as \"unknown\" in both; false: "
               "these families and outrider_proxy_caller_metrics_overflow_total are not registered."),
    CM("workload_labels", OTR_CONF_ARRAY, workload_labels, .elem = &label_key_elem, .elem_size = sizeof(char *),
       .def = "[\"app.kubernetes.io/name\", \"app\"]", .max = 16,
       .help = "caller_workload is the value of the first of these labels the calling pod has; without any, its "
               "name less a generated suffix (Deployment shop-7d9f8c6b5-x2k4q: shop, StatefulSet db-0: db)."),
    CM("max_callers", OTR_CONF_INT, max_callers, .def = "100", .min = 1, .max = 10000,
       .help = "Distinct (caller_namespace, caller_workload) pairs per worker and generation (unknown and other "
               "not included); further callers are counted as \"other\", in "
               "outrider_proxy_caller_metrics_overflow_total, and logged at most once a minute."),
    OTR_CONF_TABLE_END,
};

/* A worker's callers. */
struct proxy_cmetrics {
    const struct proxy_caller_metrics_conf *conf;
    unsigned n_cols;
    struct proxy_cmetrics_caller **slots; /* open addressing, cap a power of two above 2 x max_callers */
    size_t cap, n;
    struct proxy_cmetrics_caller *unknown, *other; /* not counted in n */
    struct proxy_cmetrics_caller *self;            /* sidecar role: the own pod, found once */
    bool sidecar;
    otr_series *s_overflow;
    uint64_t log_ms;      /* when the cap was last logged, 0: never */
    uint64_t overflowed;  /* callers counted as other since then */
};

/* The caller a trusted agent last named on a connection. */
struct proxy_cmetrics_fwd {
    char name[PROXY_CALLER_MAX];
    struct proxy_cmetrics_caller *k;
};

int proxy_cmetrics_register(struct proxy_state *st, const double *buckets, size_t n_buckets)
{
    if (!st->conf->caller_metrics.enabled)
        return 0;
    static const char *const req_labels[] = { "cluster", "code_class", "caller_namespace", "caller_workload", NULL };
    static const char *const dur_labels[] = { "cluster", "caller_namespace", "caller_workload", NULL };
    const struct otr_metric_desc requests = {
        "outrider_proxy_caller_requests_total",
        "Requests proxied, by cluster, response status class and calling pod's namespace and workload.",
        OTR_METRIC_COUNTER, req_labels, NULL, 0 };
    const struct otr_metric_desc duration = {
        "outrider_proxy_caller_request_duration_seconds",
        "Time from request head to response end, by cluster and calling pod's namespace and workload.",
        OTR_METRIC_HISTOGRAM, dur_labels, buckets, n_buckets };
    const struct otr_metric_desc overflow = {
        "outrider_proxy_caller_metrics_overflow_total",
        "Callers counted as caller_workload=\"other\" because a worker already had max_callers.",
        OTR_METRIC_COUNTER, NULL, NULL, 0 };
    st->m_caller_requests = st->host->metric_new(st->ctx, &requests);
    st->m_caller_duration = st->host->metric_new(st->ctx, &duration);
    st->m_caller_overflow = st->host->metric_new(st->ctx, &overflow);
    if (!st->m_caller_requests || !st->m_caller_duration || !st->m_caller_overflow) {
        st->host->log(st->ctx, OTR_LOG_ERROR, "cannot register the caller metrics");
        return UV_EINVAL;
    }
    return 0;
}

/* A caller with its strings and n_cols empty columns, in one allocation. */
static struct proxy_cmetrics_caller *caller_new(unsigned n_cols, const char *ns, const char *workload)
{
    size_t nl = strlen(ns) + 1, wl = strlen(workload) + 1;
    size_t cols = n_cols * sizeof(struct proxy_cmetrics_series *);
    struct proxy_cmetrics_caller *k = calloc(1, sizeof *k + cols + nl + wl);
    if (!k)
        return NULL;
    char *p = (char *)k->cols + cols;
    memcpy(p, ns, nl);
    memcpy(p + nl, workload, wl);
    k->ns = p;
    k->workload = p + nl;
    return k;
}

static void caller_free(struct proxy_cmetrics_caller *k, unsigned n_cols)
{
    if (!k)
        return;
    for (unsigned i = 0; i < n_cols; i++)
        free(k->cols[i]);
    free(k);
}

int proxy_cmetrics_worker_start(struct proxy_worker *pw)
{
    struct proxy_state *st = pw->st;
    const struct proxy_caller_metrics_conf *conf = &st->conf->caller_metrics;
    if (!st->m_caller_requests)
        return 0;
    /* Columns: one per configured cluster; the mesh's local slots, all
     * named mesh-local and consecutive, share one. */
    unsigned n_cols = 0;
    for (size_t i = 0; i < st->n_clusters; i++) {
        struct proxy_wcluster *wc = &pw->clusters[i];
        if (i > 0 && strcmp(wc->c->conf->name, pw->clusters[i - 1].c->conf->name) == 0)
            wc->cm_col = pw->clusters[i - 1].cm_col;
        else
            wc->cm_col = n_cols++;
    }
    struct proxy_cmetrics *cm = calloc(1, sizeof *cm);
    if (!cm)
        return UV_ENOMEM;
    pw->cm = cm;
    cm->conf = conf;
    cm->n_cols = n_cols ? n_cols : 1;
    cm->cap = 8;
    while (cm->cap < 2 * (size_t)conf->max_callers + 2)
        cm->cap *= 2;
    cm->slots = calloc(cm->cap, sizeof *cm->slots);
    cm->unknown = caller_new(cm->n_cols, "unknown", "unknown");
    cm->other = caller_new(cm->n_cols, "other", "other");
    if (!cm->slots || !cm->unknown || !cm->other)
        return UV_ENOMEM;
    cm->sidecar = st->host->role(st->ctx) == OTR_ROLE_SIDECAR;
    cm->s_overflow = st->host->series(st->m_caller_overflow, pw->w, (const char *[]){ NULL });
    return 0;
}

void proxy_cmetrics_worker_free(struct proxy_worker *pw)
{
    struct proxy_cmetrics *cm = pw->cm;
    if (!cm)
        return;
    for (size_t i = 0; cm->slots && i < cm->cap; i++)
        caller_free(cm->slots[i], cm->n_cols);
    free(cm->slots);
    caller_free(cm->unknown, cm->n_cols);
    caller_free(cm->other, cm->n_cols);
    free(cm);
    pw->cm = NULL;
}

void proxy_cmetrics_conn_free(struct proxy_conn *c)
{
    free(c->cm_fwd);
    c->cm_fwd = NULL;
}

/* FNV-1a over "namespace\0workload". */
static size_t caller_hash(const char *ns, const char *workload)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = ns;; p++) {
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
        if (!*p)
            break;
    }
    for (const char *p = workload; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    return (size_t)h;
}

/* Counts a caller turned away by the cap; logs it at most once a minute. */
static void caller_overflow(struct proxy_worker *pw, const char *ns, const char *workload)
{
    struct proxy_cmetrics *cm = pw->cm;
    struct proxy_state *st = pw->st;
    if (cm->s_overflow)
        st->host->counter_add(cm->s_overflow, 1);
    cm->overflowed++;
    uint64_t now = uv_now(pw->loop);
    if (cm->log_ms && now - cm->log_ms < 60000)
        return;
    st->host->log(st->ctx, OTR_LOG_WARN,
                  "caller metrics: worker %u already counts proxy.caller_metrics.max_callers (%lld) callers; "
                  "%s/%s and %llu other new callers since the last such line are counted as other",
                  st->host->worker_index(pw->w), (long long)cm->conf->max_callers, ns, workload,
                  (unsigned long long)(cm->overflowed - 1));
    cm->log_ms = now ? now : 1;
    cm->overflowed = 0;
}

/* The caller (namespace, workload), added when there is room. */
static struct proxy_cmetrics_caller *caller_find(struct proxy_worker *pw, const char *ns, const char *workload)
{
    struct proxy_cmetrics *cm = pw->cm;
    size_t mask = cm->cap - 1, i = caller_hash(ns, workload) & mask;
    for (; cm->slots[i]; i = (i + 1) & mask)
        if (strcmp(cm->slots[i]->ns, ns) == 0 && strcmp(cm->slots[i]->workload, workload) == 0)
            return cm->slots[i];
    struct proxy_cmetrics_caller *k;
    if (cm->n >= (size_t)cm->conf->max_callers || !(k = caller_new(cm->n_cols, ns, workload))) {
        caller_overflow(pw, ns, workload);
        return cm->other;
    }
    cm->slots[i] = k;
    cm->n++;
    return k;
}

static struct proxy_cmetrics_caller *caller_of_pod(struct proxy_worker *pw, const struct otr_pod *pod)
{
    if (!pod->namespace_[0] || !pod->name[0])
        return pw->cm->unknown; /* a sidecar not told its pod (POD_NAME, POD_NAMESPACE) */
    char workload[254];
    proxy_workload(pod, &pw->cm->conf->workload_labels, workload, sizeof workload);
    return caller_find(pw, pod->namespace_, workload);
}

bool proxy_cmetrics_by_address(const struct proxy_worker *pw, enum proxy_listener_id l)
{
    return pw->cm && !(pw->cm->sidecar && l == PROXY_OUTBOUND);
}

struct proxy_cmetrics_caller *proxy_cmetrics_resolve(struct proxy_conn *c)
{
    struct proxy_worker *pw = c->pw;
    struct proxy_cmetrics *cm = pw->cm;
    struct proxy_state *st = pw->st;
    if (cm->sidecar && c->listener == PROXY_OUTBOUND) {
        /* Whatever the source address (loopback, the pod IP, another
         * container's), an outbound call of a sidecar comes from its pod. */
        if (!cm->self) {
            const struct otr_pod *self = st->host->self_pod(st->ctx);
            cm->self = self ? caller_of_pod(pw, self) : cm->unknown;
        }
        return cm->self;
    }
    const struct sockaddr *peer = proxy_conn_peer_sa(c);
    const struct otr_pod *pod = peer ? st->host->pod_by_addr(st->ctx, peer) : NULL;
    if (!pod)
        return cm->unknown;
    struct proxy_cmetrics_caller *k = caller_of_pod(pw, pod);
    st->host->pod_unref(pod);
    return k;
}

struct proxy_cmetrics_caller *proxy_cmetrics_forwarded(struct proxy_conn *c, const struct proxy_caller_buf *cb)
{
    struct proxy_cmetrics_fwd *f = c->cm_fwd;
    if (f && strcmp(f->name, cb->fwd) == 0)
        return f->k;
    struct proxy_worker *pw = c->pw;
    struct proxy_cmetrics_caller *k = pw->cm->unknown;
    if (cb->fwd[0]) {
        /* The named pod's labels, when this node's inventory lists it. */
        struct proxy_caller caller;
        const struct otr_pod *pod = proxy_caller_get(pw->st, NULL, cb, true, &caller);
        if (pod)
            k = caller_of_pod(pw, pod);
        proxy_caller_put(pw->st, &caller);
    }
    if (!f && !(f = c->cm_fwd = malloc(sizeof *f)))
        return k; /* out of memory: looked up again next time */
    memcpy(f->name, cb->fwd, strlen(cb->fwd) + 1);
    f->k = k;
    return k;
}

struct proxy_cmetrics_series *proxy_cmetrics_series_new(struct proxy_worker *pw, struct proxy_cmetrics_caller *k,
                                                        const struct proxy_wcluster *wc)
{
    struct proxy_state *st = pw->st;
    const struct otr_host *host = st->host;
    struct proxy_cmetrics_series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    static const char *const classes[6] = { "error", "1xx", "2xx", "3xx", "4xx", "5xx" };
    const char *cluster = wc->c->conf->name;
    bool ok = true;
    for (int i = 0; i < 6; i++)
        ok &= (s->requests[i] = host->series(st->m_caller_requests, pw->w,
                                             (const char *[]){ cluster, classes[i], k->ns, k->workload, NULL })) != NULL;
    ok &= (s->duration = host->series(st->m_caller_duration, pw->w,
                                      (const char *[]){ cluster, k->ns, k->workload, NULL })) != NULL;
    if (!ok) {
        free(s);
        return NULL;
    }
    k->cols[wc->cm_col] = s;
    return s;
}

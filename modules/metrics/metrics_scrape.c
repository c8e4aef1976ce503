/*
 * Scraping, on worker 0: static targets from the config (sidecar: the
 * local app) and, in node role, every pod of the inventory annotated
 * prometheus.io/scrape=true (port and path from prometheus.io/port and
 * prometheus.io/path), re-discovered when the inventory changes.
 *
 * Each scrape builds a new snapshot of the target (its series, then its
 * up, scrape_duration_seconds and scrape_samples_scraped) and swaps it in
 * under state->lock; a target that vanished takes its series with it.
 * A failed scrape (connect error, timeout, non-200, unparsable body, body
 * over max_body, more than sample_limit samples) leaves only up=0, as
 * Prometheus marks such a target down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_http_client.h"
#include "metrics_int.h"
#include "metrics_relabel.h"

struct metrics_scraper {
    uv_timer_t timer;
    struct metrics_worker *mw;
};

static void target_free(struct metrics_target *t)
{
    msnap_unref(t->snap);
    free(t->key);
    free(t->label_text);
    free(t);
}

/* A target with label pairs (name, value), NULL-terminated. */
static struct metrics_target *target_new(struct metrics_state *st, const char *url, const char *const *kv)
{
    char err[160];
    struct metrics_target *t = xcalloc(1, sizeof *t);
    if (metrics_url_parse(url, &t->url, err, sizeof err) != 0) {
        st->host->log(st->ctx, OTR_LOG_WARN, "scrape target skipped: %s", err);
        free(t);
        return NULL;
    }
    t->st = st;
    t->key = strdup(url);
    size_t total = 0;
    for (size_t i = 0; kv[i]; i += 2)
        total += strlen(kv[i]) + strlen(kv[i + 1]);
    t->label_text = xmalloc(total + 1);
    char *w = t->label_text;
    for (size_t i = 0; kv[i] && t->n_labels < MSNAP_MAX_TARGET_LABELS; i += 2) {
        if (!kv[i + 1][0])
            continue;
        size_t kn = strlen(kv[i]), vn = strlen(kv[i + 1]);
        memcpy(w, kv[i], kn);
        memcpy(w + kn, kv[i + 1], vn);
        t->labels[t->n_labels++] = (struct prom_label){{w, kn}, {w + kn, vn}};
        w += kn + vn;
    }
    return t;
}

static void targets_add(struct metrics_state *st, struct metrics_target *t)
{
    pthread_mutex_lock(&st->lock);
    if (st->n_targets == st->cap_targets) {
        st->cap_targets = st->cap_targets ? st->cap_targets * 2 : 16;
        st->targets = xrealloc(st->targets, st->cap_targets * sizeof *st->targets);
    }
    st->targets[st->n_targets++] = t;
    pthread_mutex_unlock(&st->lock);
}

static struct metrics_target *targets_find(struct metrics_state *st, const char *key)
{
    for (size_t i = 0; i < st->n_targets; i++)
        if (strcmp(st->targets[i]->key, key) == 0)
            return st->targets[i];
    return NULL;
}

/* Takes t out of the list (its series vanish from the next exposition);
 * frees it now, or when its scrape in flight reports. */
static void targets_remove(struct metrics_state *st, size_t i)
{
    struct metrics_target *t = st->targets[i];
    pthread_mutex_lock(&st->lock);
    st->targets[i] = st->targets[--st->n_targets];
    pthread_mutex_unlock(&st->lock);
    t->removed = true;
    if (t->client)
        mhttp_abort(t->client); /* its callback frees t */
    else
        target_free(t);
}

struct discover_ctx {
    struct metrics_state *st;
    size_t added;
};

static const char *annotation(const struct otr_pod *pod, const char *key)
{
    for (size_t i = 0; i < pod->n_annotations; i++)
        if (strcmp(pod->annotations[i].key, key) == 0)
            return pod->annotations[i].value;
    return NULL;
}

static void discover_on_pod(void *arg, const struct otr_pod *pod)
{
    struct discover_ctx *d = arg;
    struct metrics_state *st = d->st;
    const char *scrape = annotation(pod, "prometheus.io/scrape");
    const char *port = annotation(pod, "prometheus.io/port");
    const char *path = annotation(pod, "prometheus.io/path");
    if (!scrape || strcmp(scrape, "true") != 0 || !pod->ip || !pod->ip[0])
        return;
    if (!port) {
        st->host->log(st->ctx, OTR_LOG_WARN, "pod %s/%s asks to be scraped without prometheus.io/port: skipped",
                      pod->namespace_, pod->name);
        return;
    }
    char url[512];
    bool v6 = strchr(pod->ip, ':') != NULL;
    snprintf(url, sizeof url, "http://%s%s%s:%s%s%s", v6 ? "[" : "", pod->ip, v6 ? "]" : "", port,
             path && path[0] == '/' ? "" : "/", path ? path : "metrics");
    struct metrics_target *t = targets_find(st, url);
    if (t) {
        t->seen = true;
        return;
    }
    if (st->n_targets >= (size_t)st->conf->scrape.max_targets) {
        st->host->log(st->ctx, OTR_LOG_WARN, "scrape.max_targets (%lld) reached: pod %s/%s not scraped",
                      (long long)st->conf->scrape.max_targets, pod->namespace_, pod->name);
        return;
    }
    const char *container = annotation(pod, "outrider.io/container");
    const char *node = pod->node && pod->node[0] ? pod->node : st->host->node_name(st->ctx);
    const char *kv[] = {"namespace", pod->namespace_, "pod", pod->name, "container", container ? container : "",
                        "node", node ? node : "", NULL};
    if ((t = target_new(st, url, kv)) != NULL) {
        t->discovered = t->seen = true;
        targets_add(st, t);
        d->added++;
    }
}

static void discover(struct metrics_worker *mw)
{
    struct metrics_state *st = mw->st;
    uint64_t v = st->host->inventory_version(st->ctx);
    if (v == st->inventory_seen)
        return;
    st->inventory_seen = v;
    for (size_t i = 0; i < st->n_targets; i++)
        st->targets[i]->seen = false;
    struct discover_ctx d = {st, 0};
    st->host->pods_foreach(st->ctx, discover_on_pod, &d);
    size_t removed = 0;
    for (size_t i = st->n_targets; i-- > 0;) {
        if (st->targets[i]->discovered && !st->targets[i]->seen) {
            targets_remove(st, i);
            removed++;
        }
    }
    if (d.added || removed)
        st->host->log(st->ctx, OTR_LOG_INFO, "scrape targets: %zu added, %zu removed, %zu in all", d.added, removed,
                      st->n_targets);
}

struct parse_ctx {
    struct metrics_target *t;
    struct metrics_worker *mw;
    struct msnap_builder *b;
    uint64_t samples, dropped;
};

static int scrape_on_sample(void *arg, const struct prom_sample *s)
{
    struct parse_ctx *p = arg;
    struct metrics_state *st = p->mw->st;
    p->samples++;
    if (p->samples > (uint64_t)st->conf->scrape.sample_limit)
        return 1; /* the scrape fails, as Prometheus' sample_limit does */
    if (st->relabel)
        p->dropped += (uint64_t)metrics_relabel_add(st->host, st->relabel, p->mw->w, p->b, s);
    else
        msnap_builder_add_prom(p->b, s);
    return 0;
}

static void add_gauge(struct msnap_builder *b, const char *name, const char *help, double v)
{
    struct msample m = {
        .family = {name, strlen(name)},
        .help = {help, strlen(help)},
        .type = PROM_GAUGE,
        .value = v,
    };
    msnap_builder_add(b, &m);
}

static void scraper_handle_closed(void *owner)
{
    metrics_worker_closed(owner);
}

static void scrape_on_done(void *arg, int err, int status, char *body, size_t len, const char *ctype)
{
    struct metrics_target *t = arg;
    struct metrics_state *st = t->st;
    struct metrics_worker *mw = &st->workers[0];
    t->client = NULL;
    if (t->removed) {
        target_free(t);
        return;
    }
    if (err == UV_ECANCELED)
        return; /* the agent is draining: keep the last result */
    double secs = (double)(uv_now(mw->loop) - t->started_ms) / 1000.0;
    struct msnap_builder b;
    msnap_builder_init(&b, t->labels, t->n_labels, st->conf->scrape.honor_labels, 0);
    struct parse_ctx p = {.t = t, .mw = mw, .b = &b};
    char why[160] = "";
    if (err)
        snprintf(why, sizeof why, "%s", err == UV_E2BIG ? "body larger than scrape.max_body" : uv_strerror(err));
    else if (status != 200)
        snprintf(why, sizeof why, "HTTP status %d", status);
    if (!why[0]) {
        unsigned flags = ctype && strstr(ctype, "application/openmetrics-text") ? PROM_OPENMETRICS : 0;
        struct prom_error perr;
        int rc = prom_parse(body, len, flags, scrape_on_sample, &p, &perr);
        if (rc == -1)
            snprintf(why, sizeof why, "line %u:%u: %s", perr.line, perr.col, perr.msg);
        else if (rc == 1)
            snprintf(why, sizeof why, "more than scrape.sample_limit (%lld) samples",
                     (long long)st->conf->scrape.sample_limit);
    }
    bool up = !why[0];
    if (!up) {
        /* Nothing of a failed scrape is kept but the target's health. */
        msnap_builder_fini(&b);
        msnap_builder_init(&b, t->labels, t->n_labels, st->conf->scrape.honor_labels, 0);
        st->host->log(st->ctx, OTR_LOG_WARN, "scrape %s failed: %s", t->key, why);
    }
    add_gauge(&b, "up", "1 if the target's last scrape succeeded, else 0.", up ? 1 : 0);
    add_gauge(&b, "scrape_duration_seconds", "How long the target's last scrape took.", secs);
    add_gauge(&b, "scrape_samples_scraped", "Samples the target's last scrape returned.", up ? (double)p.samples : 0);
    uint64_t rejected = 0;
    for (int i = 1; i < 5; i++)
        rejected += b.rejected[i];
    struct msnap *snap = msnap_builder_finish(&b);
    pthread_mutex_lock(&st->lock);
    struct msnap *old = t->snap;
    t->snap = snap;
    pthread_mutex_unlock(&st->lock);
    msnap_unref(old);
    metrics_count(st->host, up ? mw->c.scrapes_ok : mw->c.scrapes_failed, 1);
    metrics_count(st->host, mw->c.samples_dropped, (double)(rejected + p.dropped));
}

static void scrape_target(struct metrics_worker *mw, struct metrics_target *t)
{
    const struct metrics_conf *conf = mw->st->conf;
    struct mhttp_request r = {
        .method = "GET",
        .url = &t->url,
        .accept = "text/plain;version=0.0.4;q=1,*/*;q=0.1",
        .timeout_ms = conf->scrape.timeout,
        .max_body = conf->scrape.max_body,
    };
    t->started_ms = uv_now(mw->loop);
    mw->open_handles += 2;
    t->client = mhttp_start(mw->loop, &r, scrape_on_done, t, scraper_handle_closed, mw);
}

static void scraper_on_tick(uv_timer_t *timer)
{
    struct metrics_scraper *sc = timer->data;
    struct metrics_worker *mw = sc->mw;
    struct metrics_state *st = mw->st;
    if (mw->draining)
        return;
    if (st->conf->scrape.discover_pods && st->host->role(st->ctx) == OTR_ROLE_NODE)
        discover(mw);
    for (size_t i = 0; i < st->n_targets; i++)
        if (!st->targets[i]->client)
            scrape_target(mw, st->targets[i]);
}

static void scraper_on_close(uv_handle_t *h)
{
    struct metrics_scraper *sc = h->data;
    struct metrics_worker *mw = sc->mw;
    free(sc);
    metrics_worker_closed(mw);
}

int metrics_scrape_start(struct metrics_worker *mw)
{
    struct metrics_state *st = mw->st;
    const struct metrics_conf *conf = st->conf;
    const struct otr_pod *self = st->host->self_pod(st->ctx);
    const char *node = st->host->node_name(st->ctx);
    for (size_t i = 0; i < conf->scrape.targets.n; i++) {
        const char *url = OTR_CONF_AT(conf->scrape.targets, char *, i);
        /* Several local targets of one pod differ by instance (host:port),
         * as in Prometheus; url_parse cannot fail here: check() ran it. */
        struct metrics_url u;
        char err[160];
        if (metrics_url_parse(url, &u, err, sizeof err) != 0)
            continue;
        const char *kv[] = {"namespace", self && self->namespace_ ? self->namespace_ : "",
                            "pod",       self && self->name ? self->name : "",
                            "node",      node ? node : "",
                            "instance",  u.hostport,
                            NULL};
        struct metrics_target *t = target_new(st, url, kv);
        if (t)
            targets_add(st, t);
    }
    struct metrics_scraper *sc = xcalloc(1, sizeof *sc);
    sc->mw = mw;
    uv_timer_init(mw->loop, &sc->timer);
    sc->timer.data = sc;
    mw->open_handles++;
    mw->scraper = sc;
    st->inventory_seen = UINT64_MAX;
    /* The first scrape right away, so /metrics is complete soon after start. */
    return uv_timer_start(&sc->timer, scraper_on_tick, 0, conf->scrape.interval);
}

void metrics_scrape_stop(struct metrics_worker *mw)
{
    struct metrics_state *st = mw->st;
    if (!mw->scraper)
        return;
    for (size_t i = 0; i < st->n_targets; i++)
        if (st->targets[i]->client) {
            struct mhttp_client *c = st->targets[i]->client;
            st->targets[i]->client = NULL;
            mhttp_abort(c);
        }
    uv_close((uv_handle_t *)&mw->scraper->timer, scraper_on_close);
    mw->scraper = NULL;
}

void metrics_targets_free(struct metrics_state *st)
{
    for (size_t i = 0; i < st->n_targets; i++)
        target_free(st->targets[i]);
    free(st->targets);
    st->targets = NULL;
    st->n_targets = 0;
}

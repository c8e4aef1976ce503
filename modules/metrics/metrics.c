/*
 * metrics: the module's descriptor, configuration and lifecycle.
 *
 * Sources: the core registry, statsd (UDP and unix datagrams), scraped
 * Prometheus targets. Output: one /metrics endpoint on its own listener
 * (text 0.0.4 or OpenMetrics by Accept), optionally pushed to a
 * Pushgateway. See README.md for the model and the config reference.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_http_client.h"
#include "metrics_int.h"

#define F OTR_CONF_FIELD

static const struct otr_conf_field double_elem = {.type = OTR_CONF_DOUBLE};
static const struct otr_conf_field url_elem = {.type = OTR_CONF_STRING, .max = 1000};

static const struct otr_conf_field statsd_fields[] = {
    F("enabled", OTR_CONF_BOOL, struct metrics_statsd_conf, enabled, .def = "true",
      .help = "Receive statsd datagrams."),
    F("udp", OTR_CONF_ADDRESS, struct metrics_statsd_conf, udp, .def = "\"127.0.0.1:8125\"",
      .def_node = "\"0.0.0.0:8125\"", .help = "UDP address for statsd."),
    F("unix", OTR_CONF_STRING, struct metrics_statsd_conf, unix_path, .def = "\"\"", .max = 100,
      .help = "Path of a unix datagram socket that also receives statsd; empty: none."),
    F("timer_buckets", OTR_CONF_ARRAY, struct metrics_statsd_conf, timer_buckets,
      .def = "[0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10]", .min = 1, .max = MSTORE_MAX_BUCKETS,
      .elem = &double_elem, .elem_size = sizeof(double),
      .help = "Histogram buckets for timers (|ms), in seconds, ascending."),
    F("histogram_buckets", OTR_CONF_ARRAY, struct metrics_statsd_conf, histogram_buckets,
      .def = "[1,5,10,50,100,500,1000,5000,10000]", .min = 1, .max = MSTORE_MAX_BUCKETS, .elem = &double_elem,
      .elem_size = sizeof(double), .help = "Histogram buckets for |h and |d values, ascending."),
    F("max_series", OTR_CONF_INT, struct metrics_statsd_conf, max_series, .def = "100000", .min = 1, .max = 1e8,
      .help = "Cap on statsd series across workers: new series beyond it are refused and counted."),
    F("set_max_members", OTR_CONF_INT, struct metrics_statsd_conf, set_max_members, .def = "10000", .min = 1,
      .max = 1e7, .help = "Distinct members counted per set series; more are counted as overflow."),
    F("set_window", OTR_CONF_DURATION, struct metrics_statsd_conf, set_window, .def = "\"60s\"", .max = 86400000,
      .help = "A set's gauge counts the distinct members of the last complete window of this length (as statsd "
              "counts per flush); 0: all members since start."),
    F("batch", OTR_CONF_INT, struct metrics_statsd_conf, batch, .def = "64", .min = 1, .max = 1024,
      .help = "Datagrams read per recvmmsg call."),
    F("max_datagram", OTR_CONF_INT, struct metrics_statsd_conf, max_datagram, .def = "8192", .min = 512,
      .max = 65536, .help = "Largest datagram accepted; longer ones are dropped and counted."),
    F("rcvbuf", OTR_CONF_SIZE, struct metrics_statsd_conf, rcvbuf, .def = "\"4MiB\"", .min = 65536, .max = 1 << 30,
      .help = "Socket receive buffer asked for (the kernel caps it at net.core.rmem_max)."),
    F("coalesce", OTR_CONF_DURATION, struct metrics_statsd_conf, coalesce, .def = "\"1ms\"", .max = 100,
      .help = "While datagrams keep coming, read the socket every this long instead of waking per datagram "
              "(fewer syscalls, at most this much latency); 0: off."),
    F("pod_labels", OTR_CONF_BOOL, struct metrics_statsd_conf, pod_labels, .def = "true",
      .help = "Node role: label each sample with the sending pod's namespace and pod."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field scrape_fields[] = {
    F("interval", OTR_CONF_DURATION, struct metrics_scrape_conf, interval, .def = "\"15s\"", .min = 100,
      .max = 86400000, .help = "Time between scrapes of each target."),
    F("timeout", OTR_CONF_DURATION, struct metrics_scrape_conf, timeout, .def = "\"10s\"", .min = 10,
      .max = 3600000, .help = "Deadline of one scrape, connect to last byte."),
    F("max_body", OTR_CONF_SIZE, struct metrics_scrape_conf, max_body, .def = "\"16MiB\"", .min = 1024,
      .max = 1 << 30, .help = "Largest response body accepted; a larger one fails the scrape."),
    F("sample_limit", OTR_CONF_INT, struct metrics_scrape_conf, sample_limit, .def = "50000", .min = 1, .max = 1e8,
      .help = "A target returning more samples fails its scrape (as Prometheus' sample_limit)."),
    F("max_targets", OTR_CONF_INT, struct metrics_scrape_conf, max_targets, .def = "1000", .min = 1, .max = 100000,
      .help = "Most targets scraped at once."),
    F("honor_labels", OTR_CONF_BOOL, struct metrics_scrape_conf, honor_labels, .def = "false",
      .help = "On a clash with a target label keep the scraped label (else it becomes exported_<name>)."),
    F("discover_pods", OTR_CONF_BOOL, struct metrics_scrape_conf, discover_pods, .def = "false",
      .def_node = "true", .help = "Node role: scrape pods annotated prometheus.io/scrape=true."),
    F("targets", OTR_CONF_ARRAY, struct metrics_scrape_conf, targets, .def = "[]", .max = 1000, .elem = &url_elem,
      .elem_size = sizeof(char *), .help = "URLs to scrape, e.g. the local app's http://127.0.0.1:8080/metrics."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field relabel_fields[] = {
    F("script", OTR_CONF_STRING, struct metrics_relabel_conf, script, .def = "\"\"",
      .help = "Lua script (in scripts_dir) with the relabel function; empty: none."),
    F("function", OTR_CONF_STRING, struct metrics_relabel_conf, function, .def = "\"relabel\"", .max = 64,
      .help = "Name of the function: relabel(sample) returns the sample, changed or not, or nil to drop it."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field push_fields[] = {
    F("url", OTR_CONF_STRING, struct metrics_push_conf, url, .def = "\"\"", .max = 900,
      .help = "Pushgateway base URL (http://ip:port); empty: no push."),
    F("job", OTR_CONF_STRING, struct metrics_push_conf, job, .def = "\"outrider\"", .max = 100,
      .help = "Job name of the pushed group: PUT <url>/metrics/job/<job>."),
    F("interval", OTR_CONF_DURATION, struct metrics_push_conf, interval, .def = "\"15s\"", .min = 100,
      .max = 86400000, .help = "Time between pushes."),
    F("timeout", OTR_CONF_DURATION, struct metrics_push_conf, timeout, .def = "\"10s\"", .min = 10, .max = 3600000,
      .help = "Deadline of one push."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field metrics_fields[] = {
    F("listen", OTR_CONF_ADDRESS, struct metrics_conf, listen, .def = "\"127.0.0.1:9102\"",
      .def_node = "\"0.0.0.0:9102\"", .help = "Address of the /metrics endpoint."),
    F("path", OTR_CONF_STRING, struct metrics_conf, path, .def = "\"/metrics\"", .max = 200,
      .help = "Path of the exposition."),
    F("statsd", OTR_CONF_OBJECT, struct metrics_conf, statsd, .fields = statsd_fields, .help = "statsd input."),
    F("scrape", OTR_CONF_OBJECT, struct metrics_conf, scrape, .fields = scrape_fields, .help = "Scraping."),
    F("relabel", OTR_CONF_OBJECT, struct metrics_conf, relabel, .fields = relabel_fields,
      .help = "Lua relabel hook for scraped samples."),
    F("push", OTR_CONF_OBJECT, struct metrics_conf, push, .fields = push_fields, .help = "Pushgateway output."),
    OTR_CONF_TABLE_END,
};

static int check_buckets(otr_ctx *ctx, const char *path, const struct otr_conf_array *a)
{
    const double *b = a->items;
    for (size_t i = 0; i < a->n; i++) {
        if (!isfinite(b[i]) || (i > 0 && b[i] <= b[i - 1])) {
            char at[64];
            snprintf(at, sizeof at, "%s[%zu]", path, i);
            ctx->host->conf_error(ctx, at, "buckets must be finite and strictly ascending, got %g after %g", b[i],
                                  i ? b[i - 1] : 0.0);
            return -1;
        }
    }
    return 0;
}

static int metrics_check(otr_ctx *ctx, const void *confp)
{
    const struct metrics_conf *conf = confp;
    const struct otr_host *h = ctx->host;
    int bad = 0;
    char err[200];
    struct metrics_url u;
    if (conf->path[0] != '/') {
        h->conf_error(ctx, "path", "must start with '/', got \"%s\"", conf->path);
        bad = 1;
    }
    bad |= check_buckets(ctx, "statsd.timer_buckets", &conf->statsd.timer_buckets) != 0;
    bad |= check_buckets(ctx, "statsd.histogram_buckets", &conf->statsd.histogram_buckets) != 0;
    if (conf->statsd.set_window && conf->statsd.set_window < 100) {
        /* Windows are counted in tenths of a second. */
        h->conf_error(ctx, "statsd.set_window", "must be 0 (off) or at least 100ms, got %llums",
                      (unsigned long long)conf->statsd.set_window);
        bad = 1;
    }
    for (size_t i = 0; i < conf->scrape.targets.n; i++) {
        if (metrics_url_parse(OTR_CONF_AT(conf->scrape.targets, char *, i), &u, err, sizeof err) != 0) {
            char at[48];
            snprintf(at, sizeof at, "scrape.targets[%zu]", i);
            h->conf_error(ctx, at, "%s", err);
            bad = 1;
        }
    }
    if (conf->push.url[0] && metrics_url_parse(conf->push.url, &u, err, sizeof err) != 0) {
        h->conf_error(ctx, "push.url", "%s", err);
        bad = 1;
    }
    if (conf->push.url[0] && (!conf->push.job[0] || strpbrk(conf->push.job, "/?# "))) {
        h->conf_error(ctx, "push.job", "must be a non-empty name without '/', '?', '#' or spaces");
        bad = 1;
    }
    if (conf->scrape.timeout > conf->scrape.interval) {
        h->conf_error(ctx, "scrape.timeout", "must not exceed scrape.interval");
        bad = 1;
    }
    return bad ? OTR_ECONFIG : 0;
}

static otr_metric *counter(otr_ctx *ctx, const char *name, const char *help, const char *const *labels)
{
    struct otr_metric_desc d = {.name = name, .help = help, .type = OTR_METRIC_COUNTER, .label_names = labels};
    return ctx->host->metric_new(ctx, &d);
}

static void declare_metrics(struct metrics_state *st)
{
    static const char *const reason[] = {"reason", NULL};
    static const char *const result[] = {"result", NULL};
    otr_ctx *ctx = st->ctx;
    st->m_packets = counter(ctx, "outrider_metrics_statsd_packets_total", "statsd datagrams received.", NULL);
    st->m_lines = counter(ctx, "outrider_metrics_statsd_lines_total", "statsd lines received.", NULL);
    st->m_malformed =
        counter(ctx, "outrider_metrics_statsd_malformed_lines_total", "statsd lines that did not parse.", NULL);
    st->m_truncated = counter(ctx, "outrider_metrics_statsd_truncated_packets_total",
                              "statsd datagrams longer than statsd.max_datagram, dropped.", NULL);
    st->m_refused = counter(ctx, "outrider_metrics_statsd_refused_lines_total",
                            "Parsed statsd lines not stored, by reason.", reason);
    st->m_set_overflow = counter(ctx, "outrider_metrics_statsd_set_overflow_total",
                                 "Set members beyond statsd.set_max_members, not counted.", NULL);
    st->m_scrapes = counter(ctx, "outrider_metrics_scrapes_total", "Scrapes of targets, by result.", result);
    st->m_samples_dropped = counter(ctx, "outrider_metrics_scrape_samples_dropped_total",
                                    "Scraped samples dropped: duplicates, type conflicts, invalid, relabel.", NULL);
    st->m_pushes = counter(ctx, "outrider_metrics_pushes_total", "Pushes to the Pushgateway, by result.", result);
    st->m_expo_duplicates =
        counter(ctx, "outrider_metrics_exposition_duplicates_total",
                "Series left out of expositions: identical (name and labels) to one an earlier source exposed.", NULL);
}

static int metrics_init(otr_ctx *ctx, const void *confp)
{
    const struct metrics_conf *conf = confp;
    const struct otr_host *h = ctx->host;
    struct metrics_state *st = xcalloc(1, sizeof *st);
    st->ctx = ctx;
    st->host = h;
    st->conf = conf;
    pthread_mutex_init(&st->lock, NULL);
    st->store_conf = (struct mstore_conf){
        .timer_buckets = conf->statsd.timer_buckets.items,
        .n_timer_buckets = conf->statsd.timer_buckets.n,
        .hist_buckets = conf->statsd.histogram_buckets.items,
        .n_hist_buckets = conf->statsd.histogram_buckets.n,
        .set_max_members = (uint32_t)conf->statsd.set_max_members,
        .set_window_ds = (uint32_t)(conf->statsd.set_window / 100),
    };
    st->n_workers = h->n_workers(ctx);
    st->workers = xcalloc(st->n_workers, sizeof *st->workers);
    h->set_data(ctx, st);
    st->stores = metrics_stores_acquire(st->n_workers, &st->store_conf, (uint64_t)conf->statsd.max_series, &st->limit);
    if (!st->stores) {
        h->log(ctx, OTR_LOG_ERROR, "statsd stores exist for another worker count than %u", st->n_workers);
        return UV_EINVAL;
    }
    for (unsigned i = 0; i < st->n_workers; i++) {
        st->workers[i].st = st;
        st->workers[i].index = i;
        st->workers[i].store = &st->stores[i];
    }

    int rc = h->listener_open(ctx, "http", &conf->listen, SOCK_STREAM, &st->http);
    if (rc == 0 && conf->statsd.enabled)
        rc = h->listener_open(ctx, "statsd", &conf->statsd.udp, SOCK_DGRAM, &st->udp);
    if (rc == 0 && conf->statsd.enabled && conf->statsd.unix_path[0]) {
        char text[128];
        snprintf(text, sizeof text, "unix:%s", conf->statsd.unix_path);
        struct otr_conf_address a = {.text = text, .host = conf->statsd.unix_path, .port = 0, .is_unix = true};
        rc = h->listener_open(ctx, "statsd_unix", &a, SOCK_DGRAM, &st->unixl);
    }
    if (rc == 0 && conf->relabel.script[0])
        rc = h->hook_declare(ctx, "relabel.script", conf->relabel.script, conf->relabel.function, &st->relabel);
    if (rc != 0)
        return rc; /* fini() frees the state */
    declare_metrics(st);
    return 0;
}

static otr_series *series_of(struct metrics_state *st, otr_metric *m, otr_worker *w, const char *label)
{
    const char *values[] = {label, NULL};
    return m ? st->host->series(m, w, label ? values : NULL) : NULL;
}

static int metrics_start(otr_ctx *ctx, otr_worker *w)
{
    struct metrics_state *st = ctx->host->data(ctx);
    struct metrics_worker *mw = &st->workers[ctx->host->worker_index(w)];
    mw->w = w;
    mw->loop = ctx->host->loop(w);
    metrics_stores_configure(mw->store, &st->store_conf, (uint64_t)st->conf->statsd.max_series);
    struct metrics_counters *c = &mw->c;
    c->packets = series_of(st, st->m_packets, w, NULL);
    c->lines = series_of(st, st->m_lines, w, NULL);
    c->malformed = series_of(st, st->m_malformed, w, NULL);
    c->truncated = series_of(st, st->m_truncated, w, NULL);
    c->refused[MSTORE_LIMIT] = series_of(st, st->m_refused, w, "series_limit");
    c->refused[MSTORE_TYPE_CONFLICT] = series_of(st, st->m_refused, w, "type_conflict");
    c->refused[MSTORE_BAD_NAME] = series_of(st, st->m_refused, w, "bad_name");
    c->refused[MSTORE_BAD_LABEL] = series_of(st, st->m_refused, w, "bad_label");
    c->set_overflow = series_of(st, st->m_set_overflow, w, NULL);
    c->scrapes_ok = series_of(st, st->m_scrapes, w, "ok");
    c->scrapes_failed = series_of(st, st->m_scrapes, w, "failed");
    c->samples_dropped = series_of(st, st->m_samples_dropped, w, NULL);
    c->pushes_ok = series_of(st, st->m_pushes, w, "ok");
    c->pushes_failed = series_of(st, st->m_pushes, w, "failed");
    c->expo_duplicates = series_of(st, st->m_expo_duplicates, w, NULL);
    int rc = metrics_endpoint_start(mw);
    if (rc == 0)
        rc = metrics_statsd_start(mw);
    if (rc == 0 && mw->index == 0)
        rc = metrics_scrape_start(mw);
    if (rc == 0 && mw->index == 0 && st->conf->push.url[0])
        rc = metrics_push_start(mw);
    return rc;
}

void metrics_worker_closed(struct metrics_worker *mw)
{
    if (--mw->open_handles == 0 && mw->draining)
        mw->st->host->drained(mw->st->ctx, mw->w);
}

static void metrics_drain(otr_ctx *ctx, otr_worker *w, uint64_t deadline_ms)
{
    struct metrics_state *st = ctx->host->data(ctx);
    struct metrics_worker *mw = &st->workers[ctx->host->worker_index(w)];
    mw->draining = true;
    metrics_push_stop(mw);
    metrics_scrape_stop(mw);
    metrics_statsd_stop(mw);
    metrics_endpoint_stop(mw);
    if (mw->open_handles == 0)
        ctx->host->drained(ctx, w);
}

static void metrics_fini(otr_ctx *ctx)
{
    struct metrics_state *st = ctx->host->data(ctx);
    if (!st)
        return;
    if (st->stores)
        metrics_stores_release();
    for (unsigned i = 0; st->workers && i < st->n_workers; i++)
        mexpo_scratch_fini(&st->workers[i].expo_scratch);
    metrics_targets_free(st);
    msnap_unref(st->statsd_spare);
    free(st->workers);
    pthread_mutex_destroy(&st->lock);
    free(st);
    ctx->host->set_data(ctx, NULL);
}

static void metrics_status(otr_ctx *ctx, void (*emit)(void *, const char *, size_t), void *arg)
{
    struct metrics_state *st = ctx->host->data(ctx);
    char buf[160];
    pthread_mutex_lock(&st->lock);
    size_t targets = st->n_targets;
    pthread_mutex_unlock(&st->lock);
    int n = snprintf(buf, sizeof buf, "\"statsd_series\":%llu,\"statsd_max_series\":%llu,\"targets\":%zu",
                     (unsigned long long)atomic_load(&st->limit->used),
                     (unsigned long long)atomic_load(&st->limit->max), targets);
    emit(arg, buf, (size_t)n);
}

OTR_MODULE_EXPORT const struct otr_module otr_module_metrics = {
    .magic = OTR_MODULE_MAGIC,
    .abi_major = OTR_ABI_MAJOR,
    .abi_minor = OTR_ABI_MINOR,
    .size = sizeof(struct otr_module),
    .build_sig = OTR_BUILD_SIG,
    .name = "metrics",
    .version = "0.1.0",
    .summary = "statsd, scraped targets and the agent's registry on one Prometheus /metrics endpoint",
    .roles = OTR_ROLE_ANY,
    .conf = metrics_fields,
    .conf_size = sizeof(struct metrics_conf),
    .check = metrics_check,
    .init = metrics_init,
    .start = metrics_start,
    .drain = metrics_drain,
    .fini = metrics_fini,
    .status = metrics_status,
};

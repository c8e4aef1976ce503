/*
 * metrics_registry: values merged across shards (two written by real
 * threads), label and HELP escaping, redeclaration, name validation, the
 * exact text of both formats, content negotiation, and the real promtool
 * accepting what we render.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "tap.h"

#include "../../core/admin_http.c"
#include "../../core/metrics_registry.c"

static void render_to(struct otr_registry *r, enum otr_metrics_format fmt, struct otr_buf *b)
{
    b->len = 0;
    otr_registry_render(r, fmt, otr_buf_emit, b);
    otr_buf_append(b, "", 0); /* NUL-terminate even when empty */
}

/* ------------------------------------------------------------------------ */

struct shard_job {
    otr_series *counter, *gauge, *hist;
    int n;
};

static void *shard_thread(void *arg)
{
    struct shard_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        otr_series_counter_add(j->counter, 1);
        otr_series_gauge_add(j->gauge, 2);
        otr_series_observe(j->hist, (i % 3) == 0 ? 0.001 : 0.5);
    }
    return NULL;
}

static void test_shards_merge(void)
{
    struct otr_registry *r = otr_registry_new(3);
    static const char *const labels[] = {"code", NULL};
    static const double buckets[] = {0.005, 0.1, 1};
    char err[256];
    otr_metric *c = otr_registry_metric(
        r, &(struct otr_metric_desc){.name = "t_req_total", .help = "h", .type = OTR_METRIC_COUNTER, .label_names = labels},
        err, sizeof err);
    otr_metric *g = otr_registry_metric(
        r, &(struct otr_metric_desc){.name = "t_conns", .help = "h", .type = OTR_METRIC_GAUGE}, err, sizeof err);
    otr_metric *h = otr_registry_metric(r,
                                        &(struct otr_metric_desc){.name = "t_lat_seconds",
                                                                  .help = "h",
                                                                  .type = OTR_METRIC_HISTOGRAM,
                                                                  .buckets = buckets,
                                                                  .n_buckets = 3},
                                        err, sizeof err);
    ok(c && g && h, "three families declared");
    const char *const v200[] = {"200"};
    struct shard_job jobs[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        jobs[i] = (struct shard_job){otr_registry_series(c, (unsigned)i + 1, v200),
                                     otr_registry_series(g, (unsigned)i + 1, NULL),
                                     otr_registry_series(h, (unsigned)i + 1, NULL), 300000};
        pthread_create(&th[i], NULL, shard_thread, &jobs[i]);
    }
    /* The main thread's shard, concurrently. */
    otr_series *c0 = otr_registry_series(c, 0, v200);
    otr_series *g0 = otr_registry_series(g, 0, NULL);
    otr_series *h0 = otr_registry_series(h, 0, NULL);
    ok(c0 == otr_registry_series(c, 0, v200), "the same label values in the same shard give the same series");
    ok(c0 != jobs[0].counter, "another shard gives another series");
    ok(otr_registry_series(c, 3, v200) == NULL, "a shard out of range gives NULL");
    otr_series_counter_add(c0, 2.5);
    otr_series_counter_add(c0, -1); /* ignored: counters never decrease */
    otr_series_gauge_set(g0, 10);
    otr_series_gauge_add(g0, -3);
    otr_series_observe(h0, 7);
    otr_series_observe(h0, 0.1); /* le is inclusive */

    /* Render while the two threads update: values never go backwards and
     * the histogram's buckets stay consistent with its count. */
    struct otr_buf b = {0};
    bool monotonic = true, consistent = true;
    double last = 0;
    for (int i = 0; i < 50; i++) {
        render_to(r, OTR_METRICS_PROMETHEUS, &b);
        const char *p = strstr(b.p, "t_req_total{code=\"200\"} ");
        double v = p ? strtod(p + 24, NULL) : -1;
        monotonic &= v >= last;
        last = v;
        const char *inf = strstr(b.p, "le=\"+Inf\"} "), *cnt = strstr(b.p, "t_lat_seconds_count ");
        consistent &= inf && cnt && strtoull(inf + 11, NULL, 10) == strtoull(cnt + 20, NULL, 10);
    }
    ok(monotonic, "a counter read during updates never goes backwards");
    diag("last counter value seen while the threads ran: %.1f of 600002.5", last);
    ok(consistent, "during updates, _count always equals the +Inf bucket");
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);

    render_to(r, OTR_METRICS_PROMETHEUS, &b);
    ok(strstr(b.p, "t_req_total{code=\"200\"} 600002.5\n") != NULL, "counter sums three shards");
    ok(strstr(b.p, "\nt_conns 1200007\n") != NULL, "gauge sums three shards");
    /* 200000 observations of 0.001, 400000 of 0.5, plus 0.1 and 7. */
    ok(strstr(b.p, "t_lat_seconds_bucket{le=\"0.005\"} 200000\n"), "first bucket");
    ok(strstr(b.p, "t_lat_seconds_bucket{le=\"0.1\"} 200001\n"), "second bucket is cumulative and inclusive");
    ok(strstr(b.p, "t_lat_seconds_bucket{le=\"1\"} 600001\n"), "third bucket");
    ok(strstr(b.p, "t_lat_seconds_bucket{le=\"+Inf\"} 600002\n"), "+Inf bucket");
    ok(strstr(b.p, "t_lat_seconds_count 600002\n"), "count equals +Inf");
    /* 200000 additions of 0.001 accumulate rounding error: compare within
     * a millionth. */
    const char *sum = strstr(b.p, "t_lat_seconds_sum ");
    ok(sum && fabs(strtod(sum + 18, NULL) - 200207.1) < 1e-6, "sum merges the shards: %.40s", sum);
    otr_buf_fini(&b);
    otr_registry_free(r);
}

/* ------------------------------------------------------------------------ */

static void test_declarations(void)
{
    struct otr_registry *r = otr_registry_new(1);
    static const char *const ab[] = {"a", "b", NULL};
    static const char *const ba[] = {"b", "a", NULL};
    char err[256];
    struct otr_metric_desc d = {.name = "x_total", .help = "x", .type = OTR_METRIC_COUNTER, .label_names = ab};
    otr_metric *m = otr_registry_metric(r, &d, err, sizeof err);
    ok(m != NULL, "declared");
    ok(otr_registry_metric(r, &d, err, sizeof err) == m, "the same declaration returns the same family");

    d.label_names = ba;
    ok(otr_registry_metric(r, &d, err, sizeof err) == NULL, "other label names refused");
    is_str(err, "metric x_total is already registered with other label names", "its message");

    d = (struct otr_metric_desc){.name = "x_total", .help = "x", .type = OTR_METRIC_GAUGE};
    ok(otr_registry_metric(r, &d, err, sizeof err) == NULL, "another type refused");
    is_str(err, "gauge x_total: only counters may end in _total", "gauge named _total");

    static const double b1[] = {1, 2}, b2[] = {1, 3};
    d = (struct otr_metric_desc){.name = "hh", .help = "x", .type = OTR_METRIC_HISTOGRAM, .buckets = b1, .n_buckets = 2};
    ok(otr_registry_metric(r, &d, err, sizeof err) != NULL, "histogram declared");
    d.buckets = b2;
    ok(otr_registry_metric(r, &d, err, sizeof err) == NULL, "other buckets refused");
    is_str(err, "histogram hh is already registered with other buckets", "its message");
    d.type = OTR_METRIC_GAUGE;
    d.buckets = NULL;
    d.n_buckets = 0;
    ok(otr_registry_metric(r, &d, err, sizeof err) == NULL, "histogram redeclared as gauge refused");
    is_str(err, "metric hh is already registered as a histogram, not a gauge", "its message");

    struct {
        struct otr_metric_desc d;
        const char *msg;
    } bad[] = {
        {{.name = "9x", .type = OTR_METRIC_GAUGE},
         "metric name \"9x\" is invalid: it must match [a-zA-Z_:][a-zA-Z0-9_:]*"},
        {{.name = "a-b", .type = OTR_METRIC_GAUGE},
         "metric name \"a-b\" is invalid: it must match [a-zA-Z_:][a-zA-Z0-9_:]*"},
        {{.name = "", .type = OTR_METRIC_GAUGE}, "metric name \"\" is invalid: it must match [a-zA-Z_:][a-zA-Z0-9_:]*"},
        {{.name = "reqs", .type = OTR_METRIC_COUNTER}, "counter reqs: counter names must end in _total"},
        {{.name = "g", .type = OTR_METRIC_GAUGE, .label_names = (const char *const[]){"__x", NULL}},
         "metric g: label name \"__x\" is invalid: it must match [a-zA-Z_][a-zA-Z0-9_]* and not start with \"__\""},
        {{.name = "g", .type = OTR_METRIC_GAUGE, .label_names = (const char *const[]){"a:b", NULL}},
         "metric g: label name \"a:b\" is invalid: it must match [a-zA-Z_][a-zA-Z0-9_]* and not start with \"__\""},
        {{.name = "g", .type = OTR_METRIC_GAUGE, .label_names = (const char *const[]){"a", "a", NULL}},
         "metric g: label name \"a\" appears twice"},
        {{.name = "h", .type = OTR_METRIC_HISTOGRAM, .label_names = (const char *const[]){"le", NULL}, .buckets = b1,
          .n_buckets = 2},
         "histogram h: label name \"le\" is reserved for buckets"},
        {{.name = "h", .type = OTR_METRIC_HISTOGRAM, .buckets = b1, .n_buckets = 0},
         "histogram h: at least one bucket bound is needed"},
        {{.name = "h", .type = OTR_METRIC_HISTOGRAM, .buckets = (const double[]){2, 1}, .n_buckets = 2},
         "histogram h: bucket bounds must be strictly ascending (bucket 1)"},
        {{.name = "h", .type = OTR_METRIC_HISTOGRAM, .buckets = (const double[]){1, INFINITY}, .n_buckets = 2},
         "histogram h: bucket 1 is not finite (+Inf is implicit)"},
        {{.name = "h_count", .type = OTR_METRIC_HISTOGRAM, .buckets = b1, .n_buckets = 2},
         "histogram h_count: the name must not end in _bucket, _sum or _count"},
        {{.name = "x", .type = OTR_METRIC_GAUGE},
         "metric x clashes with counter x_total: both are family \"x\" in OpenMetrics"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        ok(otr_registry_metric(r, &bad[i].d, err, sizeof err) == NULL, "refused: %s", bad[i].d.name);
        is_str(err, bad[i].msg, "message for %s", bad[i].d.name);
    }
    ok(otr_registry_series(m, 0, (const char *const[]){"only-one", NULL}) == NULL,
       "too few label values give NULL");
    otr_registry_free(r);
}

/* ------------------------------------------------------------------------ */

static double uptime_fn(void *arg)
{
    return *(double *)arg;
}

static struct otr_registry *small_registry(double *up)
{
    struct otr_registry *r = otr_registry_new(2);
    char err[256];
    static const char *const lbl[] = {"path", "code", NULL};
    static const double buckets[] = {0.005, 0.25, 1, 2.5, 1000000};
    otr_metric *c = otr_registry_metric(r,
                                        &(struct otr_metric_desc){.name = "demo_requests_total",
                                                                  .help = "Requests \\ served\nby \"path\".",
                                                                  .type = OTR_METRIC_COUNTER,
                                                                  .label_names = lbl},
                                        err, sizeof err);
    otr_metric *g = otr_registry_metric(
        r, &(struct otr_metric_desc){.name = "demo_temperature", .help = "Degrees.", .type = OTR_METRIC_GAUGE}, err,
        sizeof err);
    otr_metric *h = otr_registry_metric(r,
                                        &(struct otr_metric_desc){.name = "demo_latency_seconds",
                                                                  .help = "Latency.",
                                                                  .type = OTR_METRIC_HISTOGRAM,
                                                                  .label_names = (const char *const[]){"op", NULL},
                                                                  .buckets = buckets,
                                                                  .n_buckets = 5},
                                        err, sizeof err);
    otr_registry_gauge_fn(r, "demo_uptime_seconds", "Seconds since start.", uptime_fn, up);
    /* Inserted out of order: the output is sorted. */
    otr_series_counter_add(otr_registry_series(c, 1, (const char *const[]){"/b", "500"}), 1);
    otr_series_counter_add(otr_registry_series(c, 0, (const char *const[]){"/a\\\"q\"\nx", "200"}), 3);
    otr_series_counter_add(otr_registry_series(c, 1, (const char *const[]){"/a", "200"}), 4);
    otr_series_counter_add(otr_registry_series(c, 0, (const char *const[]){"/a", "200"}), 5);
    otr_series_gauge_set(otr_registry_series(g, 0, NULL), -12.25);
    otr_series *hs = otr_registry_series(h, 1, (const char *const[]){"get"});
    otr_series_observe(hs, 0.25);
    otr_series_observe(hs, 3);
    otr_series_observe(hs, 0.0001);
    return r;
}

static const char expect_prom[] =
    "# TYPE demo_latency_seconds histogram\n"
    "# HELP demo_latency_seconds Latency.\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"0.005\"} 1\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"0.25\"} 2\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"1\"} 2\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"2.5\"} 2\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"1e+06\"} 3\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 3\n"
    "demo_latency_seconds_sum{op=\"get\"} 3.2501\n"
    "demo_latency_seconds_count{op=\"get\"} 3\n"
    "# TYPE demo_requests_total counter\n"
    "# HELP demo_requests_total Requests \\\\ served\\nby \"path\".\n"
    "demo_requests_total{path=\"/a\",code=\"200\"} 9\n"
    "demo_requests_total{path=\"/a\\\\\\\"q\\\"\\nx\",code=\"200\"} 3\n"
    "demo_requests_total{path=\"/b\",code=\"500\"} 1\n"
    "# TYPE demo_temperature gauge\n"
    "# HELP demo_temperature Degrees.\n"
    "demo_temperature -12.25\n"
    "# TYPE demo_uptime_seconds gauge\n"
    "# HELP demo_uptime_seconds Seconds since start.\n"
    "demo_uptime_seconds 42.5\n";

static const char expect_om[] =
    "# TYPE demo_latency_seconds histogram\n"
    "# HELP demo_latency_seconds Latency.\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"0.005\"} 1\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"0.25\"} 2\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"1\"} 2\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"2.5\"} 2\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"1e+06\"} 3\n"
    "demo_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 3\n"
    "demo_latency_seconds_sum{op=\"get\"} 3.2501\n"
    "demo_latency_seconds_count{op=\"get\"} 3\n"
    "# TYPE demo_requests counter\n"
    "# HELP demo_requests Requests \\\\ served\\nby \\\"path\\\".\n"
    "demo_requests_total{path=\"/a\",code=\"200\"} 9\n"
    "demo_requests_total{path=\"/a\\\\\\\"q\\\"\\nx\",code=\"200\"} 3\n"
    "demo_requests_total{path=\"/b\",code=\"500\"} 1\n"
    "# TYPE demo_temperature gauge\n"
    "# HELP demo_temperature Degrees.\n"
    "demo_temperature -12.25\n"
    "# TYPE demo_uptime_seconds gauge\n"
    "# HELP demo_uptime_seconds Seconds since start.\n"
    "demo_uptime_seconds 42.5\n"
    "# EOF\n";

static void test_exact_text(void)
{
    double up = 42.5;
    struct otr_registry *r = small_registry(&up);
    struct otr_buf b = {0};
    render_to(r, OTR_METRICS_PROMETHEUS, &b);
    is_str(b.p, expect_prom, "Prometheus text 0.0.4, exactly");
    render_to(r, OTR_METRICS_OPENMETRICS, &b);
    is_str(b.p, expect_om, "OpenMetrics 1.0, exactly");
    up = 43;
    render_to(r, OTR_METRICS_PROMETHEUS, &b);
    ok(strstr(b.p, "\ndemo_uptime_seconds 43\n") != NULL, "gauge functions are evaluated at each render");
    ok(otr_registry_gauge_fn(r, "demo_uptime_seconds", "again", uptime_fn, &up) == UV_EEXIST,
       "a second gauge function with the same name is refused");
    ok(otr_registry_gauge_fn(r, "bad name", "x", uptime_fn, &up) == UV_EINVAL, "a bad name is refused");
    otr_buf_fini(&b);
    otr_registry_free(r);

    r = otr_registry_new(1);
    render_to(r, OTR_METRICS_OPENMETRICS, &b);
    is_str(b.p, "# EOF\n", "an empty registry in OpenMetrics is just # EOF");
    render_to(r, OTR_METRICS_PROMETHEUS, &b);
    is_str(b.p, "", "and nothing in Prometheus text");
    otr_buf_fini(&b);
    otr_registry_free(r);
}

static void test_format_go(void)
{
    struct {
        double v;
        const char *want;
    } cases[] = {
        {0.005, "0.005"}, {1, "1"}, {2.5, "2.5"}, {100000, "100000"}, {1e6, "1e+06"}, {0.0001, "0.0001"},
        {0.00001, "1e-05"}, {0.1, "0.1"}, {1.0 / 3, "0.3333333333333333"}, {-7.5, "-7.5"},
        {1e21, "1e+21"}, {123456789, "1.23456789e+08"}, {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
        {INFINITY, "+Inf"}, {-INFINITY, "-Inf"}, {NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[40];
        format_go(out, sizeof out, cases[i].v);
        is_str(out, cases[i].want, "le formatting of %s", cases[i].want);
    }
    char out[40];
    format_value(out, sizeof out, 123456789);
    is_str(out, "123456789", "integral sample values are written in full");
    format_value(out, sizeof out, -0.5);
    is_str(out, "-0.5", "negative fractional value");
}

static void test_negotiate(void)
{
    is_int(otr_metrics_negotiate(NULL), OTR_METRICS_PROMETHEUS, "no Accept: Prometheus");
    is_int(otr_metrics_negotiate("*/*"), OTR_METRICS_PROMETHEUS, "*/*: Prometheus");
    is_int(otr_metrics_negotiate("text/plain;version=0.0.4"), OTR_METRICS_PROMETHEUS, "text/plain");
    is_int(otr_metrics_negotiate("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4"),
           OTR_METRICS_OPENMETRICS, "Prometheus server's Accept: OpenMetrics");
    is_int(otr_metrics_negotiate("text/plain, Application/OpenMetrics-Text"), OTR_METRICS_OPENMETRICS,
           "case-insensitive, second in the list");
    is_int(otr_metrics_negotiate("application/openmetrics-text; q=0"), OTR_METRICS_PROMETHEUS,
           "q=0 means not acceptable");
    is_int(otr_metrics_negotiate("application/openmetrics-text;q=0.000, */*"), OTR_METRICS_PROMETHEUS, "q=0.000");
    is_int(otr_metrics_negotiate("application/openmetrics-textual"), OTR_METRICS_PROMETHEUS,
           "a longer type name does not match");
    ok(strstr(otr_metrics_content_type(OTR_METRICS_OPENMETRICS), "application/openmetrics-text; version=1.0.0") ==
           otr_metrics_content_type(OTR_METRICS_OPENMETRICS),
       "OpenMetrics content type");
    ok(strncmp(otr_metrics_content_type(OTR_METRICS_PROMETHEUS), "text/plain; version=0.0.4", 25) == 0,
       "Prometheus content type");
}

/* promtool parses and lints the Prometheus text format. */
static void test_promtool(void)
{
    double up = 42.5;
    struct otr_registry *r = small_registry(&up);
    struct otr_buf b = {0};
    render_to(r, OTR_METRICS_PROMETHEUS, &b);
    char path[] = "/tmp/otr-metrics-XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0 && write(fd, b.p, b.len) == (ssize_t)b.len, "wrote %s", path);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/promtool check metrics < %s 2>&1", path);
    int st = system(cmd);
    is_int(st, 0, "promtool check metrics accepts the Prometheus text (all three types, escapes)");

    /* A negative check proves the test can fail: promtool must reject a
     * broken exposition. */
    FILE *f = fopen(path, "w");
    fputs("# TYPE x counter\nx{a=\"unterminated} 1\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/promtool check metrics < %s >/dev/null 2>&1", path);
    ok(system(cmd) != 0, "promtool rejects broken text (the check is real)");
    unlink(path);
    otr_buf_fini(&b);
    otr_registry_free(r);
}

/* The OpenMetrics rendering read back by the reference parser of the
 * Prometheus Python client (python3-prometheus-client), which enforces
 * the OpenMetrics grammar: # EOF, counter _total samples, cumulative
 * histogram buckets with +Inf, _count equal to +Inf, escaping. */
static const char om_check_py[] =
    "import sys\n"
    "from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n"
    "fams = {f.name: f for f in parse(open(sys.argv[1]).read())}\n"
    "assert sorted(fams) == ['demo_latency_seconds', 'demo_requests', 'demo_temperature', 'demo_uptime_seconds'], sorted(fams)\n"
    "req = {s.labels['path']: s.value for s in fams['demo_requests'].samples if s.name == 'demo_requests_total'}\n"
    "assert req == {'/a': 9, '/a\\\\\"q\"\\nx': 3, '/b': 1}, req\n"
    "assert fams['demo_requests'].documentation == 'Requests \\\\ served\\nby \"path\".', fams['demo_requests'].documentation\n"
    "h = {s.labels.get('le', s.name): s.value for s in fams['demo_latency_seconds'].samples}\n"
    "assert h['+Inf'] == 3 and h['demo_latency_seconds_count'] == 3 and h['0.25'] == 2, h\n"
    "assert fams['demo_temperature'].samples[0].value == -12.25\n";

static int run_om_check(const char *text, size_t len)
{
    char data[] = "/tmp/otr-om-XXXXXX", script[] = "/tmp/otr-om-check-XXXXXX";
    int fd = mkstemp(data), sfd = mkstemp(script);
    if (fd < 0 || sfd < 0)
        return -1;
    bool written = write(fd, text, len) == (ssize_t)len &&
                   write(sfd, om_check_py, sizeof om_check_py - 1) == (ssize_t)(sizeof om_check_py - 1);
    close(fd);
    close(sfd);
    char cmd[256], log[] = "/tmp/otr-om-log-XXXXXX";
    close(mkstemp(log));
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s > %s 2>&1", script, data, log);
    int st = written ? system(cmd) : -1;
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        diag("python: %s", line);
    }
    if (f)
        fclose(f);
    unlink(log);
    unlink(data);
    unlink(script);
    return st;
}

static void test_openmetrics_parser(void)
{
    double up = 42.5;
    struct otr_registry *r = small_registry(&up);
    struct otr_buf b = {0};
    render_to(r, OTR_METRICS_OPENMETRICS, &b);
    is_int(run_om_check(b.p, b.len), 0, "the OpenMetrics parser of prometheus_client reads it back, values intact");
    /* Without # EOF the parser must refuse: the check can fail. */
    ok(run_om_check(b.p, b.len - 6) != 0, "and refuses it without # EOF (the check is real)");
    otr_buf_fini(&b);
    otr_registry_free(r);
}

int main(void)
{
    test_shards_merge();
    test_declarations();
    test_exact_text();
    test_format_go();
    test_negotiate();
    test_promtool();
    test_openmetrics_parser();
    return done_testing();
}

/* Unit tests of snapshots (target labels, honor_labels, duplicates, type
 * conflicts, limits) and the merged exposition in both formats, checked
 * against exact text and by the real promtool. */
#include <math.h>
#include <unistd.h>

#include "tap.h"

#include "../../modules/metrics/metrics_buf.c"
#include "../../modules/metrics/metrics_expo.c"
#include "../../modules/metrics/metrics_number.c"
#include "../../modules/metrics/metrics_promtext.c"
#include "../../modules/metrics/metrics_snapshot.c"

static int add_on_sample(void *arg, const struct prom_sample *s)
{
    msnap_builder_add_prom(arg, s);
    return 0;
}

static struct msnap *snap_from_text(const char *text, const struct prom_label *target, size_t n_target, bool honor,
                                    uint32_t limit, uint64_t *rejected)
{
    struct msnap_builder b;
    msnap_builder_init(&b, target, n_target, honor, limit);
    char *copy = strdup(text);
    struct prom_error err;
    int rc = prom_parse(copy, strlen(copy), 0, add_on_sample, &b, &err);
    if (rc)
        diag("parse error %u:%u %s", err.line, err.col, err.msg);
    if (rejected)
        memcpy(rejected, b.rejected, sizeof b.rejected);
    struct msnap *s = msnap_builder_finish(&b);
    free(copy);
    return s;
}

static char *render(struct msnap **snaps, size_t n, enum mexpo_format fmt, struct mexpo_stats *st)
{
    struct mbuf out;
    mbuf_init(&out);
    struct mexpo_stats local = {0};
    mexpo_render(snaps, n, fmt, &out, st ? st : &local);
    mbuf_addc(&out, '\0');
    return out.p;
}

#define L(n, v) {{n, sizeof(n) - 1}, {v, sizeof(v) - 1}}

static const char APP[] = "# HELP http_requests_total Requests.\n"
                          "# TYPE http_requests_total counter\n"
                          "http_requests_total{code=\"200\",pod=\"spoof\"} 10\n"
                          "http_requests_total{code=\"500\"} 2 1700000000123\n"
                          "# HELP lat Latency \\\\ in seconds.\n"
                          "# TYPE lat histogram\n"
                          "lat_bucket{le=\"0.1\"} 1\nlat_bucket{le=\"+Inf\"} 3\nlat_sum 0.7\nlat_count 3\n"
                          "lat_created 1.7e9\n"
                          "# TYPE temp gauge\ntemp{room=\"a \\\"b\\\"\\n\"} -1.5\n"
                          "up_since 5\n";

static const char WANT_PROM[] =
    "# HELP http_requests_total Requests.\n"
    "# TYPE http_requests_total counter\n"
    "http_requests_total{code=\"200\",exported_pod=\"spoof\",namespace=\"shop\",pod=\"cart-1\"} 10\n"
    "http_requests_total{code=\"500\",namespace=\"shop\",pod=\"cart-1\"} 2 1700000000123\n"
    "# HELP lat Latency \\\\ in seconds.\n"
    "# TYPE lat histogram\n"
    "lat_bucket{le=\"0.1\",namespace=\"shop\",pod=\"cart-1\"} 1\n"
    "lat_bucket{le=\"+Inf\",namespace=\"shop\",pod=\"cart-1\"} 3\n"
    "lat_sum{namespace=\"shop\",pod=\"cart-1\"} 0.7\n"
    "lat_count{namespace=\"shop\",pod=\"cart-1\"} 3\n"
    "# TYPE temp gauge\n"
    "temp{room=\"a \\\"b\\\"\\n\",namespace=\"shop\",pod=\"cart-1\"} -1.5\n"
    "# TYPE up_since untyped\n"
    "up_since{namespace=\"shop\",pod=\"cart-1\"} 5\n";

static const char WANT_OM[] =
    "# HELP http_requests Requests.\n"
    "# TYPE http_requests counter\n"
    "http_requests_total{code=\"200\",pod=\"spoof\",namespace=\"shop\"} 10\n"
    "http_requests_total{code=\"500\",namespace=\"shop\",pod=\"cart-1\"} 2 1700000000.123\n"
    "# HELP lat Latency \\\\ in seconds.\n"
    "# TYPE lat histogram\n"
    "lat_bucket{le=\"0.1\",namespace=\"shop\",pod=\"cart-1\"} 1\n"
    "lat_bucket{le=\"+Inf\",namespace=\"shop\",pod=\"cart-1\"} 3\n"
    "lat_sum{namespace=\"shop\",pod=\"cart-1\"} 0.7\n"
    "lat_count{namespace=\"shop\",pod=\"cart-1\"} 3\n"
    "lat_created{namespace=\"shop\",pod=\"cart-1\"} 1700000000\n"
    "# TYPE temp gauge\n"
    "temp{room=\"a \\\"b\\\"\\n\",namespace=\"shop\",pod=\"cart-1\"} -1.5\n"
    "# TYPE up_since unknown\n"
    "up_since{namespace=\"shop\",pod=\"cart-1\"} 5\n"
    "# EOF\n";

static void test_target_labels(void)
{
    struct prom_label target[] = {L("namespace", "shop"), L("pod", "cart-1")};
    struct msnap *s = snap_from_text(APP, target, 2, false, 0, NULL);
    is_int(s->n_fams, 4, "four families");
    is_int(s->n_series, 9, "nine series");
    char *text = render(&s, 1, MEXPO_PROMETHEUS, NULL);
    is_str(text, WANT_PROM, "text format: target labels appended, clashing pod label exported_, _created dropped");
    free(text);
    msnap_unref(s);

    s = snap_from_text(APP, target, 2, true, 0, NULL);
    text = render(&s, 1, MEXPO_OPENMETRICS, NULL);
    is_str(text, WANT_OM, "OpenMetrics: honor_labels keeps the scraped pod label, _total suffix, seconds, EOF");
    free(text);
    ok(msnap_memory(s) < 9 * 150, "snapshot memory %zu bytes for 9 series", msnap_memory(s));
    struct mbuf nots;
    mbuf_init(&nots);
    struct mexpo_stats st = {0};
    mexpo_render_flags(&s, 1, MEXPO_PROMETHEUS, MEXPO_NO_TIMESTAMPS, &nots, &st);
    mbuf_addc(&nots, '\0');
    ok(strstr(nots.p, "} 2\n") && !strstr(nots.p, "1700000000123"), "MEXPO_NO_TIMESTAMPS leaves timestamps out");
    mbuf_fini(&nots);
    msnap_unref(s);
}

static void test_rejects(void)
{
    uint64_t rej[5];
    struct msnap *s = snap_from_text("# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\na{x=\"2\"} 3\n"
                                     "# TYPE b counter\nb_total 1\n# TYPE b_total gauge\nb_total 2\n"
                                     "c{x=\"\"} 1\nc 2\n",
                                     NULL, 0, false, 0, rej);
    is_int(rej[MSNAP_DUPLICATE], 2, "duplicate series rejected (also after dropping an empty label)");
    is_int(rej[MSNAP_TYPE_CONFLICT], 0, "b_total gauge is not family b");
    is_int(s->n_series, 5, "five series kept");
    msnap_unref(s);

    s = snap_from_text("# TYPE b_total counter\nb_total 1\n# TYPE b gauge\nb 2\n", NULL, 0, false, 0, rej);
    is_int(rej[MSNAP_TYPE_CONFLICT], 1, "counter b_total normalises to family b: a gauge b conflicts");
    msnap_unref(s);

    s = snap_from_text("a 1\nb 2\nc 3\nd 4\n", NULL, 0, false, 3, rej);
    is_int(s->n_series, 3, "series limit");
    is_int(rej[MSNAP_LIMIT], 1, "one over the limit counted");
    msnap_unref(s);

    struct msnap_builder b;
    msnap_builder_init(&b, NULL, 0, false, 0);
    struct prom_label bad[] = {L("1x", "v")};
    struct msample m = {.family = {"ok", 2}, .type = PROM_GAUGE, .labels = bad, .n_labels = 1, .value = 1};
    is_int(msnap_builder_add(&b, &m), MSNAP_BAD_LABEL, "invalid label name from a script rejected");
    m.n_labels = 0;
    m.family = (struct prom_str){"a-b", 3};
    is_int(msnap_builder_add(&b, &m), MSNAP_BAD_LABEL, "invalid metric name rejected");
    msnap_builder_fini(&b);
}

static void test_merge(void)
{
    struct prom_label ta[] = {L("pod", "a")}, tb[] = {L("pod", "b")};
    struct msnap *snaps[3];
    snaps[0] = snap_from_text("# HELP z_last Z.\n# TYPE z_last gauge\nz_last 1\n# TYPE shared counter\nshared_total 1\n",
                              ta, 1, false, 0, NULL);
    snaps[1] = snap_from_text("# HELP shared_total Shared.\n# TYPE shared_total counter\nshared_total 2\n"
                              "# HELP a_first A.\n# TYPE a_first gauge\na_first 3\n# TYPE z_last counter\nz_last 4\n",
                              tb, 1, false, 0, NULL);
    snaps[2] = NULL;
    struct mexpo_stats st = {0};
    char *text = render(snaps, 3, MEXPO_PROMETHEUS, &st);
    is_str(text,
           "# HELP z_last Z.\n# TYPE z_last gauge\nz_last{pod=\"a\"} 1\n"
           "# HELP shared_total Shared.\n# TYPE shared_total counter\nshared_total{pod=\"a\"} 1\nshared_total{pod=\"b\"} 2\n"
           "# HELP a_first A.\n# TYPE a_first gauge\na_first{pod=\"b\"} 3\n",
           "families merged across sources in order of first appearance, first HELP found, type conflict dropped");
    is_int(st.conflicts, 1, "one conflict counted");
    is_int(st.families, 3, "three families");
    is_int(st.series, 4, "four series");
    free(text);
    msnap_unref(snaps[0]);
    msnap_unref(snaps[1]);
}

/* Identical series from two sources (same name, same labels after target
 * labelling, in any order): the earlier source's is kept, the other is
 * left out and counted. Series that differ in a label are kept apart. */
static void test_duplicates(void)
{
    struct prom_label ta[] = {L("instance", "h:1"), L("job", "x")}, tb[] = {L("job", "x"), L("instance", "h:1")};
    struct msnap *snaps[3];
    snaps[0] = snap_from_text("# TYPE req counter\nreq_total{code=\"200\",path=\"/a,\\\"b\"} 1\n"
                              "req_total{code=\"500\"} 2\n# TYPE only_a gauge\nonly_a 1\n",
                              ta, 2, false, 0, NULL);
    snaps[1] = snap_from_text("# TYPE req counter\nreq_total{path=\"/a,\\\"b\",code=\"200\"} 10\n"
                              "req_total{code=\"404\"} 20\nreq_total{code=\"500\"} 30\n",
                              tb, 2, false, 0, NULL);
    snaps[2] = snap_from_text("# TYPE req counter\nreq_total{code=\"200\",path=\"/a,\\\"b\",job=\"y\"} 5\n", NULL, 0,
                              false, 0, NULL);
    struct mexpo_stats st = {0};
    char *text = render(snaps, 3, MEXPO_PROMETHEUS, &st);
    is_str(text,
           "# TYPE req_total counter\n"
           "req_total{code=\"200\",path=\"/a,\\\"b\",instance=\"h:1\",job=\"x\"} 1\n"
           "req_total{code=\"500\",instance=\"h:1\",job=\"x\"} 2\n"
           "req_total{code=\"404\",job=\"x\",instance=\"h:1\"} 20\n"
           "req_total{code=\"200\",path=\"/a,\\\"b\",job=\"y\"} 5\n"
           "# TYPE only_a gauge\nonly_a{instance=\"h:1\",job=\"x\"} 1\n",
           "the first source's series kept, identical ones of the second left out (labels in any order)");
    is_int(st.duplicates, 2, "two duplicates counted");
    is_int(st.series, 5, "five series written");
    free(text);
    for (int i = 0; i < 3; i++)
        msnap_unref(snaps[i]);
}

/* The real promtool must accept our output without a lint problem. */
static int promtool_check(const char *text)
{
    char path[] = "/tmp/mmod_expo_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        return -1;
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s.out 2>&1", path, path);
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "%s.out", path);
    FILE *f = fopen(cmd, "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        diag("promtool: %s", line);
    if (f)
        fclose(f);
    unlink(cmd);
    unlink(path);
    return rc;
}

static void test_promtool(void)
{
    struct prom_label target[] = {L("namespace", "shop"), L("pod", "cart-1"), L("container", "app"), L("node", "n1")};
    struct msnap *s = snap_from_text(
        "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
        "http_requests_total{code=\"200\",path=\"/a \\\"q\\\" \\\\ \\n\"} 10\n"
        "# HELP rpc_seconds RPC latency.\n# TYPE rpc_seconds summary\n"
        "rpc_seconds{quantile=\"0.5\"} 0.1\nrpc_seconds{quantile=\"0.99\"} NaN\nrpc_seconds_sum 4\nrpc_seconds_count 20\n"
        "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{le=\"0.1\"} 1\nlat_seconds_bucket{le=\"+Inf\"} 3\nlat_seconds_sum 0.7\nlat_seconds_count 3\n"
        "# HELP temp_celsius Temperature.\n# TYPE temp_celsius gauge\ntemp_celsius -Inf 1700000000000\n",
        target, 4, false, 0, NULL);
    char *text = render(&s, 1, MEXPO_PROMETHEUS, NULL);
    is_int(promtool_check(text), 0, "promtool check metrics accepts the text format output");
    free(text);
    msnap_unref(s);
}

static void test_negotiate(void)
{
    is_int(mexpo_negotiate(NULL), MEXPO_PROMETHEUS, "no Accept: text");
    is_int(mexpo_negotiate("text/plain"), MEXPO_PROMETHEUS, "text/plain");
    is_int(mexpo_negotiate("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                           "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
           MEXPO_OPENMETRICS, "Prometheus' own Accept header picks OpenMetrics");
    is_int(mexpo_negotiate("application/openmetrics-text; q=0.2, text/plain; q=0.9"), MEXPO_PROMETHEUS,
           "text preferred by q");
    is_int(mexpo_negotiate("application/openmetrics-text;q=0"), MEXPO_PROMETHEUS, "q=0 refuses");
    is_int(mexpo_negotiate("*/*"), MEXPO_PROMETHEUS, "*/* gets text");
    ok(strstr(mexpo_content_type(MEXPO_OPENMETRICS), "application/openmetrics-text; version=1.0.0") != NULL,
       "OpenMetrics content type");
}

int main(void)
{
    test_target_labels();
    test_rejects();
    test_merge();
    test_duplicates();
    test_promtool();
    test_negotiate();
    return done_testing();
}

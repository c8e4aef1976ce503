/* Unit tests of the statsd aggregation store: every type, sample rates,
 * tags, pod labels, name sanitising, conflicts, the series cap, set caps,
 * and merging workers' stores; the output is checked by promtool. */
#include <unistd.h>

#include "tap.h"

#include "../../modules/metrics/metrics_buf.c"
#include "../../modules/metrics/metrics_expo.c"
#include "../../modules/metrics/metrics_number.c"
#include "../../modules/metrics/metrics_promtext.c"
#include "../../modules/metrics/metrics_snapshot.c"
#include "../../modules/metrics/metrics_statsd.c"
#include "../../modules/metrics/metrics_store.c"

static const double timer_b[] = {0.1, 0.5, 1};
static const double hist_b[] = {10, 100};
static struct mstore_conf conf = {timer_b, 3, hist_b, 2, 3, 0};

static struct statsd_line L;

struct feed {
    struct mstore *st;
    const struct prom_label *extra;
    size_t n_extra;
    uint32_t now;
    int refused[MSTORE_N];
};

static void feed_on_line(void *arg, const struct statsd_line *line)
{
    struct feed *f = arg;
    f->refused[mstore_apply(f->st, line, f->extra, f->n_extra, f->now)]++;
}

static void feed(struct feed *f, const char *dgram)
{
    struct statsd_counts c = {0};
    statsd_parse_datagram(dgram, strlen(dgram), &L, feed_on_line, f, &c);
}

static char *expose_at(struct mstore **stores, size_t n, enum mexpo_format fmt, uint32_t now_ds)
{
    struct msnap_builder b;
    msnap_builder_init(&b, NULL, 0, false, 0);
    mstore_snapshot(stores, n, now_ds, &b);
    struct msnap *s = msnap_builder_finish(&b);
    struct mbuf out;
    mbuf_init(&out);
    struct mexpo_stats st = {0};
    mexpo_render(&s, 1, fmt, &out, &st);
    mbuf_addc(&out, '\0');
    msnap_unref(s);
    return out.p;
}

static char *expose(struct mstore **stores, size_t n, enum mexpo_format fmt)
{
    return expose_at(stores, n, fmt, 0);
}

/* The value of the exposed series "line" (e.g. "u") at now_ds, -1 if absent. */
static long value_at(struct mstore **stores, size_t n, const char *series, uint32_t now_ds)
{
    char *text = expose_at(stores, n, MEXPO_PROMETHEUS, now_ds);
    char want[64];
    snprintf(want, sizeof want, "\n%s ", series);
    const char *p = strstr(text, want);
    long v = p ? strtol(p + strlen(want), NULL, 10) : -1;
    free(text);
    return v;
}

static int promtool_ok(const char *text)
{
    FILE *p = popen("promtool check metrics >/dev/null 2>&1", "w");
    if (!p)
        return 0;
    fputs(text, p);
    return pclose(p) == 0;
}

static void test_types(void)
{
    struct mstore st;
    struct mstore_limit lim = {0};
    mstore_init(&st, &conf, &lim);
    struct mstore *sp = &st;
    struct feed f = {.st = &st, .now = 1};
    feed(&f, "api.hits:1|c\napi.hits:2|c|@0.5\n"
             "temp:10|g\ntemp:+5|g\ntemp:-3|g\n"
             "req.time:320|ms\n"
             "size:50|h|@0.5\nsize:5:500|d\n"
             "users:alice|s\nusers:bob|s\nusers:alice|s\n"
             "9lives:1|g\n");
    char *text = expose(&sp, 1, MEXPO_PROMETHEUS);
    is_str(text,
           "# HELP api_hits_total statsd counter\n# TYPE api_hits_total counter\napi_hits_total 5\n"
           "# HELP temp statsd gauge\n# TYPE temp gauge\ntemp 12\n"
           "# HELP req_time statsd timer, in seconds\n# TYPE req_time histogram\n"
           "req_time_bucket{le=\"0.1\"} 0\nreq_time_bucket{le=\"0.5\"} 1\nreq_time_bucket{le=\"1\"} 1\n"
           "req_time_bucket{le=\"+Inf\"} 1\nreq_time_sum 0.32\nreq_time_count 1\n"
           "# HELP size statsd histogram\n# TYPE size histogram\n"
           "size_bucket{le=\"10\"} 1\nsize_bucket{le=\"100\"} 3\nsize_bucket{le=\"+Inf\"} 4\nsize_sum 605\nsize_count 4\n"
           "# HELP users statsd set: distinct members per statsd.set_window\n# TYPE users gauge\nusers 2\n"
           "# HELP _9lives statsd gauge\n# TYPE _9lives gauge\n_9lives 1\n",
           "every type aggregated (families in order of arrival): rates weight counters and histograms, gauge deltas, "
           "timer in seconds");
    ok(promtool_ok(text), "promtool accepts it");
    free(text);
    text = expose(&sp, 1, MEXPO_OPENMETRICS);
    ok(strstr(text, "# TYPE api_hits counter\napi_hits_total 5\n") != NULL, "OpenMetrics counter family");
    free(text);
    is_int(lim.used, 6, "six series counted against the limit");
    mstore_fini(&st);
    is_int(lim.used, 0, "released on fini");
}

#define L2(n, v) {{n, sizeof(n) - 1}, {v, sizeof(v) - 1}}

static void test_labels(void)
{
    struct mstore st;
    mstore_init(&st, &conf, NULL);
    struct mstore *sp = &st;
    struct prom_label pod[] = {L2("namespace", "shop"), L2("pod", "cart-1")};
    struct feed f = {.st = &st, .extra = pod, .n_extra = 2};
    feed(&f, "hits:1|c|#b:2,a:1\nhits:1|c|#a:1,b:2\nhits:1|c|#pod:evil,a.b-c:x,a:1,a:2\n"
             "lat:1|ms|#le:5\nq:1|g|#v:say \"hi\"\\,__x:1\n");
    char *text = expose(&sp, 1, MEXPO_PROMETHEUS);
    is_str(text,
           "# HELP hits_total statsd counter\n# TYPE hits_total counter\n"
           "hits_total{a=\"1\",b=\"2\",namespace=\"shop\",pod=\"cart-1\"} 2\n"
           "hits_total{a=\"1\",a_b_c=\"x\",exported_pod=\"evil\",namespace=\"shop\",pod=\"cart-1\"} 1\n"
           "# HELP lat statsd timer, in seconds\n# TYPE lat histogram\n"
           "lat_bucket{exported_le=\"5\",namespace=\"shop\",pod=\"cart-1\",le=\"0.1\"} 1\n"
           "lat_bucket{exported_le=\"5\",namespace=\"shop\",pod=\"cart-1\",le=\"0.5\"} 1\n"
           "lat_bucket{exported_le=\"5\",namespace=\"shop\",pod=\"cart-1\",le=\"1\"} 1\n"
           "lat_bucket{exported_le=\"5\",namespace=\"shop\",pod=\"cart-1\",le=\"+Inf\"} 1\n"
           "lat_sum{exported_le=\"5\",namespace=\"shop\",pod=\"cart-1\"} 0.001\n"
           "lat_count{exported_le=\"5\",namespace=\"shop\",pod=\"cart-1\"} 1\n"
           "# HELP q statsd gauge\n# TYPE q gauge\n"
           "q{exported___x=\"1\",namespace=\"shop\",pod=\"cart-1\",v=\"say \\\"hi\\\"\\\\\"} 1\n",
           "tags sorted into one series, pod labels authoritative, repeated tag: first wins, le and __ escaped");
    ok(promtool_ok(text), "promtool accepts it");
    free(text);
    mstore_fini(&st);
}

static void test_refusals(void)
{
    struct mstore a, b;
    struct mstore_limit lim = {.max = 3};
    mstore_init(&a, &conf, &lim);
    mstore_init(&b, &conf, &lim);
    struct feed fa = {.st = &a}, fb = {.st = &b};
    feed(&fa, "x:1|g\ny:1|g\n");
    feed(&fb, "z:1|g\nw:1|g\nx:2|g\n");
    is_int(fb.refused[MSTORE_LIMIT], 2, "series beyond the cap across two stores are refused (x is new in b)");
    feed(&fa, "x:5|g\n");
    is_int(fa.refused[MSTORE_OK], 3, "existing series still update at the cap");
    is_int(a.refused[MSTORE_LIMIT] + b.refused[MSTORE_LIMIT], 2, "counted in the store");
    uint32_t fams = a.fams.n;
    feed(&fa, "brand.new:1|g\nanother.new:1|c\n");
    is_int(a.fams.n, fams, "at the cap, new names create no family (a flood cannot grow the store)");
    is_int(fa.refused[MSTORE_LIMIT], 2, "and are refused as over the limit");
    uint32_t sets = a.labelsets.n;
    feed(&fa, "x:1|g|#new:tag\nx:1|g|#other:tag\n");
    is_int(a.labelsets.n, sets, "at the cap, new tag sets intern no label text either");
    feed(&fa, "x:1|ms\n...:1|c\nx:1|g|#k:\xff\n");
    is_int(fa.refused[MSTORE_TYPE_CONFLICT], 1, "gauge x then timer x: conflict");
    is_int(fa.refused[MSTORE_BAD_NAME], 1, "name with nothing valid refused");
    is_int(fa.refused[MSTORE_BAD_LABEL], 1, "non-UTF-8 tag value refused");
    char longname[300];
    memset(longname, 'a', 250);
    strcpy(longname + 250, ":1|c");
    feed(&fa, longname);
    is_int(fa.refused[MSTORE_BAD_NAME], 2, "over-long name refused");
    mstore_fini(&a);
    mstore_fini(&b);
    is_int(lim.used, 0, "limit released");

    struct mstore s;
    mstore_init(&s, &conf, NULL);
    struct mstore *sp = &s;
    struct feed fs = {.st = &s};
    feed(&fs, "u:a|s\nu:b|s\nu:c|s\nu:d|s\nu:a|s\n");
    is_int(s.set_overflow, 1, "members beyond set_max_members counted");
    char *text = expose(&sp, 1, MEXPO_PROMETHEUS);
    ok(strstr(text, "\nu 3\n") != NULL, "set capped at 3");
    free(text);
    mstore_fini(&s);
}

/* Label texts are interned: series of many names with the same tags
 * share one copy, and each keeps its own value. */
static void test_interned_labels(void)
{
    struct mstore st;
    mstore_init(&st, &conf, NULL);
    struct feed f = {.st = &st};
    feed(&f, "a:1|c|#env:prod,zone:z1\nb:2|g|#zone:z1,env:prod\nc:3|c|#env:prod,zone:z1\nc:4|c|#env:dev\nd:5|g\n");
    is_int(st.series.n, 5, "five series");
    is_int(st.labelsets.n, 3, "three distinct label texts stored once each (tag order does not matter)");
    char *text = expose((struct mstore *[]){&st}, 1, MEXPO_PROMETHEUS);
    ok(strstr(text, "a_total{env=\"prod\",zone=\"z1\"} 1\n") && strstr(text, "b{env=\"prod\",zone=\"z1\"} 2\n") &&
           strstr(text, "c_total{env=\"prod\",zone=\"z1\"} 3\n") && strstr(text, "c_total{env=\"dev\"} 4\n") &&
           strstr(text, "d 5\n"),
       "each series keeps its own value with the shared labels");
    free(text);
    size_t before = mstore_memory(&st);
    feed(&f, "a:1|c|#env:prod,zone:z1\n");
    is_int(mstore_memory(&st), before, "an update allocates nothing");
    mstore_fini(&st);
}

/* Sets count distinct members per window (here 1 s = 10 ds), as statsd
 * counts per flush: the last complete window's members are exposed. */
static void test_set_windows(void)
{
    struct mstore_conf wc = conf;
    wc.set_max_members = 100;
    wc.set_window_ds = 10;
    struct mstore a, b;
    mstore_init(&a, &wc, NULL);
    mstore_init(&b, &wc, NULL);
    struct mstore *ap = &a, *both[] = {&a, &b};
    struct feed fa = {.st = &a, .now = 5}, fb = {.st = &b, .now = 7};
    feed(&fa, "u:x|s\nu:y|s\nu:x|s\n");
    is_int(value_at(&ap, 1, "u", 8), 2, "first window: the members so far");
    fa.now = 12;
    feed(&fa, "u:z|s\n");
    is_int(value_at(&ap, 1, "u", 15), 2, "next window: the complete window before it (x, y), not z");
    is_int(value_at(&ap, 1, "u", 25), 1, "once that one completes: z alone");
    is_int(value_at(&ap, 1, "u", 35), 0, "a window without members: 0");
    fa.now = 41;
    feed(&fa, "u:x|s\n");
    is_int(value_at(&ap, 1, "u", 45), 0, "after a gap the previous window is empty, x waits for its window's end");
    is_int(value_at(&ap, 1, "u", 51), 1, "then counts");
    fb.now = 43;
    feed(&fb, "u:x|s\nu:w|s\n");
    is_int(value_at(both, 2, "u", 52), 2, "two workers' windows unite their members (x, w)");
    struct mstore_conf longer = wc;
    longer.set_window_ds = 600;
    mstore_reconfigure(&a, &longer);
    is_int(value_at(&ap, 1, "u", 52), 1, "a new set_window keeps the current members");
    fa.now = 60;
    feed(&fa, "u:v|s\n");
    is_int(value_at(&ap, 1, "u", 61), 2, "and starts a first window again (x, v)");
    is_int(value_at(&ap, 1, "u", 700), 2, "which completes on the new length (60 s)");
    mstore_fini(&a);
    mstore_fini(&b);
}

static void test_merge(void)
{
    struct mstore a, b;
    mstore_init(&a, &conf, NULL);
    mstore_init(&b, &conf, NULL);
    struct feed fa = {.st = &a, .now = 10}, fb = {.st = &b, .now = 20};
    feed(&fa, "c:1|c\ng:1|g\nt:50|ms\nu:x|s\nu:y|s\nonly_a:1|g\n");
    feed(&fb, "c:2|c\ng:2|g\nt:700|ms\nu:y|s\nu:z|s\n");
    fa.now = 5;
    feed(&fa, "g2:7|g\n");
    fb.now = 6;
    feed(&fb, "g2:8|g\n");
    struct mstore *both[] = {&a, &b};
    char *text = expose(both, 2, MEXPO_PROMETHEUS);
    ok(strstr(text, "\nc_total 3\n"), "counters add across workers");
    ok(strstr(text, "\ng 2\n"), "latest gauge wins");
    ok(strstr(text, "\ng2 8\n"), "latest gauge wins (other order)");
    ok(strstr(text, "t_bucket{le=\"0.1\"} 1\nt_bucket{le=\"0.5\"} 1\nt_bucket{le=\"1\"} 2\n"), "buckets add");
    ok(strstr(text, "t_sum 0.75\nt_count 2\n"), "sum and count add");
    ok(strstr(text, "\nu 3\n"), "sets unite");
    ok(strstr(text, "\nonly_a 1\n"), "series of one worker kept");
    ok(promtool_ok(text), "promtool accepts the merge");
    free(text);
    mstore_fini(&a);
    mstore_fini(&b);
}

static void test_reconfigure(void)
{
    struct mstore_limit lim = {.max = 100};
    struct mstore a, b;
    mstore_init(&a, &conf, &lim);
    mstore_init(&b, &conf, &lim);
    struct feed fa = {.st = &a, .now = 1}, fb = {.st = &b, .now = 1};
    feed(&fa, "c:2|c\ng:4|g\nt:50|ms\nh:5|h\nu:x|s\nu:y|s\n");
    feed(&fb, "c:1|c\nt:700|ms\n");
    is_int(lim.used, 7, "seven series before the reload");

    mstore_reconfigure(&a, &conf); /* a reload with the same config */
    struct mstore *both[] = {&a, &b};
    char *text = expose(both, 2, MEXPO_PROMETHEUS);
    ok(strstr(text, "\nc_total 3\n") && strstr(text, "\ng 4\n") && strstr(text, "\nu 2\n") &&
           strstr(text, "t_sum 0.75\nt_count 2\n") && strstr(text, "h_count 1\n"),
       "an unchanged config keeps every series and value");
    free(text);

    /* The conf's arrays may go away with their generation: the store
     * holds copies. */
    double tb[] = {0.2, 2};
    struct mstore_conf next = conf;
    next.timer_buckets = tb;
    next.n_timer_buckets = 2;
    mstore_reconfigure(&a, &next);
    tb[0] = 99;
    is_int(lim.used, 6, "the timer series of the changed store was dropped from the cap");
    struct mstore *ap = &a;
    text = expose(&ap, 1, MEXPO_PROMETHEUS);
    ok(strstr(text, "\nc_total 2\n") && strstr(text, "\ng 4\n") && strstr(text, "\nu 2\n") &&
           strstr(text, "h_count 1\n"),
       "counters, gauges, sets and histograms with unchanged buckets survive a bucket change");
    ok(!strstr(text, "t_count"), "timers with changed buckets restart");
    free(text);
    feed(&fa, "t:100|ms\nu:z|s\n");
    text = expose(both, 2, MEXPO_PROMETHEUS);
    ok(strstr(text, "t_bucket{le=\"0.2\"} 1\nt_bucket{le=\"2\"} 1\nt_bucket{le=\"+Inf\"} 1\n"),
       "new timer samples use the new buckets (a store not yet reconfigured is left out)");
    ok(strstr(text, "\nu 3\n"), "a set still unites after the rebuild");
    ok(promtool_ok(text), "promtool accepts it");
    free(text);
    mstore_reconfigure(&b, &next);
    text = expose(both, 2, MEXPO_PROMETHEUS);
    ok(strstr(text, "\nc_total 3\n") && strstr(text, "t_count 1\n"), "once both are reconfigured they merge again");
    free(text);
    mstore_fini(&a);
    mstore_fini(&b);
    is_int(lim.used, 0, "limit released");
}

int main(void)
{
    test_types();
    test_labels();
    test_refusals();
    test_interned_labels();
    test_set_windows();
    test_merge();
    test_reconfigure();
    return done_testing();
}

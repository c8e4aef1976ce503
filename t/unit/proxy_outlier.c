// pkgs: libnghttp2
/*
 * Outlier ejection and health checks, the parts that need no network: the
 * ejection time (base x times ejected, capped, no overflow), the
 * max_ejection_percent rule, the decay of the multiplier, a sequence of
 * reports on a cluster of a real uv loop (eject after N failures in a row,
 * a success resets the count, the percent cap holds endpoints back, an
 * ejected endpoint is not usable until its time is up), and the health
 * check's status-line parser.
 */
#include "tap.h"

#include "../../modules/proxy/proxy_health.c"
#include "../../modules/proxy/proxy_outlier.c"

/* proxy.c is not linked: the worker's drain bookkeeping is not under test. */
void proxy_worker_maybe_drained(struct proxy_worker *pw)
{
    (void)pw;
}

static char last_log[512];
static double gauge;
static double ejections;
static void fake_log(otr_ctx *ctx, enum otr_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_log, sizeof last_log, fmt, ap);
    va_end(ap);
}
static void fake_counter_add(otr_series *s, double v)
{
    ejections += v;
}
static void fake_gauge_set(otr_series *s, double v)
{
    gauge = v;
}

static void test_ejection_time(void)
{
    is_int(proxy_outlier_ejection_ms(30000, 300000, 1), 30000, "first ejection: base");
    is_int(proxy_outlier_ejection_ms(30000, 300000, 3), 90000, "third: 3 x base");
    is_int(proxy_outlier_ejection_ms(30000, 300000, 10), 300000, "tenth: capped at max");
    is_int(proxy_outlier_ejection_ms(30000, 300000, 11), 300000, "beyond: still max");
    is_int(proxy_outlier_ejection_ms(30000, 300000, 0), 30000, "times 0 counts as the first");
    is_int(proxy_outlier_ejection_ms(UINT64_MAX / 2, UINT64_MAX, UINT32_MAX), UINT64_MAX, "no overflow");
    is_int(proxy_outlier_ejection_ms(500, 100, 1), 100, "base above max: max");
}

static void test_may_eject(void)
{
    ok(proxy_outlier_may_eject(10, 0, 10), "10 endpoints, 10%%: the first may go");
    ok(!proxy_outlier_may_eject(10, 1, 10), "... not a second");
    ok(proxy_outlier_may_eject(10, 4, 50), "50%%: the fifth may go");
    ok(!proxy_outlier_may_eject(10, 5, 50), "... not the sixth");
    ok(proxy_outlier_may_eject(2, 0, 10), "2 endpoints, 10%%: at least one");
    ok(!proxy_outlier_may_eject(2, 1, 50), "2 endpoints, 50%%: one only");
    ok(proxy_outlier_may_eject(2, 1, 100), "100%%: all may go");
    ok(!proxy_outlier_may_eject(2, 2, 100), "none left to eject");
    ok(!proxy_outlier_may_eject(5, 0, 0), "0%%: none");
    ok(proxy_outlier_may_eject(3, 1, 67), "3 endpoints, 67%%: two");
    ok(!proxy_outlier_may_eject(3, 1, 66), "66%%: one");
}

static void test_decay(void)
{
    uint64_t mark = 1000;
    is_int(proxy_outlier_decay(3, &mark, 500, 100), 3, "before the mark: unchanged");
    is_int(proxy_outlier_decay(3, &mark, 1099, 100), 3, "less than an interval: unchanged");
    is_int(proxy_outlier_decay(3, &mark, 1250, 100), 1, "two intervals: two less");
    is_int(mark, 1200, "mark advanced by the intervals used");
    is_int(proxy_outlier_decay(1, &mark, 1300, 100), 0, "the third interval ends it");
    mark = 0;
    is_int(proxy_outlier_decay(2, &mark, 100000, 100), 0, "never below zero");
    is_int(proxy_outlier_decay(0, &mark, 200000, 100), 0, "zero stays zero");
}

/* A worker with one cluster of n endpoints on a real loop. */
struct fixture {
    uv_loop_t loop;
    struct otr_host host;
    struct proxy_state st;
    struct proxy_cluster c;
    struct proxy_cluster_conf cc;
    struct proxy_worker pw;
    struct proxy_wcluster wc;
    struct proxy_endpoint eps[4];
    struct proxy_endpoint *ep_ptrs[4]; /* wc->eps: the current set */
};

static void fixture_init(struct fixture *f, int64_t consecutive, int64_t max_percent)
{
    memset(f, 0, sizeof *f);
    uv_loop_init(&f->loop);
    f->host.log = fake_log;
    f->host.counter_add = fake_counter_add;
    f->host.gauge_set = fake_gauge_set;
    f->st.host = &f->host;
    f->st.n_workers = 1;
    f->cc.name = "c";
    f->cc.outlier.consecutive_failures = consecutive;
    f->cc.outlier.base_ejection_time = 60000;
    f->cc.outlier.max_ejection_time = 300000;
    f->cc.outlier.interval = 10000;
    f->cc.outlier.max_ejection_percent = max_percent;
    f->c.conf = &f->cc;
    f->pw.st = &f->st;
    f->pw.loop = &f->loop;
    f->wc.pw = &f->pw;
    f->wc.c = &f->c;
    f->wc.eps = f->ep_ptrs;
    f->wc.n_eps = 4;
    f->wc.s_ejections = (otr_series *)&f->wc; /* any non-NULL series */
    f->wc.s_healthy = (otr_series *)&f->wc;
    for (size_t i = 0; i < 4; i++) {
        f->eps[i].wc = &f->wc;
        f->eps[i].index = i;
        f->ep_ptrs[i] = &f->eps[i];
        snprintf(f->eps[i].addr.text, sizeof f->eps[i].addr.text, "10.0.0.%zu:80", i);
    }
}

static void test_reports(void)
{
    struct fixture f;
    fixture_init(&f, 3, 50);
    uint64_t now = uv_now(&f.loop);
    ejections = 0;
    proxy_outlier_report(&f.eps[0], true);
    proxy_outlier_report(&f.eps[0], true);
    proxy_outlier_report(&f.eps[0], false);
    proxy_outlier_report(&f.eps[0], true);
    proxy_outlier_report(&f.eps[0], true);
    ok(proxy_endpoint_usable(&f.eps[0], now), "a success resets the count: 2+2 failures do not eject");
    proxy_outlier_report(&f.eps[0], true);
    ok(!proxy_endpoint_usable(&f.eps[0], now), "the third failure in a row ejects");
    is_int(f.eps[0].ejected_until - now, 60000, "for base_ejection_time");
    is_int(ejections, 1, "counted");
    is_str(last_log, "cluster c: endpoint 10.0.0.0:80 ejected for 60000 ms (3 failures in a row, ejection 1)",
           "logged with cluster, endpoint and duration");
    is_int((long long)gauge, 3, "gauge: 3 of 4 usable");
    ok(proxy_endpoint_usable(&f.eps[0], now + 60000), "usable again when its time is up");
    for (int k = 0; k < 3; k++)
        proxy_outlier_report(&f.eps[1], true);
    ok(!proxy_endpoint_usable(&f.eps[1], now), "a second endpoint: 2 of 4 is within 50%%");
    for (int k = 0; k < 5; k++)
        proxy_outlier_report(&f.eps[2], true);
    ok(proxy_endpoint_usable(&f.eps[2], now), "a third is held back by max_ejection_percent");
    is_int(ejections, 2, "two ejections counted");
    /* Its time is up: the next ejection of endpoint 0 lasts twice as long. */
    f.eps[0].ejected_until = 1;
    f.eps[0].decay_mark = now;
    for (int k = 0; k < 3; k++)
        proxy_outlier_report(&f.eps[0], true);
    is_int(f.eps[0].times_ejected, 2, "ejected a second time");
    is_int(f.eps[0].ejected_until - now, 120000, "for 2 x base");
    uv_loop_close(&f.loop);

    fixture_init(&f, 0, 100);
    for (int k = 0; k < 50; k++)
        proxy_outlier_report(&f.eps[0], true);
    ok(proxy_endpoint_usable(&f.eps[0], uv_now(&f.loop)), "consecutive_failures 0: never ejected");
    uv_loop_close(&f.loop);
}

static void test_unhealthy_not_usable(void)
{
    struct proxy_endpoint ep = { 0 };
    ok(proxy_endpoint_usable(&ep, 5), "a fresh endpoint is usable");
    ep.unhealthy = true;
    ok(!proxy_endpoint_usable(&ep, 5), "an unhealthy one is not");
    ep.unhealthy = false;
    ep.ejected_until = 10;
    ok(!proxy_endpoint_usable(&ep, 9), "an ejected one is not, until...");
    ok(proxy_endpoint_usable(&ep, 10), "... its time is up");
}

static void test_status_line(void)
{
    static const struct {
        const char *in;
        int want;
    } cases[] = {
        { "HTTP/1.1 200 OK\r\n", 200 }, { "HTTP/1.0 503 Service Unavailable\r\n", 503 },
        { "HTTP/1.1 204\r\n", 204 },    { "HTTP/1.1 599 x", 599 },
        { "HTTP/1.1 20", 0 },           { "HTTP/1.1 200", 0 },
        { "HTTP/1.", 0 },               { "", 0 },
        { "HTTP/2 200 OK\r\n", -1 },    { "HTTP/1.1 2x0 OK\r\n", -1 },
        { "HTTP/1.1 099 x\r\n", -1 },   { "HTTP/1.1 600 x\r\n", -1 },
        { "HTTP/1.1  200 OK\r\n", -1 }, { "HTTP/1.1 2000 OK\r\n", -1 },
        { "SSH-2.0-OpenSSH\r\n", -1 },  { "http/1.1 200 OK\r\n", -1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_int(proxy_health_parse_status(cases[i].in, strlen(cases[i].in)), cases[i].want, "status line \"%.12s\"",
               cases[i].in);
    /* Byte by byte: never a verdict before the line is complete. */
    const char *line = "HTTP/1.1 200 OK\r\n";
    bool early = false;
    for (size_t n = 0; n < 13; n++)
        early |= proxy_health_parse_status(line, n) != 0;
    ok(!early, "no verdict on any prefix shorter than 13 bytes");
}

static void test_grpc_serving(void)
{
    static const struct {
        const char *name;
        const char *b;
        size_t n;
        int want;
    } cases[] = {
        { "SERVING", "\0\0\0\0\2\x08\x01", 7, 1 },
        { "NOT_SERVING", "\0\0\0\0\2\x08\x02", 7, 0 },
        { "empty message: UNKNOWN", "\0\0\0\0\0", 5, 0 },
        { "unknown fields skipped", "\0\0\0\0\x0c\x12\x03" "abc\x1d\0\0\0\0\x08\x01", 17, 1 },
        { "a multi-byte varint", "\0\0\0\0\3\x08\x81\x00", 8, 1 },
        { "cut message", "\0\0\0\0\2\x08", 6, -1 },
        { "cut varint", "\0\0\0\0\1\x08", 6, -1 },
        { "length past the end", "\0\0\0\0\x04\x12\x09" "ab", 9, -1 },
        { "compressed", "\1\0\0\0\2\x08\x01", 7, -1 },
        { "bad wire type", "\0\0\0\0\2\x0f\x01", 7, -1 },
        { "no prefix", "\0\0\0", 3, -1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_int(proxy_health_grpc_serving((const uint8_t *)cases[i].b, cases[i].n), cases[i].want, "gRPC health: %s",
               cases[i].name);
}

int main(void)
{
    test_ejection_time();
    test_may_eject();
    test_decay();
    test_reports();
    test_unhealthy_not_usable();
    test_status_line();
    test_grpc_serving();
    return done_testing();
}

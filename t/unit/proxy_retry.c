/*
 * The retry policy (proxy_retry.c): which causes, statuses and gRPC codes a
 * cluster retries, route overrides, idempotent methods, the attempt limit
 * and the budget (10 per window plus the fraction of requests), and the
 * bounds of the jittered backoff.
 */
#include "tap.h"

#include "../../modules/proxy/proxy_retry.c"

static int retry_on_items[5];
static int64_t status_items[4];
static int grpc_items[5];

static struct proxy_cluster_conf cluster(const int *on, size_t n_on, const int64_t *codes, size_t n_codes,
                                         const int *grpc, size_t n_grpc)
{
    struct proxy_cluster_conf cc = { .retries = 2, .retry_budget = 0.2, .retry_backoff = 25 };
    /* memcpy must not see NULL, even for 0 bytes. */
    for (size_t i = 0; i < n_on; i++)
        retry_on_items[i] = on[i];
    for (size_t i = 0; i < n_codes; i++)
        status_items[i] = codes[i];
    for (size_t i = 0; i < n_grpc; i++)
        grpc_items[i] = grpc[i];
    cc.retry_on = (struct otr_conf_array){ retry_on_items, n_on };
    cc.retriable_status_codes = (struct otr_conf_array){ status_items, n_codes };
    cc.retry_grpc_codes = (struct otr_conf_array){ grpc_items, n_grpc };
    return cc;
}

static void test_wanted(void)
{
    const int defaults[] = { PROXY_RETRY_CONNECT_FAILURE, PROXY_RETRY_RESET };
    struct proxy_cluster_conf cc = cluster(defaults, 2, NULL, 0, NULL, 0);
    ok(proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_CONNECT, 0, -1, false), "default: connect failures");
    ok(proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_RESET, 0, -1, false), "default: resets");
    ok(!proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 503, -1, false), "default: no status");
    ok(proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_CONNECT, 0, -1, true), "gRPC: connect failures");
    ok(!proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_RESET, 0, -1, true), "gRPC: never resets");
    cc.retries = 0;
    ok(!proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_CONNECT, 0, -1, false), "retries 0: nothing");

    const int gw[] = { PROXY_RETRY_GATEWAY_ERROR };
    cc = cluster(gw, 1, NULL, 0, NULL, 0);
    ok(proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 502, -1, false) &&
           proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 503, -1, false) &&
           proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 504, -1, false),
       "gateway-error: 502, 503, 504");
    ok(!proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 500, -1, false), "gateway-error: not 500");
    ok(!proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_CONNECT, 0, -1, false), "without connect-failure: not connect");

    const int five[] = { PROXY_RETRY_5XX };
    cc = cluster(five, 1, NULL, 0, NULL, 0);
    ok(proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 500, -1, false) &&
           proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 599, -1, false),
       "5xx: 500 and 599");
    ok(!proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 429, -1, false), "5xx: not 429");
    ok(!proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 200, 14, true),
       "gRPC statuses come from retry_grpc_codes only");

    const int codes_on[] = { PROXY_RETRY_STATUS_CODES };
    const int64_t codes[] = { 429, 409 };
    cc = cluster(codes_on, 1, codes, 2, NULL, 0);
    ok(proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 409, -1, false), "listed status 409");
    ok(!proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 503, -1, false), "unlisted 503");

    const int grpc[] = { PROXY_RETRY_GRPC_UNAVAILABLE, PROXY_RETRY_GRPC_RESOURCE_EXHAUSTED };
    cc = cluster(defaults, 2, NULL, 0, grpc, 2);
    ok(proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 200, 14, true), "UNAVAILABLE (14)");
    ok(proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 200, 8, true), "RESOURCE_EXHAUSTED (8)");
    ok(!proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 200, 13, true), "INTERNAL (13) unlisted");
    ok(!proxy_retry_wanted(&cc, NULL, PROXY_RETRY_CAUSE_STATUS, 200, 0, true), "OK is never retried");

    /* A route's own conditions replace the cluster's; its retries too. */
    int route_on[] = { PROXY_RETRY_5XX };
    struct proxy_route_conf rc = { .retries = -1, .retry_on = { route_on, 1 } };
    cc = cluster(defaults, 2, NULL, 0, NULL, 0);
    ok(proxy_retry_wanted(&cc, &rc, PROXY_RETRY_CAUSE_STATUS, 503, -1, false), "route retry_on: 5xx");
    ok(!proxy_retry_wanted(&cc, &rc, PROXY_RETRY_CAUSE_CONNECT, 0, -1, false), "route retry_on replaces the cluster's");
    rc.retry_on.n = 0;
    ok(proxy_retry_wanted(&cc, &rc, PROXY_RETRY_CAUSE_CONNECT, 0, -1, false), "empty route retry_on: the cluster's");
    rc.retries = 0;
    ok(!proxy_retry_wanted(&cc, &rc, PROXY_RETRY_CAUSE_CONNECT, 0, -1, false), "route retries 0: none");
    is_int(proxy_retry_max(&cc, &rc), 0, "route retries 0 wins");
    rc.retries = -1;
    is_int(proxy_retry_max(&cc, &rc), 2, "route retries -1: the cluster's");
}

static void test_methods(void)
{
    ok(proxy_retry_method_ok("GET", 3) && proxy_retry_method_ok("HEAD", 4) && proxy_retry_method_ok("PUT", 3) &&
           proxy_retry_method_ok("DELETE", 6) && proxy_retry_method_ok("OPTIONS", 7) &&
           proxy_retry_method_ok("TRACE", 5),
       "idempotent methods");
    ok(!proxy_retry_method_ok("POST", 4) && !proxy_retry_method_ok("PATCH", 5) && !proxy_retry_method_ok("get", 3) &&
           !proxy_retry_method_ok("GETX", 4) && !proxy_retry_method_ok("GE", 2),
       "POST, PATCH, lower case and near misses are not");
}

static void test_budget_and_delay(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct proxy_worker pw = { .loop = &loop, .rng = 88172645463325252ull };
    const int defaults[] = { PROXY_RETRY_CONNECT_FAILURE, PROXY_RETRY_RESET };
    struct proxy_cluster_conf cc = cluster(defaults, 2, NULL, 0, NULL, 0);
    cc.retries = 100;
    cc.retry_budget = 0.5;
    struct proxy_cluster c = { .conf = &cc };
    struct proxy_wcluster wc = { .pw = &pw, .c = &c };
    uint32_t r = 0;
    unsigned taken = 0;
    while (proxy_retry_take(&wc, NULL, &r))
        taken++;
    is_int(taken, 10, "no requests yet: the burst of 10");
    wc.budget_requests = 40;
    while (proxy_retry_take(&wc, NULL, &r))
        taken++;
    is_int(taken, 30, "40 requests at 0.5: 20 more");
    is_int(r, 30, "each counted on the request");
    uint32_t r2 = 2;
    cc.retries = 2;
    wc.budget_requests = 1000;
    ok(!proxy_retry_take(&wc, NULL, &r2), "attempts used up: no retry even with budget");

    uint64_t max1 = 0, max3 = 0, max9 = 0;
    for (int i = 0; i < 2000; i++) {
        uint64_t d1 = proxy_retry_delay_ms(&wc, 1), d3 = proxy_retry_delay_ms(&wc, 3), d9 = proxy_retry_delay_ms(&wc, 9);
        max1 = d1 > max1 ? d1 : max1;
        max3 = d3 > max3 ? d3 : max3;
        max9 = d9 > max9 ? d9 : max9;
    }
    ok(max1 <= 25 && max1 >= 20, "first retry: up to the 25 ms base (max %llu)", (unsigned long long)max1);
    ok(max3 <= 100 && max3 > 75, "third retry: up to 4 x base (max %llu)", (unsigned long long)max3);
    ok(max9 <= 250 && max9 > 200, "later retries: at most 10 x base (max %llu)", (unsigned long long)max9);
    cc.retry_backoff = 0;
    is_int(proxy_retry_delay_ms(&wc, 1), 0, "backoff 0: at once");
    is_int(uv_loop_close(&loop), 0, "loop closes clean");
}

static char err_path[128];
static int n_errors;

static void fake_conf_error(otr_ctx *ctx, const char *path, const char *fmt, ...)
{
    snprintf(err_path, sizeof err_path, "%s", path);
    n_errors++;
}

static void test_conf_check(void)
{
    const int five[] = { PROXY_RETRY_5XX };
    const int64_t codes[] = { 503 };
    struct proxy_cluster_conf ccs[2] = { cluster(five, 1, NULL, 0, NULL, 0), cluster(five, 1, codes, 1, NULL, 0) };
    struct proxy_cluster clusters[2] = { { .conf = &ccs[0] }, { .conf = &ccs[1] } };
    struct otr_host host = { .conf_error = fake_conf_error };
    struct proxy_state st = { .host = &host, .clusters = clusters, .n_clusters = 2 };
    is_int(proxy_retry_conf_check(&st), OTR_ECONFIG, "a status list retry_on ignores is an error");
    is_int(n_errors, 1, "one error");
    is_str(err_path, "clusters[1].retriable_status_codes", "naming the key");
}

int main(void)
{
    test_conf_check();
    test_wanted();
    test_methods();
    test_budget_and_delay();
    return done_testing();
}

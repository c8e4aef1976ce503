// pkgs: libnghttp2
/*
 * Caller identity across a mesh hop (proxy_caller.c): x-outrider-caller
 * values (outside input), whose word counts (only a trusted agent's, on the
 * inbound listener), and the caller a request ends up with: the named pod
 * (with its labels when the inventory knows it by name), or the pod owning
 * the source address. A small inventory stands in for core's.
 */
#include "tap.h"

#include "../../modules/proxy/proxy_caller.c"

static bool trusted; /* what proxy_mesh_trusts_caller answers */
bool proxy_mesh_trusts_caller(const struct proxy_state *st, const struct sockaddr *peer) { return trusted; }

static const struct otr_conf_map_entry web_labels[] = { { "app", "web" } };
static const struct otr_pod pods[] = {
    { "shop", "web-a", "u1", "node-a", "10.1.0.10", web_labels, 1, NULL, 0 },
    { "shop", "db-0", "u2", "node-b", "10.2.0.20", NULL, 0, NULL, 0 },
};
static int refs;

static const struct otr_pod *fake_pod_by_addr(otr_ctx *ctx, const struct sockaddr *sa)
{
    char ip[64] = "";
    uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof ip);
    for (size_t i = 0; i < sizeof pods / sizeof pods[0]; i++)
        if (strcmp(pods[i].ip, ip) == 0) {
            refs++;
            return &pods[i];
        }
    return NULL;
}
static void fake_pod_unref(const struct otr_pod *pod) { refs--; }
static size_t fake_pods_foreach(otr_ctx *ctx, void (*fn)(void *, const struct otr_pod *), void *arg)
{
    for (size_t i = 0; i < sizeof pods / sizeof pods[0]; i++)
        fn(arg, &pods[i]);
    return sizeof pods / sizeof pods[0];
}

static bool parses(const char *s)
{
    char out[PROXY_CALLER_MAX];
    return proxy_caller_parse(s, strlen(s), out) && strcmp(out, s) == 0;
}

static void test_parse(void)
{
    static const char *good[] = { "shop/web-a", "kube-system/coredns-5d78c9869d-x2b7q", "a/b", "ns1/pod.with.dots" };
    static const char *bad[] = { "", "shop", "/web", "shop/", "Shop/web", "shop/Web", "shop/web/x", "-shop/web",
                                 "shop/web-", "shop/.web", "sh_op/web", "shop/we b", "shop/web\tx",
                                 "sh.op/web", "shop/web\x01" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ok(parses(good[i]), "x-outrider-caller \"%s\" accepted", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ok(!parses(bad[i]), "x-outrider-caller \"%s\" refused", bad[i]);
    char ns64[80], name254[300], out[PROXY_CALLER_MAX];
    memset(ns64, 'a', 64);
    strcpy(ns64 + 64, "/web");
    ok(!parses(ns64), "a namespace longer than 63 is refused");
    name254[0] = 'n', name254[1] = '/';
    memset(name254 + 2, 'b', 254);
    name254[256] = 0;
    ok(!parses(name254), "a name longer than 253 is refused");
    name254[255] = 0;
    ok(parses(name254), "a name of 253 is accepted");
    ok(proxy_caller_parse("shop/web-axyz", 10, out) && strcmp(out, "shop/web-a") == 0,
       "only len bytes are read (HTTP/2 values are not terminated)");
}

static void test_identity(void)
{
    struct otr_host host = { 0 };
    host.pod_by_addr = fake_pod_by_addr;
    host.pod_unref = fake_pod_unref;
    host.pods_foreach = fake_pods_foreach;
    struct proxy_state st = { 0 };
    st.host = &host;
    struct proxy_worker pw = { 0 };
    pw.st = &st;
    struct sockaddr_in node_a, db;
    uv_ip4_addr("10.0.0.1", 40000, &node_a);
    uv_ip4_addr("10.2.0.20", 40001, &db);
    struct proxy_caller_buf *cb = NULL;
    struct proxy_caller c;
    char text[PROXY_CALLER_MAX];

    trusted = false;
    proxy_caller_take(&pw, PROXY_INBOUND, (struct sockaddr *)&db, &cb, "shop/web-a", 10, 1);
    const struct otr_pod *p = proxy_caller_get(&st, (struct sockaddr *)&db, cb, true, &c);
    ok(p && strcmp(p->name, "db-0") == 0, "untrusted peer: the header is ignored, the caller is the source's pod");
    proxy_caller_put(&st, &c);
    is_int(proxy_caller_text(&st, (struct sockaddr *)&db, cb, text), 9, "hop text of a source's pod");
    is_str(text, "shop/db-0", "... is namespace/name");

    trusted = true;
    proxy_caller_take(&pw, PROXY_OUTBOUND, (struct sockaddr *)&node_a, &cb, "shop/web-a", 10, 1);
    ok(!cb || !cb->has_fwd, "trusted peer on the outbound listener: the header is not taken");
    proxy_caller_take(&pw, PROXY_INBOUND, (struct sockaddr *)&node_a, &cb, "shop/web-a", 10, 1);
    ok(cb && cb->has_fwd, "trusted agent on the inbound listener: its word counts");
    p = proxy_caller_get(&st, (struct sockaddr *)&node_a, cb, true, &c);
    ok(p && p == c.ref && strcmp(p->name, "web-a") == 0 && p->n_labels == 1,
       "the named pod with its labels, from the inventory by name");
    proxy_caller_put(&st, &c);
    p = proxy_caller_get(&st, (struct sockaddr *)&node_a, cb, false, &c);
    ok(p && !c.ref && strcmp(p->namespace_, "shop") == 0 && strcmp(p->name, "web-a") == 0 && p->n_labels == 0,
       "without labels: the name as sent, no lookup");
    proxy_caller_put(&st, &c);
    is_int(proxy_caller_text(&st, (struct sockaddr *)&node_a, cb, text), 10, "a forwarded caller is passed on");
    proxy_caller_take(&pw, PROXY_INBOUND, (struct sockaddr *)&node_a, &cb, "shop/other", 10, 1);
    p = proxy_caller_get(&st, (struct sockaddr *)&node_a, cb, true, &c);
    ok(p && !c.ref && strcmp(p->name, "other") == 0, "a pod the inventory does not know: namespace and name only");
    proxy_caller_put(&st, &c);
    proxy_caller_take(&pw, PROXY_INBOUND, (struct sockaddr *)&node_a, &cb, "shop/web-a", 10, 2);
    ok(!proxy_caller_get(&st, (struct sockaddr *)&node_a, cb, true, &c), "given twice: unknown");
    proxy_caller_put(&st, &c);
    proxy_caller_take(&pw, PROXY_INBOUND, (struct sockaddr *)&db, &cb, "Bad", 3, 1);
    ok(!proxy_caller_get(&st, (struct sockaddr *)&db, cb, true, &c), "malformed from an agent: unknown, not its address's pod");
    proxy_caller_put(&st, &c);
    is_int(proxy_caller_text(&st, (struct sockaddr *)&db, cb, text), 0, "... and no hop header");
    proxy_caller_take(&pw, PROXY_INBOUND, (struct sockaddr *)&node_a, &cb, NULL, 0, 0);
    ok(!proxy_caller_get(&st, (struct sockaddr *)&node_a, cb, true, &c), "an agent naming no caller: unknown");
    proxy_caller_put(&st, &c);
    trusted = false;
    proxy_caller_take(&pw, PROXY_INBOUND, (struct sockaddr *)&db, &cb, "shop/web-a", 10, 1);
    p = proxy_caller_get(&st, (struct sockaddr *)&db, cb, true, &c);
    ok(p && strcmp(p->name, "db-0") == 0, "the next request from an untrusted peer forgets the last one's word");
    proxy_caller_put(&st, &c);
    is_int(refs, 0, "every pod reference is released");
    free(cb);
}

int main(void)
{
    test_parse();
    test_identity();
    return done_testing();
}

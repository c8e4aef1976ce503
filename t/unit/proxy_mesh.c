// pkgs: libnghttp2
/*
 * The mesh's address logic: x-outrider-dst parsing (the incoming side's
 * outside input), CIDR parsing and containment (IPv4 mapped, IPv6, prefix
 * lengths not on byte boundaries), loopback and wildcard keys, and the
 * choice of the agent that carries an endpoint (own node and an agent's own
 * listener are never hops), and the sidecar port a pod's annotation gives.
 */
#include "tap.h"

#include "../../modules/proxy/proxy_mesh.c"

/* proxy_mesh.c closes pooled connections of a reused slot; not reached here. */
void proxy_upconn_close(struct proxy_upconn *u) { abort(); }
void proxy_h2up_retire(struct proxy_endpoint *ep) { abort(); }
bool proxy_h2up_idle(const struct proxy_endpoint *ep, unsigned *n) { abort(); }

static bool dst_ok(const char *s)
{
    struct sockaddr_storage sa;
    return hostport_parse(s, strlen(s), &sa);
}

static void test_dst(void)
{
    static const char *good[] = { "10.1.2.3:8080", "[fd00::5]:50051", "127.0.0.1:1", "0.0.0.0:65535" };
    static const char *bad[] = { "", "10.1.2.3", "10.1.2.3:", "10.1.2.3:0", "10.1.2.3:65536", "10.1.2.3:+80",
                                 "10.1.2.3:80 ", " 10.1.2.3:80", "pod-b:80", "fd00::5:80", "[fd00::5:80",
                                 "[fd00::5]80", "10.1.2.3:123456", "10.1.2.300:80",
                                 "1111111111111111111111111111111111111111111111111111111111111111:1" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ok(dst_ok(good[i]), "x-outrider-dst \"%s\" accepted", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ok(!dst_ok(bad[i]), "x-outrider-dst \"%s\" refused", bad[i]);
    struct sockaddr_storage sa;
    ok(hostport_parse("10.1.2.3:8080", 13, &sa) && sa.ss_family == AF_INET && sockaddr_port((struct sockaddr *)&sa) == 8080,
       "IPv4 value: family and port");
    ok(hostport_parse("10.1.2.3:8080xyz", 13, &sa), "only len bytes are read (HTTP/2 values are not terminated)");
    char ip[64] = "";
    ok(hostport_parse("[fd00::5]:50051", 15, &sa) && sa.ss_family == AF_INET6, "IPv6 value: family");
    uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
    is_str(ip, "fd00::5", "IPv6 value: address without brackets");
}

static bool holds(const char *cidr, const char *addr)
{
    struct mesh_cidr c;
    struct sockaddr_storage sa;
    unsigned char k[16];
    char hp[80];
    snprintf(hp, sizeof hp, strchr(addr, ':') ? "[%s]:1" : "%s:1", addr);
    if (!cidr_parse(cidr, &c) || !hostport_parse(hp, strlen(hp), &sa) || !key_from_sockaddr((struct sockaddr *)&sa, k))
        return false;
    return cidr_contains(&c, k);
}

static void test_cidr(void)
{
    struct mesh_cidr c;
    static const char *bad[] = { "", "10.1.0.0/", "10.1.0.0/33", "10.1.0.5/24", "fd00::/129", "fd00::1/64",
                                 "10.1.0.0/ 24", "10.1.0.0/-1", "pod-cidr", "10.1.0.0/24/1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ok(!cidr_parse(bad[i], &c), "CIDR \"%s\" refused", bad[i]);
    ok(cidr_parse("10.1.2.3", &c) && c.bits == 128, "a bare IPv4 address is a /32");
    ok(holds("10.1.0.0/24", "10.1.0.77") && !holds("10.1.0.0/24", "10.1.1.77"), "/24");
    ok(holds("10.1.0.0/23", "10.1.1.200") && !holds("10.1.0.0/23", "10.1.2.1"), "/23 (not on a byte boundary)");
    ok(holds("10.1.2.3", "10.1.2.3") && !holds("10.1.2.3", "10.1.2.4"), "single address");
    ok(holds("0.0.0.0/0", "192.168.7.7") && !holds("0.0.0.0/0", "fd00::1"), "IPv4 /0 holds IPv4 only");
    ok(holds("fd00:0:0:1::/64", "fd00:0:0:1::abcd") && !holds("fd00:0:0:1::/64", "fd00:0:0:2::1"), "IPv6 /64");
    ok(holds("10.1.0.0/17", "10.1.127.1") && !holds("10.1.0.0/17", "10.1.128.1"), "/17");
}

static void test_keys(void)
{
    unsigned char k[16];
    struct sockaddr_storage sa;
    hostport_parse("127.9.9.9:1", 11, &sa);
    key_from_sockaddr((struct sockaddr *)&sa, k);
    ok(key_is_loopback(k), "127.9.9.9 is loopback");
    hostport_parse("[::1]:1", 7, &sa);
    key_from_sockaddr((struct sockaddr *)&sa, k);
    ok(key_is_loopback(k), "::1 is loopback");
    hostport_parse("0.0.0.0:1", 9, &sa);
    key_from_sockaddr((struct sockaddr *)&sa, k);
    ok(key_is_wildcard(k) && !key_is_loopback(k), "0.0.0.0 is the wildcard");
    hostport_parse("10.0.0.1:1", 10, &sa);
    key_from_sockaddr((struct sockaddr *)&sa, k);
    ok(!key_is_wildcard(k) && !key_is_loopback(k), "10.0.0.1 is neither");
}

static void test_agent_for(void)
{
    struct mesh_cidr own = { { 0 }, 0 }, b = own, side = own;
    cidr_parse("10.1.1.0/24", &own);
    cidr_parse("10.1.2.0/24", &b);
    cidr_parse("10.1.3.9", &side);
    struct mesh_agent agents[3] = { { .own_node = true, .cidrs = &own, .n_cidrs = 1 },
                                    { .cidrs = &b, .n_cidrs = 1 },
                                    { .cidrs = &side, .n_cidrs = 1 } };
    hostport_parse("10.0.0.1:4141", 13, &agents[0].addr);
    hostport_parse("10.0.0.2:4141", 13, &agents[1].addr);
    hostport_parse("10.1.3.9:4143", 13, &agents[2].addr);
    struct proxy_mesh m = { .agents = agents, .n_agents = 3 };
    struct sockaddr_storage sa;
    hostport_parse("10.1.2.5:8080", 13, &sa);
    is_int(agent_for(&m, (struct sockaddr *)&sa), 1, "a pod of node B goes through B");
    hostport_parse("10.1.1.5:8080", 13, &sa);
    is_int(agent_for(&m, (struct sockaddr *)&sa), -1, "a pod of this node is called directly");
    hostport_parse("10.1.3.9:8080", 13, &sa);
    is_int(agent_for(&m, (struct sockaddr *)&sa), 2, "a pod with a sidecar goes through its sidecar");
    hostport_parse("10.1.3.9:4143", 13, &sa);
    is_int(agent_for(&m, (struct sockaddr *)&sa), -1, "the sidecar's own listener as an endpoint is called directly");
    hostport_parse("10.9.9.9:80", 11, &sa);
    is_int(agent_for(&m, (struct sockaddr *)&sa), -1, "an address of no agent is called directly");

    /* Whose x-outrider-caller is believed: node agents other than this
     * node's, by address whatever the port; never a sidecar's. */
    agents[0].node_agent = agents[1].node_agent = true;
    ok(trusted_build(&m) == 0 && m.n_trusted == 1, "one trusted agent: node B");
    struct proxy_state st = { .mesh = &m };
    hostport_parse("10.0.0.2:40000", 14, &sa);
    ok(proxy_mesh_trusts_caller(&st, (struct sockaddr *)&sa), "node B's agent, from any port, is trusted");
    hostport_parse("10.0.0.1:40000", 14, &sa);
    ok(!proxy_mesh_trusts_caller(&st, (struct sockaddr *)&sa), "this node's own address is not");
    hostport_parse("10.1.3.9:40000", 14, &sa);
    ok(!proxy_mesh_trusts_caller(&st, (struct sockaddr *)&sa), "a sidecar's (its pod's) address is not");
    hostport_parse("10.1.2.5:40000", 14, &sa);
    ok(!proxy_mesh_trusts_caller(&st, (struct sockaddr *)&sa), "a pod behind node B is not");
    hostport_parse("[::ffff:10.0.0.2]:1", 19, &sa);
    ok(proxy_mesh_trusts_caller(&st, (struct sockaddr *)&sa), "node B as an IPv4-mapped IPv6 peer is");
    free(m.trusted);
}

static void test_sidecar_port(void)
{
    struct otr_conf_map_entry ann[2] = { { "other", "1" }, { "outrider.io/inbound-port", "" } };
    struct otr_pod pod = { "shop", "web-1", "u", "n", "10.1.0.5", NULL, 0, ann, 2 };
    static const char *bad[] = { "", "0", "65536", "123456", "41 43", "+4143", "-1", "4143x", "0x10" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ann[1].value = (char *)bad[i];
        is_int(sidecar_port(&pod, "outrider.io/inbound-port"), 0, "annotation \"%s\": no sidecar", bad[i]);
    }
    ann[1].value = "4143";
    is_int(sidecar_port(&pod, "outrider.io/inbound-port"), 4143, "annotation \"4143\": its port");
    ann[1].value = "65535";
    is_int(sidecar_port(&pod, "outrider.io/inbound-port"), 65535, "the highest port");
    is_int(sidecar_port(&pod, "example.com/port"), 0, "another annotation name: none");
    pod.n_annotations = 0;
    is_int(sidecar_port(&pod, "outrider.io/inbound-port"), 0, "no annotations: none");
}

int main(void)
{
    test_sidecar_port();
    test_dst();
    test_cidr();
    test_keys();
    test_agent_for();
    return done_testing();
}

/*
 * Endpoint addresses and the endpoints file parser: accepted forms,
 * canonical text, identity (sorting, duplicates), DNS name validation, and
 * errors that name their place (file:line:column for JSON syntax, the JSON
 * path for content).
 */
#include "tap.h"

#include "../../modules/proxy/proxy_endpoints.c"

static int parse(const char *json, struct proxy_epaddr **out, size_t *n, char *err, size_t cap)
{
    err[0] = '\0';
    return proxy_endpoints_parse(json, strlen(json), "/etc/eps.json", out, n, err, cap);
}

static void test_addr_forms(void)
{
    static const struct {
        const char *in, *text; /* text NULL: rejected */
    } cases[] = {
        { "10.0.0.1:8080", "10.0.0.1:8080" },
        { "[::1]:80", "[::1]:80" },
        { "[fd00:0:0::7]:443", "[fd00::7]:443" },
        { "127.0.0.1:65535", "127.0.0.1:65535" },
        { "127.0.0.1:0", NULL },
        { "127.0.0.1:65536", NULL },
        { "127.0.0.1", NULL },
        { "::1:80", NULL },
        { "[127.0.0.1]:80", NULL },
        { "host.example:80", NULL },
        { "10.0.0.300:80", NULL },
        { "10.0.0.1:8a", NULL },
        { ":80", NULL },
        { "10.0.0.1:", NULL },
        { "10.0.0.1:+80", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proxy_epaddr a;
        int rc = proxy_epaddr_parse(cases[i].in, strlen(cases[i].in), &a);
        if (cases[i].text)
            ok(rc == 0 && strcmp(a.text, cases[i].text) == 0, "\"%s\" -> \"%s\"", cases[i].in, cases[i].text);
        else
            ok(rc != 0, "\"%s\" rejected", cases[i].in);
    }
}

static void test_dns_names(void)
{
    ok(proxy_dns_name_valid("backend.svc.cluster.local"), "a service name");
    ok(proxy_dns_name_valid("localhost"), "localhost");
    ok(proxy_dns_name_valid("a-b_c.example."), "trailing dot, '-' and '_'");
    ok(proxy_dns_name_valid("10.0.0.host"), "numeric labels before a name");
    ok(!proxy_dns_name_valid("10.0.0.300"), "a mistyped IPv4 address is not a name");
    ok(!proxy_dns_name_valid(""), "empty");
    ok(!proxy_dns_name_valid("a..b"), "empty label");
    ok(!proxy_dns_name_valid("bad name"), "space");
    ok(!proxy_dns_name_valid("x/y"), "slash");
    char longlabel[80];
    memset(longlabel, 'a', 64);
    longlabel[64] = '\0';
    ok(!proxy_dns_name_valid(longlabel), "a 64-byte label");
}

static void test_parse_ok(void)
{
    struct proxy_epaddr *a;
    size_t n;
    char err[512];
    int rc = parse("{\"endpoints\": [\"10.0.0.2:80\", \"[::1]:81\", \"10.0.0.1:80\", \"10.0.0.2:80\", "
                   "\"10.0.0.1:79\"]}",
                   &a, &n, err, sizeof err);
    is_int(rc, 0, "a valid file parses: %s", err);
    is_int(n, 4, "the duplicate is dropped");
    if (rc == 0 && n == 4) {
        is_str(a[0].text, "10.0.0.2:80", "the file's order is kept (the first occurrence of a duplicate)");
        is_str(a[1].text, "[::1]:81", "second");
        is_str(a[2].text, "10.0.0.1:80", "third");
        is_str(a[3].text, "10.0.0.1:79", "fourth");
    }
    free(a);
    rc = parse("{\"endpoints\": []}", &a, &n, err, sizeof err);
    ok(rc == 0 && n == 0 && a == NULL, "an empty list is valid (the cluster then has no endpoints)");
    struct proxy_epaddr x, y;
    proxy_epaddr_parse("[fe80::1]:80", 12, &x);
    proxy_epaddr_parse("[fe80::1]:80", 12, &y);
    is_int(proxy_epaddr_cmp(&x, &y), 0, "the same address is the same endpoint");
    proxy_epaddr_parse("[fe80::1]:81", 12, &y);
    ok(proxy_epaddr_cmp(&x, &y) < 0, "another port is another endpoint");
    struct proxy_epaddr s[5];
    const char *in[] = { "10.0.0.3:1", "10.0.0.1:1", "10.0.0.3:1", "10.0.0.2:1", "10.0.0.1:1" };
    for (int i = 0; i < 5; i++)
        proxy_epaddr_parse(in[i], strlen(in[i]), &s[i]);
    is_int(proxy_epaddrs_normalize(s, 5), 3, "normalize: 3 distinct");
    ok(strcmp(s[0].text, "10.0.0.1:1") == 0 && strcmp(s[2].text, "10.0.0.3:1") == 0, "normalize sorts");
}

static void test_parse_errors(void)
{
    static const struct {
        const char *json, *err;
    } cases[] = {
        { "{\"endpoints\": [\"10.0.0.1:80\",\n  ]}", "/etc/eps.json:2:3: " },
        { "{\"endpoints\": [\"10.0.0.1:80\"]", "/etc/eps.json:1:" },
        { "", "/etc/eps.json:1:0: " },
        { "[\"10.0.0.1:80\"]", "/etc/eps.json: $: expected an object" },
        { "{}", "/etc/eps.json: $.endpoints: missing" },
        { "{\"endpoints\": {}}", "/etc/eps.json: $.endpoints: expected an array" },
        { "{\"endpoints\": [\"10.0.0.1:80\", 5]}", "/etc/eps.json: $.endpoints[1]: expected a string" },
        { "{\"endpoints\": [\"10.0.0.1:80\", \"db.local:80\"]}",
          "/etc/eps.json: $.endpoints[1]: expected \"ip:port\" or \"[ipv6]:port\", got \"db.local:80\"" },
        { "{\"endpoints\": [], \"endpoint\": []}", "/etc/eps.json: $.endpoint: unknown key" },
        { "{\"endpoints\": [], \"endpoints\": []}", "/etc/eps.json:1:" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proxy_epaddr *a = NULL;
        size_t n = 99;
        char err[512];
        int rc = parse(cases[i].json, &a, &n, err, sizeof err);
        ok(rc != 0 && a == NULL && n == 0 && strncmp(err, cases[i].err, strlen(cases[i].err)) == 0,
           "error for case %zu starts with \"%s\" (got \"%s\")", i, cases[i].err, err);
    }
    /* More than PROXY_ENDPOINTS_MAX entries. */
    size_t cap = (PROXY_ENDPOINTS_MAX + 1) * 20 + 32;
    char *big = malloc(cap), *p = big;
    p += sprintf(p, "{\"endpoints\": [");
    for (int i = 0; i <= PROXY_ENDPOINTS_MAX; i++)
        p += sprintf(p, "%s\"10.%d.%d.1:80\"", i ? "," : "", i / 256, i % 256);
    sprintf(p, "]}");
    struct proxy_epaddr *a;
    size_t n;
    char err[512];
    int rc = parse(big, &a, &n, err, sizeof err);
    ok(rc != 0 && strstr(err, "$.endpoints: 4097 entries, at most 4096"), "too many entries: %s", err);
    free(big);
}

int main(void)
{
    test_addr_forms();
    test_dns_names();
    test_parse_ok();
    test_parse_errors();
    return done_testing();
}

/*
 * Unit tests for the configuration layer: diag, config (reading, role
 * overlay), conf_schema (every field type, defaults, errors), conf_values
 * (durations, sizes, addresses, ${VAR}) and conf_describe.
 */
#include "tap.h"

#include "../../core/conf_describe.c"
#include "../../core/conf_schema.c"
#include "../../core/conf_values.c"
#include "../../core/config.c"
#include "../../core/diag.c"

#include <unistd.h>

/* ---- a schema exercising every type ---------------------------------------- */

struct t_match {
    char *path;
    struct otr_conf_map headers;
};
struct t_listener {
    char *name;
    struct otr_conf_address address;
    int64_t port;
};
struct t_route {
    struct t_match match;
    uint64_t timeout;
    int lb;
    struct otr_conf_array methods; /* of char * */
};
struct t_proxy {
    bool enabled;
    int64_t workers;
    double ratio;
    char *name;
    uint64_t timeout;
    uint64_t buffer;
    int lb;
    struct otr_conf_address upstream;
    struct otr_conf_array listeners; /* of struct t_listener */
    struct otr_conf_array routes;    /* of struct t_route */
    struct otr_conf_array ports;     /* of int64_t */
    struct otr_conf_map labels;
};
struct t_admin {
    struct otr_conf_address address;
    uint64_t read_timeout;
};
struct t_top {
    char *node_name;
    int64_t workers;
    struct t_admin admin;
    char *token;
};

static const struct otr_conf_field match_fields[] = {
    OTR_CONF_FIELD("path", OTR_CONF_STRING, struct t_match, path, .def = "\"/\"", .help = "Path prefix."),
    OTR_CONF_FIELD("headers", OTR_CONF_MAP, struct t_match, headers, .help = "Exact header values."),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field method_elem = {.type = OTR_CONF_STRING, .min = 3, .max = 7};
static const struct otr_conf_field port_elem = {.type = OTR_CONF_INT, .min = 1, .max = 65535};
static const struct otr_conf_field listener_fields[] = {
    OTR_CONF_FIELD("name", OTR_CONF_STRING, struct t_listener, name, .flags = OTR_CONF_REQUIRED, .max = 16,
                   .help = "Listener name."),
    OTR_CONF_FIELD("address", OTR_CONF_ADDRESS, struct t_listener, address, .def = "\"127.0.0.1:0\"",
                   .help = "Where to listen."),
    OTR_CONF_FIELD("port", OTR_CONF_INT, struct t_listener, port, .def = "8080", .min = 1, .max = 65535,
                   .help = "Port."),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field route_fields[] = {
    OTR_CONF_FIELD("match", OTR_CONF_OBJECT, struct t_route, match, .fields = match_fields, .help = "Match."),
    OTR_CONF_FIELD("timeout", OTR_CONF_DURATION, struct t_route, timeout, .def = "\"15s\"", .help = "Timeout."),
    OTR_CONF_FIELD("lb", OTR_CONF_ENUM, struct t_route, lb, .def = "\"p2c\"",
                   .choices = "round_robin|least_request|p2c", .help = "Balancing."),
    OTR_CONF_FIELD("methods", OTR_CONF_ARRAY, struct t_route, methods, .elem = &method_elem,
                   .elem_size = sizeof(char *), .help = "Methods."),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field proxy_fields[] = {
    OTR_CONF_FIELD("enabled", OTR_CONF_BOOL, struct t_proxy, enabled, .def = "true", .help = "On | off."),
    OTR_CONF_FIELD("workers", OTR_CONF_INT, struct t_proxy, workers, .def = "4", .def_sidecar = "1",
                   .min = 1, .max = 64, .help = "Worker threads."),
    OTR_CONF_FIELD("ratio", OTR_CONF_DOUBLE, struct t_proxy, ratio, .def = "0.5", .min = 0, .max = 1,
                   .help = "A ratio."),
    OTR_CONF_FIELD("name", OTR_CONF_STRING, struct t_proxy, name, .def = "\"${OTR_T_NAME:-edge}\"", .max = 8,
                   .help = "Name."),
    OTR_CONF_FIELD("timeout", OTR_CONF_DURATION, struct t_proxy, timeout, .def = "\"250ms\"", .min = 1,
                   .max = 3600000, .help = "Timeout."),
    OTR_CONF_FIELD("buffer", OTR_CONF_SIZE, struct t_proxy, buffer, .def = "\"64KiB\"", .min = 4096,
                   .max = 1 << 30, .help = "Buffer."),
    OTR_CONF_FIELD("lb", OTR_CONF_ENUM, struct t_proxy, lb, .def = "\"round_robin\"",
                   .choices = "round_robin|least_request|p2c", .help = "Balancing."),
    OTR_CONF_FIELD("upstream", OTR_CONF_ADDRESS, struct t_proxy, upstream, .def_sidecar = "\"127.0.0.1:9000\"",
                   .def_node = "\"[::1]:9000\"", .help = "Upstream."),
    OTR_CONF_FIELD("listeners", OTR_CONF_ARRAY, struct t_proxy, listeners, .fields = listener_fields,
                   .elem_size = sizeof(struct t_listener), .min = 1, .max = 4, .def = "[{\"name\": \"main\"}]",
                   .help = "Listeners."),
    OTR_CONF_FIELD("routes", OTR_CONF_ARRAY, struct t_proxy, routes, .fields = route_fields,
                   .elem_size = sizeof(struct t_route), .help = "Routes."),
    OTR_CONF_FIELD("ports", OTR_CONF_ARRAY, struct t_proxy, ports, .elem = &port_elem,
                   .elem_size = sizeof(int64_t), .help = "Ports."),
    OTR_CONF_FIELD("labels", OTR_CONF_MAP, struct t_proxy, labels, .help = "Labels."),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field admin_fields[] = {
    OTR_CONF_FIELD("address", OTR_CONF_ADDRESS, struct t_admin, address, .def_sidecar = "\"127.0.0.1:4191\"",
                   .def_node = "\"0.0.0.0:4191\"", .help = "Admin endpoint."),
    OTR_CONF_FIELD("read_timeout", OTR_CONF_DURATION, struct t_admin, read_timeout, .def = "\"5s\"",
                   .help = "Read timeout."),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field top_fields[] = {
    OTR_CONF_FIELD("node_name", OTR_CONF_STRING, struct t_top, node_name, .def = "\"${OTR_T_NODE:-local}\"",
                   .help = "Node name."),
    OTR_CONF_FIELD("workers", OTR_CONF_INT, struct t_top, workers, .def = "2", .help = "Workers."),
    OTR_CONF_FIELD("admin", OTR_CONF_OBJECT, struct t_top, admin, .fields = admin_fields, .help = "Admin."),
    OTR_CONF_FIELD("token", OTR_CONF_STRING, struct t_top, token, .help = "Token."),
    OTR_CONF_TABLE_END,
};
static const char *const top_allow[] = {"proxy", NULL};

/* ---- helpers -------------------------------------------------------------------- */

static bool has_msg(const struct otr_diag *d, const char *want)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->msgs[i], want) == 0)
            return true;
    }
    return false;
}

static void dump(const struct otr_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        diag("  %s", d->msgs[i]);
}

/* Exactly one error, equal to want. */
static void one_error(const struct otr_diag *d, const char *want, const char *name)
{
    if (!ok(d->n == 1 && has_msg(d, want), "%s", name)) {
        diag("want: %s", want);
        dump(d);
    }
}

/* Parses text as a whole file: proxy section and top level, for role. */
static int parse_all(const char *text, enum otr_role role, struct t_top *top, struct t_proxy *px,
                     struct otr_diag *d)
{
    memset(top, 0, sizeof *top);
    memset(px, 0, sizeof *px);
    json_t *root = otr_config_read_buffer(text, strlen(text), d);
    if (root == NULL)
        return -1;
    otr_config_merge_role(root, role, d);
    otr_conf_parse(top_fields, root, top, "", role, top_allow, d);
    otr_conf_parse(proxy_fields, json_object_get(root, "proxy"), px, "proxy", role, NULL, d);
    json_decref(root);
    return (int)d->n;
}

static void free_all(struct t_top *top, struct t_proxy *px)
{
    otr_conf_free(top_fields, top);
    otr_conf_free(proxy_fields, px);
}

/* One proxy-section snippet expected to give exactly one error. */
static void proxy_error(const char *proxy_json, const char *want, const char *name)
{
    char text[2048];
    struct otr_diag d;
    struct t_top top;
    struct t_proxy px;
    snprintf(text, sizeof text, "{\"proxy\": %s}", proxy_json);
    otr_diag_init(&d, "agent.conf");
    parse_all(text, OTR_ROLE_NODE, &top, &px, &d);
    one_error(&d, want, name);
    free_all(&top, &px);
    otr_diag_fini(&d);
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_valid_config(void)
{
    const char *text = "{\n"
                       "  \"node_name\": \"n1\", \"workers\": 3, \"token\": \"s3cret\",\n"
                       "  \"admin\": {\"address\": \"[::1]:9901\", \"read_timeout\": \"1m30s\"},\n"
                       "  \"proxy\": {\n"
                       "    \"enabled\": false, \"workers\": \"16\", \"ratio\": 0.25, \"name\": \"px\",\n"
                       "    \"timeout\": \"1.5s\", \"buffer\": \"1MiB\", \"lb\": \"least_request\",\n"
                       "    \"upstream\": \"unix:/run/app.sock\",\n"
                       "    \"listeners\": [{\"name\": \"a\", \"address\": \":80\", \"port\": 81},\n"
                       "                    {\"name\": \"b\", \"address\": \"example.com:443\"}],\n"
                       "    \"routes\": [{\"match\": {\"path\": \"/api\", \"headers\": {\"x-a\": \"1\", \"x-b\": \"2\"}},\n"
                       "                  \"timeout\": \"2m\", \"lb\": \"p2c\", \"methods\": [\"GET\", \"POST\"]},\n"
                       "                 {}],\n"
                       "    \"ports\": [1, 65535],\n"
                       "    \"labels\": {\"team\": \"infra\", \"tier\": \"edge\"}\n"
                       "  }\n"
                       "}\n";
    struct otr_diag d;
    struct t_top top;
    struct t_proxy px;
    otr_diag_init(&d, "agent.conf");
    if (!is_int(parse_all(text, OTR_ROLE_NODE, &top, &px, &d), 0, "valid config: no errors"))
        dump(&d);
    is_str(top.node_name, "n1", "top string");
    is_int(top.workers, 3, "top int");
    is_str(top.token, "s3cret", "top string without default");
    is_str(top.admin.address.host, "::1", "nested object: address host without brackets");
    is_int(top.admin.address.port, 9901, "nested object: address port");
    is_int(top.admin.read_timeout, 90000, "compound duration 1m30s");
    ok(!px.enabled, "bool false");
    is_int(px.workers, 16, "int from a numeric string");
    ok(px.ratio == 0.25, "double");
    is_str(px.name, "px", "string");
    is_int(px.timeout, 1500, "duration 1.5s");
    is_int(px.buffer, 1 << 20, "size 1MiB");
    is_int(px.lb, 1, "enum index");
    ok(px.upstream.is_unix, "unix address");
    is_str(px.upstream.host, "/run/app.sock", "unix path");
    is_str(px.upstream.text, "unix:/run/app.sock", "address text kept");
    is_int(px.listeners.n, 2, "array of objects: count");
    struct t_listener *l = px.listeners.items;
    is_str(l[0].name, "a", "listener[0].name");
    is_str(l[0].address.host, "", "port-only address: empty host");
    is_int(l[0].address.port, 80, "port-only address: port");
    is_int(l[0].port, 81, "listener[0].port");
    is_str(l[1].address.host, "example.com", "host name address");
    is_int(l[1].port, 8080, "default inside an array element");
    is_int(px.routes.n, 2, "routes count");
    struct t_route *r = px.routes.items;
    is_str(r[0].match.path, "/api", "nested object in array element");
    is_int(r[0].match.headers.n, 2, "map count");
    is_str(r[0].match.headers.items[0].key, "x-a", "map keeps file order (key 0)");
    is_str(r[0].match.headers.items[1].value, "2", "map value");
    is_int(r[0].timeout, 120000, "duration 2m");
    is_int(r[0].methods.n, 2, "array of strings count");
    is_str(OTR_CONF_AT(r[0].methods, char *, 1), "POST", "array of strings item");
    is_str(r[1].match.path, "/", "empty element gets nested object defaults");
    is_int(r[1].timeout, 15000, "empty element gets defaults");
    is_int(r[1].lb, 2, "enum default");
    is_int(px.ports.n, 2, "array of ints");
    is_int(OTR_CONF_AT(px.ports, int64_t, 1), 65535, "array of ints item");
    is_int(px.labels.n, 2, "map of labels");
    is_str(px.labels.items[1].key, "tier", "map key order");
    free_all(&top, &px);
    otr_diag_fini(&d);
}

static void test_defaults_per_role(void)
{
    struct otr_diag d;
    struct t_top top;
    struct t_proxy px;
    otr_diag_init(&d, "agent.conf");
    unsetenv("OTR_T_NAME");
    unsetenv("OTR_T_NODE");
    is_int(parse_all("{}", OTR_ROLE_SIDECAR, &top, &px, &d), 0, "empty config, sidecar: no errors");
    is_int(px.workers, 1, "def_sidecar used in sidecar role");
    is_str(px.upstream.host, "127.0.0.1", "sidecar address default");
    is_str(top.admin.address.host, "127.0.0.1", "nested default, sidecar");
    ok(px.enabled, "bool default true");
    ok(px.ratio == 0.5, "double default");
    is_str(px.name, "edge", "string default with ${VAR:-x}");
    is_str(top.node_name, "local", "top default with ${VAR:-x}");
    is_int(px.timeout, 250, "duration default");
    is_int(px.buffer, 65536, "size default");
    is_int(px.lb, 0, "enum default");
    is_int(px.listeners.n, 1, "array default from JSON text");
    is_str(((struct t_listener *)px.listeners.items)[0].name, "main", "array default element");
    is_int(((struct t_listener *)px.listeners.items)[0].port, 8080, "defaults inside an array default");
    is_int(px.routes.n, 0, "array without default is empty");
    ok(top.token == NULL, "string without default is NULL");
    free_all(&top, &px);
    is_int(parse_all("{}", OTR_ROLE_NODE, &top, &px, &d), 0, "empty config, node: no errors");
    is_int(px.workers, 4, "def used in node role when only def_sidecar is set");
    is_str(px.upstream.host, "::1", "def_node used in node role");
    is_str(top.admin.address.host, "0.0.0.0", "nested default, node");
    free_all(&top, &px);
    is_int(parse_all("{\"proxy\": {\"workers\": null}}", OTR_ROLE_NODE, &top, &px, &d), 0, "null: no error");
    is_int(px.workers, 4, "null means the default");
    free_all(&top, &px);
    otr_diag_fini(&d);
}

static void test_type_errors(void)
{
    proxy_error("{\"listeners\": [{\"name\": \"a\"}, {\"name\": \"b\", \"port\": \"80a\"}]}",
                "agent.conf: proxy.listeners[1].port: expected an integer 1..65535, got \"80a\"",
                "int: string that is not a number");
    proxy_error("{\"routes\": [{}, {}, {\"timeout\": 3}]}",
                "agent.conf: proxy.routes[2].timeout: expected a duration like \"250ms\", got 3",
                "duration: bare number");
    proxy_error("{\"lb\": \"rr\"}",
                "agent.conf: proxy.lb: expected one of \"round_robin\", \"least_request\", \"p2c\", got \"rr\"",
                "enum: unknown choice");
    proxy_error("{\"lb\": \"round-robin\"}",
                "agent.conf: proxy.lb: expected one of \"round_robin\", \"least_request\", \"p2c\", got "
                "\"round-robin\" (did you mean \"round_robin\"?)",
                "enum: close choice suggested");
    proxy_error("{\"enabled\": 1}", "agent.conf: proxy.enabled: expected true or false, got 1", "bool: number");
    proxy_error("{\"enabled\": \"yes\"}", "agent.conf: proxy.enabled: expected true or false, got \"yes\"",
                "bool: other string");
    proxy_error("{\"workers\": 65}", "agent.conf: proxy.workers: expected an integer 1..64, got 65",
                "int: above max");
    proxy_error("{\"workers\": 0}", "agent.conf: proxy.workers: expected an integer 1..64, got 0",
                "int: below min");
    proxy_error("{\"workers\": 1.5}", "agent.conf: proxy.workers: expected an integer 1..64, got 1.5",
                "int: real number");
    proxy_error("{\"workers\": \" 8\"}", "agent.conf: proxy.workers: expected an integer 1..64, got \" 8\"",
                "int: string with a space");
    proxy_error("{\"ratio\": 1.5}", "agent.conf: proxy.ratio: expected a number 0..1, got 1.5", "double: bound");
    proxy_error("{\"ratio\": \"nan\"}", "agent.conf: proxy.ratio: expected a number 0..1, got \"nan\"",
                "double: nan string");
    proxy_error("{\"ratio\": true}", "agent.conf: proxy.ratio: expected a number 0..1, got true",
                "double: bool");
    proxy_error("{\"name\": 7}", "agent.conf: proxy.name: expected a string of at most 8 bytes, got 7",
                "string: number");
    proxy_error("{\"name\": \"123456789\"}",
                "agent.conf: proxy.name: expected a string of at most 8 bytes, got \"123456789\"",
                "string: too long");
    proxy_error("{\"timeout\": \"5x\"}", "agent.conf: proxy.timeout: expected a duration 1ms..1h, got \"5x\"",
                "duration: bad unit (bounded field)");
    proxy_error("{\"timeout\": \"2h\"}", "agent.conf: proxy.timeout: expected a duration 1ms..1h, got \"2h\"",
                "duration: above max");
    proxy_error("{\"timeout\": \"0\"}", "agent.conf: proxy.timeout: expected a duration 1ms..1h, got \"0\"",
                "duration: below min");
    proxy_error("{\"buffer\": \"12XB\"}", "agent.conf: proxy.buffer: expected a size 4KiB..1GiB, got \"12XB\"",
                "size: bad unit");
    proxy_error("{\"buffer\": -1}", "agent.conf: proxy.buffer: expected a size 4KiB..1GiB, got -1",
                "size: negative");
    proxy_error("{\"buffer\": 100}", "agent.conf: proxy.buffer: expected a size 4KiB..1GiB, got 100",
                "size: below min");
    proxy_error("{\"upstream\": \"localhost:99999\"}",
                "agent.conf: proxy.upstream: expected an address like \"127.0.0.1:8080\", \"[::1]:8080\" or "
                "\"unix:/path\", got \"localhost:99999\" (port must be a number 0..65535)",
                "address: bad port");
    proxy_error("{\"upstream\": \"::1:80\"}",
                "agent.conf: proxy.upstream: expected an address like \"127.0.0.1:8080\", \"[::1]:8080\" or "
                "\"unix:/path\", got \"::1:80\" (IPv6 addresses need brackets, as in \"[::1]:8080\")",
                "address: IPv6 without brackets");
    proxy_error("{\"upstream\": 80}",
                "agent.conf: proxy.upstream: expected an address like \"127.0.0.1:8080\", \"[::1]:8080\" or "
                "\"unix:/path\", got 80",
                "address: number");
    proxy_error("{\"routes\": [{\"match\": []}]}", "agent.conf: proxy.routes[0].match: expected an object, got []",
                "object: got an array");
    proxy_error("{\"routes\": {}}", "agent.conf: proxy.routes: expected an array, got {}", "array: got an object");
    proxy_error("{\"listeners\": []}", "agent.conf: proxy.listeners: expected an array of 1..4 items, got 0 items",
                "array: too few items");
    proxy_error("{\"listeners\": [{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"},{\"name\":\"d\"},{\"name\":\"e\"}]}",
                "agent.conf: proxy.listeners: expected an array of 1..4 items, got 5 items",
                "array: too many items");
    proxy_error("{\"ports\": [80, 0]}", "agent.conf: proxy.ports[1]: expected an integer 1..65535, got 0",
                "array of ints: element bound");
    proxy_error("{\"ports\": [80, null]}", "agent.conf: proxy.ports[1]: expected an integer 1..65535, got null",
                "array: null element");
    proxy_error("{\"routes\": [{\"methods\": [\"GET\", \"X\"]}]}",
                "agent.conf: proxy.routes[0].methods[1]: expected a string of 3..7 bytes, got \"X\"",
                "array of strings: length bound");
    proxy_error("{\"labels\": {\"a\": \"x\", \"b\": 2}}", "agent.conf: proxy.labels.b: expected a string, got 2",
                "map: non-string value");
    proxy_error("{\"labels\": [\"a\"]}", "agent.conf: proxy.labels: expected an object of strings, got [\"a\"]",
                "map: not an object");
    proxy_error("[1]", "agent.conf: proxy: expected an object, got [1]", "section that is not an object");
}

/* An array whose table sets no maximum is still capped, so a file cannot
 * make the parser allocate without bound. */
static void test_array_cap(void)
{
    size_t n = ((size_t)1 << 20) + 1, len = 0;
    char *text = malloc(n * 2 + 32);
    len += (size_t)sprintf(text, "{\"proxy\": {\"ports\": [");
    for (size_t i = 0; i < n; i++) {
        memcpy(text + len, i ? ",1" : "1", i ? 2 : 1);
        len += i ? 2 : 1;
    }
    strcpy(text + len, "]}}");
    struct otr_diag d;
    struct t_top top;
    struct t_proxy px;
    otr_diag_init(&d, "agent.conf");
    parse_all(text, OTR_ROLE_NODE, &top, &px, &d);
    one_error(&d, "agent.conf: proxy.ports: expected at most 1048576 items, got 1048577", "hard cap on array items");
    is_int(px.ports.n, 1 << 20, "items beyond the cap are not stored");
    free_all(&top, &px);
    otr_diag_fini(&d);
    free(text);
}

static void test_required_and_unknown(void)
{
    proxy_error("{\"listeners\": [{\"port\": 1}]}", "agent.conf: proxy.listeners[0].name: missing required key",
                "required key missing");
    proxy_error("{\"listners\": []}", "agent.conf: proxy.listners: unknown key (did you mean \"listeners\"?)",
                "unknown key, edit distance 1");
    proxy_error("{\"buf\": 1}", "agent.conf: proxy.buf: unknown key (did you mean \"buffer\"?)",
                "unknown key, prefix");
    proxy_error("{\"zzz\": 1}", "agent.conf: proxy.zzz: unknown key", "unknown key, nothing close");
    char longkey[600];
    memset(longkey, 'k', sizeof longkey);
    memcpy(longkey, "{\"", 2);
    memcpy(longkey + 300, "\": 1}", 6);
    longkey[306] = '\0';
    char want[300];
    snprintf(want, sizeof want, "agent.conf: proxy.%.128s...: unknown key", longkey + 2);
    proxy_error(longkey, want, "very long unknown key is cut");
    proxy_error("{\"a\\tb\": 1}", "agent.conf: proxy.a\\x09b: unknown key", "unknown key with a tab, escaped");

    struct otr_diag d;
    struct t_top top;
    struct t_proxy px;
    otr_diag_init(&d, "agent.conf");
    parse_all("{\"admin\": {\"adress\": \"127.0.0.1:1\"}, \"prxy\": {}}", OTR_ROLE_NODE, &top, &px, &d);
    is_int(d.n, 2, "two unknown keys");
    ok(has_msg(&d, "agent.conf: admin.adress: unknown key (did you mean \"address\"?)"),
       "top-level path is empty: admin.adress");
    ok(has_msg(&d, "agent.conf: prxy: unknown key (did you mean \"proxy\"?)"), "allowed keys are suggested too");
    free_all(&top, &px);
    otr_diag_fini(&d);
}

static void test_many_errors(void)
{
    const char *text = "{\"workers\": \"x\", \"admin\": {\"adress\": 1, \"read_timeout\": 5},\n"
                       " \"proxy\": {\"enabled\": 2, \"workers\": 100, \"lb\": \"rr\", \"buffer\": \"1XB\",\n"
                       "   \"listeners\": [{\"port\": 0}, {\"name\": \"ok\", \"address\": \"nope\"}],\n"
                       "   \"routes\": [{\"timeout\": 3, \"match\": {\"path\": 1}}], \"bogus\": 1}}";
    struct otr_diag d;
    struct t_top top;
    struct t_proxy px;
    otr_diag_init(&d, "agent.conf");
    parse_all(text, OTR_ROLE_NODE, &top, &px, &d);
    /* workers, admin.adress, admin.read_timeout, proxy: enabled, workers, lb,
     * buffer, listeners[0].name (required), listeners[0].port,
     * listeners[1].address, routes[0].timeout, routes[0].match.path, bogus */
    is_int(d.n, 13, "every error is reported, not just the first");
    ok(has_msg(&d, "agent.conf: proxy.listeners[0].port: expected an integer 1..65535, got 0"), "one of them");
    ok(has_msg(&d, "agent.conf: proxy.routes[0].match.path: expected a string, got 1"), "a deep one");
    ok(has_msg(&d, "agent.conf: proxy.bogus: unknown key"), "the unknown key");
    if (d.n != 13)
        dump(&d);
    free_all(&top, &px);
    otr_diag_fini(&d);
}

static void test_syntax_errors(void)
{
    struct otr_diag d;
    otr_diag_init(&d, "agent.conf");
    const char *bad = "{\n  \"a\": 1,\n  \"b\" 2\n}";
    ok(otr_config_read_buffer(bad, strlen(bad), &d) == NULL, "syntax error: NULL");
    one_error(&d, "agent.conf:3:7: ':' expected near '2'", "syntax error with line:column");
    otr_diag_fini(&d);

    otr_diag_init(&d, "agent.conf");
    const char *dup = "{\n  \"workers\": 1,\n  \"workers\": 2\n}";
    ok(otr_config_read_buffer(dup, strlen(dup), &d) == NULL, "duplicate key: NULL");
    one_error(&d, "agent.conf:3:11: duplicate object key near '\"workers\"'", "duplicate key with line:column");
    otr_diag_fini(&d);

    otr_diag_init(&d, "agent.conf");
    ok(otr_config_read_buffer("[1, 2]", 6, &d) == NULL, "array at top level: NULL");
    one_error(&d, "agent.conf: expected a JSON object at the top level, got [1,2]", "top level must be an object");
    otr_diag_fini(&d);

    otr_diag_init(&d, "agent.conf");
    ok(otr_config_read_buffer("", 0, &d) == NULL, "empty input: NULL");
    ok(d.n == 1 && strncmp(d.msgs[0], "agent.conf:1:1: ", 16) == 0, "empty input: positioned error");
    otr_diag_fini(&d);

    /* A real file, and a missing one. */
    char path[] = "/tmp/otr-config-test-XXXXXX";
    int fd = mkstemp(path);
    const char *body = "{\"workers\": 7,\n \"x\": [1,,2]}";
    ok(fd >= 0 && write(fd, body, strlen(body)) == (ssize_t)strlen(body), "temp file written");
    close(fd);
    otr_diag_init(&d, path);
    ok(otr_config_read(path, &d) == NULL, "file with a syntax error: NULL");
    char want[256];
    snprintf(want, sizeof want, "%s:2:10: unexpected token near ','", path);
    one_error(&d, want, "file syntax error names file:line:column");
    otr_diag_fini(&d);
    fd = open(path, O_WRONLY | O_TRUNC);
    ok(fd >= 0 && write(fd, "{\"workers\": 7}", 14) == 14, "temp file rewritten");
    close(fd);
    otr_diag_init(&d, path);
    json_t *root = otr_config_read(path, &d);
    ok(root != NULL && json_integer_value(json_object_get(root, "workers")) == 7, "file read");
    json_decref(root);
    unlink(path);
    ok(otr_config_read(path, &d) == NULL, "missing file: NULL");
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    one_error(&d, want, "missing file: message");
    otr_diag_fini(&d);
    otr_diag_init(&d, "/tmp");
    ok(otr_config_read("/tmp", &d) == NULL, "directory: NULL");
    one_error(&d, "/tmp: not a regular file", "directory: message");
    otr_diag_fini(&d);
}

static void test_env(void)
{
    char err[256];
    char *s;
    setenv("OTR_T_A", "alpha", 1);
    setenv("OTR_T_EMPTY", "", 1);
    unsetenv("OTR_T_UNSET");
    s = otr_env_expand("x-${OTR_T_A}-y", err, sizeof err);
    is_str(s, "x-alpha-y", "set variable");
    free(s);
    s = otr_env_expand("${OTR_T_UNSET:-dflt}", err, sizeof err);
    is_str(s, "dflt", "unset variable with default");
    free(s);
    s = otr_env_expand("${OTR_T_EMPTY:-dflt}", err, sizeof err);
    is_str(s, "dflt", ":- also replaces an empty value");
    free(s);
    s = otr_env_expand("[${OTR_T_EMPTY}]", err, sizeof err);
    is_str(s, "[]", "set but empty without default: empty");
    free(s);
    s = otr_env_expand("${OTR_T_UNSET:-${OTR_T_A}}", err, sizeof err);
    is_str(s, "alpha", "nested default");
    free(s);
    s = otr_env_expand("$${OTR_T_A} costs $5 and $$", err, sizeof err);
    is_str(s, "${OTR_T_A} costs $5 and $", "$$ is a literal $, lone $ kept");
    free(s);
    s = otr_env_expand("${OTR_T_UNSET}", err, sizeof err);
    ok(s == NULL, "unset variable without default: NULL");
    is_str(err, "environment variable \"OTR_T_UNSET\" is not set (use ${OTR_T_UNSET:-default} for a fallback)",
           "unset variable: reason");
    ok(otr_env_expand("${OTR_T_A", err, sizeof err) == NULL, "unterminated ${");
    ok(otr_env_expand("${1A}", err, sizeof err) == NULL, "name starting with a digit");
    ok(otr_env_expand("${}", err, sizeof err) == NULL, "empty name");
    ok(otr_env_expand("${OTR_T_UNSET:-unterminated", err, sizeof err) == NULL, "unterminated default");
    ok(otr_env_expand("${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-x}}}}}}}}}}", err, sizeof err) == NULL,
       "nesting depth is bounded");

    /* Through the schema: user values and defaults. */
    setenv("OTR_T_PORT", "9090", 1);
    setenv("OTR_T_BAD", "80a", 1);
    setenv("OTR_T_NAME", "envname", 1);
    struct otr_diag d;
    struct t_top top;
    struct t_proxy px;
    otr_diag_init(&d, "agent.conf");
    parse_all("{\"proxy\": {\"listeners\": [{\"name\": \"${OTR_T_UNSET:-l1}\", \"port\": \"${OTR_T_PORT}\"}],"
              " \"labels\": {\"v\": \"$${OTR_T_A}\"}}}",
              OTR_ROLE_NODE, &top, &px, &d);
    is_int(d.n, 0, "env in values: no errors");
    is_int(((struct t_listener *)px.listeners.items)[0].port, 9090, "\"${PORT}\" in an int field");
    is_str(((struct t_listener *)px.listeners.items)[0].name, "l1", "default in a user value");
    is_str(px.name, "envname", "env in a table default");
    is_str(px.labels.items[0].value, "${OTR_T_A}", "map values expanded, $$ literal");
    free_all(&top, &px);
    otr_diag_fini(&d);
    unsetenv("OTR_T_NAME");

    proxy_error("{\"listeners\": [{\"name\": \"a\", \"port\": \"${OTR_T_BAD}\"}]}",
                "agent.conf: proxy.listeners[0].port: expected an integer 1..65535, got \"80a\" "
                "(from \"${OTR_T_BAD}\")",
                "bad expanded value shows the text and its source");
    proxy_error("{\"upstream\": \"${OTR_T_UNSET}:80\"}",
                "agent.conf: proxy.upstream: environment variable \"OTR_T_UNSET\" is not set "
                "(use ${OTR_T_UNSET:-default} for a fallback)",
                "unset variable names the path and the variable");
    setenv("OTR_T_NAME", "much-too-long", 1);
    proxy_error("{}",
                "agent.conf: proxy.name: expected a string of at most 8 bytes, got \"much-too-long\" "
                "(from \"${OTR_T_NAME:-edge}\") (default)",
                "defaults are validated like input");
    unsetenv("OTR_T_NAME");
}

/* A role default that fails says which default it was. */
static void test_role_default_error(void)
{
    struct t_admin a = {0};
    static const struct otr_conf_field fields[] = {
        OTR_CONF_FIELD("address", OTR_CONF_ADDRESS, struct t_admin, address, .def = "\"127.0.0.1:1\"",
                       .def_node = "\"${OTR_T_UNSET}:80\""),
        OTR_CONF_TABLE_END,
    };
    struct otr_diag d;
    otr_diag_init(&d, "agent.conf");
    unsetenv("OTR_T_UNSET");
    is_int(otr_conf_parse(fields, NULL, &a, "admin", OTR_ROLE_SIDECAR, NULL, &d), 0, "sidecar uses def: fine");
    otr_conf_free(fields, &a);
    is_int(otr_conf_parse(fields, NULL, &a, "admin", OTR_ROLE_NODE, NULL, &d), 1, "node uses def_node: error");
    one_error(&d,
              "agent.conf: admin.address: environment variable \"OTR_T_UNSET\" is not set "
              "(use ${OTR_T_UNSET:-default} for a fallback) (node default)",
              "role default error names the default");
    otr_conf_free(fields, &a);
    otr_diag_fini(&d);
}

static void test_role_merge(void)
{
    const char *text = "{\"workers\": 1, \"admin\": {\"address\": \"127.0.0.1:1\", \"read_timeout\": \"1s\"},\n"
                       " \"proxy\": {\"ports\": [1, 2, 3], \"labels\": {\"a\": \"1\"}},\n"
                       " \"roles\": {\"node\": {\"workers\": 8, \"admin\": {\"address\": \"0.0.0.0:2\"},\n"
                       "                      \"proxy\": {\"ports\": [9], \"labels\": {\"b\": \"2\"}}},\n"
                       "           \"sidecar\": {\"workers\": 9}}}";
    struct otr_diag d;
    struct t_top top;
    struct t_proxy px;
    otr_diag_init(&d, "agent.conf");
    is_int(parse_all(text, OTR_ROLE_NODE, &top, &px, &d), 0, "role merge: no errors");
    is_int(top.workers, 8, "scalar replaced by the role");
    is_str(top.admin.address.host, "0.0.0.0", "nested object: key replaced");
    is_int(top.admin.read_timeout, 1000, "nested object: other key kept");
    is_int(px.ports.n, 1, "array replaced, not appended");
    is_int(OTR_CONF_AT(px.ports, int64_t, 0), 9, "array replaced: content");
    is_int(px.labels.n, 2, "map objects merge key by key");
    free_all(&top, &px);
    is_int(parse_all(text, OTR_ROLE_SIDECAR, &top, &px, &d), 0, "other role: no errors");
    is_int(top.workers, 9, "sidecar overlay");
    is_int(px.ports.n, 3, "sidecar: base array kept");
    free_all(&top, &px);
    otr_diag_fini(&d);

    json_t *root;
    otr_diag_init(&d, "agent.conf");
    root = json_loads("{\"roles\": {\"nod\": {}, \"sidecar\": 3, \"gateway\": {}}}", 0, NULL);
    is_int(otr_config_merge_role(root, OTR_ROLE_NODE, &d), 3, "bad roles: three errors");
    ok(has_msg(&d, "agent.conf: roles.nod: unknown role (did you mean \"node\"?)"), "unknown role suggested");
    ok(has_msg(&d, "agent.conf: roles.sidecar: expected an object, got 3"), "role not an object");
    ok(has_msg(&d, "agent.conf: roles.gateway: unknown role (expected \"sidecar\" or \"node\")"),
       "unknown role, nothing close");
    ok(json_object_get(root, "roles") == NULL, "roles removed even on error");
    json_decref(root);
    otr_diag_fini(&d);

    otr_diag_init(&d, "agent.conf");
    root = json_loads("{\"roles\": {\"x\\ny\": {}}}", 0, NULL);
    otr_config_merge_role(root, OTR_ROLE_NODE, &d);
    one_error(&d, "agent.conf: roles.x\\x0ay: unknown role (expected \"sidecar\" or \"node\")",
              "control characters in keys are escaped: one error, one line");
    json_decref(root);
    otr_diag_fini(&d);

    otr_diag_init(&d, "agent.conf");
    root = json_loads("{\"roles\": []}", 0, NULL);
    is_int(otr_config_merge_role(root, OTR_ROLE_NODE, &d), 1, "roles not an object: error");
    json_decref(root);
    otr_diag_fini(&d);

    is_int(otr_role_parse("sidecar"), OTR_ROLE_SIDECAR, "role parse sidecar");
    is_int(otr_role_parse("node"), OTR_ROLE_NODE, "role parse node");
    is_int(otr_role_parse("Node"), 0, "role parse is exact");
    is_str(otr_role_name(OTR_ROLE_NODE), "node", "role name");
    is_str(otr_role_name(OTR_ROLE_SIDECAR), "sidecar", "role name sidecar");
}

static void test_values(void)
{
    uint64_t v = 0;
    is_int(otr_parse_duration("250ms", &v), 0, "250ms");
    is_int(v, 250, "250ms value");
    ok(otr_parse_duration("1.5s", &v) == 0 && v == 1500, "1.5s");
    ok(otr_parse_duration("2m", &v) == 0 && v == 120000, "2m");
    ok(otr_parse_duration("1h", &v) == 0 && v == 3600000, "1h");
    ok(otr_parse_duration("3d", &v) == 0 && v == 259200000, "3d");
    ok(otr_parse_duration("1h2m3s4ms", &v) == 0 && v == 3723004, "compound");
    ok(otr_parse_duration("0", &v) == 0 && v == 0, "0 without unit");
    ok(otr_parse_duration("30", &v) != 0, "bare number refused");
    ok(otr_parse_duration("0.5ms", &v) != 0, "sub-millisecond refused");
    ok(otr_parse_duration("-1s", &v) != 0, "negative refused");
    ok(otr_parse_duration("1s ", &v) != 0, "trailing space refused");
    ok(otr_parse_duration("", &v) != 0, "empty refused");
    ok(otr_parse_duration("s", &v) != 0, "unit alone refused");
    ok(otr_parse_duration("99999999999999999999d", &v) != 0, "overflow refused");
    ok(otr_parse_duration("9999999999999999d", &v) != 0, "overflow after scaling refused");

    ok(otr_parse_size("4096", &v) == 0 && v == 4096, "size: bytes");
    ok(otr_parse_size("64KiB", &v) == 0 && v == 65536, "size: KiB");
    ok(otr_parse_size("64KB", &v) == 0 && v == 65536, "size: KB = KiB");
    ok(otr_parse_size("64k", &v) == 0 && v == 65536, "size: k");
    ok(otr_parse_size("1MiB", &v) == 0 && v == 1048576, "size: MiB");
    ok(otr_parse_size("2GiB", &v) == 0 && v == 2147483648ull, "size: GiB");
    ok(otr_parse_size("1TiB", &v) == 0 && v == 1099511627776ull, "size: TiB");
    ok(otr_parse_size("512B", &v) == 0 && v == 512, "size: B");
    ok(otr_parse_size("1.5MiB", &v) == 0 && v == 1572864, "size: fraction");
    ok(otr_parse_size("64 KiB", &v) == 0 && v == 65536, "size: space before unit");
    ok(otr_parse_size("0.3B", &v) != 0, "size: fractional bytes refused");
    ok(otr_parse_size("12XB", &v) != 0, "size: bad unit refused");
    ok(otr_parse_size("64 ", &v) != 0, "size: trailing space refused");
    ok(otr_parse_size("20000000TiB", &v) != 0, "size: overflow refused");

    struct otr_conf_address a = {0};
    const char *why = NULL;
    ok(otr_parse_address("[2001:db8::1]:443", &a, &why) == 0 && strcmp(a.host, "2001:db8::1") == 0 &&
           a.port == 443 && !a.is_unix,
       "IPv6 in brackets");
    otr_conf_address_free(&a);
    ok(otr_parse_address("10.0.0.1:0", &a, &why) == 0 && a.port == 0, "port 0 (any) accepted");
    otr_conf_address_free(&a);
    ok(otr_parse_address("unix:/tmp/s", &a, &why) == 0 && a.is_unix && strcmp(a.host, "/tmp/s") == 0 &&
           a.port == 0,
       "unix path");
    otr_conf_address_free(&a);
    ok(otr_parse_address("unix:", &a, &why) != 0 && strcmp(why, "empty unix socket path") == 0, "unix: empty");
    ok(otr_parse_address("[::1]", &a, &why) != 0 && strcmp(why, "missing port after \"]\"") == 0,
       "IPv6 without port");
    ok(otr_parse_address("[::g]:80", &a, &why) != 0 && strcmp(why, "invalid IPv6 address") == 0, "bad IPv6");
    ok(otr_parse_address("[1::2::3]:80", &a, &why) != 0 && strcmp(why, "invalid IPv6 address") == 0, "two ::");
    ok(otr_parse_address("[fe80::1%lo]:80", &a, &why) != 0 && strcmp(why, "invalid IPv6 address") == 0,
       "IPv6 zone index refused (a listener takes none)");
    ok(otr_parse_address("[::ffff:10.0.0.1]:80", &a, &why) == 0 && strcmp(a.host, "::ffff:10.0.0.1") == 0,
       "IPv4-mapped IPv6");
    otr_conf_address_free(&a);
    ok(otr_parse_address("[::1:80", &a, &why) != 0, "missing ]");
    ok(otr_parse_address("host", &a, &why) != 0 && strcmp(why, "missing \":port\"") == 0, "no port");
    ok(otr_parse_address("host:65536", &a, &why) != 0, "port too big");
    ok(otr_parse_address("host:-1", &a, &why) != 0, "negative port");
    ok(otr_parse_address("host:", &a, &why) != 0, "empty port");
    ok(otr_parse_address("ho st:80", &a, &why) != 0 && strcmp(why, "invalid host name") == 0, "bad host name");
    ok(a.text == NULL && a.host == NULL, "failures allocate nothing");

    char buf[32];
    otr_format_duration(90000, buf, sizeof buf);
    is_str(buf, "90s", "format 90s");
    otr_format_duration(3600000, buf, sizeof buf);
    is_str(buf, "1h", "format 1h");
    otr_format_duration(1500, buf, sizeof buf);
    is_str(buf, "1500ms", "format 1500ms");
    otr_format_size(65536, buf, sizeof buf);
    is_str(buf, "64KiB", "format 64KiB");
    otr_format_size(1000, buf, sizeof buf);
    is_str(buf, "1000B", "format 1000B");

    is_int(otr_edit_distance("adress", "address"), 1, "edit distance insert");
    is_int(otr_edit_distance("kitten", "sitting"), 3, "edit distance classic");
    is_int(otr_edit_distance("", "abc"), 3, "edit distance empty");
    static const char *const cands[] = {"address", "read_timeout", NULL};
    is_str(otr_suggest("adres", cands, NULL), "address", "suggest within 2");
    is_str(otr_suggest("read", cands, NULL), "read_timeout", "suggest prefix");
    ok(otr_suggest("zz", cands, NULL) == NULL, "suggest nothing");

    char r[16];
    json_t *big = json_string("abcdefghijklmnopqrstuvwxyz");
    otr_json_render(big, r, sizeof r);
    is_str(r, "\"abcdefghijk...", "render cuts long values");
    json_decref(big);
}

static void test_describe(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    otr_conf_describe(out, "proxy", proxy_fields);
    fclose(out);
    ok(strstr(buf, "| key | type | default | bounds | description |\n") != NULL, "describe: header");
    ok(strstr(buf, "| `proxy.workers` | integer | sidecar: `1`<br>node: `4` | 1..64 | Worker threads. |\n") != NULL,
       "describe: per-role default and bounds");
    ok(strstr(buf, "| `proxy.upstream` | address | sidecar: `\"127.0.0.1:9000\"`<br>node: `\"[::1]:9000\"` |  | "
                   "Upstream. |\n") != NULL,
       "describe: address with role defaults");
    ok(strstr(buf, "| `proxy.lb` | enum | `\"round_robin\"` | `round_robin`, `least_request`, `p2c` | Balancing. |\n") !=
           NULL,
       "describe: enum choices");
    ok(strstr(buf, "| `proxy.timeout` | duration | `\"250ms\"` | 1ms..1h | Timeout. |\n") != NULL,
       "describe: duration bounds in units");
    ok(strstr(buf, "| `proxy.buffer` | size | `\"64KiB\"` | 4KiB..1GiB | Buffer. |\n") != NULL,
       "describe: size bounds in units");
    ok(strstr(buf, "| `proxy.listeners` | array of objects | `[{\"name\": \"main\"}]` | 1..4 items | Listeners. |\n") !=
           NULL,
       "describe: array of objects");
    ok(strstr(buf, "| `proxy.listeners[].name` | string | required | max 16 bytes | Listener name. |\n") != NULL,
       "describe: element keys, required");
    ok(strstr(buf, "| `proxy.routes[].match.path` | string | `\"/\"` |  | Path prefix. |\n") != NULL,
       "describe: nested object inside array elements");
    ok(strstr(buf, "| `proxy.routes[].methods` | array of string |  | each 3..7 bytes | Methods. |\n") != NULL,
       "describe: element bounds of a scalar array");
    ok(strstr(buf, "| `proxy.enabled` | bool | `true` |  | On \\| off. |\n") != NULL, "describe: pipes escaped");
    if (tap_failed)
        diag("%s", buf);
    free(buf);
    out = open_memstream(&buf, &len);
    otr_conf_describe(out, "", top_fields);
    fclose(out);
    ok(strstr(buf, "| `admin.address` | address | sidecar: `\"127.0.0.1:4191\"`<br>node: `\"0.0.0.0:4191\"` |") != NULL,
       "describe: top level has no prefix, nested object recursed");
    ok(strstr(buf, "| `token` | string | none |") == NULL && strstr(buf, "| `token` | string |  |") != NULL,
       "describe: no default is an empty cell");
    free(buf);
}

int main(void)
{
    test_valid_config();
    test_defaults_per_role();
    test_type_errors();
    test_required_and_unknown();
    test_array_cap();
    test_many_errors();
    test_syntax_errors();
    test_env();
    test_role_merge();
    test_role_default_error();
    test_values();
    test_describe();
    return done_testing();
}

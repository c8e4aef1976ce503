/*
 * proxy_conf: the proxy section's table. Core parses, validates and
 * documents (`outrider --describe proxy`) from it; see proxy_conf.h.
 */
#include "proxy_conf.h"

#define L(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_listener_conf, m, __VA_ARGS__)
#define R(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_route_conf, m, __VA_ARGS__)
#define S(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_split_conf, m, __VA_ARGS__)
#define C(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_cluster_conf, m, __VA_ARGS__)
#define P(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_conf, m, __VA_ARGS__)

static const struct otr_conf_field outbound_fields[] = {
    L("enabled", OTR_CONF_BOOL, enabled, .def = "true", .help = "Serve the outbound listener."),
    L("address", OTR_CONF_ADDRESS, address, .def_sidecar = "\"127.0.0.1:4140\"",
      .def_node = "\"${NODE_IP:-0.0.0.0}:4140\"", .def = "\"127.0.0.1:4140\"",
      .help = "Where local apps send their outgoing HTTP/1.1 calls; Host names the destination."),
    L("default_cluster", OTR_CONF_STRING, default_cluster, .def = "\"\"", .max = 128,
      .help = "Cluster for requests no route matches; empty: answer 404."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field inbound_fields[] = {
    L("enabled", OTR_CONF_BOOL, enabled, .def = "true", .help = "Serve the inbound listener."),
    L("address", OTR_CONF_ADDRESS, address, .def_sidecar = "\"${POD_IP:-127.0.0.1}:4143\"",
      .def_node = "\"${NODE_IP:-0.0.0.0}:4141\"", .def = "\"127.0.0.1:4143\"",
      .help = "Where calls for this pod (sidecar) or this node's pods (node) arrive."),
    L("default_cluster", OTR_CONF_STRING, default_cluster, .def = "\"\"", .max = 128,
      .help = "Cluster for inbound requests no route matches, usually the local app; empty: answer 404."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field split_fields[] = {
    S("cluster", OTR_CONF_STRING, cluster, .flags = OTR_CONF_REQUIRED, .max = 128, .help = "A cluster name."),
    S("weight", OTR_CONF_INT, weight, .def = "1", .min = 0, .max = 1000000,
      .help = "Relative share of requests (0 disables)."),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field split_elem = {
    .type = OTR_CONF_OBJECT, .fields = split_fields, .help = "One weighted cluster."};

static const struct otr_conf_field header_name_elem = {
    .type = OTR_CONF_STRING, .max = 256, .help = "A header name."};

static const struct otr_conf_field route_fields[] = {
    R("name", OTR_CONF_STRING, name, .def = "\"\"", .max = 128, .help = "Name for logs and metrics."),
    R("listener", OTR_CONF_STRING, listener, .def = "\"\"", .max = 16,
      .help = "Only for requests on this listener (outbound|inbound); empty: both."),
    R("authority", OTR_CONF_STRING, authority, .def = "\"\"", .max = 256,
      .help = "Host / :authority to match: \"svc\", \"svc:8080\" (port must match), \"*.suffix\"; empty: any."),
    R("path_exact", OTR_CONF_STRING, path_exact, .def = "\"\"", .max = 1024,
      .help = "Path (without query) that must match exactly."),
    R("path_prefix", OTR_CONF_STRING, path_prefix, .def = "\"\"", .max = 1024,
      .help = "Path prefix to match."),
    R("method", OTR_CONF_STRING, method, .def = "\"\"", .max = 32, .help = "Request method to match; empty: any."),
    R("headers", OTR_CONF_MAP, headers, .help = "Request headers that must be present with exactly these values."),
    R("cluster", OTR_CONF_STRING, cluster, .def = "\"\"", .max = 128,
      .help = "Cluster to send matching requests to (or use split)."),
    R("split", OTR_CONF_ARRAY, split, .elem = &split_elem, .elem_size = sizeof(struct proxy_split_conf),
      .max = 16, .help = "Weighted clusters, for canaries: [{\"cluster\":\"v2\",\"weight\":5}, ...]."),
    R("add_headers", OTR_CONF_MAP, add_headers, .help = "Headers set on the upstream request (replacing any)."),
    R("remove_headers", OTR_CONF_ARRAY, remove_headers, .elem = &header_name_elem, .elem_size = sizeof(char *),
      .max = 32, .help = "Headers removed from the upstream request."),
    R("timeout", OTR_CONF_DURATION, timeout, .def = "\"0s\"", .max = 3600000,
      .help = "Request timeout for this route; 0: the cluster's."),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field route_elem = {
    .type = OTR_CONF_OBJECT, .fields = route_fields, .help = "A route; the first that matches wins."};

static const struct otr_conf_field endpoint_elem = {
    .type = OTR_CONF_ADDRESS, .help = "An endpoint \"ip:port\"."};

static const struct otr_conf_field cluster_fields[] = {
    C("name", OTR_CONF_STRING, name, .flags = OTR_CONF_REQUIRED, .max = 128, .help = "The cluster's name."),
    C("endpoints", OTR_CONF_ARRAY, endpoints, .elem = &endpoint_elem, .elem_size = sizeof(struct otr_conf_address),
      .min = 1, .max = 1024, .help = "Static endpoints (IP literals with ports)."),
    C("lb", OTR_CONF_ENUM, lb, .choices = "round_robin|least_request|p2c", .def = "\"p2c\"",
      .help = "Endpoint choice: round robin, least outstanding requests, or power of two choices over an EWMA "
              "of latency."),
    C("protocol", OTR_CONF_ENUM, protocol, .choices = "http1|h2", .def = "\"http1\"",
      .help = "How to talk to the endpoints: HTTP/1.1, or HTTP/2 cleartext (prior knowledge; needed for gRPC)."),
    C("connect_timeout", OTR_CONF_DURATION, connect_timeout, .def = "\"1s\"", .min = 1, .max = 600000,
      .help = "Time allowed to connect to an endpoint."),
    C("request_timeout", OTR_CONF_DURATION, request_timeout, .def = "\"15s\"", .max = 3600000,
      .help = "Time from the request's arrival until the response is complete; 0: none."),
    C("idle_timeout", OTR_CONF_DURATION, idle_timeout, .def = "\"60s\"", .min = 1, .max = 3600000,
      .help = "Pooled upstream connections idle this long are closed."),
    C("max_connections", OTR_CONF_INT, max_connections, .def = "1024", .min = 1, .max = 1000000,
      .help = "Open upstream connections per worker."),
    C("max_pending", OTR_CONF_INT, max_pending, .def = "1024", .min = 0, .max = 1000000,
      .help = "Requests per worker waiting for a connection when max_connections is reached; more get 503."),
    C("max_idle", OTR_CONF_INT, max_idle, .def = "64", .min = 0, .max = 100000,
      .help = "Idle pooled connections kept per worker and endpoint."),
    C("retries", OTR_CONF_INT, retries, .def = "2", .min = 0, .max = 10,
      .help = "Extra attempts, on another endpoint, for an idempotent request without a body (HTTP/1.1 "
              "clients) whose connection failed before any response byte."),
    C("retry_budget", OTR_CONF_DOUBLE, retry_budget, .def = "0.2", .min = 0, .max = 1,
      .help = "Retries allowed per worker as a fraction of requests over 10 s windows, plus 10: a failing "
              "cluster is not hammered."),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field cluster_elem = {
    .type = OTR_CONF_OBJECT, .fields = cluster_fields, .help = "A cluster of interchangeable endpoints."};

const struct otr_conf_field proxy_conf_fields[] = {
    P("outbound", OTR_CONF_OBJECT, outbound, .fields = outbound_fields,
      .help = "Listener for the local apps' outgoing calls."),
    P("inbound", OTR_CONF_OBJECT, inbound, .fields = inbound_fields, .help = "Listener for incoming calls."),
    P("routes", OTR_CONF_ARRAY, routes, .elem = &route_elem, .elem_size = sizeof(struct proxy_route_conf),
      .max = 4096, .help = "Routes, tried in order."),
    P("clusters", OTR_CONF_ARRAY, clusters, .elem = &cluster_elem, .elem_size = sizeof(struct proxy_cluster_conf),
      .max = 4096, .help = "Upstream clusters."),
    P("max_request_line", OTR_CONF_SIZE, max_request_line, .def = "\"8KiB\"", .min = 64, .max = 1048576,
      .help = "Longest request line; longer is answered 414."),
    P("max_header_size", OTR_CONF_SIZE, max_header_size, .def = "\"32KiB\"", .min = 256, .max = 1048576,
      .help = "Largest header section (request line included); larger is answered 431."),
    P("max_headers", OTR_CONF_INT, max_headers, .def = "100", .min = 1, .max = 128,
      .help = "Most header fields in one message; more is answered 431."),
    P("max_trailer_size", OTR_CONF_SIZE, max_trailer_size, .def = "\"8KiB\"", .min = 0, .max = 1048576,
      .help = "Largest chunked trailer section."),
    P("buffer_size", OTR_CONF_SIZE, buffer_size, .def = "\"16KiB\"", .min = 4096, .max = 16777216,
      .help = "Read buffer per connection and direction; the bound on data held for a slow peer."),
    P("client_idle_timeout", OTR_CONF_DURATION, client_idle_timeout, .def = "\"60s\"", .min = 1, .max = 3600000,
      .help = "Client connections idle between requests this long are closed."),
    P("xff", OTR_CONF_ENUM, xff, .choices = "append|replace|off", .def = "\"append\"",
      .help = "X-Forwarded-For: append the client address, replace it, or leave it alone."),
    P("via", OTR_CONF_BOOL, via, .def = "false", .help = "Add a Via field to requests and responses."),
    P("script", OTR_CONF_STRING, script, .def = "\"\"", .max = 256,
      .help = "Lua script (in the scripts dir) defining route(req): may pick the cluster, set request headers "
              "or deny; empty: none."),
    P("script_failure", OTR_CONF_ENUM, script_failure, .choices = "allow|deny", .def = "\"allow\"",
      .help = "When route() fails (error, budget, memory, bad result): route as configured, or answer 503."),
    P("via_name", OTR_CONF_STRING, via_name, .def = "\"outrider\"", .max = 64, .help = "Pseudonym used in Via."),
    P("mesh", OTR_CONF_OBJECT, mesh, .fields = proxy_mesh_conf_fields,
      .help = "Agent-to-agent topology: outgoing calls to pods that have an agent go through that agent's "
              "incoming (inbound) listener, which delivers only to its own pods."),
    OTR_CONF_TABLE_END,
};

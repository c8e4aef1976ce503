/*
 * proxy_conf: the proxy section's table. Core parses, validates and
 * documents (`outrider --describe proxy`) from it; see proxy_conf.h.
 */
#include "proxy_conf.h"

#define L(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_listener_conf, m, __VA_ARGS__)
#define R(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_route_conf, m, __VA_ARGS__)
#define S(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_split_conf, m, __VA_ARGS__)
#define C(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_cluster_conf, m, __VA_ARGS__)
#define O(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_outlier_conf, m, __VA_ARGS__)
#define H(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_health_conf, m, __VA_ARGS__)
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

static const struct otr_conf_field retry_on_elem = {
    .type = OTR_CONF_ENUM, .choices = "connect-failure|reset|5xx|gateway-error|retriable-status-codes",
    .help = "A retry condition."};

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
    R("retries", OTR_CONF_INT, retries, .def = "-1", .min = -1, .max = 10,
      .help = "Extra attempts for this route's requests (see the cluster's retries); -1: the cluster's."),
    R("retry_on", OTR_CONF_ARRAY, retry_on, .elem = &retry_on_elem, .elem_size = sizeof(int), .max = 5,
      .help = "Retry conditions for this route (see the cluster's retry_on); empty: the cluster's."),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field route_elem = {
    .type = OTR_CONF_OBJECT, .fields = route_fields, .help = "A route; the first that matches wins."};

static const struct otr_conf_field endpoint_elem = {
    .type = OTR_CONF_ADDRESS, .help = "An endpoint \"ip:port\", \"[ipv6]:port\" or \"dns.name:port\"."};

static const struct otr_conf_field outlier_fields[] = {
    O("consecutive_failures", OTR_CONF_INT, consecutive_failures, .def = "0", .min = 0, .max = 1000,
      .help = "Failures in a row (5xx responses, gRPC UNAVAILABLE, refused or timed-out connections, resets, "
              "request timeouts) that eject an endpoint; 0: no ejection (Envoy's usual value is 5)."),
    O("base_ejection_time", OTR_CONF_DURATION, base_ejection_time, .def = "\"30s\"", .min = 1, .max = 86400000,
      .help = "An ejection lasts this times the number of times the endpoint was ejected."),
    O("max_ejection_time", OTR_CONF_DURATION, max_ejection_time, .def = "\"300s\"", .min = 1, .max = 86400000,
      .help = "Longest ejection, however often the endpoint was ejected."),
    O("interval", OTR_CONF_DURATION, interval, .def = "\"10s\"", .min = 1, .max = 86400000,
      .help = "Each interval an endpoint spends back in service lowers its ejection count by one."),
    O("max_ejection_percent", OTR_CONF_INT, max_ejection_percent, .def = "10", .min = 0, .max = 100,
      .help = "Most endpoints of the cluster ejected at once, in percent (at least one while above 0)."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field status_elem = {
    .type = OTR_CONF_INT, .min = 100, .max = 599, .help = "An HTTP status."};

static const struct otr_conf_field health_fields[] = {
    H("path", OTR_CONF_STRING, path, .def = "\"\"", .max = 1024,
      .help = "Path of the GET sent to every endpoint (e.g. \"/healthz\"; HTTP/1.1, or HTTP/2 for h2 clusters); "
              "empty: no active checks, unless grpc is set."),
    H("host", OTR_CONF_STRING, host, .def = "\"\"", .max = 256,
      .help = "Host header of the checks; empty: the cluster's name."),
    H("interval", OTR_CONF_DURATION, interval, .def = "\"5s\"", .min = 10, .max = 3600000,
      .help = "Time between two checks of an endpoint."),
    H("timeout", OTR_CONF_DURATION, timeout, .def = "\"1s\"", .min = 1, .max = 600000,
      .help = "Time allowed for a check, connect to status line; longer is a failure."),
    H("unhealthy_threshold", OTR_CONF_INT, unhealthy_threshold, .def = "3", .min = 1, .max = 1000,
      .help = "Failed checks in a row that mark a healthy endpoint unhealthy."),
    H("healthy_threshold", OTR_CONF_INT, healthy_threshold, .def = "2", .min = 1, .max = 1000,
      .help = "Passed checks in a row that bring an unhealthy endpoint back (its very first check: one)."),
    H("expected_statuses", OTR_CONF_ARRAY, expected_statuses, .elem = &status_elem, .elem_size = sizeof(int64_t),
      .max = 64, .help = "Statuses that pass; empty: 200-299."),
    H("grpc", OTR_CONF_BOOL, grpc, .def = "false",
      .help = "h2 clusters: check with the gRPC health protocol (grpc.health.v1.Health/Check), passing on "
              "SERVING; path is then not used."),
    H("grpc_service", OTR_CONF_STRING, grpc_service, .def = "\"\"", .max = 127,
      .help = "The service name a gRPC check asks about; empty: the server as a whole."),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field grpc_code_elem = {
    .type = OTR_CONF_ENUM, .choices = "cancelled|deadline-exceeded|internal|resource-exhausted|unavailable",
    .help = "A gRPC status name."};

static const struct otr_conf_field cluster_fields[] = {
    C("name", OTR_CONF_STRING, name, .flags = OTR_CONF_REQUIRED, .max = 128, .help = "The cluster's name."),
    C("endpoints", OTR_CONF_ARRAY, endpoints, .elem = &endpoint_elem, .elem_size = sizeof(struct otr_conf_address),
      .max = 1024,
      .help = "Endpoints: IP literals with ports, and DNS names with ports (every address a name resolves to "
              "is an endpoint, re-resolved every dns_refresh; a failed resolution keeps the last good "
              "addresses). Required unless endpoints_file is set."),
    C("endpoints_file", OTR_CONF_STRING, endpoints_file, .def = "\"\"", .max = 1024,
      .help = "Absolute path of a JSON file {\"endpoints\": [\"ip:port\", ...]} giving the endpoints instead, "
              "reloaded when it changes (rewritten or replaced by rename; inotify plus a 1 s stat check). A "
              "missing or bad file is logged and the last good list kept (none at start: 503)."),
    C("dns_refresh", OTR_CONF_DURATION, dns_refresh, .def = "\"5s\"", .min = 100, .max = 86400000,
      .help = "How often DNS names in endpoints are resolved again."),
    C("dns_family", OTR_CONF_ENUM, dns_family, .choices = "any|ipv4|ipv6", .def = "\"any\"",
      .help = "Which addresses of DNS names become endpoints: both families, IPv4 only or IPv6 only."),
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
      .help = "Pooled upstream connections idle this long are closed; so are HTTP/2 sessions to an endpoint "
              "other than its oldest."),
    C("max_connections", OTR_CONF_INT, max_connections, .def = "1024", .min = 1, .max = 1000000,
      .help = "Open upstream connections per worker (h2 clusters: HTTP/2 sessions; more open while the "
              "others are at the server's stream limit)."),
    C("max_pending", OTR_CONF_INT, max_pending, .def = "1024", .min = 0, .max = 1000000,
      .help = "Requests per worker waiting for a connection when max_connections is reached; more get 503."),
    C("max_idle", OTR_CONF_INT, max_idle, .def = "64", .min = 0, .max = 100000,
      .help = "Idle pooled connections kept per worker and endpoint."),
    C("retries", OTR_CONF_INT, retries, .def = "2", .min = 0, .max = 10,
      .help = "Extra attempts, each on another endpoint when there is one, for a request that failed as retry_on "
              "says before any response byte reached the client: idempotent methods and gRPC calls only."),
    C("retry_budget", OTR_CONF_DOUBLE, retry_budget, .def = "0.2", .min = 0, .max = 1,
      .help = "Retries allowed per worker as a fraction of requests over 10 s windows, plus 10: a failing "
              "cluster is not hammered."),
    C("max_requests", OTR_CONF_INT, max_requests, .def = "1024", .min = 0, .max = 1000000,
      .help = "Requests per worker in flight to the cluster or waiting for a connection; more are answered 503 "
              "(gRPC UNAVAILABLE); 0: no limit."),
    C("outlier", OTR_CONF_OBJECT, outlier, .fields = outlier_fields,
      .help = "Passive outlier ejection: endpoints failing in a row are left out for a while (per worker)."),
    C("health_check", OTR_CONF_OBJECT, health_check, .fields = health_fields,
      .help = "Active health checks (HTTP/1.1, HTTP/2 or gRPC); endpoints failing them get no traffic (per worker)."),
    C("retry_on", OTR_CONF_ARRAY, retry_on, .elem = &retry_on_elem, .elem_size = sizeof(int), .max = 5,
      .def = "[\"connect-failure\", \"reset\"]",
      .help = "What is retried: connect-failure (refused, timed out), reset (connection or stream dropped before "
              "the response head), 5xx, gateway-error (502, 503, 504), retriable-status-codes (the list below)."),
    C("retriable_status_codes", OTR_CONF_ARRAY, retriable_status_codes, .elem = &status_elem,
      .elem_size = sizeof(int64_t), .max = 32,
      .help = "Response statuses retried when retry_on has retriable-status-codes, e.g. [503, 429]."),
    C("retry_grpc_codes", OTR_CONF_ARRAY, retry_grpc_codes, .elem = &grpc_code_elem, .elem_size = sizeof(int),
      .max = 5, .help = "gRPC statuses retried when a call gets them as a trailers-only response (nothing of the "
                        "response reached the client), e.g. [\"unavailable\"]."),
    C("retry_buffer", OTR_CONF_SIZE, retry_buffer, .def = "\"64KiB\"", .max = 16777216,
      .help = "Request body bytes held per request so it can be sent again (HTTP/1.1 clients of http1 clusters: "
              "also no more than buffer_size); a longer body is not retried; 0: bodies are never retried."),
    C("retry_backoff", OTR_CONF_DURATION, retry_backoff, .def = "\"25ms\"", .max = 10000,
      .help = "Base of the wait before a retry: a random delay up to base x 2^(attempt-1), at most 10 x base; "
              "0: retry at once."),
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
    P("caller_metrics", OTR_CONF_OBJECT, caller_metrics, .fields = proxy_caller_metrics_conf_fields,
      .help = "Request metrics by caller: the pod owning the source address (node role: from the inventory), "
              "a sidecar's own pod for its outbound calls, or the pod a trusted node agent named; labelled with its "
              "namespace and workload."),
    OTR_CONF_TABLE_END,
};

/*
 * proxy_conf: the proxy module's configuration, as core parses it from the
 * "proxy" section with the table in proxy_conf.c. Core owns the struct and
 * every string in it for the generation's lifetime; the module only reads.
 */
#ifndef OUTRIDER_PROXY_CONF_H
#define OUTRIDER_PROXY_CONF_H

#include "outrider/module.h"

/* enum values follow the order of the .choices strings in proxy_conf.c. */
enum proxy_lb_kind { PROXY_LB_ROUND_ROBIN = 0, PROXY_LB_LEAST_REQUEST, PROXY_LB_P2C };
enum proxy_protocol { PROXY_PROTO_HTTP1 = 0, PROXY_PROTO_H2 };
enum proxy_script_failure { PROXY_SCRIPT_ALLOW = 0, PROXY_SCRIPT_DENY };
enum proxy_xff_mode { PROXY_XFF_APPEND = 0, PROXY_XFF_REPLACE, PROXY_XFF_OFF };
/* Conditions a cluster retries on (retry_on), Envoy's names. */
enum proxy_retry_on {
    PROXY_RETRY_CONNECT_FAILURE = 0,
    PROXY_RETRY_RESET,
    PROXY_RETRY_5XX,
    PROXY_RETRY_GATEWAY_ERROR,
    PROXY_RETRY_STATUS_CODES,
};
/* gRPC statuses a cluster may retry (retry_grpc_codes). */
enum proxy_retry_grpc {
    PROXY_RETRY_GRPC_CANCELLED = 0,
    PROXY_RETRY_GRPC_DEADLINE_EXCEEDED,
    PROXY_RETRY_GRPC_INTERNAL,
    PROXY_RETRY_GRPC_RESOURCE_EXHAUSTED,
    PROXY_RETRY_GRPC_UNAVAILABLE,
};
enum proxy_dns_family { PROXY_DNS_ANY = 0, PROXY_DNS_IPV4, PROXY_DNS_IPV6 };

struct proxy_listener_conf {
    bool enabled;
    struct otr_conf_address address;
    /* Cluster used when no route matches ("" = answer 404). */
    char *default_cluster;
};

struct proxy_split_conf {
    char *cluster;
    int64_t weight;
};

struct proxy_route_conf {
    char *name;
    char *listener;    /* "outbound", "inbound" or "" (both) */
    char *authority;   /* "" any, "host", "host:port", "*.suffix" */
    char *path_exact;  /* "" unset */
    char *path_prefix; /* "" unset */
    char *method;      /* "" any */
    struct otr_conf_map headers;        /* all must match exactly */
    char *cluster;                      /* or split */
    struct otr_conf_array split;        /* struct proxy_split_conf */
    struct otr_conf_map add_headers;    /* set on the upstream request */
    struct otr_conf_array remove_headers; /* char *: dropped from the upstream request */
    uint64_t timeout;                   /* 0: the cluster's request_timeout */
    int64_t retries;                    /* -1: the cluster's */
    struct otr_conf_array retry_on;     /* int: enum proxy_retry_on; empty: the cluster's */
};

/* Passive outlier ejection (proxy_outlier.c). */
struct proxy_outlier_conf {
    int64_t consecutive_failures; /* failures in a row that eject; 0: off */
    uint64_t base_ejection_time;  /* ejection lasts base x times ejected... */
    uint64_t max_ejection_time;   /* ...at most this long */
    uint64_t interval;            /* each interval spent in lowers the multiplier by one */
    int64_t max_ejection_percent; /* of the cluster's endpoints, ejected at once */
};

/* Active HTTP health checks (proxy_health.c). */
struct proxy_health_conf {
    char *path;                         /* "" : no checks */
    char *host;                         /* Host of the check; "": the cluster's name */
    uint64_t interval, timeout;
    int64_t unhealthy_threshold, healthy_threshold;
    struct otr_conf_array expected_statuses; /* int64_t; empty: 200-299 */
    bool grpc;                          /* h2 clusters: grpc.health.v1.Health/Check instead of GET path */
    char *grpc_service;                 /* the service asked about; "": the server as a whole */
};

struct proxy_cluster_conf {
    char *name;
    struct otr_conf_array endpoints; /* struct otr_conf_address: IP literals or DNS names */
    char *endpoints_file;            /* "" none; else the watched JSON endpoints file */
    uint64_t dns_refresh;            /* ms between resolutions of DNS names */
    int dns_family;                  /* enum proxy_dns_family */
    int lb;                          /* enum proxy_lb_kind */
    int protocol;                    /* enum proxy_protocol */
    uint64_t connect_timeout, request_timeout, idle_timeout;
    int64_t max_connections; /* per worker: open upstream connections */
    int64_t max_pending;     /* per worker: requests waiting for a connection */
    int64_t max_idle;        /* per worker and endpoint: pooled idle connections */
    int64_t retries;         /* extra attempts for idempotent requests that failed before any response */
    double retry_budget;     /* retries allowed as a fraction of requests (plus 10 per 10 s) */
    int64_t max_requests;    /* per worker: requests in flight or waiting; 0: no limit */
    struct proxy_outlier_conf outlier;
    struct proxy_health_conf health_check;
    struct otr_conf_array retry_on;               /* int: enum proxy_retry_on */
    struct otr_conf_array retriable_status_codes; /* int64_t */
    struct otr_conf_array retry_grpc_codes;       /* int: enum proxy_retry_grpc */
    uint64_t retry_buffer;   /* request body bytes held for a replay */
    uint64_t retry_backoff;  /* base delay before a retry, 0: none */
};

/* One agent of the mesh (proxy_mesh.c): its incoming listener delivers to
 * the pods whose addresses are in its CIDRs. */
struct proxy_mesh_agent_conf {
    char *node;                      /* "" for a sidecar (one pod) */
    struct otr_conf_address address; /* its incoming listener */
    struct otr_conf_array pods;      /* char *: "10.1.0.0/24", "fd00::/64", "10.1.2.3" */
};

struct proxy_mesh_conf {
    bool enabled;
    struct otr_conf_array agents; /* struct proxy_mesh_agent_conf */
    int64_t local_slots;          /* per worker and protocol: local destinations with open connections */
    char *sidecar_annotation;     /* pod annotation announcing a sidecar's inbound port; "": off */
    uint64_t connect_timeout, request_timeout; /* delivering to a local pod */
};

/* Caller labels on request metrics (proxy_caller_metrics.c). */
struct proxy_caller_metrics_conf {
    bool enabled;
    struct otr_conf_array workload_labels; /* char *: pod labels naming the workload, first present wins */
    int64_t max_callers;                   /* per worker: distinct (namespace, workload) pairs */
};

struct proxy_conf {
    struct proxy_listener_conf outbound, inbound;
    struct otr_conf_array routes;   /* struct proxy_route_conf */
    struct otr_conf_array clusters; /* struct proxy_cluster_conf */
    /* HTTP/1.1 limits */
    uint64_t max_request_line, max_header_size, max_trailer_size;
    int64_t max_headers;
    uint64_t buffer_size; /* per connection and direction */
    uint64_t client_idle_timeout;
    int xff;  /* enum proxy_protocol { PROXY_PROTO_HTTP1 = 0, PROXY_PROTO_H2 };
enum proxy_xff_mode */
    bool via;
    char *via_name; /* pseudonym in Via ("outrider") */
    char *script;        /* Lua script defining route(req), "" none */
    int script_failure;  /* enum proxy_script_failure */
    struct proxy_mesh_conf mesh; /* agent-to-agent topology (proxy_mesh.c) */
    struct proxy_caller_metrics_conf caller_metrics;
};

/* The table core parses the section with. */
extern const struct otr_conf_field proxy_conf_fields[];
/* The mesh section's table (proxy_mesh.c). */
extern const struct otr_conf_field proxy_mesh_conf_fields[];
/* The caller_metrics section's table (proxy_caller_metrics.c). */
extern const struct otr_conf_field proxy_caller_metrics_conf_fields[];

#endif

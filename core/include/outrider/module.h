/*
 * outrider module ABI — the only header a module includes.
 *
 * A module is a folder modules/<name>/ built into <name>.so. It exports
 * exactly one symbol, the const descriptor
 *
 *     OTR_MODULE_EXPORT const struct otr_module otr_module_<name> = { ... };
 *
 * and reaches the agent only through the host table (struct otr_host) that
 * core hands it in every otr_ctx. Modules are linked with -Wl,-z,defs and
 * built with -fvisibility=hidden: they have no undefined references into the
 * outrider binary, and the build fails if `nm -D` shows another export.
 *
 * Threads. The agent runs one main thread (config, reload, signals, the admin
 * endpoint) and N worker threads, each with its own uv loop. Every callback
 * below says on which thread it runs; host functions say from which thread
 * they may be called. "any thread" functions are lock-free or take a short
 * internal lock.
 *
 * Generations. Every (re)load of the configuration builds a new generation:
 * a fresh otr_ctx per module, its parsed config, its metrics handles and Lua
 * hooks. Only when all of it succeeded does the agent swap: workers start the
 * new generation and drain the old one. Listening sockets are owned by core
 * and survive the swap, so no connection is refused during a reload.
 *
 * Errors: functions return int, 0 on success, a negative number on failure:
 * a libuv error code (UV_EINVAL, UV_ENOMEM, ...: -errno on Unix) or one of
 * the OTR_E* codes below. A function that fails logs once, with context.
 *
 * Versioning: appending a member to a struct here bumps OTR_ABI_MINOR; any
 * other change bumps OTR_ABI_MAJOR. The loader accepts a module whose major
 * equals the agent's and whose minor is not newer than the agent's.
 */
#ifndef OUTRIDER_MODULE_H
#define OUTRIDER_MODULE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Versions                                                                  */

#define OTR_MODULE_MAGIC 0x4d52544fu /* "OTRM" in little-endian memory */
#define OTR_ABI_MAJOR 1
#define OTR_ABI_MINOR 0

#if defined(__SANITIZE_ADDRESS__)
#define OTR_BUILD_SAN "asan"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OTR_BUILD_SAN "asan"
#endif
#endif
#ifndef OTR_BUILD_SAN
#define OTR_BUILD_SAN "plain"
#endif
#define OTR_STR_(x) #x
#define OTR_STR(x) OTR_STR_(x)
/* What must match between the agent and a module beyond the ABI numbers:
 * pointer size and whether AddressSanitizer is built in (mixing the two
 * crashes at the first allocation crossing the boundary). */
#define OTR_BUILD_SIG "ptr" OTR_STR(__SIZEOF_POINTER__) "-" OTR_BUILD_SAN

#define OTR_MODULE_EXPORT __attribute__((visibility("default"), used))

#define OTR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/* ------------------------------------------------------------------------ */
/* Error codes beyond libuv's (which are all > -4096).                       */

#define OTR_EFALLBACK (-5001) /* a Lua hook failed: use the hook's fallback */
#define OTR_ECONFIG (-5002)   /* configuration rejected; errors were reported */
#define OTR_EDECLINE (-5003)  /* a module declines an optional operation */
#define OTR_ELIMIT (-5004)    /* a configured limit was reached */

/* ------------------------------------------------------------------------ */
/* Opaque handles                                                            */

typedef struct otr_ctx otr_ctx;         /* one module in one generation */
typedef struct otr_worker otr_worker;   /* one worker thread and its loop */
typedef struct otr_listener otr_listener; /* a socket bound by core */
typedef struct otr_metric otr_metric;   /* a metric family in the registry */
typedef struct otr_series otr_series;   /* one label set, one worker's shard */
typedef struct otr_hook otr_hook;       /* a Lua function declared by a module */
typedef struct otr_sub otr_sub;         /* a bus subscription */
typedef struct lua_State lua_State;

/* ------------------------------------------------------------------------ */
/* Roles                                                                     */

enum otr_role {
    OTR_ROLE_SIDECAR = 1u << 0, /* one agent in one pod, on localhost */
    OTR_ROLE_NODE = 1u << 1,    /* one agent per node, serving every pod */
};
#define OTR_ROLE_ANY (OTR_ROLE_SIDECAR | OTR_ROLE_NODE)

/* ------------------------------------------------------------------------ */
/* Configuration tables                                                      */
/*
 * A module describes its config section (the JSON object under its name)
 * with a table of fields. Core parses the JSON, fills a zeroed struct of
 * conf_size bytes at the given offsets, applies defaults, checks types and
 * bounds, rejects unknown keys, and reports every error with its path, e.g.
 *
 *     agent.conf: proxy.routes[2].timeout: expected a duration like "250ms", got 3
 *
 * The same tables print the reference (`outrider --describe proxy`). Core
 * owns the parsed struct and everything it points to; a module only reads
 * it (it stays valid for the whole generation).
 */

enum otr_conf_type {
    OTR_CONF_END = 0,  /* terminates a table */
    OTR_CONF_BOOL,     /* bool */
    OTR_CONF_INT,      /* int64_t; bounds min..max */
    OTR_CONF_DOUBLE,   /* double; bounds min..max */
    OTR_CONF_STRING,   /* char * (NUL-terminated); max = max length if > 0 */
    OTR_CONF_DURATION, /* uint64_t milliseconds, from "250ms", "1.5s", "2m", "1h" */
    OTR_CONF_SIZE,     /* uint64_t bytes, from 4096, "64KiB", "1MiB", "2GiB" */
    OTR_CONF_ENUM,     /* int: index into choices ("a|b|c") */
    OTR_CONF_ADDRESS,  /* struct otr_conf_address, from "host:port", "[v6]:port", "unix:/path" */
    OTR_CONF_OBJECT,   /* nested struct at offset, fields in .fields */
    OTR_CONF_ARRAY,    /* struct otr_conf_array of .elem; min..max items */
    OTR_CONF_MAP,      /* struct otr_conf_map: string keys to string values */
};

/* A parsed "host:port" (or "unix:/path"). host is never NULL: "" for a
 * port-only address ":8080"; port is 0 for unix paths. */
struct otr_conf_address {
    char *text;     /* as written, after ${VAR} expansion */
    char *host;     /* host name, IPv4/IPv6 literal (no brackets), or unix path */
    uint16_t port;
    bool is_unix;
};

/* An array of n elements, each elem_size bytes (see otr_conf_field.elem). */
struct otr_conf_array {
    void *items;
    size_t n;
};
#define OTR_CONF_AT(arr, type, i) (((type *)(arr).items)[i])

struct otr_conf_map_entry {
    char *key;
    char *value;
};
/* A JSON object of strings, in file order. */
struct otr_conf_map {
    struct otr_conf_map_entry *items;
    size_t n;
};

enum otr_conf_flags {
    OTR_CONF_REQUIRED = 1u << 0, /* no default: the key must be present */
};

struct otr_conf_field {
    const char *key;        /* JSON key; NULL (with type END) ends the table */
    enum otr_conf_type type;
    size_t offset;          /* offsetof(struct your_conf, member) */
    /* Default as JSON text ("4140", "\"250ms\"", "true"), parsed like user
     * input, so defaults are validated and printed by --describe. NULL: zero.
     * def_sidecar / def_node, when set, replace def for that role. */
    const char *def, *def_sidecar, *def_node;
    double min, max;        /* bounds; both 0 means unbounded */
    const char *choices;    /* ENUM: "round_robin|least_request|p2c" */
    const char *help;       /* one sentence for --describe and the README */
    unsigned flags;         /* enum otr_conf_flags */
    const struct otr_conf_field *fields; /* OBJECT, or ARRAY of objects: offsets
                                            in it are relative to the nested
                                            struct, not the top one */
    const struct otr_conf_field *elem;   /* ARRAY: one field describing each
                                            element (key NULL, offset 0) */
    size_t elem_size;       /* ARRAY: sizeof one element; OBJECT: unused */
};

/* Helpers to write tables tersely. */
#define OTR_CONF_FIELD(k, t, st, m, ...) \
    { .key = (k), .type = (t), .offset = offsetof(st, m), __VA_ARGS__ }
#define OTR_CONF_TABLE_END { .key = NULL, .type = OTR_CONF_END }

/* ------------------------------------------------------------------------ */
/* Identity and the pod inventory                                            */

/* A pod, as the node's inventory (or, in sidecar role, the downward API)
 * knows it. Pods are immutable and reference counted: a pointer obtained
 * from the host is valid until the matching pod_unref. */
struct otr_pod {
    const char *namespace_, *name, *uid, *node;
    const char *ip;                         /* primary pod IP, may be "" */
    const struct otr_conf_map_entry *labels; /* n_labels entries */
    size_t n_labels;
    const struct otr_conf_map_entry *annotations;
    size_t n_annotations;
};

/* ------------------------------------------------------------------------ */
/* Metrics registry                                                          */

enum otr_metric_type {
    OTR_METRIC_COUNTER = 1,
    OTR_METRIC_GAUGE,
    OTR_METRIC_HISTOGRAM,
};

struct otr_metric_desc {
    const char *name;   /* full Prometheus name, e.g. "outrider_proxy_requests_total" */
    const char *help;
    enum otr_metric_type type;
    const char *const *label_names; /* NULL-terminated, may be NULL */
    const double *buckets;          /* HISTOGRAM: ascending upper bounds */
    size_t n_buckets;
};

enum otr_metrics_format {
    OTR_METRICS_PROMETHEUS = 0, /* text/plain; version=0.0.4 */
    OTR_METRICS_OPENMETRICS,    /* application/openmetrics-text; version=1.0.0 */
};

/* ------------------------------------------------------------------------ */
/* Record bus                                                                */

enum otr_value_type {
    OTR_VAL_STR = 1,
    OTR_VAL_INT,
    OTR_VAL_DOUBLE,
    OTR_VAL_BOOL,
};

struct otr_field {
    const char *key;
    enum otr_value_type type;
    union {
        struct { const char *ptr; size_t len; } s;
        int64_t i;
        double d;
        bool b;
    } v;
};

/* A record on the bus: borrowed by subscribers for the duration of the
 * callback only; copy what you keep. */
struct otr_record {
    uint64_t time_ns;   /* CLOCK_REALTIME of the event */
    const struct otr_field *fields;
    size_t n_fields;
};

/* Called on the publishing worker's thread (or the main thread when the
 * publisher passes no worker). Must not block. */
typedef void (*otr_bus_cb)(void *arg, otr_worker *w, const char *stream,
                           const struct otr_record *rec);

/* ------------------------------------------------------------------------ */
/* Logging                                                                   */

enum otr_log_level {
    OTR_LOG_ERROR = 0,
    OTR_LOG_WARN,
    OTR_LOG_INFO,
    OTR_LOG_DEBUG,
};

/* ------------------------------------------------------------------------ */
/* The host table                                                            */
/*
 * Append-only: new members go at the end and bump OTR_ABI_MINOR. A module
 * built against a newer minor than the agent's is refused by the loader, so
 * every member a module was compiled against exists. OTR_HOST_HAS() tests
 * optional members for modules that want to run on older agents anyway.
 */
struct otr_host {
    uint32_t size; /* sizeof(struct otr_host) as the agent was built */

    /* --- logging (any thread) --- */
    /* Logs one line prefixed with the module's name, to the agent's log. */
    void (*log)(otr_ctx *ctx, enum otr_log_level level, const char *fmt, ...) OTR_PRINTF(3, 4);
    bool (*log_enabled)(otr_ctx *ctx, enum otr_log_level level);

    /* --- configuration (main thread, from check/init only) --- */
    /* Reports a configuration error at a path below the module's section
     * ("routes[2].cluster"), worded like core's own errors. The caller then
     * returns OTR_ECONFIG. Reports accumulate: report them all. */
    void (*conf_error)(otr_ctx *ctx, const char *path, const char *fmt, ...) OTR_PRINTF(3, 4);
    /* The directory holding Lua scripts (absolute). */
    const char *(*scripts_dir)(otr_ctx *ctx);
    /* A directory this module may keep state in across restarts
     * (<state_dir>/<module>), created on first call; NULL if none configured. */
    const char *(*state_dir)(otr_ctx *ctx);

    /* --- identity (any thread) --- */
    enum otr_role (*role)(otr_ctx *ctx);
    /* The node name and, in sidecar role, the own pod (from POD_NAME,
     * POD_NAMESPACE, POD_IP, ... or config). Valid for the generation. */
    const char *(*node_name)(otr_ctx *ctx);
    const struct otr_pod *(*self_pod)(otr_ctx *ctx);
    /* The pod owning a source address, from the node's inventory (node
     * role) or the own pod (sidecar role, loopback or own IP). Returns a
     * reference the caller releases with pod_unref, or NULL if unknown. */
    const struct otr_pod *(*pod_by_addr)(otr_ctx *ctx, const struct sockaddr *addr);
    void (*pod_unref)(const struct otr_pod *pod);
    /* Calls fn for every pod in the current inventory snapshot. The pods
     * are borrowed for the duration of fn. Returns the number of pods. */
    size_t (*pods_foreach)(otr_ctx *ctx, void (*fn)(void *arg, const struct otr_pod *pod), void *arg);
    /* Number of inventory changes seen so far; poll it to notice changes. */
    uint64_t (*inventory_version)(otr_ctx *ctx);

    /* --- workers (worker thread unless said) --- */
    uv_loop_t *(*loop)(otr_worker *w);       /* add handles; never run or close it */
    unsigned (*worker_index)(otr_worker *w); /* 0 .. n_workers-1 */
    unsigned (*n_workers)(otr_ctx *ctx);     /* any thread */
    /* The module's per-generation data (set in init, read anywhere). */
    void (*set_data)(otr_ctx *ctx, void *data);
    void *(*data)(otr_ctx *ctx);
    /* Tells core that this module finished draining on worker w (after
     * drain() was called there): every handle it opened in this generation
     * on w is closed. Core calls fini() once all workers are done. */
    void (*drained)(otr_ctx *ctx, otr_worker *w);

    /* --- listeners (main thread, from init) --- */
    /* Binds (or, after a hot upgrade, adopts) a listening socket named
     * "<module>.<name>" on address. kind is SOCK_STREAM (TCP or unix
     * stream) or SOCK_DGRAM (UDP or unix datagram). The socket outlives
     * generations while name and address stay the same; it is announced in
     * the state file and /status with its bound address (port 0 resolved).
     * On `-t` nothing is bound and this returns 0 with *out set. */
    int (*listener_open)(otr_ctx *ctx, const char *name, const struct otr_conf_address *addr, int kind,
                         otr_listener **out);
    /* A socket for worker w to serve the listener on (worker thread, from
     * start): a new descriptor the caller owns (uv_tcp_open / uv_udp_open
     * it, and uv_close closes it). Workers share the port by SO_REUSEPORT. */
    int (*listener_socket)(otr_listener *l, otr_worker *w, uv_os_sock_t *out);
    /* The bound address, e.g. "127.0.0.1:4140" (any thread). */
    const char *(*listener_address)(otr_listener *l);

    /* --- metrics registry --- */
    /* Declares a metric family (main thread, init). Registering the same
     * name again in a later generation returns the same family, so counters
     * survive reloads; a different type or label set is an error. */
    otr_metric *(*metric_new)(otr_ctx *ctx, const struct otr_metric_desc *desc);
    /* The series for label values (as many as label_names) in worker w's
     * shard; w may be NULL for the main thread's shard. Creates it on first
     * use. Cache the pointer: it lives as long as the agent. */
    otr_series *(*series)(otr_metric *m, otr_worker *w, const char *const *label_values);
    /* Updates: only from the thread owning the shard. Cheap (no locks). */
    void (*counter_add)(otr_series *s, double v);
    void (*gauge_set)(otr_series *s, double v);
    void (*gauge_add)(otr_series *s, double v);
    void (*observe)(otr_series *s, double v); /* histogram */
    /* Renders the whole registry (all shards merged) in a format, calling
     * emit with consecutive pieces of text (any thread). */
    int (*metrics_render)(otr_ctx *ctx, enum otr_metrics_format fmt,
                          void (*emit)(void *arg, const char *p, size_t n), void *arg);

    /* --- record bus --- */
    /* Subscribes to a stream (main thread, init). The subscription ends
     * with the generation. */
    int (*bus_subscribe)(otr_ctx *ctx, const char *stream, otr_bus_cb cb, void *arg, otr_sub **out);
    /* Publishes a record to every current subscriber, synchronously, on
     * the calling thread. Returns the number of subscribers reached. */
    size_t (*bus_publish)(otr_ctx *ctx, otr_worker *w, const char *stream, const struct otr_record *rec);
    /* Whether anyone listens: skip building records nobody reads. */
    bool (*bus_has_subscribers)(otr_ctx *ctx, const char *stream);

    /* --- Lua hooks --- */
    /* Declares a hook (main thread, init): loads script (relative to the
     * scripts dir) into every worker's sandboxed Lua state and looks up the
     * global function `function`. Load and syntax errors are config errors
     * reported at conf_path. The script's environment is its own. */
    int (*hook_declare)(otr_ctx *ctx, const char *conf_path, const char *script, const char *function,
                        otr_hook **out);
    /* Runs the hook on worker w's Lua state (worker thread). push() pushes
     * the arguments and returns how many; the call then runs under the
     * instruction budget and memory cap; pull() reads the results (nres of
     * them at the top of the stack). Returns pull's result, or
     * OTR_EFALLBACK when the script errored, ran out of budget or memory
     * (counted and logged, rate-limited): the module applies its fallback. */
    int (*hook_run)(otr_hook *h, otr_worker *w, int (*push)(lua_State *L, void *arg),
                    int (*pull)(lua_State *L, int nres, void *arg), int nres, void *arg);
};

#define OTR_HOST_HAS(host, member) \
    ((host)->size >= offsetof(struct otr_host, member) + sizeof((host)->member))

/* ------------------------------------------------------------------------ */
/* otr_ctx: what a module sees of itself                                     */
/*
 * The first members are public and stable; core keeps more behind them.
 */
struct otr_ctx {
    const struct otr_host *host;
    const char *name;   /* the module's name */
    const void *conf;   /* the parsed config section (conf_size bytes) */
    uint64_t generation;
};

/* ------------------------------------------------------------------------ */
/* The module descriptor                                                     */

struct otr_module {
    /* --- fixed header: checked by the loader before any module code runs */
    uint32_t magic;      /* OTR_MODULE_MAGIC */
    uint16_t abi_major;  /* OTR_ABI_MAJOR as built */
    uint16_t abi_minor;  /* OTR_ABI_MINOR as built */
    uint32_t size;       /* sizeof(struct otr_module) as built */
    const char *build_sig; /* OTR_BUILD_SIG as built */

    /* --- identity */
    const char *name;    /* must equal the file name without ".so" */
    const char *version; /* the module's own version, "1.2.0" */
    const char *summary; /* one line for -V and --describe */
    unsigned roles;      /* enum otr_role bits it supports */

    /* --- configuration */
    const struct otr_conf_field *conf; /* its section's fields */
    size_t conf_size;                  /* sizeof its config struct */

    /* --- lifecycle. Every callback is optional (NULL: nothing to do). */
    /* Cross-field checks on a parsed config (main thread). No side effects:
     * `outrider -t` runs it. Report with host->conf_error, return OTR_ECONFIG. */
    int (*check)(otr_ctx *ctx, const void *conf);
    /* Creates the generation's state: listeners, metrics, hooks, bus
     * subscriptions (main thread). No other I/O: `outrider -t` runs it too,
     * with listener_open binding nothing. On failure the whole generation
     * is discarded; fini() is then called for every module whose init()
     * ran, including the one that failed, so it must cope with state
     * that init() left half-built. */
    int (*init)(otr_ctx *ctx, const void *conf);
    /* Starts serving on worker w (worker thread): open handles on its loop. */
    int (*start)(otr_ctx *ctx, otr_worker *w);
    /* Stops accepting new work on w and finishes what is in flight, by
     * deadline_ms (uv_now of w's loop) at the latest; then calls
     * host->drained(ctx, w). Called when a newer generation took over (a
     * reload) or on shutdown. */
    void (*drain)(otr_ctx *ctx, otr_worker *w, uint64_t deadline_ms);
    /* Frees the generation's state (main thread), after every worker
     * drained, or after a failed init (see init). */
    void (*fini)(otr_ctx *ctx);
    /* Whether the module is ready to serve (any thread); NULL: always.
     * Feeds /ready. */
    bool (*ready)(otr_ctx *ctx);
    /* Adds the module's fields to the /status JSON (main thread): writes one
     * JSON object via emit, e.g. {"clusters":3}. (The members alone, without
     * the braces, are accepted too.) */
    void (*status)(otr_ctx *ctx, void (*emit)(void *arg, const char *p, size_t n), void *arg);
};

#ifdef __cplusplus
}
#endif
#endif /* OUTRIDER_MODULE_H */

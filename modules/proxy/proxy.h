/*
 * proxy: the module's internal types, shared by its files. Nothing here is
 * exported: the .so exports only otr_module_proxy.
 *
 * Threads: a struct proxy_state belongs to one generation and is read by
 * every worker; everything below struct proxy_worker belongs to one worker
 * thread and is touched only there.
 *
 * Data path (HTTP/1.1): a client connection (struct proxy_conn) reads into
 * its buffer and parses one request head at a time; the request is routed
 * to a cluster, an endpoint is chosen, and a pooled or new upstream
 * connection (struct proxy_upconn) carries it. Each direction streams
 * through one bounded buffer: bytes are forwarded as slices of the buffer
 * they were read into (writev-style uv_write), and reading in a direction
 * stops while its write is pending, which is the backpressure.
 */
#ifndef OUTRIDER_PROXY_H
#define OUTRIDER_PROXY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "outrider/module.h"
#include "proxy_conf.h"
#include "proxy_endpoints.h"
#include "proxy_h1_parse.h"
#include "proxy_mem.h"

#define PROXY_PUMP_LINES 16 /* chunks re-framed per write */
#define PROXY_IOV_MAX 52    /* buffers per write: 3 per chunk, plus head and ends */
#define PROXY_LISTENERS 2 /* outbound, inbound */
enum proxy_listener_id { PROXY_OUTBOUND = 0, PROXY_INBOUND = 1 };

struct proxy_discovery;

/* A cluster as resolved at init. Its endpoint set can change at run time
 * (DNS names, endpoints file): the latest set is published here under
 * `lock` by the discovery running on worker 0, and each worker copies it
 * into its own per-endpoint state (proxy_discovery.c). */
struct proxy_cluster {
    const struct proxy_cluster_conf *conf;
    uv_mutex_t lock;
    bool lock_init;
    uint64_t version;           /* under lock: bumped on each published set */
    struct proxy_epaddr *set;   /* under lock: without duplicates, in round robin order */
    size_t n_set;
    char empty_why[96];         /* under lock: why the set is empty, for 503 reasons */
    size_t n_literals;          /* static IP endpoints from the config, in literals */
    struct proxy_epaddr *literals;
    struct proxy_discovery *disc; /* every cluster has one; run by worker 0 */
};

/* A route with its cluster names resolved to indexes. */
struct proxy_route {
    const struct proxy_route_conf *conf;
    unsigned listener_mask; /* bit per enum proxy_listener_id */
    int cluster;            /* -1 when split is used */
    size_t n_split;
    int *split_cluster;
    int64_t *split_weight, total_weight;
    bool authority_wildcard; /* "*.suffix" */
    bool authority_has_port;
};

/* One generation's shared, read-only state. */
struct proxy_state {
    otr_ctx *ctx;
    const struct otr_host *host;
    const struct proxy_conf *conf;
    otr_listener *listeners[PROXY_LISTENERS];
    struct proxy_cluster *clusters;
    size_t n_clusters;
    struct proxy_route *routes;
    size_t n_routes;
    int default_cluster[PROXY_LISTENERS]; /* -1: none */
    struct proxy_h1_limits limits;
    size_t buffer_size;
    unsigned n_workers;
    struct proxy_worker *workers;
    otr_metric *m_requests, *m_duration, *m_upstream_conns, *m_client_conns, *m_errors, *m_retries;
    otr_metric *m_endpoints, *m_discovery_failures;
    uv_mutex_t wake_lock; /* guards every worker's wake_open */
    bool wake_lock_init;
    _Atomic size_t n_discovering; /* clusters whose first discovery round has not ended */
    otr_hook *hook; /* route(req), or NULL */
    otr_metric *m_healthy, *m_ejections, *m_hc_failures, *m_cb_rejections;
    struct proxy_ready *ready; /* what /ready sees (proxy_ready.c) */
    struct proxy_mesh *mesh; /* agent-to-agent topology (proxy_mesh.c), NULL when off */
    /* caller metrics (proxy_caller_metrics.c), NULL when off */
    otr_metric *m_caller_requests, *m_caller_duration, *m_caller_overflow;
};

struct proxy_upconn;
struct proxy_conn;
struct proxy_h2conn;
struct proxy_h2up;
struct proxy_lua_out;
struct proxy_h2stream;
struct proxy_delay;

/* A cluster's per-worker endpoint state. Heap-allocated and kept across
 * endpoint set changes while its address stays in the set; a removed
 * endpoint is `removed`, never chosen again, and freed once nothing refers
 * to it (proxy_discovery.c). */
struct proxy_endpoint {
    struct proxy_wcluster *wc;
    size_t index;        /* position in wc->eps (meaningless once removed) */
    uint64_t id;         /* unique in its wcluster, never reused: what a retry avoids */
    int mesh_agent;      /* the agent it is reached through (proxy_mesh.c), -1: directly */
    bool mesh_config;    /* a configured agent's pods hold it: the inventory's sidecars do not apply */
    uint64_t mesh_inv;   /* inventory version its sidecar was looked up at */
    struct sockaddr_storage mesh_sidecar; /* its pod's sidecar listener (inventory); ss_family 0: none */
    struct proxy_epaddr addr;
    bool removed;
    unsigned refs;       /* upstream connections, HTTP/2 sessions and streams holding it */
    struct proxy_endpoint *next_retired;
    unsigned active;     /* requests in flight */
    double ewma_ms;      /* latency, exponentially weighted */
    uint64_t ewma_stamp; /* uv_now of the last sample */
    struct proxy_upconn *idle; /* pooled, most recently used first */
    unsigned n_idle;
    struct proxy_h2up *h2;     /* the HTTP/2 sessions, oldest first (protocol "h2" clusters;
                                * proxy_h2_up.c) */
    /* Passive outlier ejection (proxy_outlier.c). */
    uint32_t consecutive_failures;
    uint32_t times_ejected;    /* the ejection multiplier; decays while the endpoint serves */
    uint64_t ejected_until;    /* uv_now when an ejection ends; 0: not ejected */
    uint64_t decay_mark;       /* uv_now the multiplier last decayed from */
    /* Active health checks (proxy_health.c). */
    bool unhealthy;            /* failed its checks (or none passed yet) */
    bool hc_checked;           /* a check completed once */
    uint16_t hc_fails, hc_oks; /* checks in a row */
    struct proxy_hcheck *hc;   /* the check in flight, or NULL */
};

/* Whether ep may take new requests: not ejected, not failing its health
 * checks. The one test every endpoint choice makes. */
static inline bool proxy_endpoint_usable(const struct proxy_endpoint *ep, uint64_t now)
{
    return !ep->unhealthy && now >= ep->ejected_until;
}

/* A cluster on one worker. */
struct proxy_wcluster {
    struct proxy_worker *pw;
    const struct proxy_cluster *c;
    int index;
    struct proxy_endpoint **eps; /* the current set, in the published order */
    size_t n_eps;
    struct proxy_endpoint *retired; /* removed, still referred to */
    uint64_t last_ep_id;            /* the id given to the newest endpoint */
    uint64_t version;               /* of the published set applied */
    char empty_why[96];
    unsigned rr;        /* round robin cursor */
    unsigned n_conns;   /* open upstream connections */
    unsigned n_pending; /* client requests waiting for a connection */
    struct proxy_conn *pending_head, *pending_tail;
    otr_series *s_requests[6]; /* by status class: 0 (error), 1xx .. 5xx */
    otr_series *s_retries;
    uint64_t budget_window_ms;           /* start of the current 10 s window */
    uint32_t budget_requests, budget_retries;
    otr_series *s_duration, *s_conns;
    /* outlier ejection and health checks */
    uv_timer_t outlier_timer; /* brings ejected endpoints back (metrics, log) */
    uv_timer_t hc_timer;      /* starts a round of health checks */
    bool outlier_timer_open, hc_timer_open;
    otr_series *s_healthy, *s_ejections, *s_hc_failures, *s_cb_requests, *s_cb_pending, *s_cb_conns;
    unsigned cm_col; /* its column in a caller's series (proxy_caller_metrics.c): mesh slots share one */
};

struct proxy_worker {
    struct proxy_state *st;
    otr_worker *w;
    uv_loop_t *loop;
    uv_tcp_t servers[PROXY_LISTENERS];
    bool serving[PROXY_LISTENERS];
    struct proxy_wcluster *clusters;
    struct proxy_conn *conns; /* every open client connection */
    unsigned n_conns, n_upconns;
    bool draining;
    bool drain_timer_open;
    uv_timer_t drain_timer;
    uint64_t rng;
    otr_series *s_client_conns, *s_errors_parse;
    /* HTTP/2 sessions with frames to send, flushed in the check phase */
    uv_idle_t h2_idle;
    bool h2_idle_open;
    struct proxy_h2conn *h2_dirty;
    struct proxy_h2up *h2up_dirty;
    unsigned n_health_handles; /* outlier and health-check handles open */
    struct proxy_hcheck *hchecks; /* health checks open (proxy_health.c) */
    uint64_t log_window_ms;    /* rate limit of ejection and health logs */
    unsigned log_count, log_suppressed;
    /* endpoint set changes published by worker 0 (proxy_discovery.c) */
    uv_async_t wake;
    bool wake_open; /* under st->wake_lock */
    bool wake_handle_open;
    struct proxy_mesh_worker *mesh; /* local destinations of the incoming side (proxy_mesh.c) */
    struct proxy_mem mem; /* the HTTP/2 path's allocations (proxy_mem.h) */
    struct proxy_conn *conn_cache; /* closed client connections for reuse (proxy_http1.c) */
    unsigned n_conn_cache;
    /* gives the caches back once the worker stayed without a connection
     * for PROXY_IDLE_TRIM_MS (proxy_http1.c) */
    uv_timer_t idle_trim;
    bool idle_trim_open;
    /* HTTP/2 streams with a deadline, soonest first (proxy_h2_deadline.c) */
    uv_timer_t h2_deadline_timer;
    bool h2_deadline_open;
    struct proxy_h2stream *h2_deadline_head, *h2_deadline_tail;
    struct proxy_cmetrics *cm; /* callers seen, for the caller metrics (proxy_caller_metrics.c); NULL: off */
};

/* --- proxy_ready.c -------------------------------------------------------- */

struct proxy_ready;
/* Allocates the readiness state for st->n_workers workers. */
int proxy_ready_new(struct proxy_state *st);
void proxy_ready_free(struct proxy_state *st);
/* Worker thread: listener l of worker is serving, or cannot. */
void proxy_ready_listening(struct proxy_state *st, unsigned worker, int l, bool serving);
/* Worker thread: an accept on listener l succeeded (0) or failed. */
void proxy_ready_accepted(struct proxy_state *st, unsigned worker, int l, int status);
/* The module's ready callback (any thread). */
bool proxy_ready(otr_ctx *ctx);

/* --- proxy_upstream.c ----------------------------------------------------- */

enum proxy_upconn_state { UP_CONNECTING = 0, UP_IDLE, UP_ACTIVE, UP_CLOSING };

/* An upstream HTTP/1.1 connection to one endpoint. */
struct proxy_upconn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect timeout, then idle timeout */
    uint64_t idle_until; /* loop time an idle connection closes (the timer may be due earlier) */
    uv_connect_t connect_req;
    uv_write_t wreq;
    struct proxy_endpoint *ep;
    bool mesh_hop; /* connected to an agent for ep (proxy_endpoint_connect_addr) */
    struct proxy_conn *down; /* the client request it carries, if any */
    struct proxy_h2stream *h2st; /* or the HTTP/2 stream it carries (translated) */
    struct proxy_upconn *next_idle;
    uint8_t state;           /* enum proxy_upconn_state */
    uint8_t closes_pending;  /* handles still to close before free */
    bool writing, reading, reusable;
    bool used; /* carried an exchange before: it may have gone stale in the pool */
    bool eof;  /* the server closed its side */
    char *buf;
    size_t cap, len, pos; /* pos: bytes of buf already handled */
    struct proxy_h1_parser parser;
    struct proxy_h1_chunked chunked;
};

/* Whether route rc (may be NULL) keeps the request header `name` from being
 * forwarded as it came: it removes it, or sets it itself (add_headers). */
bool proxy_route_drops_header(const struct proxy_route_conf *rc, const char *name, size_t nl);

/* An HTTP/1.1 head being written into a buffer its owner keeps (grown as
 * needed); on allocation failure `failed` is set and writing stops. */
struct proxy_head_out {
    char **buf;
    size_t *cap, *len;
    bool failed;
};
/* Writes bufs[0..n) to s: what the socket takes at once right away, the rest
 * with uv_write(req, cb). Returns 1 when everything was written (cb is not
 * called), 0 when the rest is pending (cb will be), or a negative libuv
 * error. May adjust bufs. */
int proxy_write(uv_stream_t *s, uv_write_t *req, uv_buf_t *bufs, unsigned n, uv_write_cb cb);

void proxy_head_put(struct proxy_head_out *o, const void *p, size_t n);
void proxy_head_str(struct proxy_head_out *o, const char *s);
/* Writes "name: value\r\n". */
void proxy_head_field(struct proxy_head_out *o, const void *name, size_t nl, const void *value, size_t vl);

/* Starts (or queues) the upstream leg of c's current request on cluster
 * wc: picks an endpoint, takes a pooled connection or opens one. Answers
 * the client with an error itself when that is impossible. */
void proxy_upstream_dispatch(struct proxy_conn *c, struct proxy_wcluster *wc);
/* Hands an upconn whose exchange finished back to its endpoint's pool, or
 * closes it when it cannot be reused. */
void proxy_upconn_release(struct proxy_upconn *u);
void proxy_upconn_close(struct proxy_upconn *u);
/* Starts reading the response on u (after the request head was queued). */
void proxy_upconn_read_start(struct proxy_upconn *u);
/* Removes c from its cluster's queue of requests waiting for a connection. */
void proxy_upstream_unqueue(struct proxy_conn *c);
/* Gives an HTTP/2 stream an HTTP/1.1 connection to an endpoint of its
 * cluster: proxy_h2h1_ready() runs (now or once connected), or the stream
 * is failed. */
void proxy_upstream_dispatch_h2(struct proxy_h2stream *st, struct proxy_wcluster *wc);
/* Closes every pooled connection of the worker (drain). */
void proxy_upstream_close_idle(struct proxy_worker *pw);
/* The 503 reason for a cluster without endpoints, into out. */
void proxy_upstream_no_endpoint_why(const struct proxy_wcluster *wc, char *out, size_t cap);
/* The endpoint choice, exposed for tests: NULL when wc has no endpoints. */
struct proxy_endpoint *proxy_lb_pick(struct proxy_wcluster *wc);
/* The choice for a retry: another endpoint than the one of id avoid (0:
 * any) when the cluster has another; NULL when wc has no endpoints. */
struct proxy_endpoint *proxy_lb_pick_other(struct proxy_wcluster *wc, uint64_t avoid);
void proxy_lb_sample(struct proxy_endpoint *ep, uint64_t now_ms, double latency_ms);

/* Whether wc may take one more request (max_requests); counts and says
 * why not otherwise: the caller answers 503 with *why. */
bool proxy_upstream_admit(struct proxy_wcluster *wc, const char **why);

/* --- proxy_outlier.c ------------------------------------------------------ */

/* How long the times-th ejection lasts: base x times, at most max. */
uint64_t proxy_outlier_ejection_ms(uint64_t base, uint64_t max, uint32_t times);
/* Whether one more of n endpoints may be ejected while n_ejected are:
 * within max_percent, and at least one when max_percent > 0. */
bool proxy_outlier_may_eject(size_t n, size_t n_ejected, int64_t max_percent);
/* The multiplier left after an endpoint served since mark without being
 * ejected: one less per whole interval; *mark advances by what was used. */
uint32_t proxy_outlier_decay(uint32_t times, uint64_t *mark, uint64_t now, uint64_t interval);
/* The outcome of one exchange with ep: failed (5xx, gRPC UNAVAILABLE,
 * connection refused or timed out, reset, request timeout) or not. Ejects
 * ep after consecutive_failures. Worker thread. */
void proxy_outlier_report(struct proxy_endpoint *ep, bool failed);
/* Per worker: open (start) and close (drain) the clusters' timers. */
void proxy_outlier_start(struct proxy_worker *pw);
void proxy_outlier_stop(struct proxy_worker *pw);
/* Sets the cluster's usable-endpoints gauge after a change. */
void proxy_outlier_gauge(struct proxy_wcluster *wc);
/* Logs an ejection or health transition, at most 20 lines per 10 s and
 * worker (the rest are counted and summed up in the next line). */
void proxy_outlier_log(struct proxy_worker *pw, enum otr_log_level level, const char *fmt, ...) OTR_PRINTF(3, 4);

/* --- proxy_health.c ------------------------------------------------------- */

/* The status of an HTTP/1.x status line at b[0..n): 100-599, 0 when more
 * bytes are needed, -1 when it is no status line. */
int proxy_health_parse_status(const char *b, size_t n);
/* Whether a gRPC HealthCheckResponse (one length-prefixed message at
 * b[0..n)) says SERVING: 1, another status: 0, malformed or cut: -1. */
int proxy_health_grpc_serving(const uint8_t *b, size_t n);
/* Per worker: start the clusters' check rounds; stop them and close the
 * checks in flight (drain). */
void proxy_health_start(struct proxy_worker *pw);
void proxy_health_stop(struct proxy_worker *pw);
/* Discovery added ep to a running cluster with health checks: it is
 * unhealthy until its first check, started at once, passes. */
void proxy_health_endpoint_added(struct proxy_endpoint *ep);
/* Discovery removed ep: the check in flight is detached from it. */
void proxy_health_endpoint_removed(struct proxy_endpoint *ep);

/* --- proxy_http1.c ------------------------------------------------------- */

enum proxy_conn_state {
    CONN_READ_HEAD = 0, /* waiting for (more of) a request head */
    CONN_WAIT_UPSTREAM, /* routed, waiting for an upstream connection */
    CONN_FORWARDING,    /* request and response in flight */
    CONN_CLOSING,
};

/* A client connection. */
/* While draining, keep-alive client connections wait this long for a next
 * request before they are closed. */
#define PROXY_DRAIN_IDLE_GRACE_MS 1000

struct proxy_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* idle timeout between requests, request timeout during one */
    uint64_t timer_at; /* loop time the timeout is due (the timer may be due earlier), UINT64_MAX: none */
    uv_write_t wreq;
    uv_shutdown_t shut;
    struct proxy_worker *pw;
    struct proxy_conn *prev, *next;             /* pw->conns */
    struct proxy_conn *pending_next;            /* wc pending queue */
    uint8_t listener;                           /* enum proxy_listener_id */
    uint8_t state;                              /* enum proxy_conn_state */
    uint8_t closes_pending;
    bool writing, reading;
    bool keep_alive;         /* the client connection may carry another request */
    bool lingering;          /* error sent, FIN sent: discarding input until EOF or timeout */
    bool req_head_sent, req_done, resp_head_sent, resp_done;
    uint8_t resp_out_framing; /* enum proxy_h1_framing towards the client */
    bool resp_final_chunk_sent;
    /* read buffer: [0, len) read; the current request's head starts at 0
     * after compaction; body bytes up to body_pos were forwarded. */
    char *buf;
    size_t cap, len, body_pos;
    uint64_t req_body_left;
    struct proxy_h1_parser parser;
    struct proxy_h1_chunked chunked;
    /* the upstream leg */
    struct proxy_wcluster *wc;
    struct proxy_route *route;
    struct proxy_upconn *up;
    struct proxy_upconn *connecting; /* opened for this request, not yet connected */
    struct proxy_endpoint *ep;
    /* serialized heads (grown on demand, kept for the connection) */
    char *req_head, *resp_head;
    size_t req_head_cap, req_head_len, resp_head_cap, resp_head_len;
    uint64_t resp_body_left;
    bool req_last_chunk, resp_last_chunk; /* "0\r\n" written in that direction */
    bool up_reused;                       /* the request went on a pooled connection */
    bool req_held; /* every request body byte sent so far is still in buf: a retry can replay it */
    /* chunk-size lines referenced by the write in flight, per direction */
    char req_lines[PROXY_PUMP_LINES][24], resp_lines[PROXY_PUMP_LINES][24];
    /* accounting for the access record */
    uint64_t t_start_ms, t_sent_ms;
    uint32_t retries;
    const char *reason; /* why the proxy answered itself, for the access record (borrowed until published) */
    uint64_t avoid_ep; /* id of the endpoint that just failed this request, 0 none */
    struct proxy_delay *retry_delay; /* backoff before the next attempt, or NULL */
    uint64_t bytes_in, bytes_out;
    int status;
    /* The client's address: proxy_conn_peer(), proxy_conn_peer_sa(). */
    bool peer_known; /* looked up (peer_text "" when that failed) */
    char peer_text[64];
    struct sockaddr_storage peer_sa;
    struct proxy_lua_out *lua; /* the script's decision for the current request */
    struct proxy_caller_buf *caller; /* the mesh's word on the caller (proxy_caller.c), or NULL */
    uint32_t n_requests;
    struct proxy_h2conn *h2; /* set once the client spoke the HTTP/2 preface */
    struct proxy_h2stream *h2st; /* the current request, when its cluster speaks HTTP/2 */
    /* caller metrics (proxy_caller_metrics.c): the caller by source address,
     * found at the first request; the last caller a trusted agent named */
    struct proxy_cmetrics_caller *cm_caller;
    struct proxy_cmetrics_fwd *cm_fwd;
};

void proxy_conn_accept(struct proxy_worker *pw, uv_stream_t *server, enum proxy_listener_id l);
/* Gives the worker's caches (closed connections, the HTTP/2 allocator's
 * free lists) back to malloc when it has no client connection. */
void proxy_conns_idle_trim(struct proxy_worker *pw);
/* The client's address as text ("" when unknown) and as a sockaddr (NULL
 * when unknown), looked up on first use (getpeername). */
const char *proxy_conn_peer(struct proxy_conn *c);
const struct sockaddr *proxy_conn_peer_sa(struct proxy_conn *c);
/* The upstream leg is connected (u), or failed with an HTTP status. */
void proxy_conn_upstream_ready(struct proxy_conn *c, struct proxy_upconn *u);
void proxy_conn_upstream_failed(struct proxy_conn *c, int status, const char *why);
/* Response bytes arrived in u->buf. */
void proxy_conn_on_response_data(struct proxy_conn *c);
/* The upstream connection ended (EOF or error err). */
void proxy_conn_on_upstream_eof(struct proxy_conn *c, int err);
/* Drain: close connections between requests; the rest close when done. */
void proxy_conn_close(struct proxy_conn *c);
/* The reason phrase for a status we generate ("" for unknown 1xx-3xx). */
const char *proxy_status_reason(int status);
/* Answers the client with an error status and closes the connection. */
void proxy_conn_respond_error(struct proxy_conn *c, int status, const char *why);
/* The current exchange is complete: publish it, then serve the next
 * request or close (HTTP/1.1 clients of HTTP/2 clusters). */
void proxy_conn_exchange_done(struct proxy_conn *c);
/* Resumes reading the client. */
void proxy_conn_read_start(struct proxy_conn *c);
/* (Re)starts the client idle timeout. */
void proxy_conn_idle_start(struct proxy_conn *c);
void proxy_conns_drain(struct proxy_worker *pw);
void proxy_conns_close_all(struct proxy_worker *pw);
void proxy_worker_maybe_drained(struct proxy_worker *pw);

/* --- proxy_retry.c --------------------------------------------------------- */

/* Why one attempt of a request failed. */
enum proxy_retry_cause {
    PROXY_RETRY_CAUSE_CONNECT, /* no connection (refused, timed out, none available) */
    PROXY_RETRY_CAUSE_RESET,   /* connection or stream dropped before the response head */
    PROXY_RETRY_CAUSE_STATUS,  /* a response head (status, or gRPC status of a trailers-only response) */
};

/* Reports retry settings that make no sense (check and init); returns 0 or
 * OTR_ECONFIG. */
int proxy_retry_conf_check(struct proxy_state *st);
/* Whether method m (n bytes) is idempotent (RFC 9110 9.2.2), so sending it
 * twice is safe. */
bool proxy_retry_method_ok(const char *m, size_t n);
/* The most retries for a request of route rc (NULL: none) on cluster cc. */
int64_t proxy_retry_max(const struct proxy_cluster_conf *cc, const struct proxy_route_conf *rc);
/* Whether cluster cc, or route rc (may be NULL) where it overrides the
 * cluster, retries a failure of this cause: status and grpc_status count
 * for PROXY_RETRY_CAUSE_STATUS only; grpc says the request is a gRPC call.
 * Attempts and budget are not looked at. */
bool proxy_retry_wanted(const struct proxy_cluster_conf *cc, const struct proxy_route_conf *rc,
                        enum proxy_retry_cause cause, int status, int grpc_status, bool grpc);
/* Takes one retry for a request of route rc (may be NULL) that made
 * *retries so far: false when its attempts or the cluster's budget on this
 * worker are used up; otherwise counts it (in *retries, the budget and the
 * metric) and says true. */
bool proxy_retry_take(struct proxy_wcluster *wc, const struct proxy_route_conf *rc, uint32_t *retries);
/* The delay before retry number `attempt` (1-based): random up to
 * retry_backoff doubled per earlier attempt; 0 when backoff is off. */
uint64_t proxy_retry_delay_ms(struct proxy_wcluster *wc, uint32_t attempt);
/* A one-shot wait before a retry, owning its timer. fire(arg) runs once
 * after ms (the delay frees itself then: its owner forgets it in fire);
 * proxy_delay_cancel (NULL is fine) stops it unfired. NULL: no memory. */
struct proxy_delay *proxy_delay_start(uv_loop_t *loop, uint64_t ms, void (*fire)(void *arg), void *arg);
void proxy_delay_cancel(struct proxy_delay *d);

/* --- proxy_route.c --------------------------------------------------------- */

/* Resolves cluster names and parses route patterns (main thread, check and
 * init): reports every error with conf_error; returns 0 or OTR_ECONFIG. */
int proxy_routes_build(struct proxy_state *st);
void proxy_routes_free(struct proxy_state *st);
/* What routing looks at in a request, whatever its protocol. */
struct proxy_req_view {
    const char *method, *authority, *path;
    size_t method_len, authority_len, path_len;
    /* Whether a header name (any case) has exactly value. */
    bool (*header_eq)(const void *arg, const char *name, const char *value);
    const void *arg;
};

/* The first route matching the request, or NULL. */
struct proxy_route *proxy_route_match(struct proxy_state *st, enum proxy_listener_id l,
                                      const struct proxy_req_view *v);
/* The cluster a route sends this request to (weighted split drawn with the
 * worker's generator). */
int proxy_route_cluster(const struct proxy_route *r, uint64_t *rng);

/* --- proxy_mesh.c --------------------------------------------------------- */

/* The request header carrying the destination endpoint from the outgoing
 * agent to the incoming one. Never forwarded as it came. */
#define PROXY_MESH_DST "x-outrider-dst"
#define PROXY_MESH_DST_LEN 14

/* Builds the mesh state (main thread, check and init, after routes): agent
 * hops of the configured endpoints, local slot clusters appended to
 * st->clusters. Reports errors with conf_error; returns 0 or OTR_ECONFIG. */
int proxy_mesh_build(struct proxy_state *st);
void proxy_mesh_free(struct proxy_state *st);
int proxy_mesh_metrics(struct proxy_state *st);
int proxy_mesh_worker_start(struct proxy_worker *pw);
/* The address to connect to for ep: its agent's incoming listener when the
 * endpoint is reached through one (*hop set), else the endpoint itself. A
 * sidecar the inventory announces is looked up again when the inventory
 * changed: the connection keeps the decision in *hop for its requests. */
const struct sockaddr *proxy_endpoint_connect_addr(struct proxy_endpoint *ep, bool *hop);
/* The endpoint as "ip:port", for logs and access records. */
const char *proxy_endpoint_text(const struct proxy_endpoint *ep);
/* Sets ep->mesh_agent for a new endpoint (worker thread). */
void proxy_mesh_endpoint_init(struct proxy_endpoint *ep);
/* Before ep is given a request: when the inventory changed, looks its pod's
 * sidecar up again; if that changes the way to ep, closes its pooled
 * connections (worker thread). */
void proxy_mesh_endpoint_check(struct proxy_endpoint *ep);
/* On a connection to ep made with hop (proxy_endpoint_connect_addr): the
 * x-outrider-dst value (*len set) for a request about to be sent there,
 * counted as one outgoing hop. NULL when ep is called directly. */
const char *proxy_mesh_hop(const struct proxy_endpoint *ep, bool hop, size_t *len);
/* The incoming side: a request on listener l carrying x-outrider-dst
 * count times (value, len: the first; NULL: absent) from peer. Returns the
 * local slot cluster to deliver it to, -1 when the mesh does not apply
 * (route as usual), or -2 when it is refused: *status and why (a buffer of
 * whylen) say why. */
int proxy_mesh_incoming(struct proxy_worker *pw, enum proxy_listener_id l, bool h2, const char *value,
                        size_t len, unsigned count, const char *peer, int *status, char *why, size_t whylen);

/* --- proxy_caller.c ------------------------------------------------------ */

/* The request header carrying the calling pod, "namespace/name", from the
 * outgoing agent to the incoming one. Believed only from a node agent of
 * proxy.mesh.agents; never forwarded as it came. */
#define PROXY_MESH_CALLER "x-outrider-caller"
#define PROXY_MESH_CALLER_LEN 17
/* "namespace/name": a DNS label (63), "/", a DNS subdomain (253), NUL. */
#define PROXY_CALLER_MAX 318

/* A request's caller as the mesh carries it: on the incoming side, what a
 * trusted agent named (fwd, "" when it named none or a malformed one); on
 * the outgoing side, the text of the header for the hop (hop, kept until
 * the request head is written). Allocated on first use. */
struct proxy_caller_buf {
    bool has_fwd; /* the request came from a trusted agent: fwd, not the source address, says who calls */
    char fwd[PROXY_CALLER_MAX];
    char hop[PROXY_CALLER_MAX];
};

/* The caller as a pod: a reference from the host, or the namespace and
 * name a trusted agent sent (no labels unless the inventory knows it). */
struct proxy_caller {
    const struct otr_pod *ref;
    struct otr_pod own;
    char ns[64], name[254];
};

/* Whether value (len bytes, not terminated) is one well-formed caller,
 * "namespace/name"; then copies it, terminated, into out. */
bool proxy_caller_parse(const char *value, size_t len, char out[PROXY_CALLER_MAX]);
/* The incoming side: records in *cbp (allocated if needed) what listener
 * l's request from peer says about its caller: x-outrider-caller given
 * count times (value, len: the first). Only a node agent's word counts. */
void proxy_caller_take(struct proxy_worker *pw, enum proxy_listener_id l, const struct sockaddr *peer,
                       struct proxy_caller_buf **cbp, const char *value, size_t len, unsigned count);
/* The request's caller: the pod a trusted agent named (cb), else the pod
 * owning peer (may be NULL). With labels, a named pod is looked up in the
 * inventory by namespace and name for its labels. NULL when unknown;
 * release with proxy_caller_put. */
const struct otr_pod *proxy_caller_get(struct proxy_state *st, const struct sockaddr *peer,
                                       const struct proxy_caller_buf *cb, bool labels, struct proxy_caller *out);
void proxy_caller_put(struct proxy_state *st, struct proxy_caller *c);
/* "namespace/name" of the request's caller into buf (PROXY_CALLER_MAX),
 * for the x-outrider-caller of a hop; returns its length, 0 when unknown. */
size_t proxy_caller_text(struct proxy_state *st, const struct sockaddr *peer, const struct proxy_caller_buf *cb,
                         char *buf);
/* Whether peer is a node agent of proxy.mesh.agents (not this agent's own
 * node, nor a sidecar, whose pod's apps share its address). */
bool proxy_mesh_trusts_caller(const struct proxy_state *st, const struct sockaddr *peer);

/* --- proxy_caller_metrics.c, proxy_workload.c ------------------------------ */

/* One caller's series in one cluster column. */
struct proxy_cmetrics_series {
    otr_series *requests[6]; /* by status class: 0 (error), 1xx .. 5xx */
    otr_series *duration;
};
/* A (namespace, workload) pair seen on a worker; lives until the worker's
 * state is freed, so connections keep plain pointers to it. */
struct proxy_cmetrics_caller {
    const char *ns, *workload;
    struct proxy_cmetrics_series *cols[]; /* by wcluster cm_col, created on first use */
};

/* Registers the families (main thread, init) unless off; the histogram
 * with the buckets of outrider_proxy_request_duration_seconds. */
int proxy_cmetrics_register(struct proxy_state *st, const double *buckets, size_t n_buckets);
/* Worker start: the callers table and the clusters' columns. */
int proxy_cmetrics_worker_start(struct proxy_worker *pw);
void proxy_cmetrics_worker_free(struct proxy_worker *pw);
/* A connection ends: frees what it kept (c->cm_fwd). */
void proxy_cmetrics_conn_free(struct proxy_conn *c);
/* Whether a connection on listener l is labelled by its source address
 * (so the address is best looked up while the connection surely has one). */
bool proxy_cmetrics_by_address(const struct proxy_worker *pw, enum proxy_listener_id l);
/* Slow paths of proxy_cmetrics_count: c's caller by source address (or
 * the own pod, sidecar outbound), the caller a trusted agent named in cb,
 * and the series of caller k in wc's column. Never NULL but the last. */
struct proxy_cmetrics_caller *proxy_cmetrics_resolve(struct proxy_conn *c);
struct proxy_cmetrics_caller *proxy_cmetrics_forwarded(struct proxy_conn *c, const struct proxy_caller_buf *cb);
struct proxy_cmetrics_series *proxy_cmetrics_series_new(struct proxy_worker *pw, struct proxy_cmetrics_caller *k,
                                                        const struct proxy_wcluster *wc);

/* Counts a finished request of connection c (cb: its caller buffer, may
 * be NULL) in cluster wc with status class cls (0..5) taking secs. The
 * caller is looked up once per connection (or when a trusted agent names
 * another), its series once per cluster: per request this is two cached
 * pointers and the two updates. */
static inline void proxy_cmetrics_count(struct proxy_conn *c, const struct proxy_caller_buf *cb,
                                        const struct proxy_wcluster *wc, int cls, double secs)
{
    struct proxy_worker *pw = c->pw;
    if (!pw->cm)
        return;
    struct proxy_cmetrics_caller *k = c->cm_caller;
    if (cb && cb->has_fwd)
        k = proxy_cmetrics_forwarded(c, cb);
    else if (!k)
        k = c->cm_caller = proxy_cmetrics_resolve(c);
    struct proxy_cmetrics_series *s = k->cols[wc->cm_col];
    if (!s && !(s = proxy_cmetrics_series_new(pw, k, wc)))
        return;
    const struct otr_host *host = pw->st->host;
    host->counter_add(s->requests[cls], 1);
    host->observe(s->duration, secs);
}

/* The workload of a pod: the value of the first of labels (char *) it has,
 * non-empty, else proxy_workload_from_name of its name; into out (cap
 * bytes, truncated), returning its length. */
size_t proxy_workload(const struct otr_pod *pod, const struct otr_conf_array *labels, char *out, size_t cap);
/* The length of a pod name's workload part: without a Deployment's
 * "-<pod-template-hash>-<5 random>", a DaemonSet's or Job's "-<5 random>",
 * a StatefulSet's "-<ordinal>"; len when the name has none of them. */
size_t proxy_workload_from_name(const char *name, size_t len);

/* xorshift64*: cheap, per worker, good enough for load balancing. */
static inline uint64_t proxy_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif

/*
 * proxy_h2: HTTP/2 (h2c, prior knowledge) with nghttp2 — client sessions
 * on the listeners and upstream sessions to clusters with protocol "h2",
 * multiplexed. gRPC rides on it: trailers pass end to end, grpc-timeout
 * sets a deadline, and failures are answered as gRPC statuses.
 *
 * Flow control is the backpressure: both sessions run without automatic
 * WINDOW_UPDATE, and bytes received on one leg are acknowledged
 * (nghttp2_session_consume) only once the other leg's data provider took
 * them, so a slow reader on either side stops its writer at one window.
 *
 * Worker thread only, like the rest of the data path.
 */
#ifndef OUTRIDER_PROXY_H2_H
#define OUTRIDER_PROXY_H2_H

#include <nghttp2/nghttp2.h>

#include "proxy.h"
#include "proxy_lua.h"

/* The client connection preface of HTTP/2 (RFC 9113 3.4). */
#define PROXY_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PROXY_H2_PREFACE_LEN 24

/* A byte queue between the two legs of a stream; bounded by the flow
 * control window of the leg that fills it. */
struct proxy_bytes {
    uint8_t *p;
    size_t off, len, cap; /* data is p[off..len) */
    /* While non-zero, bytes taken stay in p[0..off) so that the whole
     * queue can be taken again (a retry's replay), as long as it holds at
     * most this many bytes; a longer one drops the hold for good. */
    size_t hold;
    struct proxy_mem *mem; /* allocates p (NULL: no pool); kept by free */
};

/* The fields the proxy itself reads, found once as they are added rather
 * than by a scan per question (proxy_hdrs_get). */
enum proxy_hdr_known {
    PROXY_HDR_METHOD,       /* :method */
    PROXY_HDR_PATH,         /* :path */
    PROXY_HDR_AUTHORITY,    /* :authority */
    PROXY_HDR_HOST,         /* host */
    PROXY_HDR_CONTENT_TYPE, /* content-type */
    PROXY_HDR_GRPC_TIMEOUT, /* grpc-timeout */
    PROXY_HDR_GRPC_STATUS,  /* grpc-status */
    PROXY_HDR_KNOWN
};

/* Header fields with their bytes in blocks that never move. */
struct proxy_hdr_block;
struct proxy_hdrs {
    nghttp2_nv *nv;
    size_t n, cap;
    size_t bytes; /* name + value bytes, for the size limit */
    uint32_t at[PROXY_HDR_KNOWN]; /* 1 + index of the first such field, 0: none */
    bool nv_in_block; /* nv lies in the first block (not allocated by itself) */
    struct proxy_hdr_block *blocks;
    struct proxy_mem *mem; /* allocates nv and blocks (NULL: no pool); kept by clear */
};

struct proxy_h2up;

/* One request/response exchange that arrived on an HTTP/2 client session. */
/* The request's caller buffer: the HTTP/1.1 client connection's when it
 * carries the request, else the stream's. */
#define PROXY_H2STREAM_CALLER(st) ((st)->h1c ? (st)->h1c->caller : (st)->caller)
/* The request's client address, or NULL. */
#define PROXY_H2STREAM_PEER(st) proxy_conn_peer_sa((st)->h1c ? (st)->h1c : (st)->dc->c)

struct proxy_h2stream {
    struct proxy_h2conn *dc;  /* the HTTP/2 client session, or NULL when... */
    struct proxy_conn *h1c;   /* ...an HTTP/1.1 client's request is carried to an h2 cluster */
    bool h1_resp_chunked, h1_resp_head_sent, h1_resp_done, h1_last_sent;
    int32_t id;
    struct proxy_h2stream *prev, *next;      /* dc->streams */
    struct proxy_h2stream *pending_next;     /* waiting for its upstream session... */
    struct proxy_h2up *pending_up;           /* ...this one, still connecting */
    struct proxy_h2stream *up_prev, *up_next; /* streams of st->up */
    bool ep_active;   /* counted in ep->active */
    bool resp_headers_done;
    struct proxy_hdrs req, resp, trailers;
    const char *method, *path, *authority;
    size_t method_len, path_len, authority_len;
    bool grpc;
    struct proxy_bytes req_body, resp_body;
    bool req_end, resp_end;
    bool resp_submitted;   /* response HEADERS handed to nghttp2 */
    bool resp_deferred;    /* the downstream data provider is waiting */
    bool req_deferred;     /* the upstream data provider is waiting */
    bool failed;           /* answered by the proxy itself */
    struct proxy_wcluster *wc;
    struct proxy_route *route;
    struct proxy_endpoint *ep;
    struct proxy_h2up *up;
    int32_t up_id;
    /* A stream the upstream refused unprocessed (REFUSED_STREAM, or beyond
     * the last stream id of its GOAWAY) is sent again on a fresh session,
     * if none of its request body left yet (up_body_sent: some left in this
     * attempt) or the body is held (req_body.hold); so are retries. */
    bool up_body_sent;
    uint8_t up_refusals;
    int status, grpc_status;
    char reason[80]; /* why the proxy answered itself, for the access record; "" otherwise */
    /* retries (proxy_h2_retry.c) */
    bool method_retryable; /* gRPC, or an idempotent method (set by proxy_h2stream_retry_prepare) */
    uint32_t retries;
    uint64_t avoid_ep;               /* id of the endpoint the last attempt failed on, 0 none */
    struct proxy_delay *retry_delay; /* backoff before the next attempt, or NULL */
    uint64_t req_pos;                /* request body bytes this attempt sent upstream */
    uint64_t req_acked;              /* request body bytes acknowledged to the HTTP/2 client */
    struct proxy_hdrs req_trailers;  /* the request's trailers, forwarded after its body */
    char *h1_trailers;               /* the same as HTTP/1.1 field lines: built for an HTTP/1.1
                                      * upstream, or collected from an HTTP/1.1 client */
    size_t h1_trailers_len;
    uint64_t t_start_ms, t_sent_ms, bytes_in, bytes_out;
    uint64_t deadline_ms;
    struct proxy_h2stream *dl_prev, *dl_next; /* pw's streams with a deadline */
    bool dl_linked;
    struct proxy_lua_out *lua; /* headers the route script sets, if any */
    struct proxy_caller_buf *caller; /* the mesh's word on the caller (proxy_caller.c), or NULL */
    struct proxy_worker *pw; /* its pool allocated st */
    /* translated to an HTTP/1.1 upstream (proxy_h2h1.c) */
    struct proxy_upconn *h1up;
    struct proxy_upconn *h1connecting; /* opened for this stream, not connected yet */
    char *h1_head;
    size_t h1_head_len, h1_head_cap;
    uint8_t *h1_out;
    size_t h1_out_len, h1_out_payload;
    uint64_t h1_resp_left;
    bool h1_writing, h1_head_sent, h1_req_chunked, h1_req_done;
};

/* An HTTP/2 client session, riding on a struct proxy_conn. */
struct proxy_h2conn {
    struct proxy_conn *c;
    struct proxy_h2conn *dirty_next;
    bool dirty;
    nghttp2_session *s;
    struct proxy_h2stream *streams;
    unsigned n_streams;
    bool writing, goaway;
    bool drain_pinged; /* draining: shutdown notice and PING sent, final GOAWAY on the ACK */
    uint64_t drain_goaway_ms; /* draining: when a busy session gets its GOAWAY (0: not draining) */
    uint64_t last_active_ms;  /* session start, or a stream's last start or end */
    /* The stream a callback last looked up (the callbacks of one frame,
     * the fields of a header block, name the same stream): spares
     * nghttp2_session_get_stream_user_data. Forgotten when it ends. */
    struct proxy_h2stream *last_st;
    int32_t last_id; /* its id, 0: none */
    uint8_t *out;
    size_t out_len, out_cap;
};

/* An upstream HTTP/2 session to one endpoint. An endpoint has a few per
 * worker (ep->h2, linked by ep_next, oldest first): a new one opens when
 * every other is at the server's stream limit (proxy_h2_up.c). */
struct proxy_h2up {
    uv_tcp_t tcp;
    struct proxy_h2up *ep_next;
    bool mesh_hop; /* connected to an agent for ep (proxy_endpoint_connect_addr) */
    struct proxy_h2up *dirty_next;
    bool dirty;
    struct proxy_h2stream *streams; /* submitted, not closed */
    uv_connect_t connect_req;
    uv_write_t wreq;
    uv_timer_t timer; /* connect timeout, then the idle timeout of an extra session */
    uint64_t idle_since_ms; /* uv_now when its last stream ended */
    nghttp2_session *s;
    struct proxy_endpoint *ep;
    struct proxy_h2stream *pending_head, *pending_tail; /* until connected */
    unsigned n_streams; /* submitted and not closed, plus pending: its load */
    uint32_t assumed_streams; /* the server's stream limit until its SETTINGS arrive */
    bool connected, closing, writing, reading;
    bool goaway_recv; /* the server said GOAWAY: no new stream goes here */
    bool retired;     /* no new stream either: it ends after its last one */
    uint8_t closes_pending;
    struct proxy_h2stream *last_st; /* as in struct proxy_h2conn */
    int32_t last_id;
    uint8_t *out;
    size_t out_len, out_cap;
    uint8_t rbuf[16384];
};

/* Turns c into an HTTP/2 session; c->buf[0..len) holds the first bytes
 * (the preface). Returns 0 or a negative error (c is then closed). */
int proxy_h2_conn_start(struct proxy_conn *c);
/* Bytes read on an HTTP/2 client connection. */
void proxy_h2_conn_on_read(struct proxy_conn *c, const uint8_t *data, size_t n);
/* Ends every stream (from conn_close); the session stays until the
 * connection's handles are closed, since a cancelled write still calls
 * back into it. */
void proxy_h2_conn_shutdown(struct proxy_conn *c);
/* Frees the session (from the connection's last close callback). */
void proxy_h2_conn_free(struct proxy_conn *c);
/* Drain: GOAWAY; the connection closes when its streams are done. */
void proxy_h2_conn_drain(struct proxy_conn *c);

/* Upstream side (proxy_h2_up.c). */
void proxy_h2up_dispatch(struct proxy_h2stream *st);
/* Cancels st's upstream stream (client gone, deadline). */
void proxy_h2up_cancel(struct proxy_h2stream *st);
/* More request body (or its end) is buffered for st's upstream stream. */
void proxy_h2up_resume(struct proxy_h2stream *st);
/* The downstream leg took response bytes: acknowledge them upstream. */
void proxy_h2up_consumed(struct proxy_h2stream *st, size_t n);
void proxy_h2up_close_all(struct proxy_worker *pw);
/* ep's sessions take no new stream (its endpoint was removed, or is reached
 * another way now): each closes now if idle, else after its last stream. */
void proxy_h2up_retire(struct proxy_endpoint *ep);
/* Whether none of ep's sessions carries a stream; *n: how many it has. */
bool proxy_h2up_idle(const struct proxy_endpoint *ep, unsigned *n);

/* HTTP/2 stream to HTTP/1.1 upstream (proxy_h2h1.c). */
void proxy_h2h1_ready(struct proxy_h2stream *st, struct proxy_upconn *u);
void proxy_h2h1_failed(struct proxy_h2stream *st, int status, const char *why);
void proxy_h2h1_on_read(struct proxy_h2stream *st, ssize_t n);
void proxy_h2h1_pump(struct proxy_h2stream *st);
void proxy_h2h1_consumed(struct proxy_h2stream *st);
void proxy_h2h1_cancel(struct proxy_h2stream *st);

/* HTTP/1.1 client request to an HTTP/2 cluster (proxy_h1h2.c). */
void proxy_h1h2_start(struct proxy_conn *c, struct proxy_wcluster *wc);
void proxy_h1h2_pump_request(struct proxy_conn *c);
void proxy_h1h2_on_response(struct proxy_h2stream *st);
void proxy_h1h2_on_response_data(struct proxy_h2stream *st);
void proxy_h1h2_failed(struct proxy_h2stream *st, int status, const char *why);
void proxy_h1h2_req_consumed(struct proxy_h2stream *st);
/* Ends the exchange's stream (connection closing or exchange over). */
void proxy_h1h2_end(struct proxy_conn *c);
/* A zeroed stream of worker pw whose buffers allocate from pw's pool;
 * NULL without memory. Freed by proxy_h2stream_free. */
struct proxy_h2stream *proxy_h2stream_new(struct proxy_worker *pw);
void proxy_h2stream_free(struct proxy_h2stream *st);

/* Request deadlines, one timer per worker (proxy_h2_deadline.c): st
 * expires timeout_ms from now unless cleared (proxy_h2stream_free does). */
void proxy_h2_deadline_set(struct proxy_h2stream *st, uint64_t timeout_ms);
void proxy_h2_deadline_clear(struct proxy_h2stream *st);
void proxy_h2_deadlines_on_timer(uv_timer_t *t);
/* st's deadline passed: cancel its upstream leg, answer 504 / gRPC 4. */
void proxy_h2stream_on_deadline(struct proxy_h2stream *st);

/* Called by the upstream leg (proxy_h2.c). */
void proxy_h2stream_on_response(struct proxy_h2stream *st);
void proxy_h2stream_on_response_data(struct proxy_h2stream *st);
void proxy_h2stream_on_upstream_failed(struct proxy_h2stream *st, int status, int grpc_status, const char *why);
/* Marks a session as having frames to send. The sends happen in the
 * worker's check phase, never inside nghttp2 callbacks (which must not
 * re-enter a session). */
void proxy_h2conn_flush(struct proxy_h2conn *dc);
void proxy_h2up_flush(struct proxy_h2up *up);
/* Sends for every marked session (the worker's uv_check callback). */
void proxy_h2_flush_dirty(struct proxy_worker *pw);
/* Schedules proxy_h2_flush_dirty. */
void proxy_h2_arm(struct proxy_worker *pw);
void proxy_h2up_send(struct proxy_h2up *up);

/* Retries of streams (proxy_h2_retry.c). */
/* Decides at the request's start whether its method may be sent again at all
 * and whether its body is held for a replay. */
void proxy_h2stream_retry_prepare(struct proxy_h2stream *st);
/* An attempt of st failed (cause; status and grpc_status for a response
 * head, -1 when none): if the cluster's policy, the budget and the held
 * body allow, ends the attempt's upstream leg (an open upstream stream is
 * reset, an HTTP/1.1 connection closed) and sends the request again, to
 * another endpoint when there is one, after the backoff; returns true.
 * Returns false, touching nothing, when the caller must fail st itself. */
bool proxy_h2stream_retry(struct proxy_h2stream *st, enum proxy_retry_cause cause, int status, int grpc_status);
/* n more request body bytes of this attempt were handed upstream: those
 * never acknowledged to the HTTP/2 client before are acknowledged now (a
 * replay sends bytes it acknowledged already). */
void proxy_h2stream_req_taken(struct proxy_h2stream *st, size_t n);
/* Starts (or restarts) st's upstream leg on its cluster. */
void proxy_h2stream_dispatch(struct proxy_h2stream *st);

/* Helpers shared by both legs. */
int proxy_bytes_put(struct proxy_bytes *b, const uint8_t *d, size_t n);
size_t proxy_bytes_take(struct proxy_bytes *b, uint8_t *out, size_t n);
void proxy_bytes_free(struct proxy_bytes *b);
int proxy_hdrs_add(struct proxy_hdrs *h, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl);
/* proxy_hdrs_add for a field as nghttp2 decoded it: flags
 * NGHTTP2_NV_FLAG_NO_INDEX (the sender sent it never indexed) is kept, so
 * the next hop gets it never indexed too (RFC 7541 7.1.3). */
int proxy_hdrs_add_decoded(struct proxy_hdrs *h, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl,
                           uint8_t flags);
void proxy_hdrs_clear(struct proxy_hdrs *h);
const nghttp2_nv *proxy_hdrs_find(const struct proxy_hdrs *h, const char *name);
/* The first field of that name (lower-case, as proxy_hdrs_add stores HTTP/2
 * and HTTP/1.1 fields alike), or NULL. */
static inline const nghttp2_nv *proxy_hdrs_get(const struct proxy_hdrs *h, enum proxy_hdr_known k)
{
    return h->at[k] ? &h->nv[h->at[k] - 1] : NULL;
}
/* Adds the HTTP/1.1 field lines p[0..n) ("Name: value\r\n", as the strict
 * parser validated them) to h with lower-case names, hop-by-hop fields
 * left out. Only whole lines: callers collect a split section first. */
void proxy_hdrs_add_h1_fields(struct proxy_hdrs *h, const char *p, size_t n);
/* Writes h as an HTTP/1.1 field line ("name: value\r\n", namelen +
 * valuelen + 4 bytes) at p; returns the end. */
char *proxy_nv_put_h1(char *p, const nghttp2_nv *h);
/* Whether an HTTP/2 field must not be forwarded (RFC 9113 8.2.2). */
bool proxy_h2_hop_field(const uint8_t *name, size_t nl, const uint8_t *value, size_t vl);
/* grpc-timeout ("100m", "5S", ...) in milliseconds, rounded up; -1 if
 * malformed. */
int64_t proxy_grpc_timeout_ms(const char *v, size_t n);

#endif

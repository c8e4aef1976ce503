/*
 * admin: the agent's HTTP/1.1 admin endpoint, on the main thread's loop.
 *
 *   GET  /healthz  200 "ok" while the process is alive
 *   GET  /ready    200 when started and not draining and every module ready, else 503
 *   GET  /metrics  the registry (Prometheus text, or OpenMetrics by Accept)
 *   GET  /status   JSON: version, role, identity, uptime, generation, modules
 *   GET  /         a small HTML status page
 *   POST /reload   triggers a reload; 200 with the outcome, 500 with errors
 *
 * GET endpoints also answer HEAD; a known path with another method gets
 * 405 with Allow, an unknown path 404.
 *
 * Connections are keep-alive and may pipeline (answered in order); requests
 * are parsed incrementally with a bounded request head (8 KiB) and body
 * (64 KiB), a read timeout (slow clients are closed), and a cap on
 * concurrent connections. A malformed request gets 400, a too large head
 * 431, a too large body 413, a Transfer-Encoding 501, and the connection
 * closes (after a lingering half-close, so the client reads the answer).
 * Nothing a client does can block the loop or grow memory past
 * max_head + max_body per connection (plus the responses it has not read,
 * bounded too: reading stops while 256 KiB are queued).
 */
#ifndef OTR_ADMIN_H
#define OTR_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "outrider/module.h"

/* A growable byte buffer handlers write into. */
struct otr_buf {
    char *p;
    size_t len, cap;
};
void otr_buf_append(struct otr_buf *b, const char *p, size_t n);
void otr_buf_printf(struct otr_buf *b, const char *fmt, ...) OTR_PRINTF(2, 3);
/* emit-style adapter: otr_buf_emit(buf, p, n). */
void otr_buf_emit(void *buf, const char *p, size_t n);
void otr_buf_fini(struct otr_buf *b);

/* What the admin server asks the agent; all called on the main thread. */
struct otr_admin_ops {
    void *arg;
    bool (*ready)(void *arg);
    /* Renders /metrics in fmt into out. */
    void (*metrics)(void *arg, enum otr_metrics_format fmt, struct otr_buf *out);
    /* Writes the /status JSON object into out. */
    void (*status)(void *arg, struct otr_buf *out);
    /* Runs a reload now; returns 0 or an error; on error writes the
     * messages (one per line) into out. */
    int (*reload)(void *arg, struct otr_buf *out);
    /* Writes the / HTML status page into out. */
    void (*html)(void *arg, struct otr_buf *out);
};

struct otr_admin;

/* Starts serving on fd (a bound TCP socket; the admin takes it over and
 * closes it, also on failure). Returns 0 or a libuv error. */
int otr_admin_start(uv_loop_t *loop, uv_os_sock_t fd, const struct otr_admin_ops *ops, struct otr_admin **out);
/* Stops accepting and closes every connection; frees itself when the last
 * handle is closed (run the loop afterwards). */
void otr_admin_stop(struct otr_admin *a);

/* The server's bounds. timeout_ms: a request must arrive complete within
 * this long after the connection became idle (accepted, or the previous
 * response queued); a client trickling bytes is closed when it runs out,
 * and a client that stops reading its responses is closed as well.
 * max_conns: connections beyond it are accepted and closed at once. */
struct otr_admin_limits {
    size_t max_head;     /* default 8 KiB */
    size_t max_body;     /* default 64 KiB */
    uint64_t timeout_ms; /* default 10 s */
    unsigned max_conns;  /* default 64 */
};
extern const struct otr_admin_limits otr_admin_default_limits;
/* Replaces the limits (main thread). Head and body limits apply to
 * connections accepted afterwards; the timeout to every timer started
 * afterwards; max_conns at once. Tests shorten the timeout. */
void otr_admin_set_limits(struct otr_admin *a, const struct otr_admin_limits *lim);

/* --- the request parser, exposed for unit tests and fuzzing --- */

enum otr_admin_parse {
    OTR_ADMIN_PARSE_MORE = 0,  /* need more bytes */
    OTR_ADMIN_PARSE_DONE = 1,  /* a complete request (head and body) */
    OTR_ADMIN_PARSE_BAD = -1,  /* malformed: answer 400 */
    /* head over the limit: answer 431; body (content_length > max_body): 413 */
    OTR_ADMIN_PARSE_TOO_LARGE = -2,
    /* a Transfer-Encoding header: the admin takes no chunked or otherwise
     * coded bodies; answer 501 (RFC 9112 §6.1) and close */
    OTR_ADMIN_PARSE_UNSUPPORTED = -3,
};

struct otr_admin_request {
    char method[8];
    char path[256];          /* without the query string */
    char accept[256];        /* Accept header value (truncated), "" if none */
    bool keep_alive;         /* HTTP/1.1 default, Connection: close/keep-alive */
    size_t content_length;
    /* DONE: bytes of input this request used (head + body). MORE: the
     * bytes the request needs in total once its head is complete (the
     * body is missing), 0 while the head is incomplete. */
    size_t consumed;
};

/* Parses one request from the start of buf[0..len). */
enum otr_admin_parse otr_admin_parse(const char *buf, size_t len, size_t max_head, size_t max_body,
                                     struct otr_admin_request *req);

#endif

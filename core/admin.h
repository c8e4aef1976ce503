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
 * Connections are keep-alive; requests are parsed incrementally with a
 * bounded request head (8 KiB) and body (64 KiB), a read timeout (slow
 * clients are closed), and a cap on concurrent connections; a malformed
 * request gets 400 (431 for a too large head) and the connection closes.
 * Nothing a client does can block the loop.
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

/* Starts serving on fd (a bound listening TCP socket the admin takes over).
 * Returns 0 or a libuv error. */
int otr_admin_start(uv_loop_t *loop, uv_os_sock_t fd, const struct otr_admin_ops *ops, struct otr_admin **out);
/* Stops accepting and closes every connection; frees itself when the last
 * handle is closed (run the loop afterwards). */
void otr_admin_stop(struct otr_admin *a);

/* --- the request parser, exposed for unit tests and fuzzing --- */

enum otr_admin_parse {
    OTR_ADMIN_PARSE_MORE = 0,  /* need more bytes */
    OTR_ADMIN_PARSE_DONE = 1,  /* a complete request (head and body) */
    OTR_ADMIN_PARSE_BAD = -1,  /* malformed: answer 400 */
    OTR_ADMIN_PARSE_TOO_LARGE = -2, /* head over the limit: answer 431; body: 413 */
};

struct otr_admin_request {
    char method[8];
    char path[256];          /* without the query string */
    char accept[256];        /* Accept header value (truncated), "" if none */
    bool keep_alive;         /* HTTP/1.1 default, Connection: close/keep-alive */
    size_t content_length;
    size_t consumed;         /* bytes of input this request used (head + body) */
};

/* Parses one request from the start of buf[0..len). */
enum otr_admin_parse otr_admin_parse(const char *buf, size_t len, size_t max_head, size_t max_body,
                                     struct otr_admin_request *req);

#endif

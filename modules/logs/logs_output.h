/*
 * logs_output: one destination fed from a queue, with batching by size and
 * time and retries with exponential backoff and jitter. The common driver
 * lives here; each kind (stdout, file, tcp, http, syslog, forward) provides
 * how to open, send a batch and close (logs_out_*.c).
 *
 * A batch is a run of sealed chunks taken in order; it is retried until it
 * is acknowledged (written to the file, accepted by the peer's TCP stack,
 * answered 2xx by HTTP, acknowledged by the forward receiver), and only then
 * does the output acknowledge it to the queue. Runs on the queue's thread.
 */
#ifndef LOGS_OUTPUT_H
#define LOGS_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "logs_buf.h"
#include "logs_queue.h"

enum logs_out_kind {
    LOGS_OUT_STDOUT = 0,
    LOGS_OUT_FILE,
    LOGS_OUT_TCP,
    LOGS_OUT_HTTP,
    LOGS_OUT_SYSLOG,
    LOGS_OUT_FORWARD,
};
#define LOGS_OUT_KIND_CHOICES "stdout|file|tcp|http|syslog|forward"

enum logs_http_format {
    LOGS_HTTP_JSON = 0, /* application/x-ndjson body */
    LOGS_HTTP_ES_BULK,  /* Elasticsearch _bulk: {"index":{}} before each line */
    LOGS_HTTP_LOKI,     /* Loki push API JSON */
};
#define LOGS_HTTP_FORMAT_CHOICES "json|elasticsearch|loki"

struct logs_output_conf {
    const char *name;          /* for logs and metric labels */
    enum logs_out_kind kind;
    const char *path;          /* file */
    const char *host;          /* tcp, http, syslog, forward: IP literal or name */
    uint16_t port;
    const char *http_path;     /* http: request target, e.g. /logs/_bulk */
    enum logs_http_format http_format;
    const char *loki_labels;   /* loki: labels as JSON object text, e.g. {"job":"outrider"} */
    const char *syslog_app;    /* syslog APP-NAME */
    const char *syslog_host;   /* syslog HOSTNAME */
    size_t batch_size;         /* bytes per batch at most (one chunk may exceed it) */
    uint64_t timeout_ms;       /* connect / acknowledgement timeout */
    uint64_t keepalive_ms;     /* http: idle time a connection is kept for the next batch; 0: closed after each */
    uint64_t retry_min_ms, retry_max_ms;
};

struct logs_output;

struct logs_output_ops {
    /* Sends bufs (bytes in total, records lines); calls
     * logs_output_sent(o, status) once, later, from the loop. */
    void (*send)(struct logs_output *o, const uv_buf_t *bufs, size_t n, size_t bytes, uint32_t records);
    /* Closes every handle, then calls done. */
    void (*close)(struct logs_output *o, void (*done)(struct logs_output *o));
    /* Frees the kind's state (after close). */
    void (*free)(struct logs_output *o);
};

struct logs_output {
    const struct logs_output_ops *ops;
    const struct logs_output_conf *conf;
    uv_loop_t *loop;
    struct logs_queue *q;
    size_t index;              /* in the queue's output list */
    uint64_t next_seq;         /* first chunk not acknowledged */
    uint64_t batch_end;        /* seq after the batch in flight */
    uint32_t batch_records;
    size_t batch_bytes;
    bool busy, waiting_retry, closing;
    unsigned attempt;
    uv_timer_t retry_timer;
    uv_buf_t *iov;
    size_t iov_cap;
    struct logs_buf fmt;       /* a transformed batch (syslog, ES, Loki) */
    void *impl;                /* the kind's state */
    void (*on_closed)(struct logs_output *o);
    void (*on_acked)(void *arg, struct logs_output *o, uint32_t records, size_t bytes);
    /* A batch failed (attempt: consecutive failures, why: last_error), or
     * succeeded again after failures (attempt 0). For logging. */
    void (*on_state)(void *arg, struct logs_output *o, unsigned attempt);
    void *arg;
    /* Counters. */
    uint64_t shipped_records, shipped_bytes, retries, failures;
    char last_error[128];
};

/* Creates the output for conf on loop reading q as output number index.
 * Returns 0 or a negative error (a file that cannot be opened: message in
 * err). */
int logs_output_new(uv_loop_t *loop, struct logs_queue *q, size_t index, const struct logs_output_conf *conf,
                    struct logs_output **out, char *err, size_t errlen);
/* Takes the next batch if idle (called when chunks are sealed). */
void logs_output_kick(struct logs_output *o);
/* Called by the kind when a send finished: 0 acknowledged, else failed. */
void logs_output_sent(struct logs_output *o, int status, const char *why);
/* Closes handles, then on_closed(o); then logs_output_free. */
void logs_output_close(struct logs_output *o, void (*on_closed)(struct logs_output *o));
void logs_output_free(struct logs_output *o);

/* The kinds (logs_out_file.c, logs_out_net.c). */
int logs_out_file_init(struct logs_output *o, char *err, size_t errlen);
int logs_out_net_init(struct logs_output *o, char *err, size_t errlen);

/* Batch transforms (logs_format.c): appends to out the batch in bufs
 * reframed for the kind. */
int logs_format_syslog(struct logs_buf *out, const uv_buf_t *bufs, size_t n, const char *app, const char *host);
int logs_format_es_bulk(struct logs_buf *out, const uv_buf_t *bufs, size_t n);
int logs_format_loki(struct logs_buf *out, const uv_buf_t *bufs, size_t n, const char *labels);

#endif

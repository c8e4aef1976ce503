/*
 * logs: the module's configuration and its state shared by the files of
 * modules/logs. The pipeline per worker is in logs_pipe.c; the descriptor,
 * config table and lifecycle in logs.c.
 */
#ifndef LOGS_H
#define LOGS_H

#include <outrider/module.h>

#include "logs_output.h"

struct logs_files_conf {
    struct otr_conf_array paths; /* char * glob patterns */
    int format;                  /* enum logs_format */
    int start;                   /* 0 head, 1 tail */
    uint64_t max_line_size, max_record_size;
    char *multiline_start;
    uint64_t multiline_timeout;
    uint64_t poll_interval, rescan_interval, rotate_wait, checkpoint_interval;
};

struct logs_forward_in_conf {
    bool enabled;
    struct otr_conf_address address;
    uint64_t max_frame;
};

struct logs_filter_conf {
    char *script;   /* "" = no filter */
    char *function;
    int fallback;   /* 0 keep the record unchanged, 1 drop it */
};

struct logs_spool_conf {
    bool enabled;
    uint64_t max_size, segment_size;
    int full_policy; /* enum logs_drop_policy */
    int sync;        /* enum logs_spool_sync */
};

enum logs_spool_sync { LOGS_SPOOL_SYNC_NONE = 0, LOGS_SPOOL_SYNC_BATCH };
#define LOGS_SPOOL_SYNC_CHOICES "none|batch"

struct logs_buffer_conf {
    uint64_t memory_limit, chunk_size, flush_interval;
    struct logs_spool_conf spool;
};

struct logs_output_item {
    char *name;
    int type;                       /* enum logs_out_kind */
    char *path;
    struct otr_conf_address address;
    char *http_path;
    int http_format;                /* enum logs_http_format */
    char *loki_labels;
    char *syslog_app;
    uint64_t batch_size, timeout, retry_min, retry_max;
    uint64_t http_keepalive;
};

struct logs_conf {
    struct logs_files_conf files;
    struct otr_conf_array bus_streams; /* char *: bus streams shipped as sources */
    struct logs_forward_in_conf forward_input;
    struct logs_filter_conf filter;
    struct logs_buffer_conf buffer;
    struct otr_conf_array outputs;  /* struct logs_output_item */
};

struct logs_pipe;

/* Metric families, registered in init. */
struct logs_metrics {
    otr_metric *lines, *bytes, *malformed, *dropped, *filter_errors;
    otr_metric *shipped, *shipped_bytes, *retries, *failures;
    otr_metric *files, *lag, *buffer, *spool;
};

struct logs_mod {
    otr_ctx *ctx;
    const struct otr_host *host;
    const struct logs_conf *conf;
    struct logs_output_conf *outs; /* resolved from conf->outputs */
    size_t n_outs;
    otr_hook *filter;
    otr_listener *fwd_listener;
    char *ckpt_path;               /* NULL: no state dir */
    char *lock_path;               /* <state_dir>/logs/tailer.lock */
    char *spool_base;              /* <state_dir>/logs/spool, when enabled */
    const char *role_name;
    char node[256];
    struct logs_pipe **pipes;      /* by worker index */
    unsigned n_pipes;
    struct logs_metrics m;
};

/* Per worker (logs_pipe.c). */
int logs_pipe_start(struct logs_mod *m, otr_worker *w);
void logs_pipe_drain(struct logs_mod *m, otr_worker *w, uint64_t deadline_ms);
void logs_pipe_free(struct logs_pipe *p);
/* The bus callback for the configured streams (worker thread). */
void logs_pipe_on_bus(void *arg, otr_worker *w, const char *stream, const struct otr_record *rec);

#endif

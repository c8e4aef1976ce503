/*
 * logs: the module descriptor, its configuration table and lifecycle.
 * Tails container logs (node role: every pod's CRI files; sidecar role: the
 * files named in config), takes the proxy's access records from the bus
 * and batches from other agents, filters them with Lua and ships them to
 * the configured outputs, at least once.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logs.h"
#include "logs_parser.h"

#define F(k, t, st, m, ...) OTR_CONF_FIELD(k, t, st, m, __VA_ARGS__)

static const struct otr_conf_field path_elem = {.type = OTR_CONF_STRING, .offset = 0, .max = 4096};

static const struct otr_conf_field stream_elem = {.type = OTR_CONF_STRING, .offset = 0, .min = 1, .max = 128};

static const struct otr_conf_field files_fields[] = {
    F("paths", OTR_CONF_ARRAY, struct logs_files_conf, paths, .elem = &path_elem, .elem_size = sizeof(char *),
      .def = "[]", .def_node = "[\"/var/log/pods/*/*/*.log\"]", .max = 1024,
      .help = "glob(3) patterns of the files to tail; node role: every container log of the node"),
    F("format", OTR_CONF_ENUM, struct logs_files_conf, format, .choices = LOGS_FORMAT_CHOICES, .def = "\"raw\"",
      .def_node = "\"cri\"",
      .help = "line format: CRI container log, Docker json-file, JSON objects (one per line) or raw text"),
    F("start", OTR_CONF_ENUM, struct logs_files_conf, start, .choices = "head|tail", .def = "\"head\"",
      .help = "where to start in files found at startup without a checkpoint (files appearing later are read "
              "from their head)"),
    F("max_line_size", OTR_CONF_SIZE, struct logs_files_conf, max_line_size, .def = "\"256KiB\"", .min = 1024,
      .max = 64 << 20, .help = "a longer line is cut into pieces of this size (nothing is dropped)"),
    F("max_record_size", OTR_CONF_SIZE, struct logs_files_conf, max_record_size, .def = "\"1MiB\"", .min = 1024,
      .max = 64 << 20,
      .help = "largest record after joining CRI/docker partial lines or multiline groups; larger ones are "
              "split, flagged \"split\""),
    F("multiline_start", OTR_CONF_STRING, struct logs_files_conf, multiline_start, .def = "\"\"", .max = 1024,
      .help = "POSIX extended regular expression: a message matching it starts a record, others are joined to "
              "the previous one (stack traces); empty: off"),
    F("multiline_timeout", OTR_CONF_DURATION, struct logs_files_conf, multiline_timeout, .def = "\"1s\"",
      .min = 1, .max = 3600000, .help = "a multiline group with no new line for this long is emitted"),
    F("poll_interval", OTR_CONF_DURATION, struct logs_files_conf, poll_interval, .def = "\"250ms\"", .min = 10,
      .max = 60000, .help = "how often open files are checked for growth and truncation (inotify wakes earlier)"),
    F("rescan_interval", OTR_CONF_DURATION, struct logs_files_conf, rescan_interval, .def = "\"1s\"", .min = 10,
      .max = 600000, .help = "how often the patterns are expanded again to find new and rotated files"),
    F("rotate_wait", OTR_CONF_DURATION, struct logs_files_conf, rotate_wait, .def = "\"5s\"", .min = 0,
      .max = 3600000, .help = "a rotated or deleted file is kept open until it has not grown for this long"),
    F("checkpoint_interval", OTR_CONF_DURATION, struct logs_files_conf, checkpoint_interval, .def = "\"1s\"",
      .min = 0, .max = 600000,
      .help = "how often delivered positions are saved (atomically) to the state dir; 0: after every batch "
              "the outputs acknowledge (after a crash, at most one batch is sent again)"),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field forward_in_fields[] = {
    F("enabled", OTR_CONF_BOOL, struct logs_forward_in_conf, enabled, .def = "false",
      .help = "accept batches from other outriders' forward outputs"),
    F("address", OTR_CONF_ADDRESS, struct logs_forward_in_conf, address, .def = "\"127.0.0.1:24240\"",
      .def_node = "\"0.0.0.0:24240\"", .help = "where to listen for forwarded batches"),
    F("max_frame", OTR_CONF_SIZE, struct logs_forward_in_conf, max_frame, .def = "\"8MiB\"", .min = 1024,
      .max = 1 << 30, .help = "largest batch accepted; a larger one closes the connection"),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field filter_fields[] = {
    F("script", OTR_CONF_STRING, struct logs_filter_conf, script, .def = "\"\"", .max = 4096,
      .help = "Lua script in the scripts dir defining the filter function; empty: no filter"),
    F("function", OTR_CONF_STRING, struct logs_filter_conf, function, .def = "\"filter\"", .max = 128,
      .help = "name of the function: called with the record table, returns it (changed) or nil to drop it"),
    F("fallback", OTR_CONF_ENUM, struct logs_filter_conf, fallback, .choices = "keep|drop", .def = "\"keep\"",
      .help = "what happens to a record when the script fails (error, budget, memory): kept unchanged or "
              "dropped (counted either way)"),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field spool_fields[] = {
    F("enabled", OTR_CONF_BOOL, struct logs_spool_conf, enabled, .def = "false",
      .help = "move buffered records to segment files under <state_dir>/logs/spool-<worker> when memory is full; "
               "bus and forward records are written there when sealed and replayed after a restart"),
    F("max_size", OTR_CONF_SIZE, struct logs_spool_conf, max_size, .def = "\"256MiB\"", .min = 1 << 20,
      .max = 1ull << 40, .help = "disk space per worker at most; beyond it the buffer is full"),
    F("segment_size", OTR_CONF_SIZE, struct logs_spool_conf, segment_size, .def = "\"8MiB\"", .min = 65536,
      .max = 1ull << 32, .help = "size of one segment file (deleted once all its records are delivered)"),
    F("full_policy", OTR_CONF_ENUM, struct logs_spool_conf, full_policy, .choices = LOGS_DROP_CHOICES,
      .def = "\"drop_newest\"",
      .help = "when memory and spool are full, a bus record (which cannot wait) is dropped, or the oldest "
              "buffered chunk nobody is sending is dropped to make room; counted either way (files and forward "
              "connections just pause)"),
    F("sync", OTR_CONF_ENUM, struct logs_spool_conf, sync, .choices = LOGS_SPOOL_SYNC_CHOICES, .def = "\"batch\"",
      .help = "batch: each chunk of records only the spool keeps (bus, forward input) is fdatasync'ed when "
              "written, one call per chunk, and the directory fsynced per new segment, so a machine crash keeps "
              "them; none: written to the page cache only (a process crash keeps them, a machine crash may not)"),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field buffer_fields[] = {
    F("memory_limit", OTR_CONF_SIZE, struct logs_buffer_conf, memory_limit, .def = "\"8MiB\"", .min = 65536,
      .max = 1ull << 34,
      .help = "records buffered per worker before sources pause (files, forward) or drop, counted (bus)"),
    F("chunk_size", OTR_CONF_SIZE, struct logs_buffer_conf, chunk_size, .def = "\"64KiB\"", .min = 1024,
      .max = 16 << 20, .help = "unit of buffering and acknowledgement"),
    F("flush_interval", OTR_CONF_DURATION, struct logs_buffer_conf, flush_interval, .def = "\"200ms\"", .min = 1,
      .max = 60000, .help = "records wait at most this long before being handed to the outputs"),
    F("spool", OTR_CONF_OBJECT, struct logs_buffer_conf, spool, .fields = spool_fields,
      .help = "disk overflow of the memory buffer"),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field output_fields[] = {
    F("name", OTR_CONF_STRING, struct logs_output_item, name, .def = "\"\"", .max = 64,
      .help = "name in metrics and logs (default: the type and its index)"),
    F("type", OTR_CONF_ENUM, struct logs_output_item, type, .choices = LOGS_OUT_KIND_CHOICES,
      .flags = OTR_CONF_REQUIRED, .help = "where records go"),
    F("path", OTR_CONF_STRING, struct logs_output_item, path, .def = "\"\"", .max = 4096,
      .help = "file: the file records are appended to (JSON lines)"),
    F("address", OTR_CONF_ADDRESS, struct logs_output_item, address, .def = "\":0\"",
      .help = "tcp, http, syslog, forward: host:port of the receiver"),
    F("http_path", OTR_CONF_STRING, struct logs_output_item, http_path, .def = "\"/\"", .max = 2048,
      .help = "http: request path, e.g. /logs/_bulk or /loki/api/v1/push"),
    F("http_format", OTR_CONF_ENUM, struct logs_output_item, http_format, .choices = LOGS_HTTP_FORMAT_CHOICES,
      .def = "\"json\"", .help = "http: body format: JSON lines, Elasticsearch _bulk or Loki push"),
    F("loki_labels", OTR_CONF_STRING, struct logs_output_item, loki_labels, .def = "\"{\\\"job\\\":\\\"outrider\\\"}\"",
      .max = 4096, .help = "http loki: the stream's labels as a JSON object of strings"),
    F("http_keepalive", OTR_CONF_DURATION, struct logs_output_item, http_keepalive, .def = "\"30s\"", .min = 0,
      .max = 3600000,
      .help = "http: how long a connection stays open, idle, for the next batch (HTTP/1.1 keep-alive; a "
              "response is read to its end before the connection is reused); 0s: a new connection per batch, "
              "sent with Connection: close"),
    F("syslog_app", OTR_CONF_STRING, struct logs_output_item, syslog_app, .def = "\"outrider\"", .max = 48,
      .help = "syslog: APP-NAME of the messages"),
    F("batch_size", OTR_CONF_SIZE, struct logs_output_item, batch_size, .def = "\"1MiB\"", .min = 1024,
      .max = 256 << 20, .help = "bytes per batch at most"),
    F("timeout", OTR_CONF_DURATION, struct logs_output_item, timeout, .def = "\"10s\"", .min = 10,
      .max = 600000, .help = "connect, write and acknowledgement timeout of a batch"),
    F("retry_min", OTR_CONF_DURATION, struct logs_output_item, retry_min, .def = "\"100ms\"", .min = 1,
      .max = 600000, .help = "first retry delay; doubled per failure, with jitter"),
    F("retry_max", OTR_CONF_DURATION, struct logs_output_item, retry_max, .def = "\"30s\"", .min = 1,
      .max = 3600000, .help = "longest retry delay"),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field logs_fields[] = {
    F("files", OTR_CONF_OBJECT, struct logs_conf, files, .fields = files_fields, .help = "tailed files"),
    F("bus_streams", OTR_CONF_ARRAY, struct logs_conf, bus_streams, .elem = &stream_elem,
      .elem_size = sizeof(char *), .def = "[]", .max = 16,
      .help = "record bus streams shipped as sources, e.g. [\"access\"] for the proxy's access records"),
    F("forward_input", OTR_CONF_OBJECT, struct logs_conf, forward_input, .fields = forward_in_fields,
      .help = "receive batches from other outriders"),
    F("filter", OTR_CONF_OBJECT, struct logs_conf, filter, .fields = filter_fields, .help = "Lua filter"),
    F("buffer", OTR_CONF_OBJECT, struct logs_conf, buffer, .fields = buffer_fields, .help = "memory buffer"),
    F("outputs", OTR_CONF_ARRAY, struct logs_conf, outputs, .fields = output_fields,
      .elem_size = sizeof(struct logs_output_item), .min = 1, .max = 16, .def = "[{\"type\":\"stdout\"}]",
      .help = "destinations; every record goes to every output"),
    OTR_CONF_TABLE_END,
};

static const char *const kind_names[] = {"stdout", "file", "tcp", "http", "syslog", "forward"};

static int logs_check(otr_ctx *ctx, const void *conf)
{
    const struct logs_conf *c = conf;
    const struct otr_host *h = ctx->host;
    int bad = 0;
    if (c->files.multiline_start && *c->files.multiline_start) {
        regex_t re;
        int rc = regcomp(&re, c->files.multiline_start, REG_EXTENDED | REG_NOSUB);
        if (rc) {
            char why[128];
            regerror(rc, &re, why, sizeof why);
            h->conf_error(ctx, "files.multiline_start", "invalid regular expression: %s", why);
            bad++;
        } else {
            regfree(&re);
        }
    }
    for (size_t i = 0; i < c->outputs.n; i++) {
        const struct logs_output_item *o = &OTR_CONF_AT(c->outputs, struct logs_output_item, i);
        char at[64];
        if (o->type == LOGS_OUT_FILE && !(o->path && *o->path)) {
            snprintf(at, sizeof at, "outputs[%zu].path", i);
            h->conf_error(ctx, at, "a file output needs a path");
            bad++;
        }
        if (o->type >= LOGS_OUT_TCP && (o->address.is_unix || !o->address.host[0] || !o->address.port)) {
            snprintf(at, sizeof at, "outputs[%zu].address", i);
            h->conf_error(ctx, at, "a %s output needs a host:port address", kind_names[o->type]);
            bad++;
        }
        if (o->retry_min > o->retry_max) {
            snprintf(at, sizeof at, "outputs[%zu].retry_min", i);
            h->conf_error(ctx, at, "is larger than retry_max");
            bad++;
        }
    }
    if (c->forward_input.enabled && (c->forward_input.address.is_unix || !c->forward_input.address.text)) {
        h->conf_error(ctx, "forward_input.address", "expected a TCP host:port");
        bad++;
    }
    if (c->buffer.spool.enabled && !h->state_dir(ctx)) {
        h->conf_error(ctx, "buffer.spool.enabled", "the spool needs a state_dir");
        bad++;
    }
    if (c->buffer.chunk_size * 2 > c->buffer.memory_limit) {
        h->conf_error(ctx, "buffer.chunk_size", "must be at most half of buffer.memory_limit");
        bad++;
    }
    return bad ? OTR_ECONFIG : 0;
}

static void mod_free(struct logs_mod *m)
{
    if (!m)
        return;
    for (unsigned i = 0; i < m->n_pipes; i++)
        logs_pipe_free(m->pipes[i]);
    free(m->pipes);
    for (size_t i = 0; i < m->n_outs; i++)
        free((char *)m->outs[i].name);
    free(m->outs);
    free(m->ckpt_path);
    free(m->lock_path);
    free(m->spool_base);
    free(m);
}

static otr_metric *metric(struct logs_mod *m, const char *name, const char *help, enum otr_metric_type type,
                          const char *const *labels)
{
    struct otr_metric_desc d = {.name = name, .help = help, .type = type, .label_names = labels};
    return m->host->metric_new(m->ctx, &d);
}

static void register_metrics(struct logs_mod *m)
{
    static const char *const by_source[] = {"source", NULL};
    static const char *const by_reason[] = {"source", "reason", NULL};
    static const char *const by_output[] = {"output", NULL};
    m->m.lines = metric(m, "outrider_logs_lines_read_total", "Lines (or bus records, forwarded lines) read.",
                        OTR_METRIC_COUNTER, by_source);
    m->m.bytes = metric(m, "outrider_logs_read_bytes_total", "Bytes read.", OTR_METRIC_COUNTER, by_source);
    m->m.malformed = metric(m, "outrider_logs_malformed_lines_total",
                            "Lines that did not match the format, passed on raw.", OTR_METRIC_COUNTER, by_source);
    m->m.dropped = metric(m, "outrider_logs_dropped_records_total",
                          "Records dropped: by the filter, or with the buffer full (bus only).", OTR_METRIC_COUNTER,
                          by_reason);
    m->m.filter_errors = metric(m, "outrider_logs_filter_errors_total",
                                "Filter calls that failed and took the fallback.", OTR_METRIC_COUNTER, NULL);
    m->m.shipped = metric(m, "outrider_logs_shipped_records_total", "Records acknowledged by an output.",
                          OTR_METRIC_COUNTER, by_output);
    m->m.shipped_bytes = metric(m, "outrider_logs_shipped_bytes_total", "Bytes acknowledged by an output.",
                                OTR_METRIC_COUNTER, by_output);
    m->m.retries = metric(m, "outrider_logs_output_retries_total", "Batches retried after a failure.",
                          OTR_METRIC_COUNTER, by_output);
    m->m.failures = metric(m, "outrider_logs_output_failures_total", "Batch attempts that failed.",
                           OTR_METRIC_COUNTER, by_output);
    m->m.files = metric(m, "outrider_logs_files_watched", "Files open for tailing.", OTR_METRIC_GAUGE, NULL);
    m->m.lag = metric(m, "outrider_logs_lag_bytes", "Bytes written to tailed files and not read yet.",
                      OTR_METRIC_GAUGE, NULL);
    m->m.buffer = metric(m, "outrider_logs_buffer_bytes", "Memory held by buffered records.", OTR_METRIC_GAUGE,
                         NULL);
    m->m.spool = metric(m, "outrider_logs_spool_bytes", "Buffered records on disk (spool).", OTR_METRIC_GAUGE,
                        NULL);
}

static int logs_init(otr_ctx *ctx, const void *conf)
{
    const struct logs_conf *c = conf;
    const struct otr_host *h = ctx->host;
    struct logs_mod *m = calloc(1, sizeof *m);
    if (!m)
        return UV_ENOMEM;
    m->ctx = ctx;
    m->host = h;
    m->conf = c;
    h->set_data(ctx, m);
    m->role_name = h->role(ctx) == OTR_ROLE_NODE ? "node" : "sidecar";
    const char *node = h->node_name(ctx);
    if (node && *node)
        snprintf(m->node, sizeof m->node, "%s", node);
    m->n_pipes = h->n_workers(ctx);
    m->pipes = calloc(m->n_pipes, sizeof *m->pipes);
    m->n_outs = c->outputs.n;
    m->outs = calloc(m->n_outs + 1, sizeof *m->outs);
    if (!m->pipes || !m->outs)
        return UV_ENOMEM;
    for (size_t i = 0; i < m->n_outs; i++) {
        const struct logs_output_item *o = &OTR_CONF_AT(c->outputs, struct logs_output_item, i);
        struct logs_output_conf *oc = &m->outs[i];
        char name[80];
        if (o->name && *o->name)
            snprintf(name, sizeof name, "%s", o->name);
        else
            snprintf(name, sizeof name, "%s%zu", kind_names[o->type], i);
        oc->name = strdup(name);
        oc->kind = (enum logs_out_kind)o->type;
        oc->path = o->path;
        oc->host = o->address.host;
        oc->port = o->address.port;
        oc->http_path = o->http_path;
        oc->http_format = (enum logs_http_format)o->http_format;
        oc->loki_labels = o->loki_labels;
        oc->syslog_app = o->syslog_app && *o->syslog_app ? o->syslog_app : "outrider";
        oc->syslog_host = m->node[0] ? m->node : "-";
        oc->batch_size = (size_t)o->batch_size;
        oc->timeout_ms = o->timeout;
        oc->keepalive_ms = o->http_keepalive;
        oc->retry_min_ms = o->retry_min;
        oc->retry_max_ms = o->retry_max;
    }
    if (c->files.paths.n) {
        const char *dir = h->state_dir(ctx);
        if (dir) {
            size_t n = strlen(dir) + 16;
            m->ckpt_path = malloc(n);
            m->lock_path = malloc(n);
            if (!m->ckpt_path || !m->lock_path)
                return UV_ENOMEM;
            snprintf(m->ckpt_path, n, "%s/checkpoints", dir);
            snprintf(m->lock_path, n, "%s/tailer.lock", dir);
        } else {
            h->log(ctx, OTR_LOG_WARN,
                   "no state_dir configured: file positions are not kept across restarts (lines may be read again)");
        }
    }
    if (c->buffer.spool.enabled) {
        const char *dir = h->state_dir(ctx);
        size_t n = strlen(dir) + 8;
        m->spool_base = malloc(n);
        if (!m->spool_base)
            return UV_ENOMEM;
        snprintf(m->spool_base, n, "%s/spool", dir);
    }
    if (c->filter.script && *c->filter.script) {
        int rc = h->hook_declare(ctx, "filter.script", c->filter.script, c->filter.function, &m->filter);
        if (rc)
            return rc;
    }
    if (c->forward_input.enabled) {
        int rc = h->listener_open(ctx, "forward", &c->forward_input.address, SOCK_STREAM, &m->fwd_listener);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < c->bus_streams.n; i++) {
        int rc = h->bus_subscribe(ctx, OTR_CONF_AT(c->bus_streams, char *, i), logs_pipe_on_bus, m, NULL);
        if (rc)
            return rc;
    }
    register_metrics(m);
    return 0;
}

static int logs_start(otr_ctx *ctx, otr_worker *w)
{
    return logs_pipe_start(ctx->host->data(ctx), w);
}

static void logs_drain(otr_ctx *ctx, otr_worker *w, uint64_t deadline_ms)
{
    logs_pipe_drain(ctx->host->data(ctx), w, deadline_ms);
}

static void logs_fini(otr_ctx *ctx)
{
    mod_free(ctx->host->data(ctx));
    ctx->host->set_data(ctx, NULL);
}

OTR_MODULE_EXPORT const struct otr_module otr_module_logs = {
    .magic = OTR_MODULE_MAGIC,
    .abi_major = OTR_ABI_MAJOR,
    .abi_minor = OTR_ABI_MINOR,
    .size = sizeof(struct otr_module),
    .build_sig = OTR_BUILD_SIG,
    .name = "logs",
    .version = "0.1.0",
    .summary = "tail container logs, filter them with Lua and ship them, at least once",
    .roles = OTR_ROLE_ANY,
    .conf = logs_fields,
    .conf_size = sizeof(struct logs_conf),
    .check = logs_check,
    .init = logs_init,
    .start = logs_start,
    .drain = logs_drain,
    .fini = logs_fini,
};

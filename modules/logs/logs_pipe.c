/*
 * logs_pipe: one worker's pipeline. Worker 0 tails the files; every worker
 * takes the bus records published on it and the forward connections it
 * accepts. Each worker has its own queue and outputs, so nothing here is
 * shared between threads.
 *
 *   tailer -> parser (per file) -> metadata -> Lua filter -> queue -> outputs
 *   bus streams (e.g. "access") -------------^        forward input -^
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <time.h>

#include "logs.h"
#include "logs_encode.h"
#include "logs_filter.h"
#include "logs_forward_in.h"
#include "logs_json.h"
#include "logs_parser.h"
#include "logs_queue.h"
#include "logs_replay.h"
#include "logs_tail.h"
#include "logs_time.h"

enum { SRC_FILES = 0, SRC_BUS, SRC_FORWARD, SRC_N };
static const char *const src_names[SRC_N] = {"files", "bus", "forward"};

#define META_MAX 8

/* Per tailed file. */
struct logs_src {
    struct logs_pipe *pipe;
    struct logs_file *f;
    struct logs_parser parser;
    bool parser_ok;
    struct logs_buf meta;          /* ,"key":"value" JSON fragment */
    struct logs_kv kv[META_MAX];   /* the same for Lua */
    char *kv_text[META_MAX];       /* owned strings of kv */
    size_t n_kv;
    uint64_t last_line_ms;
};

struct counters {
    uint64_t lines, bytes, malformed, dropped_filter, dropped_full, filter_errors;
};

struct logs_pipe {
    struct logs_mod *m;
    otr_worker *w;
    uv_loop_t *loop;
    struct logs_queue q;
    struct logs_spool spool;
    bool spooling, spool_waiting, spool_logged, orphans_pending, replay_logged;
    int spool_lock_fd;             /* flock on <spool dir>.lock while this pipe owns the dir */
    int *orphan_fds;               /* locks of adopted dirs of workers this process lacks */
    unsigned *orphan_ids;
    size_t n_orphans;
    struct logs_replay replay;     /* what previous processes left in the spool */
    uint64_t dropped_oldest_reported;
    struct logs_output **outs;
    size_t n_outs;
    uv_timer_t flush;
    struct logs_tailer tailer;
    bool tailing, tail_waiting, tail_counted, lock_logged;
    int lock_fd;
    struct logs_fwd_server fwd;
    bool forwarding;
    struct logs_buf enc;
    struct counters c[SRC_N], reported[SRC_N];
    uint64_t *out_reported;        /* 4 per output: shipped, bytes, retries, failures */
    otr_series *s_lines[SRC_N], *s_bytes[SRC_N], *s_malformed[SRC_N], *s_dropped_filter[SRC_N],
        *s_dropped_full[SRC_N], *s_filter_errors;
    otr_series **s_out;            /* 4 per output */
    otr_series *s_files, *s_lag, *s_buffer, *s_spool, *s_dropped_oldest;
    bool draining, finishing, fwd_closed;
    uint64_t deadline_ms;
    int pending_closes;
};

/* Handover of the files between tailers. A reload's new generation, or the
 * new process of a hot upgrade, starts tailing only once the old tailer
 * stopped and saved its last positions, so no line is read twice or
 * skipped: within a process by this count, across processes by an
 * exclusive flock on <state_dir>/logs/tailer.lock held while tailing (it
 * also keeps two agents from sharing a state dir's checkpoints). */
static atomic_uint tailers_live;

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- file positions as queue marks ---------------------------------------- */

static void file_mark_ack(void *src, uint64_t a, uint64_t b)
{
    logs_file_ack(src, (uint32_t)b, a);
}
static void file_mark_ref(void *src)
{
    logs_file_ref(src);
}
static void file_mark_unref(void *src)
{
    logs_file_unref(src);
}
static const struct logs_source_ops file_mark_ops = {.ack = file_mark_ack, .ref = file_mark_ref, .kept_by_source = true,
                                                     .unref = file_mark_unref};

/* ---- records ------------------------------------------------------------------ */

/* Filters (if configured) and encodes rec into p->enc; returns false when
 * the record is dropped. */
static bool pipe_encode(struct logs_pipe *p, int source, const struct logs_rec *rec, const struct logs_kv *kv,
                        size_t n_kv, const char *meta, size_t meta_len)
{
    struct logs_mod *m = p->m;
    p->enc.n = 0;
    if (m->filter) {
        struct logs_filter_call call = {.rec = rec, .meta = kv, .n_meta = n_kv, .out = &p->enc};
        int rc = m->host->hook_run(m->filter, p->w, logs_filter_push, logs_filter_pull, 1, &call);
        if (rc == LOGS_FILTER_KEEP)
            return true;
        if (rc == LOGS_FILTER_DROP) {
            p->c[source].dropped_filter++;
            return false;
        }
        p->c[source].filter_errors++;
        if (m->conf->filter.fallback == 1) {
            p->c[source].dropped_filter++;
            return false;
        }
        p->enc.n = 0;
    }
    if (logs_encode_json(&p->enc, rec, meta, meta_len))
        abort();
    return true;
}

static void src_on_record(void *arg, const struct logs_rec *rec)
{
    struct logs_src *s = arg;
    struct logs_pipe *p = s->pipe;
    bool keep = pipe_encode(p, SRC_FILES, rec, s->kv, s->n_kv, s->meta.p, s->meta.n);
    /* A dropped record still moves the file's position. */
    if (logs_queue_push(&p->q, p->enc.p, keep ? p->enc.n : 0, &file_mark_ops, s->f, rec->resume_off, s->f->epoch,
                        uv_now(p->loop)))
        abort();
}

/* ---- metadata from the path ------------------------------------------------------ */

static void src_meta_add(struct logs_src *s, const char *key, const char *value, size_t n)
{
    if (s->n_kv == META_MAX || !n)
        return;
    char *v = strndup(value, n);
    if (!v)
        abort();
    s->kv_text[s->n_kv] = v;
    s->kv[s->n_kv++] = (struct logs_kv){.key = key, .value = v};
    if (logs_meta_add(&s->meta, key, v))
        abort();
}

/* /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log: namespaces and
 * pod names cannot hold '_', so the first and last '_' split the three. */
static bool src_meta_from_pod_path(struct logs_src *s, const char *path)
{
    const char *end = strrchr(path, '/');
    if (!end || end == path)
        return false;
    const char *cstart = end;
    while (cstart > path && cstart[-1] != '/')
        cstart--;
    if (cstart == path || cstart == end)
        return false;
    const char *dend = cstart - 1, *dstart = dend;
    while (dstart > path && dstart[-1] != '/')
        dstart--;
    const char *u1 = memchr(dstart, '_', (size_t)(dend - dstart));
    const char *u2 = u1 ? memrchr(u1 + 1, '_', (size_t)(dend - u1 - 1)) : NULL;
    if (!u1 || !u2 || u1 == dstart || u2 == u1 + 1 || u2 + 1 == dend)
        return false;
    src_meta_add(s, "namespace", dstart, (size_t)(u1 - dstart));
    src_meta_add(s, "pod", u1 + 1, (size_t)(u2 - u1 - 1));
    src_meta_add(s, "pod_uid", u2 + 1, (size_t)(dend - u2 - 1));
    src_meta_add(s, "container", cstart, (size_t)(end - cstart));
    return true;
}

static void src_meta_build(struct logs_src *s, const char *path)
{
    struct logs_mod *m = s->pipe->m;
    enum otr_role role = m->host->role(m->ctx);
    if (!(role == OTR_ROLE_NODE && src_meta_from_pod_path(s, path))) {
        const struct otr_pod *pod = m->host->self_pod(m->ctx);
        if (pod) {
            src_meta_add(s, "namespace", pod->namespace_, strlen(pod->namespace_));
            src_meta_add(s, "pod", pod->name, strlen(pod->name));
        }
    }
    src_meta_add(s, "node", m->node, strlen(m->node));
    src_meta_add(s, "role", m->role_name, strlen(m->role_name));
    src_meta_add(s, "file", path, strlen(path));
}

/* ---- tailer callbacks ------------------------------------------------------------- */

static void src_parser_reset(struct logs_src *s)
{
    const struct logs_files_conf *fc = &s->pipe->m->conf->files;
    if (s->parser_ok)
        logs_parser_fini(&s->parser);
    struct logs_parser_conf pc = {.format = (enum logs_format)fc->format, .max_size = (size_t)fc->max_record_size,
                                  .multiline_start = fc->multiline_start};
    char err[256];
    /* The expression was compiled once in check(): this cannot fail. */
    s->parser_ok = logs_parser_init(&s->parser, &pc, src_on_record, s, err, sizeof err) == 0;
}

static void tail_on_open(void *arg, struct logs_file *f)
{
    struct logs_pipe *p = arg;
    struct logs_src *s = f->user;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            abort();
        s->pipe = p;
        s->f = f;
        f->user = s;
        src_meta_build(s, f->origin);
    }
    src_parser_reset(s);
}

static void tail_on_line(void *arg, struct logs_file *f, const char *line, size_t n, uint64_t start, uint64_t end)
{
    struct logs_pipe *p = arg;
    struct logs_src *s = f->user;
    s->last_line_ms = uv_now(p->loop);
    p->c[SRC_FILES].lines++;
    p->c[SRC_FILES].bytes += end - start;
    uint64_t before = s->parser.malformed;
    logs_parser_line(&s->parser, line, n, start, end, wall_ns());
    p->c[SRC_FILES].malformed += s->parser.malformed - before;
}

static void tail_on_close(void *arg, struct logs_file *f)
{
    struct logs_src *s = f->user;
    if (s && s->parser_ok)
        logs_parser_flush(&s->parser, true);
}

static void tail_on_release(void *arg, struct logs_file *f)
{
    struct logs_src *s = f->user;
    if (!s)
        return;
    if (s->parser_ok)
        logs_parser_fini(&s->parser);
    for (size_t i = 0; i < s->n_kv; i++)
        free(s->kv_text[i]);
    logs_buf_free(&s->meta);
    free(s);
    f->user = NULL;
}

/* ---- queue callbacks: backpressure and wake-ups ------------------------------------ */

static void queue_on_full(void *arg, struct logs_queue *q)
{
    struct logs_pipe *p = arg;
    if (p->tailing)
        logs_tailer_pause(&p->tailer);
    if (p->forwarding)
        logs_fwd_server_pause(&p->fwd);
}

static void queue_on_space(void *arg, struct logs_queue *q)
{
    struct logs_pipe *p = arg;
    if (p->tailing && !p->draining)
        logs_tailer_resume(&p->tailer);
    if (p->forwarding && !p->draining)
        logs_fwd_server_resume(&p->fwd);
}

static void queue_on_sealed(void *arg, struct logs_queue *q)
{
    struct logs_pipe *p = arg;
    for (size_t i = 0; i < p->n_outs; i++)
        if (p->outs[i])
            logs_output_kick(p->outs[i]);
}

/* ---- metrics ------------------------------------------------------------------------ */

static void pipe_series(struct logs_pipe *p)
{
    struct logs_mod *m = p->m;
    const struct otr_host *h = m->host;
    for (int i = 0; i < SRC_N; i++) {
        const char *one[] = {src_names[i]};
        const char *full[] = {src_names[i], "buffer_full"}, *filt[] = {src_names[i], "filter"};
        p->s_lines[i] = m->m.lines ? h->series(m->m.lines, p->w, one) : NULL;
        p->s_bytes[i] = m->m.bytes ? h->series(m->m.bytes, p->w, one) : NULL;
        p->s_malformed[i] = m->m.malformed ? h->series(m->m.malformed, p->w, one) : NULL;
        p->s_dropped_full[i] = m->m.dropped ? h->series(m->m.dropped, p->w, full) : NULL;
        p->s_dropped_filter[i] = m->m.dropped ? h->series(m->m.dropped, p->w, filt) : NULL;
    }
    p->s_filter_errors = m->m.filter_errors ? h->series(m->m.filter_errors, p->w, NULL) : NULL;
    p->s_out = calloc(p->n_outs * 4 + 1, sizeof *p->s_out);
    p->out_reported = calloc(p->n_outs * 4 + 1, sizeof *p->out_reported);
    if (!p->s_out || !p->out_reported)
        abort();
    otr_metric *fam[4] = {m->m.shipped, m->m.shipped_bytes, m->m.retries, m->m.failures};
    for (size_t i = 0; i < p->n_outs; i++) {
        const char *lv[] = {m->outs[i].name};
        for (int k = 0; k < 4; k++)
            p->s_out[i * 4 + k] = fam[k] ? h->series(fam[k], p->w, lv) : NULL;
    }
    p->s_files = m->m.files ? h->series(m->m.files, p->w, NULL) : NULL;
    p->s_lag = m->m.lag ? h->series(m->m.lag, p->w, NULL) : NULL;
    p->s_buffer = m->m.buffer ? h->series(m->m.buffer, p->w, NULL) : NULL;
    p->s_spool = m->m.spool ? h->series(m->m.spool, p->w, NULL) : NULL;
    const char *oldest[] = {"any", "drop_oldest"};
    p->s_dropped_oldest = m->m.dropped ? h->series(m->m.dropped, p->w, oldest) : NULL;
}

static void add_delta(const struct otr_host *h, otr_series *s, uint64_t now, uint64_t *reported)
{
    if (s && now > *reported)
        h->counter_add(s, (double)(now - *reported));
    *reported = now;
}

/* Counters are kept in plain fields on the hot path and published here,
 * on the flush timer, so a line costs no registry call. */
static void pipe_publish_metrics(struct logs_pipe *p)
{
    const struct otr_host *h = p->m->host;
    if (p->forwarding) {
        p->c[SRC_FORWARD].lines = p->fwd.lines;
        p->c[SRC_FORWARD].bytes = p->fwd.bytes;
        p->c[SRC_FORWARD].malformed = p->fwd.malformed;
    }
    for (int i = 0; i < SRC_N; i++) {
        add_delta(h, p->s_lines[i], p->c[i].lines, &p->reported[i].lines);
        add_delta(h, p->s_bytes[i], p->c[i].bytes, &p->reported[i].bytes);
        add_delta(h, p->s_malformed[i], p->c[i].malformed, &p->reported[i].malformed);
        add_delta(h, p->s_dropped_filter[i], p->c[i].dropped_filter, &p->reported[i].dropped_filter);
        add_delta(h, p->s_dropped_full[i], p->c[i].dropped_full, &p->reported[i].dropped_full);
        add_delta(h, p->s_filter_errors, p->c[i].filter_errors, &p->reported[i].filter_errors);
    }
    for (size_t i = 0; i < p->n_outs; i++) {
        struct logs_output *o = p->outs[i];
        if (!o)
            continue;
        uint64_t now[4] = {o->shipped_records, o->shipped_bytes, o->retries, o->failures};
        for (int k = 0; k < 4; k++)
            add_delta(h, p->s_out[i * 4 + k], now[k], &p->out_reported[i * 4 + k]);
    }
    if (p->tailing) {
        if (p->s_files)
            h->gauge_set(p->s_files, (double)logs_tailer_count(&p->tailer));
        if (p->s_lag)
            h->gauge_set(p->s_lag, (double)logs_tailer_lag(&p->tailer));
    }
    if (p->s_buffer)
        h->gauge_set(p->s_buffer, (double)p->q.mem_bytes);
    if (p->s_spool)
        h->gauge_set(p->s_spool, (double)(p->spooling ? p->spool.bytes : 0));
    /* Records dropped with whole chunks by drop_oldest; drop_newest drops
     * are counted where they happen. */
    if (p->m->conf->buffer.spool.full_policy == LOGS_DROP_OLDEST)
        add_delta(h, p->s_dropped_oldest, p->q.dropped_records, &p->dropped_oldest_reported);
}

/* ---- the flush timer: time-based batching, multiline timeouts, metrics, drain ------- */

static void pipe_finish(struct logs_pipe *p);
static int pipe_tail_start(struct logs_pipe *p);
static int pipe_spool_start(struct logs_pipe *p);
static void pipe_orphans_adopt(struct logs_pipe *p);
static void pipe_replay_pump(struct logs_pipe *p);
static void pipe_on_acked(void *arg, struct logs_output *o, uint32_t records, size_t bytes);
static void pipe_on_output_state(void *arg, struct logs_output *o, unsigned attempt);

static void pipe_on_flush(uv_timer_t *t)
{
    struct logs_pipe *p = t->data;
    uint64_t now = uv_now(p->loop);
    const struct logs_conf *c = p->m->conf;
    if (p->tailing && c->files.multiline_start && *c->files.multiline_start) {
        for (struct logs_file *f = p->tailer.files; f; f = f->next) {
            struct logs_src *s = f->user;
            if (s && s->parser_ok && s->parser.ml.active && now - s->last_line_ms >= c->files.multiline_timeout)
                logs_parser_flush(&s->parser, false);
        }
    }
    if (p->tail_waiting && !p->draining && atomic_load(&tailers_live) == 0)
        pipe_tail_start(p); /* errors were logged; the pipe goes on without files */
    if (p->spool_waiting && !p->draining)
        pipe_spool_start(p); /* errors were logged; the pipe goes on in memory */
    if (p->orphans_pending && !p->draining)
        pipe_orphans_adopt(p);
    if (p->spooling && !p->draining)
        pipe_replay_pump(p);
    struct logs_chunk *tail = p->q.tail;
    if (tail && !tail->sealed && (p->draining || now - tail->opened_ms >= c->buffer.flush_interval))
        logs_queue_seal(&p->q);
    pipe_publish_metrics(p);
    if (p->draining && !p->finishing && (!p->forwarding || p->fwd_closed) &&
        (logs_queue_empty(&p->q) || now >= p->deadline_ms))
        pipe_finish(p);
}

/* ---- bus records ----------------------------------------------------------------------- */

static int append_field(struct logs_buf *b, const struct otr_field *f)
{
    char num[48];
    int n;
    if (logs_buf_append(b, ",\"", 2) || logs_json_escape(b, f->key, strlen(f->key)) || logs_buf_append(b, "\":", 2))
        return -1;
    switch (f->type) {
    case OTR_VAL_STR:
        return logs_buf_append(b, "\"", 1) || logs_json_escape(b, f->v.s.ptr, f->v.s.len) ||
               logs_buf_append(b, "\"", 1);
    case OTR_VAL_INT: n = snprintf(num, sizeof num, "%lld", (long long)f->v.i); break;
    case OTR_VAL_DOUBLE:
        n = f->v.d == f->v.d && f->v.d - f->v.d == 0 ? snprintf(num, sizeof num, "%.17g", f->v.d)
                                                    : snprintf(num, sizeof num, "null");
        break;
    case OTR_VAL_BOOL: n = snprintf(num, sizeof num, "%s", f->v.b ? "true" : "false"); break;
    default: n = snprintf(num, sizeof num, "null");
    }
    return logs_buf_append(b, num, (size_t)n);
}

void logs_pipe_on_bus(void *arg, otr_worker *w, const char *stream, const struct otr_record *rec)
{
    struct logs_mod *m = arg;
    if (!w)
        return; /* published from the main thread: no pipeline there */
    unsigned i = m->host->worker_index(w);
    struct logs_pipe *p = i < m->n_pipes ? m->pipes[i] : NULL;
    /* Core makes a generation's subscriptions inactive before it drains
     * it (a newer generation's, or none at shutdown), so a draining pipe is
     * never offered a record; this only guards the invariant. */
    if (!p || p->draining)
        return;
    p->c[SRC_BUS].lines++;
    /* The bus cannot wait: when the buffer is full the drop policy either
     * drops this record or the oldest chunk nobody is sending; counted. */
    if (p->q.full && !logs_queue_make_room(&p->q)) {
        p->c[SRC_BUS].dropped_full++;
        return;
    }
    struct logs_buf *b = &p->enc;
    b->n = 0;
    uint64_t time_ns = rec->time_ns ? rec->time_ns : wall_ns();
    if (m->filter) {
        struct logs_kv kv[2] = {{"node", m->node}, {"role", m->role_name}};
        struct logs_filter_call call = {.time_ns = time_ns, .source = stream, .fields = rec->fields,
                                        .n_fields = rec->n_fields, .meta = m->node[0] ? kv : kv + 1,
                                        .n_meta = m->node[0] ? 2 : 1, .out = b};
        int frc = m->host->hook_run(m->filter, p->w, logs_filter_push, logs_filter_pull, 1, &call);
        if (frc == LOGS_FILTER_DROP || (frc < 0 && m->conf->filter.fallback == 1)) {
            p->c[SRC_BUS].filter_errors += frc < 0;
            p->c[SRC_BUS].dropped_filter++;
            return;
        }
        if (frc == LOGS_FILTER_KEEP) {
            p->c[SRC_BUS].bytes += b->n;
            if (logs_queue_push(&p->q, b->p, b->n, NULL, NULL, 0, 0, uv_now(p->loop)))
                p->c[SRC_BUS].dropped_full++;
            return;
        }
        p->c[SRC_BUS].filter_errors++;
        b->n = 0;
    }
    char t[LOGS_TIME_LEN];
    logs_time_format(time_ns, t);
    int rc = logs_buf_append(b, "{\"time\":\"", 9) || logs_buf_append(b, t, LOGS_TIME_LEN) ||
             logs_buf_append(b, "\",\"source\":\"", 12) || logs_json_escape(b, stream, strlen(stream)) ||
             logs_buf_append(b, "\"", 1);
    for (size_t k = 0; k < rec->n_fields && !rc; k++)
        rc = append_field(b, &rec->fields[k]);
    struct logs_buf meta = {0};
    if (!rc && m->node[0])
        rc = logs_meta_add(&meta, "node", m->node);
    if (!rc)
        rc = logs_meta_add(&meta, "role", m->role_name);
    if (!rc)
        rc = logs_buf_append(b, meta.p, meta.n) || logs_buf_append(b, "}\n", 2);
    logs_buf_free(&meta);
    p->c[SRC_BUS].bytes += b->n;
    if (rc || logs_queue_push(&p->q, b->p, b->n, NULL, NULL, 0, 0, uv_now(p->loop)))
        p->c[SRC_BUS].dropped_full++;
}

/* ---- start -------------------------------------------------------------------------------- */

int logs_pipe_start(struct logs_mod *m, otr_worker *w)
{
    const struct otr_host *h = m->host;
    const struct logs_conf *c = m->conf;
    unsigned index = h->worker_index(w);
    struct logs_pipe *p = calloc(1, sizeof *p);
    if (!p)
        return UV_ENOMEM;
    m->pipes[index] = p;
    p->m = m;
    p->w = w;
    p->lock_fd = -1;
    p->spool_lock_fd = -1;
    logs_replay_init(&p->replay);
    p->loop = h->loop(w);
    p->n_outs = m->n_outs;
    logs_queue_init(&p->q, (size_t)c->buffer.memory_limit, (size_t)c->buffer.chunk_size, m->n_outs);
    p->q.on_full = queue_on_full;
    p->q.on_space = queue_on_space;
    p->q.on_sealed = queue_on_sealed;
    p->q.arg = p;
    p->outs = calloc(m->n_outs + 1, sizeof *p->outs);
    if (!p->outs)
        abort();
    /* The flush timer first: from here on a failed start still drains
     * (core calls drain after a failed start), closing what exists. */
    uv_timer_init(p->loop, &p->flush);
    p->flush.data = p;
    uint64_t every = c->buffer.flush_interval < 50 ? c->buffer.flush_interval : 50;
    uv_timer_start(&p->flush, pipe_on_flush, every ? every : 1, every ? every : 1);
    pipe_series(p);
    if (m->spool_base)
        p->spool_waiting = true;
    for (size_t i = 0; i < m->n_outs; i++) {
        char err[256];
        int rc = logs_output_new(p->loop, &p->q, i, &m->outs[i], &p->outs[i], err, sizeof err);
        if (rc) {
            h->log(m->ctx, OTR_LOG_ERROR, "output %s: %s", m->outs[i].name, err);
            return rc;
        }
        p->outs[i]->on_acked = pipe_on_acked;
        p->outs[i]->on_state = pipe_on_output_state;
        p->outs[i]->arg = p;
    }

    if (p->spool_waiting) {
        int rc = pipe_spool_start(p);
        if (rc)
            return rc;
    }
    if (index == 0 && c->files.paths.n) {
        struct logs_tail_conf tc = {
            .paths = (const char *const *)c->files.paths.items,
            .n_paths = c->files.paths.n,
            .from_head = c->files.start == 0,
            .poll_ms = c->files.poll_interval,
            .rescan_ms = c->files.rescan_interval,
            .rotate_wait_ms = c->files.rotate_wait,
            .checkpoint_ms = c->files.checkpoint_interval,
            .read_size = 64 * 1024,
            .max_line = (size_t)c->files.max_line_size,
            .checkpoint_path = m->ckpt_path,
        };
        struct logs_tail_cb cb = {.open = tail_on_open, .line = tail_on_line, .close = tail_on_close,
                                  .release = tail_on_release, .arg = p};
        int rc = logs_tailer_init(&p->tailer, p->loop, &tc, &cb);
        if (rc)
            return rc;
        p->tailing = true;
        p->tail_waiting = true;
        if (atomic_load(&tailers_live) == 0 && (rc = pipe_tail_start(p)))
            return rc;
    }
    if (m->fwd_listener) {
        uv_os_sock_t fd;
        int rc = h->listener_socket(m->fwd_listener, w, &fd);
        if (!rc)
            rc = logs_fwd_server_open(&p->fwd, p->loop, fd, &p->q, (size_t)c->forward_input.max_frame);
        p->forwarding = true;
        if (rc) {
            h->log(m->ctx, OTR_LOG_ERROR, "forward input: %s", uv_strerror(rc));
            return rc;
        }
    }
    return 0;
}

/* Loads the checkpoint and starts reading (now, or once the previous
 * generation's tailer stopped: see tailers_live). */
static int pipe_tail_start(struct logs_pipe *p)
{
    struct logs_mod *m = p->m;
    if (m->lock_path) {
        int fd = open(m->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            m->host->log(m->ctx, OTR_LOG_ERROR, "cannot open %s: %s", m->lock_path, strerror(errno));
            return -errno;
        }
        if (flock(fd, LOCK_EX | LOCK_NB)) {
            close(fd);
            if (!p->lock_logged)
                m->host->log(m->ctx, OTR_LOG_INFO, "waiting for the previous tailer to release %s", m->lock_path);
            p->lock_logged = true;
            return 0; /* still waiting: the flush timer tries again */
        }
        p->lock_fd = fd;
    }
    p->tail_waiting = false;
    atomic_fetch_add(&tailers_live, 1);
    p->tail_counted = true; /* its stop callback counts down */
    int rc = logs_tailer_start(&p->tailer);
    if (rc)
        m->host->log(m->ctx, OTR_LOG_ERROR, "cannot start tailing (checkpoint %s): %s",
                     m->ckpt_path ? m->ckpt_path : "-", uv_strerror(rc));
    return rc;
}

/* ---- the spool: owned per directory, replayed after a restart ----------------------------- */

/* Takes an exclusive flock on path. Returns the descriptor, -1 while
 * another holder has it, or -errno. */
static int lock_take(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? -1 : -e;
    }
    return fd;
}

/* Opens this worker's spool directory once nobody else owns it: a hot
 * upgrade's old process, or a reload's old generation, keeps its spool
 * (and writes to it while draining) until it is freed; then this pipe
 * replays what it left and appends new segments after them. Until then
 * records stay in memory. */
static int pipe_spool_start(struct logs_pipe *p)
{
    struct logs_mod *m = p->m;
    const struct logs_conf *c = m->conf;
    unsigned index = m->host->worker_index(p->w);
    char dir[4096], lock[4200];
    snprintf(dir, sizeof dir, "%s-%u", m->spool_base, index);
    snprintf(lock, sizeof lock, "%s.lock", dir);
    int fd = lock_take(lock);
    if (fd == -1) {
        if (!p->spool_logged)
            m->host->log(m->ctx, OTR_LOG_INFO, "waiting for the previous owner of %s", dir);
        p->spool_logged = true;
        return 0;
    }
    p->spool_waiting = false;
    if (fd < 0) {
        m->host->log(m->ctx, OTR_LOG_ERROR, "spool lock %s: %s", lock, uv_strerror(fd));
        return fd;
    }
    p->spool_lock_fd = fd;
    int rc = logs_replay_add_dir(&p->replay, dir);
    if (!rc)
        rc = logs_spool_open(&p->spool, dir, c->buffer.spool.max_size, c->buffer.spool.segment_size);
    if (rc) {
        m->host->log(m->ctx, OTR_LOG_ERROR, "spool %s: %s", dir, uv_strerror(rc));
        logs_spool_close(&p->spool);
        return rc;
    }
    p->spooling = true;
    p->spool.sync = c->buffer.spool.sync == LOGS_SPOOL_SYNC_BATCH;
    logs_queue_set_spool(&p->q, &p->spool, c->buffer.spool.full_policy);
    p->orphans_pending = index == 0;
    if (p->orphans_pending)
        pipe_orphans_adopt(p);
    if (logs_replay_pending(&p->replay))
        m->host->log(m->ctx, OTR_LOG_INFO, "replaying %zu spool segment(s) left in %s", p->replay.n_segs, dir);
    pipe_replay_pump(p);
    return 0;
}

static bool orphan_known(const struct logs_pipe *p, unsigned id)
{
    for (size_t i = 0; i < p->n_orphans; i++)
        if (p->orphan_ids[i] == id)
            return true;
    return false;
}

/* Worker 0 replays the spool directories of workers this process does not
 * have (the previous one ran more), once their owner let go. */
static void pipe_orphans_adopt(struct logs_pipe *p)
{
    struct logs_mod *m = p->m;
    char base[4096];
    snprintf(base, sizeof base, "%s", m->spool_base);
    char *slash = strrchr(base, '/');
    if (!slash)
        return;
    *slash = 0;
    const char *prefix = slash + 1;
    size_t plen = strlen(prefix);
    DIR *d = opendir(base);
    if (!d)
        return;
    bool waiting = false;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, plen) || e->d_name[plen] != '-')
            continue;
        char *end;
        unsigned long id = strtoul(e->d_name + plen + 1, &end, 10);
        if (*end || end == e->d_name + plen + 1 || id < m->n_pipes || id > 65535 || orphan_known(p, (unsigned)id))
            continue;
        char dir[4400], lock[4500];
        snprintf(dir, sizeof dir, "%s/%s", base, e->d_name);
        snprintf(lock, sizeof lock, "%s.lock", dir);
        int fd = lock_take(lock);
        if (fd == -1) {
            waiting = true;
            continue;
        }
        if (fd < 0) {
            m->host->log(m->ctx, OTR_LOG_ERROR, "spool lock %s: %s", lock, uv_strerror(fd));
            continue;
        }
        int *fds = realloc(p->orphan_fds, (p->n_orphans + 1) * sizeof *fds);
        unsigned *ids = fds ? realloc(p->orphan_ids, (p->n_orphans + 1) * sizeof *ids) : NULL;
        if (fds)
            p->orphan_fds = fds;
        if (!ids)
            abort();
        p->orphan_ids = ids;
        p->orphan_fds[p->n_orphans] = fd;
        p->orphan_ids[p->n_orphans++] = (unsigned)id;
        int rc = logs_replay_add_dir(&p->replay, dir);
        if (rc)
            m->host->log(m->ctx, OTR_LOG_ERROR, "spool %s: %s", dir, uv_strerror(rc));
        else
            m->host->log(m->ctx, OTR_LOG_INFO, "replaying the spool left in %s", dir);
    }
    closedir(d);
    p->orphans_pending = waiting;
}

/* Feeds old segments to the queue while it has room (a bounded number of
 * frames per tick, so the loop stays responsive). */
static void pipe_replay_pump(struct logs_pipe *p)
{
    if (!logs_replay_pending(&p->replay))
        return;
    if (logs_replay_pump(&p->replay, &p->q, 64, uv_now(p->loop)) && !p->replay_logged) {
        p->replay_logged = true;
        struct logs_mod *m = p->m;
        m->host->log(m->ctx, p->replay.bad_frames ? OTR_LOG_WARN : OTR_LOG_INFO,
                     "spool replay: %llu record(s) from %llu frame(s) queued again; %llu damaged or cut frame(s) "
                     "skipped, %llu error(s)",
                     (unsigned long long)p->replay.records, (unsigned long long)p->replay.frames,
                     (unsigned long long)p->replay.bad_frames, (unsigned long long)p->replay.errors);
    }
}

/* ---- drain ---------------------------------------------------------------------------- */

/* checkpoint_interval 0: positions are saved as soon as a batch is
 * acknowledged. */
static void pipe_on_acked(void *arg, struct logs_output *o, uint32_t records, size_t bytes)
{
    struct logs_pipe *p = arg;
    if (p->tailing && p->tailer.ckpt_dirty && p->m->conf->files.checkpoint_interval == 0)
        logs_tailer_checkpoint(&p->tailer);
}

/* One warning when an output starts failing, one every 100 attempts while
 * it keeps failing, one when it delivers again: enough to see an outage
 * without flooding the log (the counters have every attempt). */
static void pipe_on_output_state(void *arg, struct logs_output *o, unsigned attempt)
{
    struct logs_pipe *p = arg;
    const struct otr_host *h = p->m->host;
    if (attempt == 0)
        h->log(p->m->ctx, OTR_LOG_INFO, "output %s: delivering again", o->conf->name);
    else if (attempt == 1 || attempt % 100 == 0)
        h->log(p->m->ctx, OTR_LOG_WARN, "output %s: batch failed (%s), attempt %u; retrying with backoff",
               o->conf->name, o->last_error, attempt);
}

static void pipe_on_closed(struct logs_pipe *p)
{
    if (--p->pending_closes == 0)
        p->m->host->drained(p->m->ctx, p->w);
}

static void pipe_on_output_closed(struct logs_output *o)
{
    pipe_on_closed(o->arg);
}

static void pipe_on_tailer_stopped(struct logs_tailer *t)
{
    struct logs_pipe *p = (struct logs_pipe *)((char *)t - offsetof(struct logs_pipe, tailer));
    if (p->tail_counted)
        atomic_fetch_sub(&tailers_live, 1);
    /* The positions were saved when the tailer stopped: hand over. */
    if (p->lock_fd >= 0) {
        close(p->lock_fd);
        p->lock_fd = -1;
    }
    pipe_on_closed(p);
}

static void pipe_on_fwd_closed(struct logs_fwd_server *s)
{
    ((struct logs_pipe *)((char *)s - offsetof(struct logs_pipe, fwd)))->fwd_closed = true;
}

static void pipe_on_flush_closed(uv_handle_t *h)
{
    pipe_on_closed(h->data);
}

/* Everything delivered (or the deadline passed): save the positions
 * delivered so far and close every handle. What is still queued or held by
 * parsers lies after the checkpoint and is read again after a restart. */
static void pipe_finish(struct logs_pipe *p)
{
    pipe_publish_metrics(p);
    p->finishing = true;
    p->pending_closes = 1 + (p->tailing ? 1 : 0);
    for (size_t i = 0; i < p->n_outs; i++)
        p->pending_closes += p->outs[i] != NULL;
    uv_timer_stop(&p->flush);
    if (p->tailing)
        logs_tailer_stop(&p->tailer, pipe_on_tailer_stopped);
    for (size_t i = 0; i < p->n_outs; i++) {
        if (!p->outs[i])
            continue;
        p->outs[i]->arg = p;
        logs_output_close(p->outs[i], pipe_on_output_closed);
    }
    uv_close((uv_handle_t *)&p->flush, pipe_on_flush_closed);
}

void logs_pipe_drain(struct logs_mod *m, otr_worker *w, uint64_t deadline_ms)
{
    struct logs_pipe *p = m->pipes[m->host->worker_index(w)];
    if (!p) {
        m->host->drained(m->ctx, w);
        return;
    }
    p->draining = true;
    p->deadline_ms = deadline_ms;
    if (p->tailing)
        logs_tailer_pause(&p->tailer);
    if (p->forwarding) {
        /* Stop taking frames. Lines already queued are still delivered;
         * their senders, no longer connected, send them again elsewhere
         * or later (at least once). */
        logs_fwd_server_close(&p->fwd, pipe_on_fwd_closed);
    }
    logs_queue_seal(&p->q);
}

void logs_pipe_free(struct logs_pipe *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_outs; i++)
        if (p->outs[i])
            logs_output_free(p->outs[i]);
    /* The queue before the tailer: undelivered chunks (a drain that hit
     * its deadline) still hold references to the tailer's files. */
    logs_queue_fini(&p->q);
    if (p->tailing)
        logs_tailer_fini(&p->tailer);
    if (p->lock_fd >= 0)
        close(p->lock_fd);
    if (p->spooling)
        logs_spool_close(&p->spool);
    logs_replay_fini(&p->replay);
    /* Only now may the next owner read this pipe's segments. */
    if (p->spool_lock_fd >= 0)
        close(p->spool_lock_fd);
    for (size_t i = 0; i < p->n_orphans; i++)
        close(p->orphan_fds[i]);
    free(p->orphan_fds);
    free(p->orphan_ids);
    logs_buf_free(&p->enc);
    free(p->outs);
    free(p->s_out);
    free(p->out_reported);
    free(p);
}

/*
 * logs_output: batching, acknowledgement and retry, common to all kinds.
 */
#include "logs_output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void output_on_retry(uv_timer_t *h);

int logs_output_new(uv_loop_t *loop, struct logs_queue *q, size_t index, const struct logs_output_conf *conf,
                    struct logs_output **out, char *err, size_t errlen)
{
    struct logs_output *o = calloc(1, sizeof *o);
    if (!o)
        return UV_ENOMEM;
    o->conf = conf;
    o->loop = loop;
    o->q = q;
    o->index = index;
    o->next_seq = q->released_seq;
    uv_timer_init(loop, &o->retry_timer);
    o->retry_timer.data = o;
    int rc = conf->kind == LOGS_OUT_STDOUT || conf->kind == LOGS_OUT_FILE ? logs_out_file_init(o, err, errlen)
                                                                           : logs_out_net_init(o, err, errlen);
    if (rc) {
        /* The timer was never started: closing it needs a loop turn, so
         * the caller gets o back to close like any other output. */
        o->ops = NULL;
    }
    *out = o;
    return rc;
}

/* The backoff before retry number attempt: retry_min doubled per attempt up
 * to retry_max, then a random part of it (full jitter above half), so many
 * agents failing together do not retry in lockstep. */
static uint64_t backoff_ms(const struct logs_output *o)
{
    uint64_t d = o->conf->retry_min_ms ? o->conf->retry_min_ms : 1;
    for (unsigned i = 1; i < o->attempt && d < o->conf->retry_max_ms; i++)
        d *= 2;
    if (d > o->conf->retry_max_ms)
        d = o->conf->retry_max_ms;
    return d / 2 + (uint64_t)rand() % (d / 2 + 1);
}

void logs_output_kick(struct logs_output *o)
{
    if (o->busy || o->waiting_retry || o->closing || !o->ops)
        return;
    struct logs_chunk *c = logs_queue_at(o->q, o->next_seq);
    if (!c)
        return;
    size_t n = 0, bytes = 0, held = 0;
    uint32_t records = 0;
    uint64_t end = o->next_seq;
    /* A batch in flight must stay in memory: it takes at most half of the
     * buffer's share of each output, so the rest can move to the spool.
     * Memory counts the chunks' allocations, not only their bytes: many
     * small chunks (sealed by the flush timer) would otherwise fill the
     * buffer with a batch nothing can move, and the bus would drop. */
    size_t max = o->conf->batch_size;
    size_t share = o->q->mem_limit / (2 * (o->q->n_outputs ? o->q->n_outputs : 1));
    if (max > share)
        max = share;
    for (; c && c->sealed; c = c->next) {
        if (logs_queue_load(o->q, c))
            break; /* a spool read error: the batch ends before it */
        if (n && (bytes + c->data.n > max || held + c->data.cap > share))
            break;
        if (n == o->iov_cap) {
            size_t cap = o->iov_cap ? o->iov_cap * 2 : 16;
            uv_buf_t *iov = realloc(o->iov, cap * sizeof *iov);
            if (!iov)
                break;
            o->iov = iov;
            o->iov_cap = cap;
        }
        o->iov[n++] = uv_buf_init(c->data.p, (unsigned)c->data.n);
        bytes += c->data.n;
        held += c->data.cap;
        records += c->n_records;
        end = c->seq + 1;
    }
    if (!n)
        return;
    o->busy = true;
    o->batch_end = end;
    logs_queue_note_sent(o->q, o->index, end);
    o->batch_records = records;
    o->batch_bytes = bytes;
    if (bytes == 0) {
        /* Only positions (dropped records) moved: nothing to send. */
        logs_output_sent(o, 0, NULL);
        return;
    }
    o->ops->send(o, o->iov, n, bytes, records);
}

void logs_output_sent(struct logs_output *o, int status, const char *why)
{
    o->busy = false;
    if (status == 0) {
        if (o->attempt && o->on_state)
            o->on_state(o->arg, o, 0);
        o->attempt = 0;
        o->next_seq = o->batch_end;
        o->shipped_records += o->batch_records;
        o->shipped_bytes += o->batch_bytes;
        logs_queue_ack(o->q, o->index, o->batch_end);
        /* After the release: the owner may save positions that now
         * include this batch. */
        if (o->on_acked)
            o->on_acked(o->arg, o, o->batch_records, o->batch_bytes);
        logs_output_kick(o);
        return;
    }
    o->failures++;
    snprintf(o->last_error, sizeof o->last_error, "%s", why ? why : uv_strerror(status));
    if (o->closing)
        return;
    o->attempt++;
    o->retries++;
    if (o->on_state)
        o->on_state(o->arg, o, o->attempt);
    o->waiting_retry = true;
    uv_timer_start(&o->retry_timer, output_on_retry, backoff_ms(o), 0);
}

static void output_on_retry(uv_timer_t *h)
{
    struct logs_output *o = h->data;
    o->waiting_retry = false;
    logs_output_kick(o);
}

static void output_on_timer_closed(uv_handle_t *h)
{
    struct logs_output *o = h->data;
    if (o->on_closed)
        o->on_closed(o);
}

static void output_on_kind_closed(struct logs_output *o)
{
    uv_close((uv_handle_t *)&o->retry_timer, output_on_timer_closed);
}

void logs_output_close(struct logs_output *o, void (*on_closed)(struct logs_output *o))
{
    o->closing = true;
    o->on_closed = on_closed;
    uv_timer_stop(&o->retry_timer);
    if (o->ops)
        o->ops->close(o, output_on_kind_closed);
    else
        output_on_kind_closed(o);
}

void logs_output_free(struct logs_output *o)
{
    if (o->ops && o->ops->free)
        o->ops->free(o);
    logs_buf_free(&o->fmt);
    free(o->iov);
    free(o);
}

/*
 * logs_queue: chunks, marks and release in order.
 */
#include "logs_queue.h"

#include <stdlib.h>
#include <uv.h>
#include <string.h>

#define SPARE_MAX 8

void logs_queue_init(struct logs_queue *q, size_t mem_limit, size_t chunk_size, size_t n_outputs)
{
    memset(q, 0, sizeof *q);
    q->mem_limit = mem_limit;
    q->chunk_size = chunk_size;
    q->n_outputs = n_outputs;
    q->acked = calloc(n_outputs ? n_outputs : 1, sizeof *q->acked);
    q->sent = calloc(n_outputs ? n_outputs : 1, sizeof *q->sent);
    if (!q->acked || !q->sent)
        abort();
}

static void chunk_free(struct logs_chunk *c)
{
    logs_buf_free(&c->data);
    free(c->marks);
    free(c->runs);
    free(c);
}

void logs_queue_fini(struct logs_queue *q)
{
    while (q->head) {
        struct logs_chunk *c = q->head;
        q->head = c->next;
        for (size_t i = 0; i < c->n_marks; i++)
            c->marks[i].ops->unref(c->marks[i].src);
        chunk_free(c);
    }
    while (q->spare) {
        struct logs_chunk *c = q->spare;
        q->spare = c->next;
        chunk_free(c);
    }
    free(q->acked);
    free(q->sent);
    q->acked = q->sent = NULL;
}

void logs_queue_set_spool(struct logs_queue *q, struct logs_spool *spool, int drop_policy)
{
    q->spool = spool;
    q->drop_policy = drop_policy;
}

void logs_queue_note_sent(struct logs_queue *q, size_t output, uint64_t seq)
{
    if (seq > q->sent[output])
        q->sent[output] = seq;
}

/* Whether some output has c in a batch it is sending. */
static bool in_flight(const struct logs_queue *q, const struct logs_chunk *c)
{
    for (size_t i = 0; i < q->n_outputs; i++)
        if (c->seq >= q->acked[i] && c->seq < q->sent[i])
            return true;
    return false;
}

/* Writes c to the spool (it stays in memory too). Returns 0 or an error. */
static int chunk_to_disk(struct logs_queue *q, struct logs_chunk *c)
{
    int rc = logs_spool_write(q->spool, c->runs, c->n_runs, c->data.p, c->data.n, &c->seg, &c->seg_frame,
                              &c->seg_off);
    if (rc)
        return rc;
    c->on_disk = true;
    c->len = c->data.n;
    return 0;
}

/* Moves sealed chunks nobody is sending to the spool until memory is back
 * under half the limit (or the spool is full). */
static void spill(struct logs_queue *q)
{
    for (struct logs_chunk *c = q->head; c && q->mem_bytes > q->mem_limit / 2; c = c->next) {
        if (!c->sealed || !c->in_memory || in_flight(q, c))
            continue;
        if (!c->on_disk && chunk_to_disk(q, c))
            return;
        q->mem_bytes -= c->data.cap;
        logs_buf_free(&c->data);
        c->in_memory = false;
        q->spilled++;
    }
}

int logs_queue_load(struct logs_queue *q, struct logs_chunk *c)
{
    if (c->in_memory)
        return 0;
    if (logs_buf_reserve(&c->data, c->len))
        return UV_ENOMEM;
    int rc = logs_spool_read(q->spool, c->seg, c->seg_off, c->data.p, c->len);
    if (rc)
        return rc;
    c->data.n = c->len;
    c->in_memory = true;
    q->mem_bytes += c->data.cap;
    return 0;
}

static bool has_room(const struct logs_queue *q)
{
    if (q->mem_bytes < q->mem_limit / 2)
        return true;
    return q->spool && q->spool->bytes + 2 * q->chunk_size <= q->spool->max_size && q->mem_bytes < q->mem_limit;
}

static void seal(struct logs_queue *q, struct logs_chunk *c)
{
    c->sealed = true;
    /* Records nobody else keeps go to disk now, so a restart or a crash
     * finds them (without a spool, or with it full, they live in memory
     * only: counted). */
    if (q->spool && c->n_runs && chunk_to_disk(q, c))
        q->spool_errors++;
    if (q->on_sealed)
        q->on_sealed(q->arg, q);
}

static struct logs_chunk *chunk_new(struct logs_queue *q, uint64_t now_ms)
{
    struct logs_chunk *c = q->spare;
    if (c) {
        q->spare = c->next;
        q->n_spare--;
    } else {
        c = calloc(1, sizeof *c);
        if (!c || logs_buf_reserve(&c->data, q->chunk_size)) {
            free(c);
            return NULL;
        }
    }
    c->next = NULL;
    c->seq = q->next_seq++;
    c->data.n = 0;
    c->n_records = 0;
    c->n_marks = 0;
    c->n_runs = 0;
    c->sealed = false;
    c->in_memory = true;
    c->on_disk = false;
    c->opened_ms = now_ms;
    q->mem_bytes += c->data.cap;
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    return c;
}

static int add_mark(struct logs_chunk *c, const struct logs_source_ops *ops, void *src, uint64_t a, uint64_t b)
{
    /* Records of one source come in order: its last mark just moves. */
    for (size_t i = c->n_marks; i-- > 0;) {
        if (c->marks[i].src == src) {
            c->marks[i].a = a;
            c->marks[i].b = b;
            return 0;
        }
    }
    if (c->n_marks == c->cap_marks) {
        size_t cap = c->cap_marks ? c->cap_marks * 2 : 4;
        struct logs_mark *m = realloc(c->marks, cap * sizeof *m);
        if (!m)
            return -1;
        c->marks = m;
        c->cap_marks = cap;
    }
    ops->ref(src);
    c->marks[c->n_marks++] = (struct logs_mark){.ops = ops, .src = src, .a = a, .b = b};
    return 0;
}

/* Records the bytes [off, off + n) as to be replayed after a restart. */
static int add_run(struct logs_chunk *c, size_t off, size_t n)
{
    if (c->n_runs && c->runs[2 * c->n_runs - 2] + c->runs[2 * c->n_runs - 1] == off) {
        c->runs[2 * c->n_runs - 1] += (uint32_t)n;
        return 0;
    }
    if (c->n_runs == c->cap_runs) {
        uint32_t cap = c->cap_runs ? c->cap_runs * 2 : 4;
        uint32_t *r = realloc(c->runs, 2 * cap * sizeof *r);
        if (!r)
            return -1;
        c->runs = r;
        c->cap_runs = cap;
    }
    c->runs[2 * c->n_runs] = (uint32_t)off;
    c->runs[2 * c->n_runs + 1] = (uint32_t)n;
    c->n_runs++;
    return 0;
}

int logs_queue_push(struct logs_queue *q, const char *line, size_t n, const struct logs_source_ops *ops, void *src,
                    uint64_t a, uint64_t b, uint64_t now_ms)
{
    struct logs_chunk *c = q->tail;
    if (c && !c->sealed && c->data.n && c->data.n + n > q->chunk_size)
        seal(q, c);
    if (!c || c->sealed) {
        c = chunk_new(q, now_ms);
        if (!c)
            return -1;
    }
    size_t cap = c->data.cap, at = c->data.n;
    if ((n && logs_buf_append(&c->data, line, n)) || (ops && add_mark(c, ops, src, a, b)))
        return -1;
    if (n && !(ops && ops->kept_by_source) && add_run(c, at, n))
        return -1;
    q->mem_bytes += c->data.cap - cap;
    /* n == 0 moves a source's mark only (a record the filter dropped). */
    if (n) {
        c->n_records++;
        q->records_in++;
        q->bytes_in += n;
    }
    if (c->data.n >= q->chunk_size)
        seal(q, c);
    if (q->mem_bytes >= q->mem_limit && q->spool)
        spill(q);
    if (!q->full && q->mem_bytes >= q->mem_limit) {
        q->full = true;
        if (q->on_full)
            q->on_full(q->arg, q);
    }
    return 0;
}

void logs_queue_seal(struct logs_queue *q)
{
    if (q->tail && !q->tail->sealed && (q->tail->n_records || q->tail->n_marks))
        seal(q, q->tail);
}

struct logs_chunk *logs_queue_at(struct logs_queue *q, uint64_t seq)
{
    for (struct logs_chunk *c = q->head; c; c = c->next)
        if (c->seq >= seq)
            return c->sealed && logs_queue_load(q, c) == 0 ? c : NULL;
    return NULL;
}

/* Takes c out of the list (prev is its predecessor or NULL) and forgets
 * it: its marks are not acknowledged, its records are counted dropped. */
static void drop_chunk(struct logs_queue *q, struct logs_chunk *prev, struct logs_chunk *c)
{
    if (prev)
        prev->next = c->next;
    else
        q->head = c->next;
    if (q->tail == c)
        q->tail = prev;
    for (size_t i = 0; i < c->n_marks; i++)
        c->marks[i].ops->unref(c->marks[i].src);
    if (c->on_disk)
        logs_spool_release(q->spool, c->seg, c->seg_frame, c->len);
    if (c->in_memory)
        q->mem_bytes -= c->data.cap;
    q->dropped_records += c->n_records;
    chunk_free(c);
}

bool logs_queue_make_room(struct logs_queue *q)
{
    if (q->drop_policy == LOGS_DROP_OLDEST) {
        struct logs_chunk *prev = NULL;
        for (struct logs_chunk *c = q->head; c; prev = c, c = c->next) {
            if (c->sealed && !in_flight(q, c)) {
                drop_chunk(q, prev, c);
                return true;
            }
        }
    }
    return false;
}

void logs_queue_ack(struct logs_queue *q, size_t output, uint64_t seq)
{
    if (seq > q->acked[output])
        q->acked[output] = seq;
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < q->n_outputs; i++)
        if (q->acked[i] < min)
            min = q->acked[i];
    while (q->head && q->head->seq < min && q->head->sealed) {
        struct logs_chunk *c = q->head;
        q->head = c->next;
        if (!q->head)
            q->tail = NULL;
        q->released_seq = c->seq + 1;
        for (size_t i = 0; i < c->n_marks; i++) {
            c->marks[i].ops->ack(c->marks[i].src, c->marks[i].a, c->marks[i].b);
            c->marks[i].ops->unref(c->marks[i].src);
        }
        if (c->on_disk)
            logs_spool_release(q->spool, c->seg, c->seg_frame, c->len);
        if (c->in_memory)
            q->mem_bytes -= c->data.cap;
        /* Keep a few chunks of the usual size to avoid malloc churn; an
         * oversized one (a huge record) goes back to the allocator. */
        if (q->n_spare < SPARE_MAX && c->in_memory && c->data.cap <= q->chunk_size * 2) {
            c->next = q->spare;
            q->spare = c;
            q->n_spare++;
        } else {
            chunk_free(c);
        }
    }
    if (q->full && has_room(q)) {
        q->full = false;
        if (q->on_space)
            q->on_space(q->arg, q);
    }
}

bool logs_queue_empty(const struct logs_queue *q)
{
    return q->head == NULL;
}

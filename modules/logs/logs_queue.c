/*
 * logs_queue: chunks, marks and release in order.
 */
#include "logs_queue.h"

#include <stdlib.h>
#include <string.h>

#define SPARE_MAX 8

void logs_queue_init(struct logs_queue *q, size_t mem_limit, size_t chunk_size, size_t n_outputs)
{
    memset(q, 0, sizeof *q);
    q->mem_limit = mem_limit;
    q->chunk_size = chunk_size;
    q->n_outputs = n_outputs;
    q->acked = calloc(n_outputs ? n_outputs : 1, sizeof *q->acked);
    if (!q->acked)
        abort();
}

static void chunk_free(struct logs_chunk *c)
{
    logs_buf_free(&c->data);
    free(c->marks);
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
    q->acked = NULL;
}

static void seal(struct logs_queue *q, struct logs_chunk *c)
{
    c->sealed = true;
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
    c->sealed = false;
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
    size_t cap = c->data.cap;
    if ((n && logs_buf_append(&c->data, line, n)) || (ops && add_mark(c, ops, src, a, b)))
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
            return c->sealed ? c : NULL;
    return NULL;
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
        q->mem_bytes -= c->data.cap;
        /* Keep a few chunks of the usual size to avoid malloc churn; an
         * oversized one (a huge record) goes back to the allocator. */
        if (q->n_spare < SPARE_MAX && c->data.cap <= q->chunk_size * 2) {
            c->next = q->spare;
            q->spare = c;
            q->n_spare++;
        } else {
            chunk_free(c);
        }
    }
    if (q->full && q->mem_bytes < q->mem_limit / 2) {
        q->full = false;
        if (q->on_space)
            q->on_space(q->arg, q);
    }
}

bool logs_queue_empty(const struct logs_queue *q)
{
    return q->head == NULL;
}

/*
 * logs_forward_in: frames from other outriders into the queue, and their
 * acknowledgements back once delivered.
 */
#include "logs_forward_in.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logs_encode.h"
#include "logs_json.h"

#define HEADER_MAX 64

struct logs_fwd_conn {
    struct logs_fwd_conn *next;
    struct logs_fwd_server *s;
    uv_tcp_t tcp;
    struct logs_fwd_parse parse;
    unsigned refs;       /* queue marks + the open socket */
    bool open;
    uint64_t acked;      /* highest seq answered */
};

struct ack_req {
    uv_write_t req;
    char text[32];
};

/* Reads a decimal number of at most 19 digits from [p, end); returns past
 * it, or NULL. (No sscanf: the input is not NUL-terminated.) */
static const char *parse_u64(const char *p, const char *end, uint64_t *v)
{
    const char *s = p;
    uint64_t x = 0;
    while (p < end && *p >= '0' && *p <= '9' && p - s < 19)
        x = x * 10 + (uint64_t)(*p++ - '0');
    if (p == s || (p < end && *p >= '0' && *p <= '9'))
        return NULL;
    *v = x;
    return p;
}

int logs_fwd_parse_feed(struct logs_fwd_parse *p, const char *data, size_t n, size_t max_frame,
                        int (*frame)(void *arg, uint64_t seq, const char *payload, size_t n), void *arg)
{
    if (logs_buf_append(&p->in, data, n))
        return -1;
    size_t pos = 0;
    int rc = 0;
    while (!rc) {
        const char *b = p->in.p + pos;
        size_t avail = p->in.n - pos;
        if (!p->in_payload) {
            const char *nl = memchr(b, '\n', avail < HEADER_MAX ? avail : HEADER_MAX);
            if (!nl) {
                if (avail >= HEADER_MAX)
                    rc = -1;
                break;
            }
            uint64_t seq, len;
            const char *q = b + 5;
            if (avail < 5 || memcmp(b, "OTRF ", 5) != 0 || !(q = parse_u64(q, nl, &seq)) || *q++ != ' ' ||
                !(q = parse_u64(q, nl, &len)) || q != nl || len > max_frame) {
                rc = -1;
                break;
            }
            p->seq = seq;
            p->need = (size_t)len;
            p->in_payload = true;
            pos += (size_t)(nl - b) + 1;
            continue;
        }
        if (avail < p->need)
            break;
        rc = frame(arg, p->seq, b, p->need);
        pos += p->need;
        p->in_payload = false;
    }
    /* Keep only the unconsumed part. */
    memmove(p->in.p, p->in.p + pos, p->in.n - pos);
    p->in.n -= pos;
    return rc;
}

static void conn_unref(void *src)
{
    struct logs_fwd_conn *c = src;
    if (--c->refs == 0) {
        logs_buf_free(&c->parse.in);
        free(c);
    }
}

static void conn_ref(void *src)
{
    ((struct logs_fwd_conn *)src)->refs++;
}

static void ack_on_written(uv_write_t *req, int status)
{
    free(req->data);
}

/* The lines of frame a (and those before) are delivered here. */
static void conn_ack(void *src, uint64_t a, uint64_t b)
{
    struct logs_fwd_conn *c = src;
    if (!c->open || a <= c->acked || a == UINT64_MAX)
        return;
    c->acked = a;
    struct ack_req *r = malloc(sizeof *r);
    if (!r)
        return;
    int len = snprintf(r->text, sizeof r->text, "OK %llu\n", (unsigned long long)a);
    uv_buf_t buf = uv_buf_init(r->text, (unsigned)len);
    r->req.data = r;
    if (uv_write(&r->req, (uv_stream_t *)&c->tcp, &buf, 1, ack_on_written))
        free(r);
}

static const struct logs_source_ops conn_ops = {.ack = conn_ack, .unref = conn_unref, .ref = conn_ref};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One frame: every line goes to the queue; the last carries the frame's
 * seq, the others seq-1 ("frames before this one are complete"). */
static int conn_on_frame(void *arg, uint64_t seq, const char *payload, size_t n)
{
    struct logs_fwd_conn *c = arg;
    struct logs_fwd_server *s = c->s;
    uint64_t ms = uv_now(s->loop);
    s->frames++;
    s->bytes += n;
    const char *p = payload, *end = payload + n;
    if (p == end) {
        conn_ack(c, seq, 0);
        return 0;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        bool last = !nl || nl + 1 >= end;
        uint64_t a = last ? seq : seq - 1;
        s->lines++;
        int rc;
        if (nl && logs_json_is_object(p, p + len)) {
            rc = logs_queue_push(s->q, p, len + 1, &conn_ops, c, a, 0, uv_now(s->loop));
        } else {
            /* Not one of ours: keep it, as a raw message. */
            s->malformed++;
            struct logs_rec r = {.time_ns = now_ns(), .msg = p, .len = len, .flags = LOGS_REC_MALFORMED};
            s->scratch.n = 0;
            rc = logs_encode_json(&s->scratch, &r, "", 0) ||
                 logs_queue_push(s->q, s->scratch.p, s->scratch.n, &conn_ops, c, a, 0, ms);
        }
        if (rc)
            return -1;
        p = nl ? nl + 1 : end;
    }
    return 0;
}

static void conn_on_closed(uv_handle_t *h)
{
    struct logs_fwd_conn *c = h->data;
    struct logs_fwd_server *s = c->s;
    if (s->closing && --s->pending_closes == 0 && s->on_closed)
        s->on_closed(s);
    conn_unref(c);
}

static void conn_close(struct logs_fwd_conn *c)
{
    if (!c->open)
        return;
    c->open = false;
    struct logs_fwd_server *s = c->s;
    for (struct logs_fwd_conn **pp = &s->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
}

static void conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static __thread char slab[65536];
    *buf = uv_buf_init(slab, sizeof slab);
}

static void conn_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct logs_fwd_conn *c = st->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (logs_fwd_parse_feed(&c->parse, buf->base, (size_t)nread, c->s->max_frame, conn_on_frame, c)) {
        c->s->bad_frames++;
        conn_close(c);
    }
}

static void server_on_connection(uv_stream_t *st, int status)
{
    struct logs_fwd_server *s = st->data;
    if (status < 0)
        return;
    struct logs_fwd_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->s = s;
    c->refs = 1;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(st, (uv_stream_t *)&c->tcp)) {
        c->open = false;
        uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
        return;
    }
    c->open = true;
    c->next = s->conns;
    s->conns = c;
    s->connections++;
    if (!s->paused)
        uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
}

int logs_fwd_server_open(struct logs_fwd_server *s, uv_loop_t *loop, uv_os_sock_t fd, struct logs_queue *q,
                         size_t max_frame)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->q = q;
    s->max_frame = max_frame;
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    int rc = uv_tcp_open(&s->tcp, fd);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&s->tcp, 128, server_on_connection);
    return rc;
}

void logs_fwd_server_pause(struct logs_fwd_server *s)
{
    s->paused = true;
    for (struct logs_fwd_conn *c = s->conns; c; c = c->next)
        uv_read_stop((uv_stream_t *)&c->tcp);
}

void logs_fwd_server_resume(struct logs_fwd_server *s)
{
    if (!s->paused)
        return;
    s->paused = false;
    for (struct logs_fwd_conn *c = s->conns; c; c = c->next)
        uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
}

static void server_on_closed(uv_handle_t *h)
{
    struct logs_fwd_server *s = h->data;
    logs_buf_free(&s->scratch);
    if (--s->pending_closes == 0 && s->on_closed)
        s->on_closed(s);
}

void logs_fwd_server_close(struct logs_fwd_server *s, void (*on_closed)(struct logs_fwd_server *s))
{
    s->closing = true;
    s->on_closed = on_closed;
    s->pending_closes = 1;
    while (s->conns) {
        s->pending_closes++;
        conn_close(s->conns);
    }
    uv_close((uv_handle_t *)&s->tcp, server_on_closed);
}

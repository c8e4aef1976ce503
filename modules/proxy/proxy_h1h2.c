/*
 * proxy_h1h2: an HTTP/1.1 client's request carried to an HTTP/2 cluster.
 * The request becomes a stream on the endpoint's multiplexed session (the
 * same upstream leg HTTP/2 clients use); the response comes back as an
 * HTTP/1.1 head and a body, chunked unless the server gave a length, with
 * HTTP/2 trailers as chunked trailers. Backpressure: the client is not read
 * while a window of its body waits for the upstream, and upstream bytes are
 * acknowledged only once written to the client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_h2.h"

#define QUEUE_MAX 65536 /* request body bytes waiting for the upstream */
#define OUT_MAX 65536   /* response body bytes per client write */

static void add_lower(struct proxy_hdrs *h, const char *n, size_t nl, const char *v, size_t vl)
{
    char name[256];
    if (nl >= sizeof name)
        return;
    for (size_t i = 0; i < nl; i++)
        name[i] = (n[i] >= 'A' && n[i] <= 'Z') ? (char)(n[i] + 32) : n[i];
    proxy_hdrs_add(h, (const uint8_t *)name, nl, (const uint8_t *)v, vl);
}

void proxy_h1h2_end(struct proxy_conn *c)
{
    struct proxy_h2stream *st = c->h2st;
    if (!st)
        return;
    c->h2st = NULL;
    proxy_h2up_cancel(st);
    proxy_h2stream_free(st);
}

void proxy_h1h2_failed(struct proxy_h2stream *st, int status, const char *why)
{
    proxy_conn_respond_error(st->h1c, status, why);
}

static int trailers_collect(struct proxy_h2stream *st, const char *p, size_t n)
{
    char *t = realloc(st->h1_trailers, st->h1_trailers_len + n);
    if (!t)
        return UV_ENOMEM;
    memcpy(t + st->h1_trailers_len, p, n);
    st->h1_trailers = t;
    st->h1_trailers_len += n;
    return 0;
}

void proxy_h1h2_pump_request(struct proxy_conn *c)
{
    struct proxy_h2stream *st = c->h2st;
    if (!st || c->req_done)
        return;
    const struct proxy_h1_head *h = &c->parser.head;
    bool added = false;
    while (c->body_pos < c->len && !c->req_done && st->req_body.len - st->req_body.off < QUEUE_MAX) {
        size_t avail = c->len - c->body_pos;
        if (h->framing == PROXY_H1_BODY_LENGTH) {
            size_t k = avail < c->req_body_left ? avail : (size_t)c->req_body_left;
            proxy_bytes_put(&st->req_body, (const uint8_t *)c->buf + c->body_pos, k);
            c->body_pos += k;
            c->req_body_left -= k;
            added = true;
            if (!c->req_body_left)
                c->req_done = true;
        } else {
            struct proxy_h1_piece piece;
            ssize_t k = proxy_h1_chunked_decode(&c->chunked, c->buf + c->body_pos, avail, &piece);
            if (k < 0) {
                char why[128];
                snprintf(why, sizeof why, "request body: %s", proxy_h1_error_str((int)k));
                c->keep_alive = false;
                proxy_conn_respond_error(c, 400, why);
                return;
            }
            c->body_pos += (size_t)k;
            if (piece.data && piece.len) {
                proxy_bytes_put(&st->req_body, (const uint8_t *)piece.data, piece.len);
                added = true;
            }
            /* Trailer lines may come split over reads: collected (the
             * decoder bounds them by max_trailer_size), then forwarded as
             * HTTP/2 trailers. */
            if (piece.trailer && trailers_collect(st, piece.trailer, piece.trailer_len) != 0) {
                proxy_conn_respond_error(c, 503, "out of memory");
                return;
            }
            if (piece.done) {
                if (st->h1_trailers_len)
                    proxy_hdrs_add_h1_fields(&st->req_trailers, st->h1_trailers, st->h1_trailers_len);
                c->req_done = true;
            }
        }
    }
    /* The body was copied: keep the head (the access record reads it) and
     * what follows the body, drop the rest. */
    size_t keep = h->head_len;
    if (c->body_pos > keep) {
        memmove(c->buf + keep, c->buf + c->body_pos, c->len - c->body_pos);
        c->len -= c->body_pos - keep;
        c->body_pos = keep;
    }
    if (c->req_done && !st->req_end) {
        st->req_end = true;
        added = true;
    }
    if (!c->req_done && st->req_body.len - st->req_body.off >= QUEUE_MAX) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (added)
        proxy_h2up_resume(st);
}

void proxy_h1h2_req_consumed(struct proxy_h2stream *st)
{
    struct proxy_conn *c = st->h1c;
    if (c->req_done || st->req_body.len - st->req_body.off >= QUEUE_MAX)
        return;
    proxy_h1h2_pump_request(c);
    if (c->h2st == st)
        proxy_conn_read_start(c);
}

void proxy_h1h2_start(struct proxy_conn *c, struct proxy_wcluster *wc)
{
    const struct proxy_h1_head *h = &c->parser.head;
    const char *b = c->buf;
    struct proxy_h2stream *st = proxy_h2stream_new(c->pw);
    if (!st) {
        proxy_conn_respond_error(c, 503, "out of memory");
        return;
    }
    st->h1c = c;
    st->wc = wc;
    st->route = c->route;
    st->grpc_status = -1;
    st->avoid_ep = 0;
    st->t_start_ms = c->t_start_ms;
    proxy_hdrs_add(&st->req, (const uint8_t *)":method", 7, (const uint8_t *)b + h->method.off, h->method.len);
    if (h->path.len)
        proxy_hdrs_add(&st->req, (const uint8_t *)":path", 5, (const uint8_t *)b + h->path.off, h->path.len);
    else
        proxy_hdrs_add(&st->req, (const uint8_t *)":path", 5, (const uint8_t *)"/", 1);
    proxy_hdrs_add(&st->req, (const uint8_t *)":authority", 10, (const uint8_t *)b + h->authority.off,
                   h->authority.len);
    if (st->req.n != 3) {
        proxy_h2stream_free(st);
        proxy_conn_respond_error(c, 503, "out of memory");
        return;
    }
    st->method = (const char *)st->req.nv[0].value;
    st->method_len = st->req.nv[0].valuelen;
    st->path = (const char *)st->req.nv[1].value;
    st->path_len = st->req.nv[1].valuelen;
    st->authority = (const char *)st->req.nv[2].value;
    st->authority_len = st->req.nv[2].valuelen;
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct proxy_h1_field *f = &h->fields[i];
        if ((f->flags & PROXY_H1_FIELD_HOP) || f->id == PROXY_H1_F_HOST)
            continue;
        add_lower(&st->req, b + f->name_off, f->name_len, b + f->value_off, f->value_len);
    }
    /* TE is hop-by-hop, but "trailers" is what gRPC servers look for. */
    if (h->flags & PROXY_H1_TE_TRAILERS)
        proxy_hdrs_add(&st->req, (const uint8_t *)"te", 2, (const uint8_t *)"trailers", 8);
    if (c->lua && c->lua->n_set && (st->lua = malloc(sizeof *st->lua))) {
        *st->lua = *c->lua;
        for (unsigned i = 0; i < st->lua->n_set; i++)
            for (uint16_t k = 0; k < st->lua->set[i].name_len; k++) {
                char *ch = &st->lua->store[st->lua->set[i].name_off + k];
                if (*ch >= 'A' && *ch <= 'Z')
                    *ch = (char)(*ch + 32);
            }
    }
    c->h2st = st;
    c->wc = wc;
    c->state = CONN_FORWARDING;
    proxy_h2stream_retry_prepare(st);
    c->req_done = h->framing == PROXY_H1_BODY_NONE;
    st->req_end = c->req_done;
    proxy_h1h2_pump_request(c);
    if (c->h2st == st)
        proxy_h2up_dispatch(st);
}

void proxy_h1h2_on_response(struct proxy_h2stream *st)
{
    struct proxy_conn *c = st->h1c;
    const struct proxy_h1_head *rq = &c->parser.head;
    bool has_length = proxy_hdrs_find(&st->resp, "content-length") != NULL;
    bool no_body = rq->method_id == PROXY_H1_M_HEAD || st->status == 204 || st->status == 304 || st->status < 200;
    c->resp_head_len = 0;
    char line[64];
    int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", st->status, proxy_status_reason(st->status));
    size_t need = (size_t)n + 128;
    for (size_t i = 0; i < st->resp.n; i++)
        need += st->resp.nv[i].namelen + st->resp.nv[i].valuelen + 4;
    if (need > c->resp_head_cap) {
        char *nb = realloc(c->resp_head, need);
        if (!nb) {
            proxy_conn_respond_error(c, 502, "out of memory");
            return;
        }
        c->resp_head = nb;
        c->resp_head_cap = need;
    }
    char *p = c->resp_head;
    memcpy(p, line, (size_t)n);
    p += n;
    for (size_t i = 0; i < st->resp.n; i++) {
        const nghttp2_nv *h = &st->resp.nv[i];
        if (h->namelen && h->name[0] == ':')
            continue;
        p = proxy_nv_put_h1(p, h);
    }
    const char *framing = "";
    st->h1_resp_chunked = false;
    if (!has_length && !no_body) {
        if (st->resp_end && st->resp_body.off == st->resp_body.len && !st->trailers.n) {
            framing = "content-length: 0\r\n";
        } else if (rq->version_minor) {
            framing = "transfer-encoding: chunked\r\n";
            st->h1_resp_chunked = true;
        } else {
            c->keep_alive = false; /* HTTP/1.0: the body ends with the connection */
        }
    }
    p += sprintf(p, "%s%s\r\n", framing,
                 !c->keep_alive ? "connection: close\r\n" : rq->version_minor ? "" : "connection: keep-alive\r\n");
    c->resp_head_len = (size_t)(p - c->resp_head);
    c->status = st->status;
    c->resp_head_sent = true;
    proxy_h1h2_on_response_data(st);
}

static void on_written(uv_write_t *req, int status)
{
    struct proxy_conn *c = req->data;
    c->writing = false;
    struct proxy_h2stream *st = c->h2st;
    if (c->state == CONN_CLOSING || !st)
        return;
    if (status < 0) {
        proxy_conn_close(c);
        return;
    }
    if (st->h1_out_payload) {
        proxy_h2up_consumed(st, st->h1_out_payload);
        st->h1_out_payload = 0;
    }
    if (st->h1_last_sent) {
        c->resp_done = true;
        proxy_conn_exchange_done(c);
        return;
    }
    proxy_h1h2_on_response_data(st);
}

void proxy_h1h2_on_response_data(struct proxy_h2stream *st)
{
    struct proxy_conn *c = st->h1c;
    if (c->writing || !c->resp_head_sent || st->h1_last_sent)
        return;
    uv_buf_t b[2];
    unsigned n = 0;
    if (!st->h1_resp_head_sent) {
        b[n++] = uv_buf_init(c->resp_head, (unsigned)c->resp_head_len);
        st->h1_resp_head_sent = true;
    }
    size_t avail = st->resp_body.len - st->resp_body.off, take = avail < OUT_MAX ? avail : OUT_MAX;
    size_t trailers = 0;
    bool last = st->resp_end && take == avail;
    if (last)
        for (size_t i = 0; i < st->trailers.n; i++)
            trailers += st->trailers.nv[i].namelen + st->trailers.nv[i].valuelen + 4;
    size_t need = take + trailers + 40;
    if (need > st->h1_head_cap || !st->h1_out) {
        uint8_t *o = realloc(st->h1_out, need);
        if (!o) {
            proxy_conn_close(c);
            return;
        }
        st->h1_out = o;
        st->h1_head_cap = need; /* reused as the out buffer's capacity */
    }
    size_t off = 0;
    if (take && st->h1_resp_chunked)
        off = (size_t)snprintf((char *)st->h1_out, 24, "%zx\r\n", take);
    proxy_bytes_take(&st->resp_body, st->h1_out + off, take);
    off += take;
    if (take && st->h1_resp_chunked) {
        memcpy(st->h1_out + off, "\r\n", 2);
        off += 2;
    }
    st->h1_out_payload = take;
    if (last) {
        if (st->h1_resp_chunked) {
            memcpy(st->h1_out + off, "0\r\n", 3);
            off += 3;
            for (size_t i = 0; i < st->trailers.n; i++) {
                const nghttp2_nv *h = &st->trailers.nv[i];
                memcpy(st->h1_out + off, h->name, h->namelen);
                off += h->namelen;
                memcpy(st->h1_out + off, ": ", 2);
                off += 2;
                memcpy(st->h1_out + off, h->value, h->valuelen);
                off += h->valuelen;
                memcpy(st->h1_out + off, "\r\n", 2);
                off += 2;
            }
            memcpy(st->h1_out + off, "\r\n", 2);
            off += 2;
        }
        st->h1_last_sent = true;
    }
    if (off)
        b[n++] = uv_buf_init((char *)st->h1_out, (unsigned)off);
    if (!n)
        return;
    for (unsigned i = 0; i < n; i++)
        c->bytes_out += b[i].len;
    c->wreq.data = c;
    c->writing = true;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, b, n, on_written) != 0) {
        c->writing = false;
        proxy_conn_close(c);
    }
}

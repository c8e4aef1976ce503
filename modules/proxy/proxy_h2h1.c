/*
 * proxy_h2h1: an HTTP/2 client's stream carried to an HTTP/1.1 cluster.
 * The request becomes an HTTP/1.1 head (chunked body unless the client
 * gave a content-length) on a pooled connection; the response is parsed
 * with the strict parser and handed back as HTTP/2 headers, data and
 * trailers. Backpressure: client body bytes are acknowledged on the HTTP/2
 * session only once written upstream, and the upstream connection stops
 * being read while more than a window of response waits for the client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy_h2.h"

/* Response bytes queued for the client above which the upstream is not read. */
#define RESP_QUEUE_MAX 65536
/* Request body bytes written upstream per write. */
#define REQ_CHUNK_MAX 65536

static void detach(struct proxy_h2stream *st, bool sample)
{
    struct proxy_upconn *u = st->h1up;
    if (u) {
        u->h2st = NULL;
        st->h1up = NULL;
    }
    if (st->ep_active) {
        st->ep_active = false;
        if (sample) {
            uint64_t now = uv_now(st->ep->wc->pw->loop);
            proxy_lb_sample(st->ep, now, (double)(now - st->t_sent_ms));
        }
        st->ep->active--;
    }
}

void proxy_h2h1_failed(struct proxy_h2stream *st, int status, const char *why)
{
    struct proxy_upconn *u = st->h1up;
    if (!u) {
        /* No connection came of it: the connect failed or none was free. */
        st->h1connecting = NULL;
        detach(st, false);
        if (proxy_h2stream_retry(st, PROXY_RETRY_CAUSE_CONNECT, 0, -1))
            return;
    }
    detach(st, false);
    if (u)
        proxy_upconn_close(u);
    proxy_h2stream_on_upstream_failed(st, status, 14, why);
}

void proxy_h2h1_cancel(struct proxy_h2stream *st)
{
    struct proxy_upconn *u = st->h1up;
    if (st->h1connecting) {
        /* Let the connect finish for the pool, without us. */
        st->h1connecting->h2st = NULL;
        st->h1connecting = NULL;
    }
    detach(st, false);
    if (u)
        proxy_upconn_close(u);
}

static int build_head(struct proxy_h2stream *st)
{
    const struct proxy_conf *conf = st->dc->c->pw->st->conf;
    const struct proxy_route_conf *rc = st->route ? st->route->conf : NULL;
    const char *peer = proxy_conn_peer(st->dc->c);
    struct proxy_head_out o = { &st->h1_head, &st->h1_head_cap, &st->h1_head_len, false };
    st->h1_head_len = 0;
    proxy_head_put(&o, st->method, st->method_len);
    proxy_head_put(&o, " ", 1);
    proxy_head_put(&o, st->path, st->path_len);
    proxy_head_put(&o, " HTTP/1.1\r\n", 11);
    proxy_head_field(&o, "host", 4, st->authority, st->authority_len);
    bool has_length = false, xff_done = false;
    for (size_t i = 0; i < st->req.n; i++) {
        const nghttp2_nv *h = &st->req.nv[i];
        if (h->namelen && h->name[0] == ':')
            continue;
        /* TE is hop-by-hop; "trailers" means nothing to an HTTP/1.1 server. */
        if ((h->namelen == 2 && memcmp(h->name, "te", 2) == 0) ||
            proxy_h2_hop_field(h->name, h->namelen, h->value, h->valuelen) || proxy_route_drops_header(rc, (const char *)h->name, h->namelen) ||
            (st->lua && proxy_lua_sets(st->lua, (const char *)h->name, h->namelen)))
            continue;
        if (h->namelen == 14 && memcmp(h->name, "content-length", 14) == 0)
            has_length = true;
        if (h->namelen == 15 && memcmp(h->name, "x-forwarded-for", 15) == 0 && conf->xff != PROXY_XFF_OFF) {
            if (conf->xff == PROXY_XFF_REPLACE || xff_done)
                continue;
            proxy_head_put(&o, h->name, h->namelen);
            proxy_head_put(&o, ": ", 2);
            proxy_head_put(&o, h->value, h->valuelen);
            if (peer[0]) {
                proxy_head_put(&o, ", ", 2);
                proxy_head_put(&o, peer, strlen(peer));
            }
            proxy_head_put(&o, "\r\n", 2);
            xff_done = true;
            continue;
        }
        proxy_head_field(&o, h->name, h->namelen, h->value, h->valuelen);
    }
    if (rc)
        for (size_t i = 0; i < rc->add_headers.n; i++)
            proxy_head_field(&o, rc->add_headers.items[i].key, strlen(rc->add_headers.items[i].key),
                      rc->add_headers.items[i].value, strlen(rc->add_headers.items[i].value));
    for (unsigned i = 0; st->lua && i < st->lua->n_set; i++)
        proxy_head_field(&o, st->lua->store + st->lua->set[i].name_off, st->lua->set[i].name_len,
                  st->lua->store + st->lua->set[i].value_off, st->lua->set[i].value_len);
    if (conf->xff != PROXY_XFF_OFF && !xff_done && peer[0])
        proxy_head_field(&o, "x-forwarded-for", 15, peer, strlen(peer));
    size_t hop_len;
    const char *hop = proxy_mesh_hop(st->h1up->ep, st->h1up->mesh_hop, &hop_len);
    if (hop) {
        proxy_head_field(&o, PROXY_MESH_DST, PROXY_MESH_DST_LEN, hop, hop_len);
        char caller[PROXY_CALLER_MAX];
        size_t caller_len = proxy_caller_text(st->dc->c->pw->st, PROXY_H2STREAM_PEER(st), st->caller, caller);
        if (caller_len)
            proxy_head_field(&o, PROXY_MESH_CALLER, PROXY_MESH_CALLER_LEN, caller, caller_len);
    }
    if (conf->via) {
        proxy_head_put(&o, "via: 2 ", 7);
        proxy_head_put(&o, conf->via_name, strlen(conf->via_name));
        proxy_head_put(&o, "\r\n", 2);
    }
    /* No content-length: the body (if any) goes chunked; a request that
     * ended with its headers has none. Trailers need chunking: with a
     * content-length HTTP/1.1 has no place for them and they are dropped. */
    st->h1_req_chunked =
        !has_length && (!(st->req_end && st->req_body.off == st->req_body.len) || st->req_trailers.n);
    if (st->h1_req_chunked)
        proxy_head_put(&o, "transfer-encoding: chunked\r\n", 28);
    proxy_head_put(&o, "\r\n", 2);
    return o.failed ? UV_ENOMEM : 0;
}

static void on_request_written(uv_write_t *req, int status)
{
    struct proxy_upconn *u = req->data;
    u->writing = false;
    struct proxy_h2stream *st = u->h2st;
    if (!st || status == UV_ECANCELED)
        return;
    st->h1_writing = false;
    if (status < 0) {
        /* The server may still answer (an early error); reading tells. */
        u->reusable = false;
        st->h1_req_done = true;
        return;
    }
    if (st->h1_out_payload) {
        /* Written upstream: now the client may send more. */
        proxy_h2stream_req_taken(st, st->h1_out_payload);
        st->h1_out_payload = 0;
    }
    proxy_h2h1_pump(st);
}

/* The client's request trailers as the end of a chunked body's trailer
 * section ("name: value\r\n"... "\r\n"), in st->h1_trailers. */
static int build_trailers(struct proxy_h2stream *st)
{
    size_t need = 2;
    for (size_t i = 0; i < st->req_trailers.n; i++)
        need += st->req_trailers.nv[i].namelen + st->req_trailers.nv[i].valuelen + 4;
    char *p = realloc(st->h1_trailers, need);
    if (!p)
        return UV_ENOMEM;
    st->h1_trailers = p;
    for (size_t i = 0; i < st->req_trailers.n; i++)
        p = proxy_nv_put_h1(p, &st->req_trailers.nv[i]);
    memcpy(p, "\r\n", 2);
    st->h1_trailers_len = need;
    return 0;
}

void proxy_h2h1_pump(struct proxy_h2stream *st)
{
    struct proxy_upconn *u = st->h1up;
    if (!u || st->h1_writing || u->state != UP_ACTIVE)
        return;
    uv_buf_t b[3];
    unsigned n = 0;
    if (!st->h1_head_sent) {
        b[n++] = uv_buf_init(st->h1_head, (unsigned)st->h1_head_len);
        st->h1_head_sent = true;
    }
    st->h1_out_len = 0;
    size_t avail = st->req_body.len - st->req_body.off;
    if (!st->h1_req_done && (avail || st->req_end)) {
        if (!st->h1_out && !(st->h1_out = malloc(REQ_CHUNK_MAX + 32))) {
            proxy_h2h1_failed(st, 503, "out of memory");
            return;
        }
        size_t take = avail < REQ_CHUNK_MAX ? avail : REQ_CHUNK_MAX;
        size_t off = 0;
        if (take && st->h1_req_chunked)
            off = (size_t)snprintf((char *)st->h1_out, 24, "%zx\r\n", take);
        proxy_bytes_take(&st->req_body, st->h1_out + off, take);
        off += take;
        if (take)
            st->up_body_sent = true; /* not replayable any more, unless held */
        if (take && st->h1_req_chunked) {
            memcpy(st->h1_out + off, "\r\n", 2);
            off += 2;
        }
        st->h1_out_payload = take;
        bool trailers = false;
        if (st->req_end && st->req_body.off == st->req_body.len) {
            if (st->h1_req_chunked && st->req_trailers.n) {
                if (build_trailers(st) != 0) {
                    proxy_h2h1_failed(st, 503, "out of memory");
                    return;
                }
                memcpy(st->h1_out + off, "0\r\n", 3);
                off += 3;
                trailers = true;
            } else if (st->h1_req_chunked) {
                memcpy(st->h1_out + off, "0\r\n\r\n", 5);
                off += 5;
            }
            st->h1_req_done = true;
        }
        st->h1_out_len = off;
        if (off)
            b[n++] = uv_buf_init((char *)st->h1_out, (unsigned)off);
        if (trailers)
            b[n++] = uv_buf_init(st->h1_trailers, (unsigned)st->h1_trailers_len);
    }
    if (!n)
        return;
    u->wreq.data = u;
    u->writing = true;
    st->h1_writing = true;
    if (uv_write(&u->wreq, (uv_stream_t *)&u->tcp, b, n, on_request_written) != 0) {
        u->writing = false;
        st->h1_writing = false;
        proxy_h2h1_failed(st, 502, "upstream write failed");
    }
}

void proxy_h2h1_ready(struct proxy_h2stream *st, struct proxy_upconn *u)
{
    st->h1connecting = NULL;
    st->h1up = u;
    u->h2st = st;
    u->len = u->pos = 0;
    st->t_sent_ms = uv_now(st->dc->c->pw->loop);
    bool head = st->method_len == 4 && memcmp(st->method, "HEAD", 4) == 0;
    proxy_h1_parser_init(&u->parser, PROXY_H1_RESPONSE, &st->dc->c->pw->st->limits,
                         head ? PROXY_H1_M_HEAD : PROXY_H1_M_GET);
    if (build_head(st) != 0) {
        proxy_h2h1_failed(st, 503, "out of memory");
        return;
    }
    proxy_h2h1_pump(st);
    proxy_upconn_read_start(u);
}

/* The response is complete: the connection goes back to the pool. */
static void response_done(struct proxy_h2stream *st)
{
    struct proxy_upconn *u = st->h1up;
    const struct proxy_h1_head *h = &u->parser.head;
    bool keep = h->version_minor ? !(h->flags & PROXY_H1_CONN_CLOSE) : !!(h->flags & PROXY_H1_CONN_KEEP_ALIVE);
    u->reusable = keep && h->framing != PROXY_H1_BODY_CLOSE && u->pos == u->len && st->h1_req_done &&
                  !st->h1_writing && !u->eof;
    st->resp_end = true;
    detach(st, true);
    proxy_upconn_release(u);
    proxy_h2stream_on_response_data(st);
}

static int take_head(struct proxy_h2stream *st, struct proxy_upconn *u)
{
    for (;;) {
        int r = proxy_h1_head_parse(&u->parser, u->buf + u->pos, u->len - u->pos);
        if (r < 0) {
            char why[128];
            snprintf(why, sizeof why, "invalid upstream response: %s", proxy_h1_error_str(r));
            if (st->ep)
                proxy_outlier_report(st->ep, true);
            proxy_h2h1_failed(st, 502, why);
            return -1;
        }
        if (r == 0) {
            if (u->len == u->cap) {
                proxy_h2h1_failed(st, 502, "upstream response head too large");
                return -1;
            }
            return 0;
        }
        const struct proxy_h1_head *h = &u->parser.head;
        const char *b = u->buf + u->pos;
        if (h->status == 101) {
            proxy_h2h1_failed(st, 502, "upstream switched protocols");
            return -1;
        }
        if (h->status < 200) {
            u->pos += (size_t)r;
            proxy_h1_parser_init(&u->parser, PROXY_H1_RESPONSE, &st->dc->c->pw->st->limits,
                                 (enum proxy_h1_method)u->parser.req_method);
            continue;
        }
        if (st->ep)
            proxy_outlier_report(st->ep, h->status >= 500);
        char status[8];
        snprintf(status, sizeof status, "%03u", h->status);
        proxy_hdrs_clear(&st->resp);
        proxy_hdrs_add(&st->resp, (const uint8_t *)":status", 7, (const uint8_t *)status, 3);
        for (uint32_t i = 0; i < h->n_fields; i++) {
            const struct proxy_h1_field *f = &h->fields[i];
            if (f->flags & PROXY_H1_FIELD_HOP)
                continue;
            char name[256];
            if (f->name_len >= sizeof name)
                continue;
            for (uint16_t k = 0; k < f->name_len; k++) {
                char ch = b[f->name_off + k];
                name[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
            }
            if (proxy_h2_hop_field((const uint8_t *)name, f->name_len, (const uint8_t *)b + f->value_off,
                                   f->value_len))
                continue;
            proxy_hdrs_add(&st->resp, (const uint8_t *)name, f->name_len, (const uint8_t *)b + f->value_off,
                           f->value_len);
        }
        st->status = h->status;
        st->resp_headers_done = true;
        st->h1_resp_left = h->content_length;
        if (h->framing == PROXY_H1_BODY_CHUNKED)
            proxy_h1_chunked_init(&u->chunked, &st->dc->c->pw->st->limits);
        u->pos += (size_t)r;
        return 1;
    }
}

/* Moves body bytes from u->buf into the stream's response queue. */
static int take_body(struct proxy_h2stream *st, struct proxy_upconn *u, bool *done)
{
    const struct proxy_h1_head *h = &u->parser.head;
    while (u->pos < u->len && !*done) {
        size_t avail = u->len - u->pos;
        switch (h->framing) {
        case PROXY_H1_BODY_NONE:
            *done = true;
            return 0;
        case PROXY_H1_BODY_LENGTH: {
            size_t k = avail < st->h1_resp_left ? avail : (size_t)st->h1_resp_left;
            if (proxy_bytes_put(&st->resp_body, (const uint8_t *)u->buf + u->pos, k))
                return UV_ENOMEM;
            u->pos += k;
            st->h1_resp_left -= k;
            *done = st->h1_resp_left == 0;
            break;
        }
        case PROXY_H1_BODY_CLOSE:
            if (proxy_bytes_put(&st->resp_body, (const uint8_t *)u->buf + u->pos, avail))
                return UV_ENOMEM;
            u->pos += avail;
            break;
        case PROXY_H1_BODY_CHUNKED: {
            struct proxy_h1_piece piece;
            ssize_t k = proxy_h1_chunked_decode(&u->chunked, u->buf + u->pos, avail, &piece);
            if (k < 0)
                return (int)k;
            u->pos += (size_t)k;
            if (piece.data && proxy_bytes_put(&st->resp_body, (const uint8_t *)piece.data, piece.len))
                return UV_ENOMEM;
            if (piece.trailer)
                proxy_hdrs_add_h1_fields(&st->trailers, piece.trailer, piece.trailer_len);
            *done = piece.done;
            break;
        }
        }
    }
    if (h->framing == PROXY_H1_BODY_NONE || (h->framing == PROXY_H1_BODY_LENGTH && !st->h1_resp_left))
        *done = true;
    return 0;
}

void proxy_h2h1_on_read(struct proxy_h2stream *st, ssize_t n)
{
    struct proxy_upconn *u = st->h1up;
    if (!u)
        return;
    if (n < 0) {
        uv_read_stop((uv_stream_t *)&u->tcp);
        u->reading = false;
        u->eof = true;
        u->reusable = false;
        if (st->resp_headers_done && u->parser.head.framing == PROXY_H1_BODY_CLOSE && n == UV_EOF) {
            response_done(st);
            return;
        }
        if (!st->resp_headers_done && st->ep)
            proxy_outlier_report(st->ep, true);
        if (!st->resp_headers_done && proxy_h2stream_retry(st, PROXY_RETRY_CAUSE_RESET, 0, -1))
            return;
        proxy_h2h1_failed(st, 502, st->resp_headers_done ? "upstream closed mid-response"
                                                         : "upstream closed the connection before responding");
        return;
    }
    u->len += (size_t)n;
    bool was_done = st->resp_headers_done;
    if (!st->resp_headers_done) {
        int r = take_head(st, u);
        if (r <= 0)
            goto compact;
        /* A status the cluster retries: this connection is closed (its
         * response is not read to its end) and the request goes again. */
        if (proxy_h2stream_retry(st, PROXY_RETRY_CAUSE_STATUS, st->status, -1))
            return;
    }
    bool done = false;
    int rc = take_body(st, u, &done);
    if (rc < 0) {
        proxy_h2h1_failed(st, 502, "invalid upstream response body");
        return;
    }
    if (!was_done)
        proxy_h2stream_on_response(st);
    if (done) {
        response_done(st);
        return;
    }
    proxy_h2stream_on_response_data(st);
compact:
    if (!st->h1up)
        return;
    if (u->pos) {
        memmove(u->buf, u->buf + u->pos, u->len - u->pos);
        u->len -= u->pos;
        u->pos = 0;
    }
    /* Backpressure: stop reading while the client has a window queued, or
     * while the buffer is full of bytes we cannot take yet. */
    if (st->resp_body.len - st->resp_body.off >= RESP_QUEUE_MAX || u->len == u->cap) {
        uv_read_stop((uv_stream_t *)&u->tcp);
        u->reading = false;
    }
}

void proxy_h2h1_consumed(struct proxy_h2stream *st)
{
    struct proxy_upconn *u = st->h1up;
    if (u && !u->reading && st->resp_body.len - st->resp_body.off < RESP_QUEUE_MAX)
        proxy_upconn_read_start(u);
}

/*
 * proxy_h2_up: upstream HTTP/2 sessions to an endpoint, a few per worker,
 * each carrying many streams at once. The server's
 * SETTINGS_MAX_CONCURRENT_STREAMS caps a session (nginx: 128); a stream
 * beyond it would wait inside nghttp2, so a new stream goes to the oldest
 * session with room, else to a new session while the cluster's
 * max_connections allows, else to the least loaded one (nghttp2 queues
 * it). Filling the oldest first lets the extra sessions fall idle when the
 * load drops; they close after the cluster's idle_timeout, the oldest stays.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy_discovery.h"
#include "proxy_h2.h"

/* How many times a stream refused unprocessed is sent again. */
#define PROXY_H2_REFUSED_RETRIES 2
/* Streams the first session to an endpoint is assumed to carry at once
 * until the server's SETTINGS arrive: what nghttp2 assumes (and RFC 9113
 * recommends servers allow at least). */
#define PROXY_H2UP_ASSUMED_STREAMS 100

static void up_on_timer(uv_timer_t *t);

/* Whether up may take a new stream. */
static bool up_takes_streams(const struct proxy_h2up *up)
{
    return !up->closing && !up->goaway_recv && !up->retired;
}

/* The streams the server lets up carry at once, as nghttp2 knows it
 * (unlimited: UINT32_MAX, when its SETTINGS name no limit). */
static uint32_t up_stream_limit(const struct proxy_h2up *up)
{
    return up->s ? nghttp2_session_get_remote_settings(up->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
                 : up->assumed_streams;
}

/* What a new session to ep assumes of the server until its SETTINGS
 * arrive: the limit an older session learned (the same server), else the
 * default. Extra sessions open when the others are full, so their first
 * flight must not exceed a small limit: the server would refuse the rest. */
static uint32_t ep_assumed_streams(const struct proxy_endpoint *ep)
{
    for (const struct proxy_h2up *up = ep->h2; up; up = up->ep_next)
        if (up->s) {
            uint32_t n = up_stream_limit(up);
            return n ? n : 1; /* a server saying 0 now may take streams later */
        }
    return PROXY_H2UP_ASSUMED_STREAMS;
}

/* Whether up is the session its endpoint keeps open while idle: the oldest
 * that takes streams. */
static bool up_is_warm(const struct proxy_h2up *up)
{
    for (const struct proxy_h2up *p = up->ep->h2; p; p = p->ep_next)
        if (up_takes_streams(p))
            return p == up;
    return false;
}

/* up's last stream ended: an extra session closes if it stays idle for the
 * cluster's idle_timeout (up_on_timer). One timer start per idle period. */
static void up_on_idle(struct proxy_h2up *up)
{
    if (!up->connected || !up_takes_streams(up) || up_is_warm(up))
        return;
    up->idle_since_ms = uv_now(up->ep->wc->pw->loop);
    if (!uv_is_active((uv_handle_t *)&up->timer))
        uv_timer_start(&up->timer, up_on_timer, up->ep->wc->c->conf->idle_timeout, 0);
}

static void pending_push(struct proxy_h2up *up, struct proxy_h2stream *st)
{
    st->pending_next = NULL;
    st->pending_up = up;
    if (up->pending_tail)
        up->pending_tail->pending_next = st;
    else
        up->pending_head = st;
    up->pending_tail = st;
    up->n_streams++;
}

static struct proxy_h2stream *pending_pop(struct proxy_h2up *up)
{
    struct proxy_h2stream *st = up->pending_head;
    if (!st)
        return NULL;
    up->pending_head = st->pending_next;
    if (!up->pending_head)
        up->pending_tail = NULL;
    st->pending_next = NULL;
    st->pending_up = NULL;
    up->n_streams--;
    return st;
}

static void pending_remove(struct proxy_h2up *up, struct proxy_h2stream *st)
{
    struct proxy_h2stream *prev = NULL;
    for (struct proxy_h2stream *p = up->pending_head; p; prev = p, p = p->pending_next)
        if (p == st) {
            if (prev)
                prev->pending_next = p->pending_next;
            else
                up->pending_head = p->pending_next;
            if (up->pending_tail == p)
                up->pending_tail = prev;
            st->pending_next = NULL;
            st->pending_up = NULL;
            up->n_streams--;
            return;
        }
}

void proxy_h2up_flush(struct proxy_h2up *up)
{
    struct proxy_worker *pw = up->ep->wc->pw;
    if (up->dirty || up->closing)
        return;
    up->dirty = true;
    up->dirty_next = pw->h2up_dirty;
    pw->h2up_dirty = up;
    proxy_h2_arm(pw);
}

/* Ends st's upstream leg: st no longer counts against its endpoint. */
static void stream_detach(struct proxy_h2stream *st, bool sample)
{
    struct proxy_h2up *up = st->up;
    if (up) {
        if (st->up_prev)
            st->up_prev->up_next = st->up_next;
        else
            up->streams = st->up_next;
        if (st->up_next)
            st->up_next->up_prev = st->up_prev;
        st->up_prev = st->up_next = NULL;
        st->up = NULL;
        if (!--up->n_streams)
            up_on_idle(up);
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

static void up_on_handle_closed(uv_handle_t *h)
{
    struct proxy_h2up *up = h->data;
    if (--up->closes_pending)
        return;
    struct proxy_wcluster *wc = up->ep->wc;
    struct proxy_worker *pw = wc->pw;
    wc->n_conns--;
    pw->n_upconns--;
    if (wc->s_conns)
        pw->st->host->gauge_add(wc->s_conns, -1);
    proxy_endpoint_unref(up->ep);
    free(up->out);
    free(up);
    proxy_worker_maybe_drained(pw);
}

static void up_close(struct proxy_h2up *up, const char *why)
{
    if (up->closing)
        return;
    struct proxy_worker *pw = up->ep->wc->pw;
    for (struct proxy_h2up **pp = &up->ep->h2; *pp; pp = &(*pp)->ep_next)
        if (*pp == up) {
            *pp = up->ep_next;
            break;
        }
    if (up->dirty) {
        for (struct proxy_h2up **pp = &pw->h2up_dirty; *pp; pp = &(*pp)->dirty_next)
            if (*pp == up) {
                *pp = up->dirty_next;
                break;
            }
        up->dirty = false;
    }
    up->closing = true;
    /* Streams still waiting or in flight fail as unavailable. */
    /* A retry may open a new session to this endpoint: it is not ours. */
    struct proxy_h2stream *st;
    while ((st = pending_pop(up))) {
        stream_detach(st, false);
        if (!proxy_h2stream_retry(st, PROXY_RETRY_CAUSE_CONNECT, 0, -1))
            proxy_h2stream_on_upstream_failed(st, 503, 14, why);
    }
    while ((st = up->streams)) {
        stream_detach(st, false);
        if (st->resp_end || (!st->resp_headers_done && proxy_h2stream_retry(st, PROXY_RETRY_CAUSE_RESET, 0, -1)))
            continue;
        proxy_h2stream_on_upstream_failed(st, 502, 14, why);
    }
    if (up->s) {
        nghttp2_session_del(up->s);
        up->s = NULL;
    }
    up->closes_pending = 2;
    uv_close((uv_handle_t *)&up->tcp, up_on_handle_closed);
    uv_close((uv_handle_t *)&up->timer, up_on_handle_closed);
}

static void up_on_written(uv_write_t *req, int status)
{
    struct proxy_h2up *up = req->data;
    up->writing = false;
    if (up->closing)
        return;
    if (status < 0) {
        up_close(up, "upstream write failed");
        return;
    }
    proxy_h2up_send(up);
}

void proxy_h2up_send(struct proxy_h2up *up)
{
    if (up->writing || up->closing || !up->connected)
        return;
again:
    up->out_len = 0;
    /* Draining (or retired): a session whose last stream ended says GOAWAY
     * and closes once that is written (nghttp2 then wants neither to read
     * nor to write, below). Streams still in flight keep it open. */
    if ((up->ep->wc->pw->draining || up->ep->removed || up->retired) && !up->n_streams)
        nghttp2_session_terminate_session(up->s, NGHTTP2_NO_ERROR);
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(up->s, &d);
        if (n < 0) {
            up_close(up, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0)
            break;
        if (up->out_len + (size_t)n > up->out_cap) {
            size_t cap = up->out_cap ? up->out_cap : 16384;
            while (cap < up->out_len + (size_t)n)
                cap *= 2;
            uint8_t *o = realloc(up->out, cap);
            if (!o) {
                up_close(up, "out of memory");
                return;
            }
            up->out = o;
            up->out_cap = cap;
        }
        memcpy(up->out + up->out_len, d, (size_t)n);
        up->out_len += (size_t)n;
        if (up->out_len >= 65536)
            break;
    }
    if (up->out_len) {
        uv_buf_t b = uv_buf_init((char *)up->out, (unsigned)up->out_len);
        up->wreq.data = up;
        int r = proxy_write((uv_stream_t *)&up->tcp, &up->wreq, &b, 1, up_on_written);
        if (r == 1)
            goto again;
        if (r < 0)
            up_close(up, "upstream write failed");
        else
            up->writing = true;
        return;
    }
    if (!nghttp2_session_want_read(up->s) && !nghttp2_session_want_write(up->s))
        up_close(up, "upstream session ended");
}

/* --- requests --------------------------------------------------------------------- */

/* The stream id names on up's session (its user data), or NULL: the last
 * one looked up is remembered (see struct proxy_h2conn). */
static struct proxy_h2stream *up_stream(struct proxy_h2up *up, int32_t id)
{
    if (id != up->last_id) {
        up->last_id = id;
        up->last_st = nghttp2_session_get_stream_user_data(up->s, id);
    }
    return up->last_st;
}

static ssize_t req_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                        nghttp2_data_source *src, void *user)
{
    struct proxy_h2stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    size_t n = proxy_bytes_take(&st->req_body, buf, length);
    if (n)
        st->up_body_sent = true; /* no longer replayable after a refusal, unless held */
    if (n) {
        proxy_h2stream_req_taken(st, n);
        if (st->h1c)
            proxy_h1h2_req_consumed(st);
    }
    if (st->req_body.off == st->req_body.len) {
        if (st->req_end) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            if (st->req_trailers.n) {
                /* The client's trailers end the stream instead. */
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
                if (nghttp2_submit_trailer(s, id, st->req_trailers.nv, st->req_trailers.n) != 0)
                    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            }
        } else if (!n) {
            st->req_deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

/* Request fields submit() builds on its stack; more go to the heap. */
#define SUBMIT_LOCAL_NV 32

#define NV(n, v, nl, vl) ((nghttp2_nv){ (uint8_t *)(n), (uint8_t *)(v), (nl), (vl), NGHTTP2_NV_FLAG_NONE })
/* A field whose name is a string literal: nghttp2 need not copy it. */
#define NV_LIT(n, v, vl) \
    ((nghttp2_nv){ (uint8_t *)(n), (uint8_t *)(v), sizeof n - 1, (vl), NGHTTP2_NV_FLAG_NO_COPY_NAME })

static void submit(struct proxy_h2up *up, struct proxy_h2stream *st)
{
    const struct proxy_conf *conf = up->ep->wc->pw->st->conf;
    const struct proxy_route_conf *rc = st->route ? st->route->conf : NULL;
    const char *peer = conf->xff != PROXY_XFF_OFF ? proxy_conn_peer(st->h1c ? st->h1c : st->dc->c) : "";
    /* The request's fields, the route's and the script's, 4 pseudo-headers,
     * the mesh's two, x-forwarded-for and via: on the stack when few. */
    size_t cap = st->req.n + (rc ? rc->add_headers.n : 0) + (st->lua ? st->lua->n_set : 0) + 8;
    nghttp2_nv local[SUBMIT_LOCAL_NV];
    nghttp2_nv *nv = cap <= SUBMIT_LOCAL_NV ? local : malloc(cap * sizeof *nv);
    if (!nv) {
        stream_detach(st, false);
        proxy_h2stream_on_upstream_failed(st, 503, 14, "out of memory");
        return;
    }
    size_t n = 0;
    /* Pseudo-headers first, as HTTP/2 requires; then the rest. */
    nv[n++] = NV_LIT(":method", st->method, st->method_len);
    nv[n++] = (nghttp2_nv){ (uint8_t *)":scheme", (uint8_t *)"http", 7, 4,
                            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE };
    nv[n++] = NV_LIT(":authority", st->authority, st->authority_len);
    nv[n++] = NV_LIT(":path", st->path, st->path_len);
    char xff[512];
    bool xff_done = false;
    for (size_t i = 0; i < st->req.n; i++) {
        const nghttp2_nv *h = &st->req.nv[i];
        if (h->namelen && h->name[0] == ':')
            continue;
        if (proxy_h2_hop_field(h->name, h->namelen, h->value, h->valuelen) || proxy_route_drops_header(rc, (const char *)h->name, h->namelen) ||
            (st->lua && proxy_lua_sets(st->lua, (const char *)h->name, h->namelen)))
            continue;
        if (h->namelen == 15 && memcmp(h->name, "x-forwarded-for", 15) == 0 && conf->xff != PROXY_XFF_OFF) {
            if (conf->xff == PROXY_XFF_REPLACE || xff_done || !peer[0])
                continue;
            int k = snprintf(xff, sizeof xff, "%.*s, %s", (int)h->valuelen, (const char *)h->value, peer);
            if (k > 0 && (size_t)k < sizeof xff) {
                /* The field's own flags: a never-indexed one stays so. (A
                 * list's flags never hold NO_COPY_VALUE: nghttp2 copies xff.) */
                nv[n++] = (nghttp2_nv){ h->name, (uint8_t *)xff, h->namelen, (size_t)k, h->flags };
                xff_done = true;
                continue;
            }
        }
        nv[n++] = *h;
    }
    if (rc)
        for (size_t i = 0; i < rc->add_headers.n && n < cap; i++)
            nv[n++] = NV(rc->add_headers.items[i].key, rc->add_headers.items[i].value,
                         strlen(rc->add_headers.items[i].key), strlen(rc->add_headers.items[i].value));
    for (unsigned i = 0; st->lua && i < st->lua->n_set && n < cap; i++)
        nv[n++] = NV(st->lua->store + st->lua->set[i].name_off, st->lua->store + st->lua->set[i].value_off,
                     st->lua->set[i].name_len, st->lua->set[i].value_len);
    size_t hop_len;
    const char *hop = proxy_mesh_hop(up->ep, up->mesh_hop, &hop_len);
    char caller[PROXY_CALLER_MAX];
    size_t caller_len = 0;
    if (hop) {
        nv[n++] = NV(PROXY_MESH_DST, hop, PROXY_MESH_DST_LEN, hop_len);
        caller_len = proxy_caller_text(up->ep->wc->pw->st, PROXY_H2STREAM_PEER(st), PROXY_H2STREAM_CALLER(st), caller);
        if (caller_len)
            nv[n++] = NV(PROXY_MESH_CALLER, caller, PROXY_MESH_CALLER_LEN, caller_len);
    }
    if (conf->xff != PROXY_XFF_OFF && !xff_done && peer[0])
        nv[n++] = NV_LIT("x-forwarded-for", peer, strlen(peer));
    char via[96];
    if (conf->via) {
        int k = snprintf(via, sizeof via, "2 %s", conf->via_name);
        if (k > 0)
            nv[n++] = NV_LIT("via", via, (size_t)k < sizeof via ? (size_t)k : sizeof via - 1);
    }
    nghttp2_data_provider dp = { .source.ptr = NULL, .read_callback = req_read };
    bool body = !(st->req_end && st->req_body.off == st->req_body.len && !st->req_trailers.n);
    int32_t id = nghttp2_submit_request(up->s, NULL, nv, n, body ? &dp : NULL, st);
    if (nv != local)
        free(nv);
    if (id < 0) {
        stream_detach(st, false);
        proxy_h2stream_on_upstream_failed(st, 503, 14, nghttp2_strerror(id));
        return;
    }
    st->up = up;
    st->up_id = id;
    if (up->last_id == id)
        up->last_st = st; /* not looked up before it existed, but to be sure */
    up->n_streams++;
    st->up_next = up->streams;
    st->up_prev = NULL;
    if (up->streams)
        up->streams->up_prev = st;
    up->streams = st;
    st->t_sent_ms = uv_now(up->ep->wc->pw->loop);
    proxy_h2up_flush(up);
}

/* --- client session callbacks ----------------------------------------------------- */

/* st's upstream stream ends or is cancelled: its id names no stream now. */
static void up_forget_stream(struct proxy_h2up *up, const struct proxy_h2stream *st)
{
    if (up->last_id == st->up_id) {
        up->last_st = NULL;
        up->last_id = 0;
    }
}

static int up_on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
                        const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    struct proxy_h2up *up = user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct proxy_h2stream *st = up_stream(up, frame->hd.stream_id);
    if (!st || st->failed)
        return 0;
    if (!st->resp_headers_done) {
        if (nl == 7 && memcmp(name, ":status", 7) == 0) {
            st->status = 0;
            for (size_t i = 0; i < vl; i++)
                st->status = st->status * 10 + (value[i] - '0');
            proxy_hdrs_clear(&st->resp); /* a final status after a 1xx starts over */
        }
        if (proxy_h2_hop_field(name, nl, value, vl))
            return 0;
        return proxy_hdrs_add_decoded(&st->resp, name, nl, value, vl, flags) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
    }
    if (proxy_h2_hop_field(name, nl, value, vl))
        return 0;
    return proxy_hdrs_add_decoded(&st->trailers, name, nl, value, vl, flags) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int up_on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    struct proxy_h2up *up = user;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        /* The server takes no new stream on this session (nginx does so
         * after keepalive_requests, or when it reloads): new requests open
         * a fresh session; this one finishes the streams the server kept
         * and then closes (nghttp2 stops wanting to read). The streams it
         * refused come back through up_on_stream_close. */
        up->goaway_recv = true;
        return 0;
    }
    struct proxy_h2stream *st = up_stream(up, frame->hd.stream_id);
    if (!st || st->failed)
        return 0;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        if (!st->resp_headers_done) {
            if (st->status < 200)
                return 0; /* interim: HTTP/2 clients need no 100 Continue relayed */
            /* A status the cluster retries, or for gRPC a trailers-only
             * response (grpc-status in the headers) with a code it retries:
             * this stream is reset and the request goes again. */
            const nghttp2_nv *gs = st->grpc && end ? proxy_hdrs_get(&st->resp, PROXY_HDR_GRPC_STATUS) : NULL;
            if ((!st->grpc || gs) &&
                proxy_h2stream_retry(st, PROXY_RETRY_CAUSE_STATUS, st->status, gs ? atoi((const char *)gs->value) : -1))
                return 0;
            st->resp_headers_done = true;
            st->resp_end = end;
            proxy_h2stream_on_response(st);
            return 0;
        }
        if (end) {
            st->resp_end = true;
            proxy_h2stream_on_response_data(st);
        }
        return 0;
    }
    if (frame->hd.type == NGHTTP2_DATA && end) {
        st->resp_end = true;
        proxy_h2stream_on_response_data(st);
    }
    return 0;
}

static int up_on_data_chunk_recv(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                                 void *user)
{
    struct proxy_h2stream *st = up_stream(user, id);
    if (!st || st->failed) {
        nghttp2_session_consume_connection(s, len);
        return 0;
    }
    if (proxy_bytes_put(&st->resp_body, data, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    proxy_h2stream_on_response_data(st);
    return 0;
}

/* Whether a closed upstream stream counts against its endpoint: reset
 * before its response ended, a 5xx, or gRPC UNAVAILABLE (14), the status
 * of a server that cannot serve now. */
static bool stream_failed(const struct proxy_h2stream *st, uint32_t error_code)
{
    if (!st->resp_headers_done || (error_code != NGHTTP2_NO_ERROR && !st->resp_end))
        return true;
    if (st->status >= 500)
        return true;
    const nghttp2_nv *gs = proxy_hdrs_get(&st->trailers, PROXY_HDR_GRPC_STATUS);
    if (!gs)
        gs = proxy_hdrs_get(&st->resp, PROXY_HDR_GRPC_STATUS); /* trailers-only */
    return gs && gs->valuelen == 2 && memcmp(gs->value, "14", 2) == 0;
}

static int up_on_stream_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *user)
{
    struct proxy_h2stream *st = up_stream(user, id);
    if (!st)
        return 0;
    /* No nghttp2_session_set_stream_user_data(NULL): nghttp2 answers no
     * user data for a closed stream; up_forget_stream clears the cache. */
    up_forget_stream(user, st);
    /* Bytes still queued for the client were never acknowledged: give
     * them back to the connection window, or it shrinks for good. */
    size_t queued = st->resp_body.len - st->resp_body.off;
    if (queued)
        nghttp2_session_consume_connection(s, queued);
    if (st->ep && !st->failed && error_code != NGHTTP2_REFUSED_STREAM)
        proxy_outlier_report(st->ep, stream_failed(st, error_code));
    stream_detach(st, error_code == NGHTTP2_NO_ERROR);
    /* REFUSED_STREAM means the server did not process the request (RFC
     * 9113 8.7): nghttp2 also reports so the streams beyond a GOAWAY's
     * last stream id and those it could not start after one. Send it
     * again on a fresh session, unless part of its body left already
     * (that part is gone). A server refusing streams is going away or
     * overloaded: this session gets no new stream either way (nginx resets
     * the streams past keepalive_requests before its GOAWAY arrives).
     * Bounded, so a server refusing everything still gets an answer. */
    if (error_code == NGHTTP2_REFUSED_STREAM && !st->resp_headers_done && !st->failed &&
        (!st->up_body_sent || st->req_body.hold) && st->up_refusals < PROXY_H2_REFUSED_RETRIES) {
        struct proxy_h2up *up = user;
        up->retired = true;
        st->up_refusals++;
        if (st->req_body.hold) {
            st->req_body.off = 0; /* the replay starts from the body's first byte */
            st->req_pos = 0;
            st->up_body_sent = st->req_deferred = false;
        }
        proxy_h2up_dispatch(st);
        return 0;
    }
    if (error_code != NGHTTP2_NO_ERROR && !st->resp_headers_done &&
        proxy_h2stream_retry(st, PROXY_RETRY_CAUSE_RESET, 0, -1))
        return 0;
    if (!st->resp_end && !st->failed) {
        char why[96];
        snprintf(why, sizeof why, "upstream reset the stream (%s)", nghttp2_http2_strerror(error_code));
        proxy_h2stream_on_upstream_failed(st, 502, 14, why);
    }
    return 0;
}

/* --- connection ------------------------------------------------------------------- */

static void up_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct proxy_h2up *up = h->data;
    b->base = (char *)up->rbuf;
    b->len = sizeof up->rbuf;
}

static void up_on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *b)
{
    struct proxy_h2up *up = stream->data;
    if (n == 0 || up->closing)
        return;
    if (n < 0) {
        /* Lost with streams in flight: one failure of the endpoint. */
        if (up->streams && !up->goaway_recv)
            proxy_outlier_report(up->ep, true);
        up_close(up, n == UV_EOF ? "upstream closed the connection" : uv_strerror((int)n));
        return;
    }
    ssize_t r = nghttp2_session_mem_recv(up->s, up->rbuf, (size_t)n);
    if (r < 0) {
        up_close(up, nghttp2_strerror((int)r));
        return;
    }
    proxy_h2up_flush(up);
}

static void up_on_timer(uv_timer_t *t)
{
    struct proxy_h2up *up = t->data;
    if (!up->connected) {
        proxy_outlier_report(up->ep, true);
        up_close(up, "upstream connect timeout");
        return;
    }
    /* An extra session idle since idle_since_ms: closed once that lasted
     * idle_timeout, unless it carries streams again or is the oldest now. */
    if (up->n_streams || !up_takes_streams(up) || up_is_warm(up))
        return;
    uint64_t idle = up->ep->wc->c->conf->idle_timeout, now = uv_now(up->ep->wc->pw->loop);
    if (now - up->idle_since_ms < idle) {
        uv_timer_start(&up->timer, up_on_timer, idle - (now - up->idle_since_ms), 0);
        return;
    }
    up->retired = true;
    proxy_h2up_flush(up);
}

static int session_new(struct proxy_h2up *up)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb))
        return UV_ENOMEM;
    nghttp2_session_callbacks_set_on_header_callback(cb, up_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, up_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, up_on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, up_on_stream_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, up->assumed_streams);
    int rc = nghttp2_session_client_new3(&up->s, cb, up, opt, &up->ep->wc->pw->mem.nghttp2);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rc)
        return UV_ENOMEM;
    /* No RFC 7540 priorities: see proxy_h2_conn_start. */
    nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 }, { NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1 } };
    nghttp2_submit_settings(up->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
    return 0;
}

static void up_on_connect(uv_connect_t *req, int status)
{
    struct proxy_h2up *up = req->data;
    if (status == UV_ECANCELED || up->closing)
        return;
    uv_timer_stop(&up->timer);
    if (status < 0)
        proxy_outlier_report(up->ep, true);
    if (status < 0 || session_new(up) != 0) {
        up_close(up, status < 0 ? uv_strerror(status) : "out of memory");
        return;
    }
    uv_tcp_nodelay(&up->tcp, 1);
    up->connected = true;
    if (uv_read_start((uv_stream_t *)&up->tcp, up_on_alloc, up_on_read) != 0) {
        up_close(up, "cannot read from upstream");
        return;
    }
    struct proxy_h2stream *st;
    while ((st = pending_pop(up)))
        submit(up, st);
    if (!up->n_streams)
        up_on_idle(up);
    proxy_h2up_flush(up);
}

static struct proxy_h2up *up_open(struct proxy_endpoint *ep)
{
    struct proxy_wcluster *wc = ep->wc;
    struct proxy_worker *pw = wc->pw;
    struct proxy_h2up *up = calloc(1, sizeof *up);
    if (!up)
        return NULL;
    up->ep = ep;
    up->assumed_streams = ep_assumed_streams(ep);
    proxy_endpoint_ref(ep);
    for (struct proxy_h2up **pp = &ep->h2;; pp = &(*pp)->ep_next)
        if (!*pp) {
            *pp = up; /* the newest last: the oldest fill first */
            break;
        }
    uv_tcp_init(pw->loop, &up->tcp);
    uv_timer_init(pw->loop, &up->timer);
    up->tcp.data = up->timer.data = up->connect_req.data = up;
    wc->n_conns++;
    pw->n_upconns++;
    if (wc->s_conns)
        pw->st->host->gauge_add(wc->s_conns, 1);
    const struct sockaddr *sa = proxy_endpoint_connect_addr(ep, &up->mesh_hop);
    if (uv_tcp_connect(&up->connect_req, &up->tcp, sa, up_on_connect) != 0) {
        up_close(up, "cannot connect");
        return NULL;
    }
    uv_timer_start(&up->timer, up_on_timer, wc->c->conf->connect_timeout, 0);
    return up;
}

/* The session of ep a new stream goes to (see the top), or NULL when none
 * can be opened. */
static struct proxy_h2up *up_pick(struct proxy_endpoint *ep)
{
    struct proxy_h2up *least = NULL;
    for (struct proxy_h2up *up = ep->h2; up; up = up->ep_next) {
        if (!up_takes_streams(up))
            continue;
        if (up->n_streams < up_stream_limit(up))
            return up;
        if (!least || up->n_streams < least->n_streams)
            least = up;
    }
    struct proxy_h2up *up;
    if ((!least || ep->wc->n_conns < (unsigned)ep->wc->c->conf->max_connections) && (up = up_open(ep)))
        return up;
    return least;
}

void proxy_h2up_dispatch(struct proxy_h2stream *st)
{
    const char *why;
    if (!proxy_upstream_admit(st->wc, &why)) {
        proxy_h2stream_on_upstream_failed(st, 503, 14, why);
        return;
    }
    struct proxy_endpoint *ep = proxy_lb_pick_other(st->wc, st->avoid_ep);
    if (!ep) {
        char empty[160];
        proxy_upstream_no_endpoint_why(st->wc, empty, sizeof empty);
        proxy_h2stream_on_upstream_failed(st, 503, 14, empty);
        return;
    }
    if (st->ep)
        proxy_endpoint_unref(st->ep);
    proxy_endpoint_ref(ep);
    st->ep = ep;
    st->ep_active = true;
    ep->active++;
    proxy_mesh_endpoint_check(ep);
    struct proxy_h2up *up = up_pick(ep);
    if (!up) {
        stream_detach(st, false);
        proxy_h2stream_on_upstream_failed(st, 503, 14, "cannot connect to upstream");
        return;
    }
    if (!up->connected) {
        pending_push(up, st);
        return;
    }
    submit(up, st);
}

void proxy_h2up_cancel(struct proxy_h2stream *st)
{
    proxy_delay_cancel(st->retry_delay);
    st->retry_delay = NULL;
    if (st->h1up || st->h1connecting) {
        proxy_h2h1_cancel(st);
        return;
    }
    /* Still waiting for the connection: just leave the queue. */
    if (st->pending_up)
        pending_remove(st->pending_up, st);
    struct proxy_h2up *up = st->up;
    if (up && up->s) {
        size_t queued = st->resp_body.len - st->resp_body.off;
        if (queued)
            nghttp2_session_consume_connection(up->s, queued);
        st->resp_body.off = st->resp_body.len = 0;
        nghttp2_session_set_stream_user_data(up->s, st->up_id, NULL);
        up_forget_stream(up, st);
        nghttp2_submit_rst_stream(up->s, NGHTTP2_FLAG_NONE, st->up_id, NGHTTP2_CANCEL);
        proxy_h2up_flush(up);
    }
    stream_detach(st, false);
}

void proxy_h2up_resume(struct proxy_h2stream *st)
{
    if (st->h1up) {
        proxy_h2h1_pump(st);
        return;
    }
    struct proxy_h2up *up = st->up;
    if (!up || !up->s || !st->req_deferred)
        return;
    st->req_deferred = false;
    nghttp2_session_resume_data(up->s, st->up_id);
    proxy_h2up_flush(up);
}

void proxy_h2up_consumed(struct proxy_h2stream *st, size_t n)
{
    if (st->h1up) {
        proxy_h2h1_consumed(st);
        return;
    }
    struct proxy_h2up *up = st->up;
    if (!up || !up->s)
        return;
    nghttp2_session_consume(up->s, st->up_id, n);
    proxy_h2up_flush(up);
}

void proxy_h2up_close_all(struct proxy_worker *pw)
{
    for (size_t i = 0; i < pw->st->n_clusters; i++) {
        struct proxy_wcluster *wc = &pw->clusters[i];
        for (size_t e = 0; e < wc->n_eps; e++)
            for (struct proxy_h2up *up = wc->eps[e]->h2, *next; up; up = next) {
                next = up->ep_next;
                if (!up->n_streams)
                    up_close(up, "draining");
            }
    }
}

void proxy_h2up_retire(struct proxy_endpoint *ep)
{
    for (struct proxy_h2up *up = ep->h2, *next; up; up = next) {
        next = up->ep_next;
        up->retired = true;
        if (!up->n_streams)
            up_close(up, "endpoint retired");
        /* Otherwise proxy_h2up_send ends it after its last stream. */
    }
}

bool proxy_h2up_idle(const struct proxy_endpoint *ep, unsigned *n)
{
    bool idle = true;
    *n = 0;
    for (const struct proxy_h2up *up = ep->h2; up; up = up->ep_next) {
        ++*n;
        idle = idle && !up->n_streams;
    }
    return idle;
}

/*
 * proxy_h2: HTTP/2 client sessions (h2c with prior knowledge) and their
 * streams. A stream's request is routed like an HTTP/1.1 one, then carried
 * by the upstream leg (proxy_h2_up.c); its response comes back through the
 * proxy_h2stream_on_* calls below.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proxy_discovery.h"
#include "proxy_h2.h"

/* --- sending ------------------------------------------------------------------ */

static void h2_on_idle(uv_idle_t *h)
{
    struct proxy_worker *pw = h->data;
    uv_idle_stop(h);
    proxy_h2_flush_dirty(pw);
}

/* An idle handle runs before the loop next blocks, whichever phase marked
 * the session (I/O, timer or close callbacks). */
void proxy_h2_arm(struct proxy_worker *pw)
{
    if (pw->h2_idle_open)
        uv_idle_start(&pw->h2_idle, h2_on_idle);
}

void proxy_h2conn_flush(struct proxy_h2conn *dc)
{
    struct proxy_worker *pw = dc->c->pw;
    if (dc->dirty)
        return;
    dc->dirty = true;
    dc->dirty_next = pw->h2_dirty;
    pw->h2_dirty = dc;
    proxy_h2_arm(pw);
}

static void h2_on_written(uv_write_t *req, int status);

static void h2conn_close(struct proxy_h2conn *dc)
{
    /* proxy_conn_close frees the session through proxy_h2_conn_free. */
    proxy_conn_close(dc->c);
}

static void h2conn_send(struct proxy_h2conn *dc)
{
    if (dc->writing || dc->c->state == CONN_CLOSING)
        return;
again:
    dc->out_len = 0;
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(dc->s, &d);
        if (n < 0) {
            h2conn_close(dc);
            return;
        }
        if (n == 0)
            break;
        if (dc->out_len + (size_t)n > dc->out_cap) {
            size_t cap = dc->out_cap ? dc->out_cap : 16384;
            while (cap < dc->out_len + (size_t)n)
                cap *= 2;
            uint8_t *o = realloc(dc->out, cap);
            if (!o) {
                h2conn_close(dc);
                return;
            }
            dc->out = o;
            dc->out_cap = cap;
        }
        memcpy(dc->out + dc->out_len, d, (size_t)n);
        dc->out_len += (size_t)n;
        if (dc->out_len >= 65536)
            break;
    }
    if (dc->out_len) {
        uv_buf_t b = uv_buf_init((char *)dc->out, (unsigned)dc->out_len);
        dc->c->wreq.data = dc;
        int r = proxy_write((uv_stream_t *)&dc->c->tcp, &dc->c->wreq, &b, 1, h2_on_written);
        if (r == 1)
            goto again;
        if (r < 0)
            h2conn_close(dc);
        else
            dc->writing = true;
        return;
    }
    if ((!nghttp2_session_want_read(dc->s) && !nghttp2_session_want_write(dc->s)) ||
        (dc->goaway && dc->n_streams == 0))
        h2conn_close(dc);
}

static void h2_on_written(uv_write_t *req, int status)
{
    struct proxy_h2conn *dc = req->data;
    dc->writing = false;
    if (dc->c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        h2conn_close(dc);
        return;
    }
    h2conn_send(dc);
}

void proxy_h2_flush_dirty(struct proxy_worker *pw)
{
    /* Sending on one session can mark the other (window updates), so
     * loop until nothing is marked. */
    while (pw->h2_dirty || pw->h2up_dirty) {
        struct proxy_h2up *up = pw->h2up_dirty;
        pw->h2up_dirty = NULL;
        while (up) {
            struct proxy_h2up *next = up->dirty_next;
            up->dirty = false;
            proxy_h2up_send(up);
            up = next;
        }
        struct proxy_h2conn *dc = pw->h2_dirty;
        pw->h2_dirty = NULL;
        while (dc) {
            struct proxy_h2conn *next = dc->dirty_next;
            dc->dirty = false;
            h2conn_send(dc);
            dc = next;
        }
    }
}

/* --- streams -------------------------------------------------------------------- */

struct proxy_h2stream *proxy_h2stream_new(struct proxy_worker *pw)
{
    struct proxy_h2stream *st = proxy_mem_calloc(&pw->mem, sizeof *st);
    if (!st)
        return NULL;
    st->pw = pw;
    st->req.mem = st->resp.mem = st->trailers.mem = st->req_trailers.mem = &pw->mem;
    st->req_body.mem = st->resp_body.mem = &pw->mem;
    return st;
}

void proxy_h2stream_free(struct proxy_h2stream *st)
{
    proxy_hdrs_clear(&st->req);
    proxy_hdrs_clear(&st->resp);
    proxy_hdrs_clear(&st->trailers);
    proxy_hdrs_clear(&st->req_trailers);
    free(st->h1_trailers);
    proxy_bytes_free(&st->req_body);
    proxy_bytes_free(&st->resp_body);
    free(st->lua);
    free(st->caller);
    free(st->h1_head);
    free(st->h1_out);
    if (st->ep)
        proxy_endpoint_unref(st->ep);
    proxy_delay_cancel(st->retry_delay); /* NULL after every proxy_h2up_cancel */
    proxy_h2_deadline_clear(st);
    proxy_mem_free(&st->pw->mem, st);
}

static void stream_unlink(struct proxy_h2stream *st)
{
    struct proxy_h2conn *dc = st->dc;
    if (dc->last_id == st->id) {
        dc->last_st = NULL;
        dc->last_id = 0;
    }
    if (st->prev)
        st->prev->next = st->next;
    else
        dc->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    dc->n_streams--;
}

/* The stream id names on dc's session (its user data), or NULL. */
static struct proxy_h2stream *dc_stream(struct proxy_h2conn *dc, int32_t id)
{
    if (id != dc->last_id) {
        dc->last_id = id;
        dc->last_st = nghttp2_session_get_stream_user_data(dc->s, id);
    }
    return dc->last_st;
}

static ssize_t resp_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    /* The stream rides in the data source: it lives until the session
     * closes the stream, after which nghttp2 reads no more of it. */
    struct proxy_h2stream *st = src->ptr;
    size_t n = proxy_bytes_take(&st->resp_body, buf, length);
    if (n) {
        st->bytes_out += n;
        proxy_h2up_consumed(st, n);
    }
    if (st->resp_body.off == st->resp_body.len) {
        if (st->resp_end) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            if (st->trailers.n) {
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
                nghttp2_submit_trailer(s, id, st->trailers.nv, st->trailers.n);
            }
        } else if (!n) {
            st->resp_deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

void proxy_h2stream_on_response(struct proxy_h2stream *st)
{
    if (st->h1c) {
        proxy_h1h2_on_response(st);
        return;
    }
    struct proxy_h2conn *dc = st->dc;
    if (st->resp_submitted)
        return;
    st->resp_submitted = true;
    const nghttp2_nv *gs = proxy_hdrs_get(&st->resp, PROXY_HDR_GRPC_STATUS);
    if (gs)
        st->grpc_status = atoi((const char *)gs->value);
    if (st->resp_end && st->resp_body.off == st->resp_body.len && !st->trailers.n) {
        nghttp2_submit_response(dc->s, st->id, st->resp.nv, st->resp.n, NULL);
    } else {
        nghttp2_data_provider dp = { .source.ptr = st, .read_callback = resp_read };
        nghttp2_submit_response(dc->s, st->id, st->resp.nv, st->resp.n, &dp);
    }
    proxy_h2conn_flush(dc);
}

void proxy_h2stream_on_response_data(struct proxy_h2stream *st)
{
    if (st->h1c) {
        proxy_h1h2_on_response_data(st);
        return;
    }
    if (st->resp_end && st->trailers.n) {
        const nghttp2_nv *gs = proxy_hdrs_get(&st->trailers, PROXY_HDR_GRPC_STATUS);
        if (gs)
            st->grpc_status = atoi((const char *)gs->value);
    }
    if (st->resp_submitted && st->resp_deferred) {
        st->resp_deferred = false;
        nghttp2_session_resume_data(st->dc->s, st->id);
    }
    proxy_h2conn_flush(st->dc);
}

static void add_lit(struct proxy_hdrs *h, const char *n, const char *v)
{
    proxy_hdrs_add(h, (const uint8_t *)n, strlen(n), (const uint8_t *)v, strlen(v));
}

void proxy_h2stream_on_upstream_failed(struct proxy_h2stream *st, int status, int grpc_status, const char *why)
{
    if (st->h1c) {
        proxy_h1h2_failed(st, status, why);
        return;
    }
    struct proxy_h2conn *dc = st->dc;
    char num[16];
    st->failed = true;
    snprintf(st->reason, sizeof st->reason, "%s", why);
    /* Every body byte received and not acknowledged yet (queued, or taken
     * by a write that will not complete) is given back to the client. */
    if (st->bytes_in > st->req_acked)
        nghttp2_session_consume(dc->s, st->id, (size_t)(st->bytes_in - st->req_acked));
    st->req_acked = st->bytes_in;
    st->req_body.off = st->req_body.len = st->req_body.hold = 0;
    dc->c->pw->st->host->log(dc->c->pw->st->ctx, OTR_LOG_DEBUG, "h2 stream %d: %s", st->id, why);
    if (st->resp_submitted) {
        if (st->grpc && !st->resp_end) {
            /* Headers went out: end the stream with the status in trailers. */
            proxy_hdrs_clear(&st->trailers);
            snprintf(num, sizeof num, "%d", grpc_status);
            add_lit(&st->trailers, "grpc-status", num);
            add_lit(&st->trailers, "grpc-message", why);
            st->grpc_status = grpc_status;
            st->resp_end = true;
            proxy_h2stream_on_response_data(st);
            return;
        }
        if (!st->resp_end)
            nghttp2_submit_rst_stream(dc->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        proxy_h2conn_flush(dc);
        return;
    }
    proxy_hdrs_clear(&st->resp);
    proxy_hdrs_clear(&st->trailers);
    st->resp_body.off = st->resp_body.len = 0;
    if (st->grpc) {
        /* gRPC clients read failures from grpc-status: a trailers-only
         * response, HTTP status 200. */
        snprintf(num, sizeof num, "%d", grpc_status);
        add_lit(&st->resp, ":status", "200");
        add_lit(&st->resp, "content-type", "application/grpc");
        add_lit(&st->resp, "grpc-status", num);
        add_lit(&st->resp, "grpc-message", why);
        st->status = 200;
        st->resp_end = true;
    } else {
        snprintf(num, sizeof num, "%d", status);
        add_lit(&st->resp, ":status", num);
        add_lit(&st->resp, "content-type", "text/plain");
        proxy_bytes_put(&st->resp_body, (const uint8_t *)why, strlen(why));
        proxy_bytes_put(&st->resp_body, (const uint8_t *)"\n", 1);
        st->status = status;
        st->resp_end = true;
    }
    proxy_h2stream_on_response(st);
}

void proxy_h2stream_on_deadline(struct proxy_h2stream *st)
{
    if (st->ep && !st->resp_headers_done)
        proxy_outlier_report(st->ep, true);
    proxy_h2up_cancel(st);
    proxy_h2stream_on_upstream_failed(st, 504, 4, "deadline exceeded");
}

static bool h2_header_eq(const void *arg, const char *name, const char *value)
{
    const struct proxy_h2stream *st = arg;
    size_t nl = strlen(name), vl = strlen(value);
    for (size_t i = 0; i < st->req.n; i++) {
        const nghttp2_nv *nv = &st->req.nv[i];
        if (nv->namelen == nl && strncasecmp((const char *)nv->name, name, nl) == 0 && nv->valuelen == vl &&
            memcmp(nv->value, value, vl) == 0)
            return true;
    }
    return false;
}

static void h2_push_headers(lua_State *L, const void *arg)
{
    const struct proxy_h2stream *st = arg;
    for (size_t i = 0; i < st->req.n; i++) {
        const nghttp2_nv *nv = &st->req.nv[i];
        if (nv->namelen && nv->name[0] != ':')
            proxy_lua_push_header(L, (const char *)nv->name, nv->namelen, (const char *)nv->value, nv->valuelen);
    }
}

/* The gRPC status a script's HTTP deny status stands for. */
static int grpc_for_http(int status)
{
    switch (status) {
    case 400: return 3;
    case 401: return 16;
    case 403: return 7;
    case 404: return 12;
    case 429: return 8;
    case 503: return 14;
    case 504: return 4;
    default: return 2;
    }
}

/* Runs the route script: the cluster it chose, -1 for none, -2 when the
 * stream was answered. */
static int stream_run_script(struct proxy_h2stream *st)
{
    struct proxy_conn *c = st->dc->c;
    struct proxy_worker *pw = c->pw;
    struct proxy_state *ps = pw->st;
    struct proxy_lua_out out;
    struct proxy_caller caller;
    const struct otr_pod *pod = proxy_caller_get(ps, PROXY_H2STREAM_PEER(st), st->caller, true, &caller);
    struct proxy_lua_call call = {
        st->method, st->path, st->authority, st->method_len, st->path_len, st->authority_len,
        c->listener == PROXY_OUTBOUND ? "outbound" : "inbound", st->grpc ? "gRPC" : "HTTP/2", h2_push_headers, st,
        pod, &out, ps,
    };
    int rc = proxy_lua_route(pw, &call);
    proxy_caller_put(ps, &caller);
    if (rc && ps->conf->script_failure == PROXY_SCRIPT_DENY) {
        proxy_h2stream_on_upstream_failed(st, 503, 14, "route script failed");
        return -2;
    }
    if (out.deny) {
        proxy_h2stream_on_upstream_failed(st, out.deny, grpc_for_http(out.deny),
                                          out.reason[0] ? out.reason : "denied by route script");
        return -2;
    }
    if (out.n_set && (st->lua = malloc(sizeof *st->lua))) {
        *st->lua = out;
        /* HTTP/2 field names are lower-case. */
        for (unsigned i = 0; i < out.n_set; i++)
            for (uint16_t k = 0; k < out.set[i].name_len; k++) {
                char *ch = &st->lua->store[out.set[i].name_off + k];
                if (*ch >= 'A' && *ch <= 'Z')
                    *ch = (char)(*ch + 32);
            }
    }
    return out.cluster;
}

/* The mesh's verdict on the stream (proxy_mesh_incoming): a cluster, -1
 * (route as usual) or -2 (answered). */
static int stream_mesh_incoming(struct proxy_h2stream *st)
{
    struct proxy_conn *c = st->dc->c;
    if (!c->pw->mesh)
        return -1;
    const nghttp2_nv *d = proxy_hdrs_find(&st->req, PROXY_MESH_DST);
    const nghttp2_nv *cv = proxy_hdrs_find(&st->req, PROXY_MESH_CALLER);
    unsigned count = 0, ccount = 0;
    for (size_t i = 0; (d || cv) && i < st->req.n; i++) {
        count += st->req.nv[i].namelen == PROXY_MESH_DST_LEN &&
                 memcmp(st->req.nv[i].name, PROXY_MESH_DST, PROXY_MESH_DST_LEN) == 0;
        ccount += st->req.nv[i].namelen == PROXY_MESH_CALLER_LEN &&
                  memcmp(st->req.nv[i].name, PROXY_MESH_CALLER, PROXY_MESH_CALLER_LEN) == 0;
    }
    proxy_caller_take(c->pw, (enum proxy_listener_id)c->listener, PROXY_H2STREAM_PEER(st), &st->caller,
                      cv ? (const char *)cv->value : NULL, cv ? cv->valuelen : 0, ccount);
    int status;
    char why[160];
    int ci = proxy_mesh_incoming(c->pw, (enum proxy_listener_id)c->listener, true, d ? (const char *)d->value : NULL,
                                 d ? d->valuelen : 0, count, proxy_conn_peer(c), &status, why, sizeof why);
    if (ci == -2)
        proxy_h2stream_on_upstream_failed(st, status, grpc_for_http(status), why);
    return ci;
}

/* The request's headers are complete: route it and start the upstream leg. */
static void stream_begin(struct proxy_h2stream *st)
{
    struct proxy_conn *c = st->dc->c;
    struct proxy_worker *pw = c->pw;
    struct proxy_state *st_ = pw->st;
    const nghttp2_nv *m = proxy_hdrs_get(&st->req, PROXY_HDR_METHOD);
    const nghttp2_nv *p = proxy_hdrs_get(&st->req, PROXY_HDR_PATH);
    const nghttp2_nv *a = proxy_hdrs_get(&st->req, PROXY_HDR_AUTHORITY);
    if (!a)
        a = proxy_hdrs_get(&st->req, PROXY_HDR_HOST);
    const nghttp2_nv *ct = proxy_hdrs_get(&st->req, PROXY_HDR_CONTENT_TYPE);
    st->grpc = ct && ct->valuelen >= 16 && strncmp((const char *)ct->value, "application/grpc", 16) == 0;
    st->t_start_ms = uv_now(pw->loop);
    st->grpc_status = -1;
    if (!m || !p) {
        /* nghttp2 already refuses requests without them; CONNECT has no
         * :path and is not proxied. */
        proxy_h2stream_on_upstream_failed(st, 501, 12, "CONNECT is not supported");
        return;
    }
    st->method = (const char *)m->value;
    st->method_len = m->valuelen;
    st->path = (const char *)p->value;
    st->path_len = p->valuelen;
    st->authority = a ? (const char *)a->value : "";
    st->authority_len = a ? a->valuelen : 0;
    int script_cluster = -1;
    /* A request from another agent for a local pod goes there directly;
     * the route script still runs on it (as on HTTP/1.1), its cluster unused. */
    int mesh_cluster = stream_mesh_incoming(st);
    if (mesh_cluster == -2)
        return;
    if (st_->hook && (script_cluster = stream_run_script(st)) == -2)
        return;
    struct proxy_req_view v = { st->method, st->authority, st->path, st->method_len, st->authority_len,
                                st->path_len, h2_header_eq, st };
    st->route = mesh_cluster < 0 ? proxy_route_match(st_, (enum proxy_listener_id)c->listener, &v) : NULL;
    int ci = mesh_cluster >= 0   ? mesh_cluster
             : script_cluster >= 0 ? script_cluster
             : st->route         ? proxy_route_cluster(st->route, &pw->rng)
                                 : st_->default_cluster[c->listener];
    if (ci < 0) {
        proxy_h2stream_on_upstream_failed(st, 404, 12, "no route");
        return;
    }
    st->wc = &pw->clusters[ci];
    if (st->wc->c->conf->protocol != PROXY_PROTO_H2 && st->grpc) {
        proxy_h2stream_on_upstream_failed(st, 502, 14, "gRPC needs a cluster with protocol h2");
        return;
    }
    uint64_t timeout = st->route && st->route->conf->timeout ? st->route->conf->timeout
                                                             : st->wc->c->conf->request_timeout;
    const nghttp2_nv *gt = st->grpc ? proxy_hdrs_get(&st->req, PROXY_HDR_GRPC_TIMEOUT) : NULL;
    if (gt) {
        int64_t ms = proxy_grpc_timeout_ms((const char *)gt->value, gt->valuelen);
        if (ms >= 0 && (!timeout || (uint64_t)ms < timeout))
            timeout = (uint64_t)ms;
    }
    if (timeout)
        proxy_h2_deadline_set(st, timeout);
    proxy_h2stream_retry_prepare(st);
    proxy_h2stream_dispatch(st);
}

static void stream_publish(struct proxy_h2stream *st)
{
    struct proxy_conn *c = st->dc->c;
    struct proxy_worker *pw = c->pw;
    struct proxy_state *ps = pw->st;
    const struct otr_host *host = ps->host;
    double ms = (double)(uv_now(pw->loop) - st->t_start_ms);
    if (st->wc) {
        int cls = st->status >= 100 && st->status < 600 ? st->status / 100 : 0;
        if (st->wc->s_requests[cls])
            host->counter_add(st->wc->s_requests[cls], 1);
        if (st->wc->s_duration)
            host->observe(st->wc->s_duration, ms / 1000.0);
        proxy_cmetrics_count(c, st->caller, st->wc, cls, ms / 1000.0);
    }
    if (!host->bus_has_subscribers(ps->ctx, "access"))
        return;
    const char *upstream = st->ep ? proxy_endpoint_text(st->ep) : "";
    const char *cluster = st->wc ? st->wc->c->conf->name : "";
    struct proxy_caller caller;
    const struct otr_pod *pod = proxy_caller_get(ps, PROXY_H2STREAM_PEER(st), st->caller, false, &caller);
    const char *proto = st->grpc ? "gRPC" : "HTTP/2";
    struct otr_field f[] = {
        { .key = "protocol", .type = OTR_VAL_STR, .v.s = { proto, strlen(proto) } },
        { .key = "method", .type = OTR_VAL_STR, .v.s = { st->method ? st->method : "", st->method_len } },
        { .key = "authority", .type = OTR_VAL_STR, .v.s = { st->authority ? st->authority : "", st->authority_len } },
        { .key = "path", .type = OTR_VAL_STR, .v.s = { st->path ? st->path : "", st->path_len } },
        { .key = "status", .type = OTR_VAL_INT, .v.i = st->status },
        { .key = "grpc_status", .type = OTR_VAL_INT, .v.i = st->grpc ? st->grpc_status : -1 },
        { .key = "bytes_in", .type = OTR_VAL_INT, .v.i = (int64_t)st->bytes_in },
        { .key = "bytes_out", .type = OTR_VAL_INT, .v.i = (int64_t)st->bytes_out },
        { .key = "duration_ms", .type = OTR_VAL_DOUBLE, .v.d = ms },
        { .key = "upstream", .type = OTR_VAL_STR, .v.s = { upstream, strlen(upstream) } },
        { .key = "retries", .type = OTR_VAL_INT, .v.i = st->retries },
        { .key = "cluster", .type = OTR_VAL_STR, .v.s = { cluster, strlen(cluster) } },
        { .key = "caller_namespace", .type = OTR_VAL_STR, .v.s = { pod ? pod->namespace_ : "", pod ? strlen(pod->namespace_) : 0 } },
        { .key = "caller_pod", .type = OTR_VAL_STR, .v.s = { pod ? pod->name : "", pod ? strlen(pod->name) : 0 } },
        { .key = "reason", .type = OTR_VAL_STR, .v.s = { st->reason, strlen(st->reason) } },
    };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct otr_record rec = { (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, f, sizeof f / sizeof f[0] };
    host->bus_publish(ps->ctx, pw->w, "access", &rec);
    proxy_caller_put(ps, &caller);
}

static void drain_check(struct proxy_h2conn *dc);

/* --- server session callbacks ------------------------------------------------------ */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    struct proxy_h2conn *dc = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct proxy_h2stream *st = proxy_h2stream_new(dc->c->pw);
    if (!st)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    st->dc = dc;
    st->id = frame->hd.stream_id;
    st->grpc_status = -1;
    st->avoid_ep = 0;
    st->next = dc->streams;
    if (dc->streams)
        dc->streams->prev = st;
    dc->streams = st;
    dc->n_streams++;
    dc->c->n_requests++;
    uv_timer_stop(&dc->c->timer);
    nghttp2_session_set_stream_user_data(s, st->id, st);
    dc->last_id = st->id;
    dc->last_st = st;
    dc->last_active_ms = uv_now(dc->c->pw->loop);
    drain_check(dc);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    struct proxy_h2conn *dc = user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct proxy_h2stream *st = dc_stream(dc, frame->hd.stream_id);
    if (!st)
        return 0;
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        /* Request trailers (nghttp2 has checked that they end the stream
         * and hold no pseudo-header), forwarded when the body ends. */
        if (st->req_trailers.bytes + nl + vl > dc->c->pw->st->limits.max_trailers)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        if (proxy_h2_hop_field(name, nl, value, vl))
            return 0;
        return proxy_hdrs_add_decoded(&st->req_trailers, name, nl, value, vl, flags) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
    }
    if (st->req.bytes + nl + vl > dc->c->pw->st->limits.max_head)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    if (proxy_hdrs_add_decoded(&st->req, name, nl, value, vl, flags) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

/* Opaque data of the PING that times the drain's two-step GOAWAY. */
static const uint8_t drain_ping[8] = { 'o', 't', 'r', 'd', 'r', 'a', 'i', 'n' };

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    struct proxy_h2conn *dc = user;
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) && dc->drain_pinged && !dc->goaway &&
        memcmp(frame->ping.opaque_data, drain_ping, sizeof drain_ping) == 0) {
        /* Every stream the client opened before it saw the shutdown
         * notice arrived before this ACK: the final GOAWAY names the last
         * one, and the session closes once they are all answered. (The
         * caller flushes after nghttp2_session_mem_recv.) */
        dc->goaway = true;
        nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s), NGHTTP2_NO_ERROR,
                              NULL, 0);
        return 0;
    }
    struct proxy_h2stream *st = dc_stream(dc, frame->hd.stream_id);
    if (!st)
        return 0;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        st->req_end = end;
        stream_begin(st);
        return 0;
    }
    if (end && (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)) {
        st->req_end = true;
        proxy_h2up_resume(st);
    }
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                              void *user)
{
    struct proxy_h2stream *st = dc_stream(user, id);
    if (!st) {
        nghttp2_session_consume_connection(s, len);
        return 0;
    }
    if (st->failed) {
        /* Nobody will forward it: give the window back at once. */
        nghttp2_session_consume(s, id, len);
        return 0;
    }
    st->bytes_in += len;
    if (proxy_bytes_put(&st->req_body, data, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    proxy_h2up_resume(st);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *user)
{
    struct proxy_h2conn *dc = user;
    struct proxy_h2stream *st = dc_stream(dc, id);
    if (!st)
        return 0;
    /* No nghttp2_session_set_stream_user_data(NULL) (a map lookup per
     * stream saved): nghttp2 answers no user data for a closed stream,
     * even one it keeps for RFC 7540 priorities (which the
     * SETTINGS_NO_RFC7540_PRIORITIES we send disables anyway); the one-entry
     * cache is cleared in stream_unlink. */
    if (!st->status && error_code != NGHTTP2_NO_ERROR)
        st->status = 499; /* the client gave up */
    stream_publish(st);
    proxy_h2up_cancel(st);
    stream_unlink(st);
    proxy_h2stream_free(st);
    dc->last_active_ms = uv_now(dc->c->pw->loop);
    drain_check(dc);
    if (dc->n_streams == 0 && !dc->goaway)
        proxy_conn_idle_start(dc->c);
    return 0;
}

int proxy_h2_conn_start(struct proxy_conn *c)
{
    struct proxy_h2conn *dc = calloc(1, sizeof *dc);
    if (!dc)
        return UV_ENOMEM;
    dc->c = c;
    dc->last_active_ms = uv_now(c->pw->loop);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rc = nghttp2_session_server_new3(&dc->s, cb, dc, opt, &c->pw->mem.nghttp2);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rc) {
        free(dc);
        return UV_ENOMEM;
    }
    c->h2 = dc;
    /* A proxy has no use for RFC 7540 priorities (it forwards none):
     * saying so spares nghttp2 its dependency tree and the closed streams
     * it keeps for it (RFC 9218 2.1). */
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 256 },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c->pw->st->limits.max_head },
        { NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1 },
    };
    nghttp2_submit_settings(dc->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
    ssize_t n = nghttp2_session_mem_recv(dc->s, (const uint8_t *)c->buf, c->len);
    c->len = 0;
    if (n < 0)
        return UV_EPROTO;
    /* The first read may have filled the buffer, which stops reading on
     * an HTTP/1.1 connection; from now on the buffer is always empty. */
    proxy_conn_read_start(c);
    proxy_h2conn_flush(dc);
    return 0;
}

void proxy_h2_conn_on_read(struct proxy_conn *c, const uint8_t *data, size_t n)
{
    struct proxy_h2conn *dc = c->h2;
    ssize_t r = nghttp2_session_mem_recv(dc->s, data, n);
    if (r < 0) {
        c->pw->st->host->log(c->pw->st->ctx, OTR_LOG_DEBUG, "h2 client %s: %s", proxy_conn_peer(c), nghttp2_strerror((int)r));
        h2conn_close(dc);
        return;
    }
    proxy_h2conn_flush(dc);
}

/* Graceful shutdown in two steps (RFC 9113 6.8). A GOAWAY naming the last
 * stream processed so far would refuse the streams the client is sending
 * right now. So first a GOAWAY with the largest stream id (the client opens
 * no new stream here and takes new requests elsewhere) and a PING; streams
 * arriving meanwhile are served as usual; the PING's ACK (on_frame_recv)
 * brings the final GOAWAY. The session closes once its streams are done, or
 * at the drain deadline. */
static void drain_notice(struct proxy_h2conn *dc)
{
    dc->drain_pinged = true;
    nghttp2_submit_shutdown_notice(dc->s);
    nghttp2_submit_ping(dc->s, NGHTTP2_FLAG_NONE, drain_ping);
    proxy_h2conn_flush(dc);
}

/* A busy session is told to go away only halfway to the drain deadline
 * (checked as its streams come and go): any GOAWAY makes a client fail the
 * requests it queued but had not sent yet unless it sends them again on a
 * new connection, which simple clients (h2load) do not. Short-lived
 * connections so finish on the old generation untouched; long-lived ones
 * still move, with half the timeout left for their streams. A session idle
 * for the drain grace is told at once; one that just finished its streams
 * (a client between two requests) gets the grace to send more, and is
 * closed by its idle timer if it does not. */
static void drain_check(struct proxy_h2conn *dc)
{
    if (dc->drain_goaway_ms && !dc->drain_pinged && !dc->goaway && uv_now(dc->c->pw->loop) >= dc->drain_goaway_ms)
        drain_notice(dc);
}

void proxy_h2_conn_drain(struct proxy_conn *c)
{
    struct proxy_h2conn *dc = c->h2;
    struct proxy_worker *pw = c->pw;
    if (dc->drain_goaway_ms || dc->goaway)
        return;
    uint64_t left = pw->drain_timer_open ? uv_timer_get_due_in(&pw->drain_timer) : 0;
    uint64_t now = uv_now(pw->loop);
    dc->drain_goaway_ms = now + left / 2;
    if (left == 0 || (dc->n_streams == 0 && now - dc->last_active_ms >= PROXY_DRAIN_IDLE_GRACE_MS))
        drain_notice(dc);
    else if (dc->n_streams == 0)
        proxy_conn_idle_start(c);
}

void proxy_h2_conn_shutdown(struct proxy_conn *c)
{
    struct proxy_h2conn *dc = c->h2;
    if (!dc)
        return;
    struct proxy_worker *pw = c->pw;
    while (dc->streams) {
        struct proxy_h2stream *st = dc->streams;
        if (!st->status)
            st->status = 499;
        stream_publish(st);
        proxy_h2up_cancel(st);
        stream_unlink(st);
        proxy_h2stream_free(st);
    }
    if (dc->dirty) {
        for (struct proxy_h2conn **pp = &pw->h2_dirty; *pp; pp = &(*pp)->dirty_next)
            if (*pp == dc) {
                *pp = dc->dirty_next;
                break;
            }
        dc->dirty = false;
    }
}

void proxy_h2_conn_free(struct proxy_conn *c)
{
    struct proxy_h2conn *dc = c->h2;
    if (!dc)
        return;
    nghttp2_session_del(dc->s);
    free(dc->out);
    free(dc);
    c->h2 = NULL;
}

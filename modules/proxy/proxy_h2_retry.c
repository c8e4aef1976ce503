/*
 * proxy_h2_retry: sending a stream's request again (HTTP/2 clients, and
 * HTTP/1.1 clients of h2 clusters) after an attempt failed before anything
 * of its response reached the client. The request body is replayed from
 * the stream's queue, which holds every byte while the body fits in the
 * cluster's retry_buffer (proxy_bytes.hold); a longer body, once partly
 * sent, makes the request final.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy_h2.h"

void proxy_h2stream_retry_prepare(struct proxy_h2stream *st)
{
    const struct proxy_cluster_conf *cc = st->wc->c->conf;
    st->wc->budget_requests++;
    st->method_retryable = st->grpc || proxy_retry_method_ok(st->method, st->method_len);
    if (proxy_retry_max(cc, st->route ? st->route->conf : NULL) > 0 && st->method_retryable)
        st->req_body.hold = (size_t)cc->retry_buffer;
}

void proxy_h2stream_req_taken(struct proxy_h2stream *st, size_t n)
{
    st->req_pos += n;
    if (st->req_pos <= st->req_acked)
        return;
    if (st->dc) {
        /* Only now may the client send more: acknowledge on its session. */
        nghttp2_session_consume(st->dc->s, st->id, (size_t)(st->req_pos - st->req_acked));
        proxy_h2conn_flush(st->dc);
    }
    st->req_acked = st->req_pos;
}

void proxy_h2stream_dispatch(struct proxy_h2stream *st)
{
    if (st->wc->c->conf->protocol == PROXY_PROTO_H2)
        proxy_h2up_dispatch(st);
    else
        proxy_upstream_dispatch_h2(st, st->wc);
}

static void stream_on_retry_delay(void *arg)
{
    struct proxy_h2stream *st = arg;
    st->retry_delay = NULL;
    proxy_h2stream_dispatch(st);
}

/* Whether nothing of st's response went to its client yet. */
static bool response_untouched(const struct proxy_h2stream *st)
{
    if (st->h1c)
        return !st->h1c->resp_head_sent && !st->h1c->writing && st->h1c->state != CONN_CLOSING;
    return !st->resp_submitted;
}

bool proxy_h2stream_retry(struct proxy_h2stream *st, enum proxy_retry_cause cause, int status, int grpc_status)
{
    struct proxy_wcluster *wc = st->wc;
    if (!wc || st->failed || !response_untouched(st))
        return false;
    if (!st->method_retryable)
        return false;
    /* The body can be sent again only if every byte of it is still here:
     * held from the start, or none of it taken by this attempt. */
    if (!st->req_body.hold && st->up_body_sent)
        return false;
    const struct proxy_route_conf *rc = st->route ? st->route->conf : NULL;
    if (!proxy_retry_wanted(wc->c->conf, rc, cause, status, grpc_status, st->grpc) ||
        !proxy_retry_take(wc, rc, &st->retries))
        return false;
    struct proxy_worker *pw = wc->pw;
    pw->st->host->log(pw->st->ctx, OTR_LOG_DEBUG, "retrying stream to %s (status %d, grpc-status %d)",
                      st->ep ? st->ep->addr.text : "-", status, grpc_status);
    st->avoid_ep = st->ep ? st->ep->id : 0;
    proxy_h2up_cancel(st);
    /* The new attempt starts from a clean response and the body's start. */
    proxy_hdrs_clear(&st->resp);
    proxy_hdrs_clear(&st->trailers);
    st->resp_body.off = st->resp_body.len = 0;
    st->resp_headers_done = st->resp_end = false;
    st->status = 0;
    st->grpc_status = -1;
    if (st->req_body.hold)
        st->req_body.off = 0;
    st->req_pos = 0;
    st->up_body_sent = st->req_deferred = false;
    st->h1_head_sent = st->h1_req_done = st->h1_writing = false;
    st->h1_out_payload = 0;
    st->up_id = 0;
    uint64_t delay = proxy_retry_delay_ms(wc, st->retries);
    if (delay && (st->retry_delay = proxy_delay_start(pw->loop, delay, stream_on_retry_delay, st)))
        return true;
    proxy_h2stream_dispatch(st);
    return true;
}

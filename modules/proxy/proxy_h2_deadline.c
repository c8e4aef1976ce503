/*
 * proxy_h2_deadline: request deadlines of HTTP/2 streams (route or
 * cluster timeout, grpc-timeout), one timer per worker.
 *
 * A uv timer per stream cost a heap insertion, a removal and a handle
 * close per request. Here the worker keeps its streams with a deadline in
 * one list ordered by deadline; since most streams share a timeout, a new
 * one nearly always goes at the tail. The timer is due at the head's
 * deadline; a stream leaving the list does not re-arm it, the timer finds
 * the new head when it fires.
 */
#include "proxy_h2.h"

static void deadline_arm(struct proxy_worker *pw)
{
    struct proxy_h2stream *head = pw->h2_deadline_head;
    if (!head || !pw->h2_deadline_open)
        return;
    uint64_t now = uv_now(pw->loop);
    uv_timer_start(&pw->h2_deadline_timer, proxy_h2_deadlines_on_timer,
                   head->deadline_ms > now ? head->deadline_ms - now : 0, 0);
}

void proxy_h2_deadlines_on_timer(uv_timer_t *t)
{
    struct proxy_worker *pw = t->data;
    uint64_t now = uv_now(pw->loop);
    /* Expiring one stream may end others (its connection closing), which
     * takes them off the list: always start again from the head. */
    struct proxy_h2stream *st;
    while ((st = pw->h2_deadline_head) && st->deadline_ms <= now) {
        proxy_h2_deadline_clear(st);
        proxy_h2stream_on_deadline(st);
    }
    deadline_arm(pw);
}

void proxy_h2_deadline_set(struct proxy_h2stream *st, uint64_t timeout_ms)
{
    struct proxy_worker *pw = st->pw;
    proxy_h2_deadline_clear(st);
    st->deadline_ms = uv_now(pw->loop) + timeout_ms;
    struct proxy_h2stream *after = pw->h2_deadline_tail;
    while (after && after->deadline_ms > st->deadline_ms)
        after = after->dl_prev;
    st->dl_prev = after;
    st->dl_next = after ? after->dl_next : pw->h2_deadline_head;
    if (st->dl_next)
        st->dl_next->dl_prev = st;
    else
        pw->h2_deadline_tail = st;
    if (after)
        after->dl_next = st;
    else
        pw->h2_deadline_head = st;
    st->dl_linked = true;
    if (!after)
        deadline_arm(pw); /* the new head is due first */
}

void proxy_h2_deadline_clear(struct proxy_h2stream *st)
{
    if (!st->dl_linked)
        return;
    struct proxy_worker *pw = st->pw;
    if (st->dl_prev)
        st->dl_prev->dl_next = st->dl_next;
    else
        pw->h2_deadline_head = st->dl_next;
    if (st->dl_next)
        st->dl_next->dl_prev = st->dl_prev;
    else
        pw->h2_deadline_tail = st->dl_prev;
    st->dl_prev = st->dl_next = NULL;
    st->dl_linked = false;
}

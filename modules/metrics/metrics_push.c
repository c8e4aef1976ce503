/*
 * Optional push of the exposition to a Pushgateway-compatible URL, on
 * worker 0, every push.interval: PUT <url>/metrics/job/<job>, which
 * replaces the group's metrics as a scrape would. One push in flight at
 * most; a slow gateway delays the next push instead of piling them up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_http_client.h"
#include "metrics_int.h"

struct metrics_pusher {
    uv_timer_t timer;
    struct metrics_worker *mw;
    struct metrics_url url;
    struct mhttp_client *client;
    struct mbuf body;
    int last_status;
};

static void pusher_handle_closed(void *owner)
{
    metrics_worker_closed(owner);
}

static void push_on_done(void *arg, int err, int status, char *body, size_t len, const char *ctype)
{
    struct metrics_pusher *p = arg;
    struct metrics_worker *mw = p->mw;
    p->client = NULL;
    if (err == UV_ECANCELED)
        return;
    bool ok = err == 0 && status >= 200 && status < 300;
    if (!ok) {
        char why[128];
        if (err)
            snprintf(why, sizeof why, "%s", uv_strerror(err));
        else
            snprintf(why, sizeof why, "HTTP status %d: %.*s", status, (int)(len > 80 ? 80 : len), body);
        mw->st->host->log(mw->st->ctx, OTR_LOG_WARN, "push to %s failed: %s", p->url.hostport, why);
    }
    p->last_status = err ? err : status;
    metrics_count(mw->st->host, ok ? mw->c.pushes_ok : mw->c.pushes_failed, 1);
}

static void pusher_on_tick(uv_timer_t *timer)
{
    struct metrics_pusher *p = timer->data;
    struct metrics_worker *mw = p->mw;
    if (p->client || mw->draining)
        return;
    const struct metrics_conf *conf = mw->st->conf;
    p->body.len = 0;
    /* The Pushgateway refuses samples with timestamps (400): leave them out. */
    metrics_expose(mw, MEXPO_PROMETHEUS, MEXPO_NO_TIMESTAMPS, &p->body);
    struct mhttp_request r = {
        .method = "PUT",
        .url = &p->url,
        .content_type = mexpo_content_type(MEXPO_PROMETHEUS),
        .body = p->body.p,
        .body_len = p->body.len,
        .timeout_ms = conf->push.timeout,
        .max_body = 65536,
    };
    mw->open_handles += 2;
    p->client = mhttp_start(mw->loop, &r, push_on_done, p, pusher_handle_closed, mw);
}

static void pusher_on_close(uv_handle_t *h)
{
    struct metrics_pusher *p = h->data;
    struct metrics_worker *mw = p->mw;
    mbuf_fini(&p->body);
    free(p);
    metrics_worker_closed(mw);
}

int metrics_push_start(struct metrics_worker *mw)
{
    const struct metrics_conf *conf = mw->st->conf;
    char url[1024], err[160];
    size_t n = strlen(conf->push.url);
    snprintf(url, sizeof url, "%.*s/metrics/job/%s", (int)(n && conf->push.url[n - 1] == '/' ? n - 1 : n),
             conf->push.url, conf->push.job);
    struct metrics_pusher *p = xcalloc(1, sizeof *p);
    p->mw = mw;
    mbuf_init(&p->body);
    if (metrics_url_parse(url, &p->url, err, sizeof err) != 0) {
        /* check() validated the URL; only an over-long job gets here. */
        mw->st->host->log(mw->st->ctx, OTR_LOG_ERROR, "push.url: %s", err);
        free(p);
        return UV_EINVAL;
    }
    uv_timer_init(mw->loop, &p->timer);
    p->timer.data = p;
    mw->open_handles++;
    mw->pusher = p;
    return uv_timer_start(&p->timer, pusher_on_tick, conf->push.interval, conf->push.interval);
}

void metrics_push_stop(struct metrics_worker *mw)
{
    struct metrics_pusher *p = mw->pusher;
    if (!p)
        return;
    mw->pusher = NULL;
    if (p->client) {
        struct mhttp_client *c = p->client;
        p->client = NULL;
        mhttp_abort(c);
    }
    uv_close((uv_handle_t *)&p->timer, pusher_on_close);
}

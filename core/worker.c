#include "worker.h"

#include "log.h"
#include "metrics_registry.h"
#include "util.h"

static void worker_on_beat(uv_timer_t *t)
{
    struct otr_worker *w = t->data;
    uint64_t now = uv_now(&w->loop);
    uint64_t lag_ms = now > w->expected_ms ? now - w->expected_ms : 0;
    atomic_store_explicit(&w->lag_us, lag_ms * 1000, memory_order_relaxed);
    atomic_store_explicit(&w->last_beat_ms, otr_now_ms(), memory_order_relaxed);
    if (w->lag_series)
        otr_series_gauge_set(w->lag_series, (double)lag_ms / 1000.0);
    w->expected_ms = now + OTR_WORKER_BEAT_MS;
}

static void worker_main(void *arg)
{
    struct otr_worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

int otr_worker_start(struct otr_worker *w, unsigned index)
{
    w->index = index;
    int rc = uv_loop_init(&w->loop);
    if (rc)
        return rc;
    w->loop.data = w;
    rc = otr_mailbox_init(&w->mb, &w->loop);
    if (rc)
        goto fail_loop;
    uv_timer_init(&w->loop, &w->heartbeat);
    w->heartbeat.data = w;
    /* The heartbeat must not keep the loop alive on its own. */
    uv_unref((uv_handle_t *)&w->heartbeat);
    w->expected_ms = uv_now(&w->loop) + OTR_WORKER_BEAT_MS;
    atomic_store(&w->last_beat_ms, otr_now_ms());
    uv_timer_start(&w->heartbeat, worker_on_beat, OTR_WORKER_BEAT_MS, OTR_WORKER_BEAT_MS);
    rc = uv_thread_create(&w->thread, worker_main, w);
    if (rc)
        goto fail_handles;
    return 0;
fail_handles:
    uv_close((uv_handle_t *)&w->heartbeat, NULL);
    otr_mailbox_close(&w->mb, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
fail_loop:
    uv_loop_close(&w->loop);
    return rc;
}

int otr_worker_post(struct otr_worker *w, otr_task_fn fn, void *arg)
{
    return otr_mailbox_post(&w->mb, fn, arg);
}

static void worker_quit(void *arg)
{
    struct otr_worker *w = arg;
    uv_close((uv_handle_t *)&w->heartbeat, NULL);
    otr_mailbox_close(&w->mb, NULL);
}

static void close_leftover(uv_handle_t *h, void *arg)
{
    struct otr_worker *w = arg;
    otr_log_error("worker %u: a %s handle is still open at exit", w->index, uv_handle_type_name(h->type));
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int otr_worker_quit_join(struct otr_worker *w)
{
    otr_worker_post(w, worker_quit, w);
    uv_thread_join(&w->thread);
    int rc = uv_loop_close(&w->loop);
    if (rc == UV_EBUSY) {
        /* Close what was left so the loop itself can still be closed; the
         * owner's memory is lost, which the log line above explains. */
        uv_walk(&w->loop, close_leftover, w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
    }
    return rc;
}

bool otr_worker_alive(struct otr_worker *w)
{
    uint64_t last = atomic_load_explicit(&w->last_beat_ms, memory_order_relaxed);
    return otr_now_ms() - last < OTR_WORKER_STUCK_MS;
}

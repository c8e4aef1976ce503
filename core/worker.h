/*
 * worker: a thread running its own uv loop. Modules add handles to it in
 * their start() callback; core talks to it only through its mailbox. A
 * heartbeat timer measures the loop's lag, which feeds a metric and /ready
 * (a worker stuck in a callback stops beating).
 */
#ifndef OTR_WORKER_H
#define OTR_WORKER_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "mailbox.h"
#include "outrider/module.h"

struct otr_worker {
    unsigned index;
    uv_loop_t loop;
    uv_thread_t thread;
    struct otr_mailbox mb;
    uv_timer_t heartbeat;
    _Atomic uint64_t last_beat_ms; /* uv_now of the last heartbeat */
    _Atomic uint64_t lag_us;       /* how late the last heartbeat fired */
    uint64_t expected_ms;
    otr_series *lag_series;        /* set before start; may be NULL */
};

/* Heartbeat period; a worker that has not beaten for OTR_WORKER_STUCK_MS is
 * reported stuck. */
#define OTR_WORKER_BEAT_MS 250
#define OTR_WORKER_STUCK_MS 5000

/* Initialises w's loop and mailbox, then starts its thread. */
int otr_worker_start(struct otr_worker *w, unsigned index);
/* Runs fn(arg) on w's thread (any thread). */
int otr_worker_post(struct otr_worker *w, otr_task_fn fn, void *arg);
/* Asks the worker to close its own handles and end its loop, then joins
 * the thread and closes the loop. Returns uv_loop_close's result: UV_EBUSY
 * means a module left a handle open (each is logged). Main thread. */
int otr_worker_quit_join(struct otr_worker *w);
/* Whether w's loop beat within OTR_WORKER_STUCK_MS (any thread). */
bool otr_worker_alive(struct otr_worker *w);

#endif

/*
 * mailbox: runs functions on another thread's uv loop. Any thread posts;
 * the owning loop runs the tasks in order from a uv_async callback.
 */
#ifndef OTR_MAILBOX_H
#define OTR_MAILBOX_H

#include <stdbool.h>
#include <uv.h>

typedef void (*otr_task_fn)(void *arg);

struct otr_task;

struct otr_mailbox {
    uv_async_t async;
    uv_mutex_t lock;
    struct otr_task *head, *tail;
    bool closed;
};

/* Initialises the mailbox on loop (its owner's thread). */
int otr_mailbox_init(struct otr_mailbox *mb, uv_loop_t *loop);
/* Queues fn(arg) to run on the mailbox's loop (any thread). Returns 0, or
 * UV_ECANCELED once the mailbox is closed (fn does not run then). */
int otr_mailbox_post(struct otr_mailbox *mb, otr_task_fn fn, void *arg);
/* Runs what is queued, refuses further posts and closes the async handle
 * (owner's thread). on_closed runs from the close callback. */
void otr_mailbox_close(struct otr_mailbox *mb, uv_close_cb on_closed);

#endif

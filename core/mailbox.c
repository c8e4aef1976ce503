#include "mailbox.h"

#include <stdlib.h>

#include "util.h"

struct otr_task {
    struct otr_task *next;
    otr_task_fn fn;
    void *arg;
};

static void mailbox_run(struct otr_mailbox *mb)
{
    uv_mutex_lock(&mb->lock);
    struct otr_task *t = mb->head;
    mb->head = mb->tail = NULL;
    uv_mutex_unlock(&mb->lock);
    while (t) {
        struct otr_task *next = t->next;
        t->fn(t->arg);
        free(t);
        t = next;
    }
}

static void mailbox_on_async(uv_async_t *h)
{
    mailbox_run(h->data);
}

int otr_mailbox_init(struct otr_mailbox *mb, uv_loop_t *loop)
{
    mb->head = mb->tail = NULL;
    mb->closed = false;
    int rc = uv_mutex_init(&mb->lock);
    if (rc)
        return rc;
    rc = uv_async_init(loop, &mb->async, mailbox_on_async);
    if (rc) {
        uv_mutex_destroy(&mb->lock);
        return rc;
    }
    mb->async.data = mb;
    return 0;
}

int otr_mailbox_post(struct otr_mailbox *mb, otr_task_fn fn, void *arg)
{
    struct otr_task *t = otr_xmalloc(sizeof *t);
    t->next = NULL;
    t->fn = fn;
    t->arg = arg;
    uv_mutex_lock(&mb->lock);
    if (mb->closed) {
        uv_mutex_unlock(&mb->lock);
        free(t);
        return UV_ECANCELED;
    }
    if (mb->tail)
        mb->tail->next = t;
    else
        mb->head = t;
    mb->tail = t;
    /* uv_async_send under the lock: close cannot slip in between. */
    uv_async_send(&mb->async);
    uv_mutex_unlock(&mb->lock);
    return 0;
}

void otr_mailbox_close(struct otr_mailbox *mb, uv_close_cb on_closed)
{
    uv_mutex_lock(&mb->lock);
    mb->closed = true;
    uv_mutex_unlock(&mb->lock);
    mailbox_run(mb);
    uv_mutex_destroy(&mb->lock);
    uv_close((uv_handle_t *)&mb->async, on_closed);
}

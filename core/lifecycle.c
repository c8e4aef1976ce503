/*
 * Generations across workers: starting one on every worker, making it
 * current once all started, draining the one it replaces, and freeing a
 * generation once every module drained on every worker. The main thread
 * decides; workers act on their own loops and report back by mailbox.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "agent.h"
#include "lifecycle.h"
#include "log.h"
#include "notify.h"
#include "status.h"
#include "upgrade.h"
#include "util.h"

struct gen_task {
    struct otr_gen *gen;
    struct otr_worker *w;
    uint64_t timeout_ms;
};

static void post_to_workers(struct otr_gen *g, otr_task_fn fn, uint64_t timeout_ms)
{
    struct otr_agent *a = g->agent;
    for (unsigned i = 0; i < a->n_workers; i++) {
        struct gen_task *t = otr_xmalloc(sizeof *t);
        *t = (struct gen_task){.gen = g, .w = &a->workers[i], .timeout_ms = timeout_ms};
        otr_worker_post(&a->workers[i], fn, t);
    }
}

/* --- draining ------------------------------------------------------------ */

static void gen_on_drained(void *arg)
{
    struct otr_gen *g = arg;
    struct otr_agent *a = g->agent;
    for (struct otr_gen **pp = &a->draining; *pp; pp = &(*pp)->next_draining)
        if (*pp == g) {
            *pp = g->next_draining;
            break;
        }
    otr_log_debug("generation %llu drained", (unsigned long long)g->id);
    otr_gen_free(g);
    otr_agent_maybe_finish(a);
}

void otr_modctx_drained(struct otr_modctx *mc, struct otr_worker *w)
{
    if (mc->drained[w->index]) {
        otr_log(OTR_LOG_WARN, mc->pub.name, "reported drained twice on worker %u", w->index);
        return;
    }
    mc->drained[w->index] = true;
    if (atomic_fetch_sub(&mc->gen->pending, 1) == 1)
        otr_mailbox_post(&mc->gen->agent->mb, gen_on_drained, mc->gen);
}

/* Every worker stopped the old generation's accepting: only now does the
 * state file announce the new generation, so a client that reads it
 * reaches the new configuration. */
static void gen_on_drain_begun(void *arg)
{
    struct otr_gen *g = arg;
    if (atomic_fetch_sub(&g->drain_begun, 1) == 1 && !g->agent->shutting_down)
        otr_status_write_state_file(g->agent);
}

static void drain_on_worker(void *arg)
{
    struct gen_task *t = arg;
    struct otr_gen *g = t->gen;
    uint64_t deadline = uv_now(&t->w->loop) + t->timeout_ms;
    /* Post first: a module may report drained() synchronously, and the
     * generation may be freed once the last report is in. */
    otr_mailbox_post(&g->agent->mb, gen_on_drain_begun, g);
    for (size_t i = 0; i < g->n_mods; i++) {
        struct otr_modctx *mc = &g->mods[i];
        if (mc->lm->desc.drain)
            mc->lm->desc.drain(&mc->pub, t->w, deadline);
        else
            otr_modctx_drained(mc, t->w);
    }
    free(t);
}

void otr_gen_drain(struct otr_gen *g, uint64_t timeout_ms)
{
    struct otr_agent *a = g->agent;
    g->next_draining = a->draining;
    a->draining = g;
    unsigned n = (unsigned)g->n_mods * a->n_workers;
    atomic_store(&g->pending, n);
    atomic_store(&g->drain_begun, a->n_workers);
    if (n == 0) {
        if (!a->shutting_down)
            otr_status_write_state_file(a);
        otr_mailbox_post(&a->mb, gen_on_drained, g);
        return;
    }
    post_to_workers(g, drain_on_worker, timeout_ms);
}

/* --- starting ------------------------------------------------------------ */

static void gen_became_current(struct otr_gen *g)
{
    struct otr_agent *a = g->agent;
    struct otr_gen *old = a->current;
    a->current = g;
    otr_bus_activate(g->subs);
    otr_inventory_watch(a->inventory, g->core.inventory.file, g->core.inventory.poll_interval);
    if (!old) {
        otr_status_write_state_file(a);
        if (a->upgrade_fd >= 0) {
            /* This process replaces the service's main process. */
            char msg[64];
            snprintf(msg, sizeof msg, "MAINPID=%d\nREADY=1", (int)getpid());
            otr_notify(msg);
        } else {
            otr_notify("READY=1");
        }
        otr_upgrade_announce_ready(a);
    } else {
        otr_notify("READY=1");
    }
    if (old) {
        otr_agent_follow_endpoints(a, g);
        otr_series_counter_add(a->reloads_ok, 1);
        otr_log_info("generation %llu serving; draining generation %llu", (unsigned long long)g->id,
                     (unsigned long long)old->id);
        otr_gen_drain(old, old->core.drain.timeout);
    } else {
        otr_log_info("outrider %s ready: role %s, %u worker%s, %zu module%s", OTR_VERSION,
                     a->role == OTR_ROLE_NODE ? "node" : "sidecar", a->n_workers, a->n_workers == 1 ? "" : "s",
                     g->n_mods, g->n_mods == 1 ? "" : "s");
    }
}

static void gen_on_started(void *arg)
{
    struct otr_gen *g = arg;
    struct otr_agent *a = g->agent;
    if (atomic_fetch_sub(&g->pending, 1) != 1)
        return;
    a->starting = NULL;
    g->started = true;
    if (atomic_load(&g->start_failures) == 0 && !a->shutting_down) {
        gen_became_current(g);
        return;
    }
    /* A generation that did not start everywhere never serves: drain what
     * did start, and keep the current one (or, at first start, give up). */
    if (a->current) {
        otr_series_counter_add(a->reloads_failed, 1);
        otr_log_error("reload failed: a module could not start; keeping generation %llu",
                      (unsigned long long)a->current->id);
    } else if (!a->shutting_down) {
        a->exit_code = OTR_EXIT_STARTUP;
        otr_agent_shutdown(a, false);
    }
    otr_gen_drain(g, 0);
}

static void start_on_worker(void *arg)
{
    struct gen_task *t = arg;
    for (size_t i = 0; i < t->gen->n_mods; i++) {
        struct otr_modctx *mc = &t->gen->mods[i];
        if (!mc->lm->desc.start)
            continue;
        int rc = mc->lm->desc.start(&mc->pub, t->w);
        if (rc) {
            otr_log(OTR_LOG_ERROR, mc->pub.name, "cannot start on worker %u: %s", t->w->index,
                    rc == OTR_ECONFIG ? "configuration rejected" : uv_strerror(rc));
            atomic_fetch_add(&t->gen->start_failures, 1);
        }
    }
    otr_mailbox_post(&t->gen->agent->mb, gen_on_started, t->gen);
    free(t);
}

void otr_gen_start(struct otr_gen *g)
{
    struct otr_agent *a = g->agent;
    a->next_gen_id = g->id;
    a->starting = g;
    atomic_store(&g->pending, a->n_workers);
    post_to_workers(g, start_on_worker, 0);
}

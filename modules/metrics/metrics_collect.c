/*
 * One exposition from every source: the core registry (the agent's and
 * every module's own metrics), the statsd stores of all workers, and the
 * last snapshot of every scrape target. The registry comes first, so its
 * families win a type conflict with anything scraped.
 */
#include <stdlib.h>

#include "metrics_int.h"

static void registry_on_emit(void *arg, const char *p, size_t n)
{
    mbuf_add(arg, p, n);
}

static int registry_on_sample(void *arg, const struct prom_sample *s)
{
    msnap_builder_add_prom(arg, s);
    return 0;
}

static struct msnap *registry_snapshot(struct metrics_state *st)
{
    struct mbuf text;
    mbuf_init(&text);
    struct msnap_builder b;
    msnap_builder_init(&b, NULL, 0, false, 0);
    if (st->host->metrics_render(st->ctx, OTR_METRICS_PROMETHEUS, registry_on_emit, &text) == 0) {
        struct prom_error err;
        if (prom_parse(text.p, text.len, 0, registry_on_sample, &b, &err) != 0)
            st->host->log(st->ctx, OTR_LOG_WARN, "agent registry output, line %u:%u: %s", err.line, err.col, err.msg);
    }
    mbuf_fini(&text);
    return msnap_builder_finish(&b);
}

/* now_ds: the clock of the statsd receivers (loop time in tenths of a
 * second), which sets' windows are counted on. */
static struct msnap *statsd_snapshot(struct metrics_state *st, uint32_t now_ds)
{
    struct mstore **stores = xmalloc(st->n_workers * sizeof *stores);
    for (unsigned i = 0; i < st->n_workers; i++)
        stores[i] = &st->stores[i];
    pthread_mutex_lock(&st->lock);
    struct msnap *spare = st->statsd_spare;
    st->statsd_spare = NULL;
    pthread_mutex_unlock(&st->lock);
    struct msnap_builder b;
    msnap_builder_init_recycled(&b, spare);
    mstore_snapshot(stores, st->n_workers, now_ds, &b);
    free(stores);
    return msnap_builder_finish(&b);
}

void metrics_expose(struct metrics_worker *mw, enum mexpo_format fmt, unsigned flags, struct mbuf *out)
{
    struct metrics_state *st = mw->st;
    pthread_mutex_lock(&st->lock);
    size_t n = st->n_targets + 2, k = 2;
    struct msnap **snaps = xmalloc(n * sizeof *snaps);
    for (size_t i = 0; i < st->n_targets; i++)
        if (st->targets[i]->snap)
            snaps[k++] = msnap_ref(st->targets[i]->snap);
    pthread_mutex_unlock(&st->lock);
    snaps[0] = registry_snapshot(st);
    snaps[1] = statsd_snapshot(st, (uint32_t)(uv_now(mw->loop) / 100));
    struct mexpo_stats stats = {0};
    mexpo_render_scratch(snaps, k, fmt, flags, out, &stats, &mw->expo_scratch);
    metrics_count(st->host, mw->c.expo_duplicates, (double)stats.duplicates);
    /* The statsd snapshot's buffers serve the next exposition, unless
     * another one is already kept. */
    pthread_mutex_lock(&st->lock);
    if (!st->statsd_spare && atomic_load(&snaps[1]->refs) == 1) {
        st->statsd_spare = snaps[1];
        snaps[1] = NULL;
    }
    pthread_mutex_unlock(&st->lock);
    for (size_t i = 0; i < k; i++)
        msnap_unref(snaps[i]);
    free(snaps);
}

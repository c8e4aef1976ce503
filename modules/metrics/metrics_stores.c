/*
 * The statsd stores of all workers, kept across generations.
 *
 * statsd aggregates are what the agent exposes as counters: they must only
 * reset when the process restarts, not on a reload (Prometheus' rate()
 * would see a reset, and an aggregator that forgets on SIGHUP surprises).
 * The module's .so stays loaded across reloads, so the stores live here,
 * in static state, referenced by every generation that uses them: the
 * first one creates them, the last one to end frees them. Generations
 * overlap during a reload (the old one drains while the new one serves)
 * and both write to worker i's store under its lock, so nothing received
 * in between is lost.
 *
 * Each worker's start() of a new generation applies its configuration to
 * its own store (mstore_reconfigure) and the shared series cap.
 */
#include <stdlib.h>

#include "metrics_int.h"

static struct {
    pthread_mutex_t lock;
    unsigned refs, n;
    struct mstore *stores;
    struct mstore_limit limit;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct mstore *metrics_stores_acquire(unsigned n, const struct mstore_conf *conf, uint64_t max_series,
                                      struct mstore_limit **limit)
{
    struct mstore *stores = NULL;
    pthread_mutex_lock(&reg.lock);
    if (reg.refs == 0) {
        atomic_init(&reg.limit.used, 0);
        atomic_init(&reg.limit.max, max_series);
        reg.n = n;
        reg.stores = xcalloc(n, sizeof *reg.stores);
        for (unsigned i = 0; i < n; i++)
            mstore_init(&reg.stores[i], conf, &reg.limit);
    }
    /* The worker count is fixed for the process; a mismatch would be a
     * core bug, refused rather than indexed out of bounds. */
    if (reg.n == n) {
        reg.refs++;
        stores = reg.stores;
        *limit = &reg.limit;
    }
    pthread_mutex_unlock(&reg.lock);
    return stores;
}

void metrics_stores_release(void)
{
    pthread_mutex_lock(&reg.lock);
    if (reg.refs > 0 && --reg.refs == 0) {
        for (unsigned i = 0; i < reg.n; i++)
            mstore_fini(&reg.stores[i]);
        free(reg.stores);
        reg.stores = NULL;
        reg.n = 0;
    }
    pthread_mutex_unlock(&reg.lock);
}

void metrics_stores_configure(struct mstore *store, const struct mstore_conf *conf, uint64_t max_series)
{
    atomic_store(&reg.limit.max, max_series);
    mstore_reconfigure(store, conf);
}

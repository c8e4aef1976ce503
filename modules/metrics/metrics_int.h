/*
 * metrics_int: the module's shared state, for its own files only.
 *
 * Threads. Every worker runs a statsd receiver (its own store) and serves
 * /metrics on its SO_REUSEPORT share of the listener. Worker 0 also runs
 * the scrape scheduler, the HTTP clients and the Pushgateway timer. An
 * exposition may run on any worker: it reads the statsd stores under
 * their locks and the targets' snapshots under state->lock (taking a
 * reference, so the scraper can swap a new snapshot in meanwhile).
 */
#ifndef OTR_METRICS_INT_H
#define OTR_METRICS_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics_buf.h"
#include "metrics_expo.h"
#include "metrics_snapshot.h"
#include "metrics_store.h"
#include "outrider/module.h"

struct metrics_statsd_conf {
    bool enabled;
    struct otr_conf_address udp;
    char *unix_path;
    struct otr_conf_array timer_buckets, histogram_buckets; /* of double */
    int64_t max_series, set_max_members, batch, max_datagram;
    uint64_t rcvbuf, coalesce, set_window;
    bool pod_labels;
};

struct metrics_scrape_conf {
    uint64_t interval, timeout, max_body;
    int64_t sample_limit, max_targets;
    bool honor_labels, discover_pods;
    struct otr_conf_array targets; /* of char *: URLs */
};

struct metrics_relabel_conf {
    char *script, *function;
};

struct metrics_push_conf {
    char *url, *job;
    uint64_t interval, timeout;
};

struct metrics_conf {
    struct otr_conf_address listen;
    char *path;
    struct metrics_statsd_conf statsd;
    struct metrics_scrape_conf scrape;
    struct metrics_relabel_conf relabel;
    struct metrics_push_conf push;
};

/* A parsed http://host:port/path URL (an IP literal or a DNS name). */
struct metrics_url {
    char host[64];
    uint16_t port;
    char path[256];
    char hostport[80]; /* for the Host header and logs */
};

/* Parses an http:// URL; returns 0 or -1 with a reason in err. */
int metrics_url_parse(const char *s, struct metrics_url *u, char *err, size_t errlen);

struct mhttp_client;
struct metrics_worker;

/* A scrape target: created and scraped on worker 0; its snap pointer is
 * read by expositions under state->lock. */
struct metrics_target {
    struct metrics_state *st;
    char *key; /* the URL: identity across rediscoveries */
    struct metrics_url url;
    struct prom_label labels[MSNAP_MAX_TARGET_LABELS];
    size_t n_labels;
    char *label_text; /* storage for labels' strings */
    bool discovered, seen, removed;
    struct msnap *snap; /* guarded by st->lock */
    struct mhttp_client *client;
    uint64_t started_ms;
};


/* Counters of the module, in the core registry. Series are per worker
 * shard; NULL when the registry refused (then nothing is counted). */
struct metrics_counters {
    otr_series *packets, *lines, *malformed, *truncated;
    otr_series *refused[MSTORE_N];
    otr_series *set_overflow;
    otr_series *scrapes_ok, *scrapes_failed, *samples_dropped;
    otr_series *pushes_ok, *pushes_failed;
    otr_series *relabel_dropped;
    otr_series *expo_duplicates;
};

struct metrics_state {
    otr_ctx *ctx;
    const struct otr_host *host;
    const struct metrics_conf *conf;
    struct mstore_conf store_conf;
    struct mstore_limit *limit; /* shared by all generations (metrics_stores.c) */
    struct mstore *stores;      /* one per worker, shared by all generations */
    otr_listener *http, *udp, *unixl;
    otr_hook *relabel;
    otr_metric *m_packets, *m_lines, *m_malformed, *m_truncated, *m_refused, *m_set_overflow, *m_scrapes,
        *m_samples_dropped, *m_pushes, *m_relabel_dropped, *m_expo_duplicates;
    unsigned n_workers;
    struct metrics_worker *workers;

    /* Guards targets[] and each target's snap pointer. */
    pthread_mutex_t lock;
    struct metrics_target **targets;
    size_t n_targets, cap_targets;
    uint64_t inventory_seen;
    /* The last statsd snapshot, kept for its buffers (guarded by lock). */
    struct msnap *statsd_spare;
};

struct metrics_worker;
/* Builds the whole exposition into out on worker mw's thread (its working
 * memory is reused); flags: enum mexpo_flags. */
void metrics_expose(struct metrics_worker *mw, enum mexpo_format fmt, unsigned flags, struct mbuf *out);

/* Counting helper: adds v to a counter series if it exists. */
static inline void metrics_count(const struct otr_host *h, otr_series *s, double v)
{
    if (s && v != 0)
        h->counter_add(s, v);
}

/* --- per-worker parts: each returns 0 or a negative error; *_stop closes
 * its handles and calls metrics_worker_closed() for each closed one. --- */
int metrics_statsd_start(struct metrics_worker *mw);
void metrics_statsd_stop(struct metrics_worker *mw);
int metrics_endpoint_start(struct metrics_worker *mw);
void metrics_endpoint_stop(struct metrics_worker *mw);
int metrics_scrape_start(struct metrics_worker *mw);
void metrics_scrape_stop(struct metrics_worker *mw);
int metrics_push_start(struct metrics_worker *mw);
void metrics_push_stop(struct metrics_worker *mw);

/* Targets' snapshots, freed when the generation ends (main thread). */
void metrics_targets_free(struct metrics_state *st);

struct metrics_statsd_rx;
struct metrics_endpoint;
struct metrics_scraper;
struct metrics_pusher;

struct metrics_worker {
    struct metrics_state *st;
    otr_worker *w;
    uv_loop_t *loop;
    unsigned index;
    struct mstore *store; /* st->stores[index] */
    struct metrics_counters c;
    struct metrics_statsd_rx *udp_rx, *unix_rx;
    struct metrics_endpoint *endpoint;
    struct metrics_scraper *scraper; /* worker 0 */
    struct metrics_pusher *pusher;   /* worker 0 */
    struct mexpo_scratch expo_scratch; /* kept across this worker's expositions */
    unsigned open_handles;           /* handles not yet closed */
    bool draining;
};

/* The statsd stores (metrics_stores.c), which outlive generations: the
 * first acquire creates n of them, the last release frees them. Returns
 * NULL if n differs from the live stores' count. */
struct mstore *metrics_stores_acquire(unsigned n, const struct mstore_conf *conf, uint64_t max_series,
                                      struct mstore_limit **limit);
void metrics_stores_release(void);
/* Applies a generation's statsd config to a worker's store (its start). */
void metrics_stores_configure(struct mstore *store, const struct mstore_conf *conf, uint64_t max_series);

/* Every handle a worker opens is counted: +1 when opened, and its close
 * callback calls this; the worker is drained when none is left. */
void metrics_worker_closed(struct metrics_worker *mw);

#endif

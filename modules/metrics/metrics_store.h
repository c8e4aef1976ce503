/*
 * metrics_store: aggregation of statsd samples into Prometheus series,
 * one store per worker (no sharing on the hot path).
 *
 *   counter  c   -> counter <name>_total, += value / rate
 *   gauge    g   -> gauge <name>: set, or add for "+n"/"-n"
 *   timer    ms  -> histogram <name> in seconds (value / 1000), timer buckets
 *   h, d         -> histogram <name>, histogram buckets; weight 1 / rate
 *   set      s   -> gauge <name>: distinct members per window, exact up to a cap
 *
 * Names are made valid ("api.req-time" -> "api_req_time"); tags become
 * labels, sorted, so tag order does not split a series. Labels the agent
 * adds (the sending pod) are authoritative: a client tag of the same name
 * is kept as exported_<name>.
 *
 * Memory per series: a 24-byte record (family, label set, value) in a
 * chunked array and a 4-byte table slot. Label texts are interned: the
 * series that share their tags (the same tags on many names, the usual
 * case) share one copy. Family names live in an arena, families are
 * 16-byte records with a 4-byte slot. A shared limit caps the
 * number of series across all workers' stores; beyond it new series are
 * refused and counted, existing ones keep updating.
 *
 * Threads: a store is updated by its worker with its mutex held (one lock
 * per received batch, uncontended but for expositions), and read by the
 * exposition under the same mutex.
 */
#ifndef OTR_METRICS_STORE_H
#define OTR_METRICS_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics_promtext.h"
#include "metrics_snapshot.h"
#include "metrics_statsd.h"
#include "metrics_vec.h"

#define MSTORE_MAX_BUCKETS 64
#define MSTORE_MAX_NAME 200
#define MSTORE_MAX_LABELS_TEXT 4096

struct mstore_conf {
    const double *timer_buckets; /* seconds, ascending */
    size_t n_timer_buckets;
    const double *hist_buckets;
    size_t n_hist_buckets;
    uint32_t set_max_members; /* distinct members kept per set series */
    uint32_t set_window_ds;   /* sets count per window of this many tenths of a second; 0: since start */
};

/* The cap on series, shared by the stores of all workers. */
struct mstore_limit {
    atomic_uint_fast64_t used;
    atomic_uint_fast64_t max; /* 0: unlimited; a reload may change it */
};

/* Why mstore_apply refused a line. */
enum mstore_result {
    MSTORE_OK = 0,
    MSTORE_LIMIT,         /* a new series beyond the series cap */
    MSTORE_TYPE_CONFLICT, /* the name is already a metric of another type */
    MSTORE_BAD_NAME,      /* nothing valid left of the name, or too long */
    MSTORE_BAD_LABEL,     /* a tag value is not UTF-8, or labels too long */
    MSTORE_N,
};

struct mstore_arena_chunk;

struct mstore_family {
    const char *name;   /* in the store's arena, not NUL-terminated */
    uint32_t expo_hash; /* msnap_name_hash of the exposed name (a counter's without "_total") */
    uint16_t name_len;
    uint8_t type; /* enum prom_type */
    uint8_t kind; /* enum statsd_type of the first line (TIMER vs HISTOGRAM buckets) */
};

struct mstore {
    const struct mstore_conf *conf;
    struct mstore_limit *limit;
    pthread_mutex_t lock;
    struct mvec fams;      /* struct mstore_family */
    uint32_t *fam_slots;   /* open addressing by name: index+1 */
    size_t fam_mask;
    struct mvec labelsets; /* struct mlabelset *, interned label texts */
    uint32_t *ls_slots;    /* open addressing by text: index+1 */
    size_t ls_mask;
    struct mvec series;    /* struct mseries, in creation order (stable expositions) */
    uint32_t *slots;       /* open addressing by (family, label set): index+1 */
    size_t mask;
    struct mstore_arena_chunk *arena;
    size_t arena_bytes;
    /* Refusals by cause, and set members beyond the cap. */
    uint64_t refused[MSTORE_N];
    uint64_t set_overflow;
};

/* conf is copied: the store may outlive it (stores survive reloads). */
void mstore_init(struct mstore *st, const struct mstore_conf *conf, struct mstore_limit *limit);
void mstore_fini(struct mstore *st);

/* Applies a new configuration (a reload), taking st->lock. Series keep
 * their values, but histograms whose buckets changed are dropped: their
 * counts do not map onto other buckets, so they restart from zero. */
void mstore_reconfigure(struct mstore *st, const struct mstore_conf *conf);

/* Applies one parsed line (caller holds st->lock). extra: labels the agent
 * adds (pod identity), n_extra of them. now_ds: a clock in tenths of a
 * second, so the latest gauge wins when stores are merged. */
enum mstore_result mstore_apply(struct mstore *st, const struct statsd_line *line, const struct prom_label *extra,
                                size_t n_extra, uint32_t now_ds);

/* Adds the series of n stores to a snapshot builder, merging series that
 * several stores hold (counters and histograms add, the latest gauge
 * wins, sets unite the members they expose). now_ds: the clock of
 * mstore_apply, which places sets in their windows. Takes each store's
 * lock in turn. */
void mstore_snapshot(struct mstore *const *stores, size_t n, uint32_t now_ds, struct msnap_builder *b);

/* Heap bytes held by the store. */
size_t mstore_memory(const struct mstore *st);

/* Makes a statsd name a valid Prometheus name into out (MSTORE_MAX_NAME +
 * 8 bytes); returns its length, 0 if nothing valid is left. */
size_t mstore_sanitize_name(const char *p, size_t n, char *out);

#endif

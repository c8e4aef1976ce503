/*
 * metrics_expo: renders snapshots as one exposition, merging families of
 * the same name from different sources (the registry, statsd, every
 * scraped target) so each family appears once, with one HELP and TYPE
 * line, as both formats require.
 */
#ifndef OTR_METRICS_EXPO_H
#define OTR_METRICS_EXPO_H

#include <stddef.h>
#include <stdint.h>

#include "metrics_buf.h"
#include "metrics_snapshot.h"

enum mexpo_format {
    MEXPO_PROMETHEUS = 0, /* text/plain; version=0.0.4 */
    MEXPO_OPENMETRICS,    /* application/openmetrics-text; version=1.0.0 */
};

struct mexpo_stats {
    uint64_t families, series;
    /* Families dropped because an earlier source has the same name with
     * another type (the earlier source wins). */
    uint64_t conflicts;
    /* Series left out because an earlier source wrote the identical
     * series (same name, same labels in any order): the first is kept. */
    uint64_t duplicates;
};

/* Appends the exposition of n snapshots to out. Sources earlier in the
 * array win type conflicts. Families come out in order of first
 * appearance (source by source). The snapshots are only read. */
void mexpo_render(struct msnap *const *snaps, size_t n, enum mexpo_format fmt, struct mbuf *out,
                  struct mexpo_stats *stats);

enum mexpo_flags {
    /* Leave sample timestamps out: the Pushgateway refuses them. */
    MEXPO_NO_TIMESTAMPS = 1u << 0,
};
/* mexpo_render with flags (enum mexpo_flags). */
void mexpo_render_flags(struct msnap *const *snaps, size_t n, enum mexpo_format fmt, unsigned flags,
                        struct mbuf *out, struct mexpo_stats *stats);

/* Working memory of an exposition (about 50 bytes per family), kept by a
 * caller that exposes repeatedly so that large expositions reuse warm
 * pages instead of faulting fresh ones in every time. Zero-initialise;
 * one exposition at a time. */
struct mexpo_seen;

struct mexpo_scratch {
    void *entries;
    uint32_t *heads, *tails;
    size_t cap; /* of entries, heads and tails */
    uint64_t *slots;
    size_t n_slots;
    struct mexpo_seen *seen; /* series of a family several sources have */
    size_t n_seen;
};
void mexpo_scratch_fini(struct mexpo_scratch *s);
/* mexpo_render_flags with caller-kept working memory. */
void mexpo_render_scratch(struct msnap *const *snaps, size_t n, enum mexpo_format fmt, unsigned flags,
                          struct mbuf *out, struct mexpo_stats *stats, struct mexpo_scratch *scratch);

/* Picks the format from an HTTP Accept header (NULL: Prometheus text):
 * OpenMetrics when application/openmetrics-text is accepted with q > 0. */
enum mexpo_format mexpo_negotiate(const char *accept);
const char *mexpo_content_type(enum mexpo_format fmt);

#endif

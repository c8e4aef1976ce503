/*
 * metrics_registry: counters, gauges and histograms with labels, kept in one
 * shard per thread (shard 0: the main thread; shard i+1: worker i) so that
 * updates take no lock; shards are summed when rendered. Families and series
 * live as long as the registry (the agent), so values survive reloads.
 *
 * Threads: metric_new and series creation take the registry's mutex (rare:
 * callers cache series pointers). Updates are relaxed atomic stores by the
 * one thread owning the shard. Rendering may run on any thread, concurrently
 * with updates.
 */
#ifndef OTR_METRICS_REGISTRY_H
#define OTR_METRICS_REGISTRY_H

#include <stddef.h>

#include "outrider/module.h"

struct otr_registry;

/* A registry with n_shards shards (1 + number of workers). NULL on ENOMEM. */
struct otr_registry *otr_registry_new(unsigned n_shards);
void otr_registry_free(struct otr_registry *r);

/* Declares (or finds, when name, type, labels and buckets match) a family.
 * Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, labels [a-zA-Z_][a-zA-Z0-9_]*
 * and not start with "__". Counters' names must end in _total, and only
 * counters' may (otherwise the Prometheus and OpenMetrics expositions would
 * name different series); histograms may not use the label "le" nor end in
 * _bucket/_sum/_count, and need strictly ascending finite bounds (+Inf is
 * implicit). Two families may not share an OpenMetrics family name
 * ("x_total" and "x"). Returns NULL with a one-line reason naming the
 * metric in err on a bad declaration or a conflicting redeclaration. */
otr_metric *otr_registry_metric(struct otr_registry *r, const struct otr_metric_desc *desc, char *err,
                                size_t errlen);
/* The series for label values in a shard (created on first use; values are
 * copied). NULL on ENOMEM or a shard out of range. */
otr_series *otr_registry_series(otr_metric *m, unsigned shard, const char *const *label_values);

void otr_series_counter_add(otr_series *s, double v); /* v >= 0 */
void otr_series_gauge_set(otr_series *s, double v);
void otr_series_gauge_add(otr_series *s, double v);
void otr_series_observe(otr_series *s, double v);

/* A gauge computed when rendered (RSS, uptime...): fn returns the value.
 * Registered on the main thread; label-less. fn runs on the rendering
 * thread with the registry's mutex held: it must not call the registry.
 * Returns 0, UV_EINVAL (bad name, no fn) or UV_EEXIST (name taken). */
int otr_registry_gauge_fn(struct otr_registry *r, const char *name, const char *help,
                          double (*fn)(void *arg), void *arg);

/* Renders every family, shards merged (counters, gauges, buckets and sums
 * add up), sorted by name then label values, in Prometheus text 0.0.4 or
 * OpenMetrics 1.0 (counter families named without _total in TYPE/HELP,
 * "# EOF" at the end), calling emit with consecutive pieces of at most
 * 16 KiB. Label values are escaped (\\, \", \n), HELP text too (\\, \n;
 * plus \" in OpenMetrics). Bucket bounds are written as Prometheus' Go
 * clients do ("0.005", "1", "1e+06", "+Inf"). Holds the registry's mutex
 * while rendering (series creation waits; updates do not). Returns 0. */
int otr_registry_render(struct otr_registry *r, enum otr_metrics_format fmt,
                        void (*emit)(void *arg, const char *p, size_t n), void *arg);

/* Picks the format from an HTTP Accept header value (NULL: Prometheus):
 * OpenMetrics when application/openmetrics-text is accepted. */
enum otr_metrics_format otr_metrics_negotiate(const char *accept);
/* The Content-Type header value for a format. */
const char *otr_metrics_content_type(enum otr_metrics_format fmt);

#endif

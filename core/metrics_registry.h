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
 * and not start with "__"; counters' names should end in _total. Returns
 * NULL with a reason in err on a bad name or a conflicting redeclaration. */
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
 * Registered on the main thread; label-less. */
int otr_registry_gauge_fn(struct otr_registry *r, const char *name, const char *help,
                          double (*fn)(void *arg), void *arg);

/* Renders every family, shards merged, sorted by name, in Prometheus text
 * 0.0.4 or OpenMetrics 1.0 (with "# EOF"), calling emit with consecutive
 * pieces. Label values are escaped (\\, \", \n). Returns 0. */
int otr_registry_render(struct otr_registry *r, enum otr_metrics_format fmt,
                        void (*emit)(void *arg, const char *p, size_t n), void *arg);

/* Picks the format from an HTTP Accept header value (NULL: Prometheus):
 * OpenMetrics when application/openmetrics-text is accepted. */
enum otr_metrics_format otr_metrics_negotiate(const char *accept);
/* The Content-Type header value for a format. */
const char *otr_metrics_content_type(enum otr_metrics_format fmt);

#endif

/*
 * metrics_relabel: the Lua relabel(sample) hook. For each scraped sample
 * the script gets a table
 *
 *   { name = "http_requests_total", type = "counter", value = 3,
 *     labels = { code = "200", path = "/" } }
 *
 * (name is the metric family's name as the text format writes it) and
 * returns the table, changed or not, to keep the sample, or nil/false to
 * drop it. A script error or an exhausted budget keeps the sample as it
 * was (the hook's fallback), counted by core.
 */
#ifndef OTR_METRICS_RELABEL_H
#define OTR_METRICS_RELABEL_H

#include "metrics_snapshot.h"
#include "outrider/module.h"

/* Runs the hook on worker w for sample s and adds the result to b.
 * Returns 1 when the script dropped it, 0 otherwise. */
int metrics_relabel_add(const struct otr_host *host, otr_hook *hook, otr_worker *w, struct msnap_builder *b,
                        const struct prom_sample *s);

#endif

/*
 * proxy_discovery: a cluster's endpoint set, and how it changes at run
 * time.
 *
 * Every cluster has one discovery (struct proxy_discovery), run on worker
 * 0's loop for the whole agent: it resolves the cluster's DNS names every
 * dns_refresh with uv_getaddrinfo, or reads and watches its endpoints file,
 * and publishes the resulting address set into the shared struct
 * proxy_cluster (under its lock). Resolving once per agent rather than per
 * worker means one query per refresh, one log line and one failure count
 * per failed resolution, and the same set on every worker.
 *
 * Each worker is then woken (its uv_async_t) and applies the set to its own
 * per-endpoint state: endpoints whose address stays keep their state
 * (pooled connections, EWMA, requests in flight), new ones start fresh, and
 * removed ones are drained: never chosen again, idle connections closed,
 * requests in flight finish, the struct freed once nothing refers to it.
 */
#ifndef OUTRIDER_PROXY_DISCOVERY_H
#define OUTRIDER_PROXY_DISCOVERY_H

#include "proxy.h"

/* Validates cluster i's endpoint configuration and builds its static
 * addresses and its discovery (main thread, check and init). Reports
 * every error with conf_error; returns 0, OTR_ECONFIG or UV_ENOMEM. */
int proxy_cluster_endpoints_build(struct proxy_state *st, size_t i);
/* Frees what proxy_cluster_endpoints_build made (main thread). */
void proxy_cluster_endpoints_free(struct proxy_cluster *c);

/* Starts worker pw's share (worker thread, from start): its wake-up
 * handle, the current sets applied, and on worker 0 every cluster's
 * discovery (an endpoints file is read before this returns). */
int proxy_discovery_worker_start(struct proxy_worker *pw);
/* Closes pw's wake-up handle and, on worker 0, stops discovery (drain). */
void proxy_discovery_worker_stop(struct proxy_worker *pw);
/* Whether pw's discovery handles and queries are all closed and done. */
bool proxy_discovery_worker_closed(const struct proxy_worker *pw);
/* Frees wc's endpoints, current and removed (main thread, fini). */
void proxy_wcluster_endpoints_free(struct proxy_wcluster *wc);
/* Whether every cluster finished its first discovery round (any thread). */
bool proxy_discovery_ready(struct proxy_state *st);

/* ep gets one more holder (an upstream connection, HTTP/2 session or
 * stream keeping a pointer to it). */
static inline void proxy_endpoint_ref(struct proxy_endpoint *ep)
{
    ep->refs++;
}
/* A holder lets go of ep: a removed endpoint nothing holds any more is
 * freed. */
void proxy_endpoint_unref(struct proxy_endpoint *ep);

#endif

/*
 * inventory: the node's pods, from a JSON file that something on the node
 * keeps current (a kubelet-fed writer, a test), watched with uv_fs_event on
 * its folder plus a poll timer. A snapshot is immutable; lookups by address
 * from any thread take a short lock and a reference on the pod. A bad file
 * is logged and counted and the previous snapshot kept. The source is a
 * function pointer pair so a kubelet or API-server source can replace the
 * file later without touching callers.
 *
 * File format: {"pods":[{"namespace":"shop","name":"cart-1","uid":"u1",
 * "node":"n1","ip":"10.0.0.5","ips":["10.0.0.5","fd00::5"],
 * "labels":{"app":"cart"},"annotations":{"k":"v"}}]}
 */
#ifndef OTR_INVENTORY_H
#define OTR_INVENTORY_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "outrider/module.h"

struct otr_inventory;

/* A pod built from a JSON object (inventory entry or identity config);
 * NULL with a reason when the object is not a pod. Reference count 1. */
const struct otr_pod *otr_pod_from_json(json_t *obj, const char **why);
void otr_pod_ref(const struct otr_pod *pod);
void otr_pod_unref(const struct otr_pod *pod);

/* Creates an empty inventory on the main loop. */
struct otr_inventory *otr_inventory_new(uv_loop_t *loop);
/* Watches file (""/NULL: none, the inventory stays empty) and loads it now.
 * Returns 0, or an error when the first load fails (logged). Main thread. */
int otr_inventory_watch(struct otr_inventory *inv, const char *file, uint64_t poll_ms);
/* Loads a snapshot from JSON text; 0 or UV_EINVAL with the reason logged. */
int otr_inventory_load_text(struct otr_inventory *inv, const char *text, size_t len, const char *name);
/* Stops watching and frees (after the loop ran the close callbacks). */
void otr_inventory_free(struct otr_inventory *inv);

/* The pod with that address, referenced, or NULL (any thread). */
const struct otr_pod *otr_inventory_lookup(struct otr_inventory *inv, const struct sockaddr *addr);
size_t otr_inventory_foreach(struct otr_inventory *inv, void (*fn)(void *arg, const struct otr_pod *pod),
                             void *arg);
uint64_t otr_inventory_version(struct otr_inventory *inv);
size_t otr_inventory_size(struct otr_inventory *inv);
uint64_t otr_inventory_errors(struct otr_inventory *inv);

#endif

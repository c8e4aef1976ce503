/*
 * bus: named streams of records between modules that do not know each
 * other. Subscriptions belong to a generation and become active all at once
 * when that generation takes over (otr_bus_activate); publishing delivers to
 * the active set synchronously on the publisher's thread, under a read
 * lock, so a swap waits for deliveries in progress and an old generation's
 * subscriber is never called after its generation was replaced.
 */
#ifndef OTR_BUS_H
#define OTR_BUS_H

#include <stdbool.h>
#include <stddef.h>

#include "outrider/module.h"

struct otr_sub {
    char *stream;
    otr_bus_cb cb;
    void *arg;
    struct otr_sub *next;
};

/* Adds a subscription to a generation's list (main thread). */
struct otr_sub *otr_bus_sub_add(struct otr_sub **list, const char *stream, otr_bus_cb cb, void *arg);
/* Frees a list that is not active. */
void otr_bus_sub_free_list(struct otr_sub *list);
/* Makes list the active subscriptions (NULL: none). Main thread. */
void otr_bus_activate(struct otr_sub *list);
size_t otr_bus_publish(otr_worker *w, const char *stream, const struct otr_record *rec);
bool otr_bus_has_subscribers(const char *stream);

#endif

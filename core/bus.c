#include "bus.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static pthread_rwlock_t bus_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct otr_sub *active;
/* Whether active is non-empty: lets otr_bus_has_subscribers() answer the
 * common "nobody listens" without the lock (modules ask per request). */
static _Atomic bool any_active;

struct otr_sub *otr_bus_sub_add(struct otr_sub **list, const char *stream, otr_bus_cb cb, void *arg)
{
    struct otr_sub *s = otr_xcalloc(1, sizeof *s);
    s->stream = otr_xstrdup(stream);
    s->cb = cb;
    s->arg = arg;
    s->next = *list;
    *list = s;
    return s;
}

void otr_bus_sub_free_list(struct otr_sub *list)
{
    while (list) {
        struct otr_sub *next = list->next;
        free(list->stream);
        free(list);
        list = next;
    }
}

void otr_bus_activate(struct otr_sub *list)
{
    pthread_rwlock_wrlock(&bus_lock);
    active = list;
    atomic_store_explicit(&any_active, list != NULL, memory_order_release);
    pthread_rwlock_unlock(&bus_lock);
}

size_t otr_bus_publish(otr_worker *w, const char *stream, const struct otr_record *rec)
{
    size_t n = 0;
    pthread_rwlock_rdlock(&bus_lock);
    for (struct otr_sub *s = active; s; s = s->next)
        if (strcmp(s->stream, stream) == 0) {
            s->cb(s->arg, w, stream, rec);
            n++;
        }
    pthread_rwlock_unlock(&bus_lock);
    return n;
}

bool otr_bus_has_subscribers(const char *stream)
{
    bool found = false;
    if (!atomic_load_explicit(&any_active, memory_order_acquire))
        return false;
    pthread_rwlock_rdlock(&bus_lock);
    for (struct otr_sub *s = active; s && !found; s = s->next)
        found = strcmp(s->stream, stream) == 0;
    pthread_rwlock_unlock(&bus_lock);
    return found;
}

#include "inventory.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

/* A pod and what its public view points into: strings live in the JSON
 * object the pod holds a reference on. */
struct pod {
    struct otr_pod pub;
    _Atomic int refs;
    json_t *json;
    struct otr_conf_map_entry *maps; /* labels then annotations */
};

struct addr_entry {
    unsigned char key[16]; /* IPv6, or IPv4-mapped IPv6 */
    struct pod *pod;
};

struct snapshot {
    struct pod **pods;
    size_t n_pods;
    struct addr_entry *addrs; /* sorted by key */
    size_t n_addrs;
};

struct otr_inventory {
    uv_loop_t *loop;
    uv_mutex_t lock; /* guards snap */
    struct snapshot snap;
    _Atomic uint64_t version;
    _Atomic uint64_t errors;
    char *file;
    uv_fs_event_t *event; /* heap: may outlive a re-watch until closed */
    uv_timer_t *poll;
    struct stat last; /* of the file as last loaded */
};

static const char *str_or_empty(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* Fills n entries of out from a JSON object of strings; skips non-strings. */
static size_t fill_map(json_t *obj, struct otr_conf_map_entry *out)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (json_is_string(v)) {
            out[n].key = (char *)k;
            out[n].value = (char *)json_string_value(v);
            n++;
        }
    }
    return n;
}

const struct otr_pod *otr_pod_from_json(json_t *obj, const char **why)
{
    if (!json_is_object(obj)) {
        *why = "a pod must be an object";
        return NULL;
    }
    if (!json_is_string(json_object_get(obj, "name")) || !json_is_string(json_object_get(obj, "namespace"))) {
        *why = "a pod needs string \"namespace\" and \"name\"";
        return NULL;
    }
    json_t *labels = json_object_get(obj, "labels"), *ann = json_object_get(obj, "annotations");
    struct pod *p = otr_xcalloc(1, sizeof *p);
    p->json = json_incref(obj);
    atomic_init(&p->refs, 1);
    p->maps = otr_xcalloc(json_object_size(labels) + json_object_size(ann) + 1, sizeof *p->maps);
    p->pub.namespace_ = str_or_empty(obj, "namespace");
    p->pub.name = str_or_empty(obj, "name");
    p->pub.uid = str_or_empty(obj, "uid");
    p->pub.node = str_or_empty(obj, "node");
    p->pub.ip = str_or_empty(obj, "ip");
    p->pub.labels = p->maps;
    p->pub.n_labels = fill_map(labels, p->maps);
    p->pub.annotations = p->maps + p->pub.n_labels;
    p->pub.n_annotations = fill_map(ann, p->maps + p->pub.n_labels);
    return &p->pub;
}

void otr_pod_ref(const struct otr_pod *pod)
{
    struct pod *p = (struct pod *)pod;
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void otr_pod_unref(const struct otr_pod *pod)
{
    if (!pod)
        return;
    struct pod *p = (struct pod *)pod;
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
        json_decref(p->json);
        free(p->maps);
        free(p);
    }
}

static bool addr_key_from_text(const char *s, unsigned char key[16])
{
    struct in_addr v4;
    if (inet_pton(AF_INET, s, &v4) == 1) {
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &v4, 4);
        return true;
    }
    return inet_pton(AF_INET6, s, key) == 1;
}

static bool addr_key_from_sockaddr(const struct sockaddr *sa, unsigned char key[16])
{
    if (sa->sa_family == AF_INET) {
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

static int addr_cmp(const void *a, const void *b)
{
    return memcmp(((const struct addr_entry *)a)->key, ((const struct addr_entry *)b)->key, 16);
}

static void snapshot_free(struct snapshot *s)
{
    for (size_t i = 0; i < s->n_pods; i++)
        otr_pod_unref(&s->pods[i]->pub);
    free(s->pods);
    free(s->addrs);
    memset(s, 0, sizeof *s);
}

static void add_addr(struct snapshot *s, size_t *cap, const char *ip, struct pod *p)
{
    unsigned char key[16];
    if (!ip || !*ip || !addr_key_from_text(ip, key))
        return;
    if (s->n_addrs == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        s->addrs = otr_xrealloc(s->addrs, *cap * sizeof *s->addrs);
    }
    memcpy(s->addrs[s->n_addrs].key, key, 16);
    s->addrs[s->n_addrs++].pod = p;
}

/* Builds a snapshot from the document; returns 0 or a reason in why. */
static int snapshot_build(json_t *doc, struct snapshot *s, char *why, size_t whylen)
{
    json_t *pods = json_is_array(doc) ? doc : json_object_get(doc, "pods");
    if (!json_is_array(pods)) {
        snprintf(why, whylen, "expected {\"pods\": [...]}");
        return UV_EINVAL;
    }
    size_t cap = 0, i;
    json_t *obj;
    s->pods = otr_xcalloc(json_array_size(pods) + 1, sizeof *s->pods);
    json_array_foreach(pods, i, obj) {
        const char *reason;
        struct pod *p = (struct pod *)otr_pod_from_json(obj, &reason);
        if (!p) {
            snprintf(why, whylen, "pods[%zu]: %s", i, reason);
            snapshot_free(s);
            return UV_EINVAL;
        }
        s->pods[s->n_pods++] = p;
        add_addr(s, &cap, p->pub.ip, p);
        size_t j;
        json_t *ip;
        json_array_foreach(json_object_get(obj, "ips"), j, ip) add_addr(s, &cap, json_string_value(ip), p);
    }
    if (s->n_addrs)
        qsort(s->addrs, s->n_addrs, sizeof *s->addrs, addr_cmp);
    return 0;
}

struct otr_inventory *otr_inventory_new(uv_loop_t *loop)
{
    struct otr_inventory *inv = otr_xcalloc(1, sizeof *inv);
    inv->loop = loop;
    uv_mutex_init(&inv->lock);
    return inv;
}

int otr_inventory_load_text(struct otr_inventory *inv, const char *text, size_t len, const char *name)
{
    json_error_t jerr;
    char why[256];
    json_t *doc = json_loadb(text, len, 0, &jerr);
    if (!doc) {
        otr_log_error("inventory %s:%d:%d: %s; keeping the previous one", name, jerr.line, jerr.column, jerr.text);
        atomic_fetch_add(&inv->errors, 1);
        return UV_EINVAL;
    }
    struct snapshot next = {0}, old;
    int rc = snapshot_build(doc, &next, why, sizeof why);
    json_decref(doc);
    if (rc) {
        otr_log_error("inventory %s: %s; keeping the previous one", name, why);
        atomic_fetch_add(&inv->errors, 1);
        return rc;
    }
    uv_mutex_lock(&inv->lock);
    old = inv->snap;
    inv->snap = next;
    uv_mutex_unlock(&inv->lock);
    snapshot_free(&old);
    atomic_fetch_add(&inv->version, 1);
    otr_log_debug("inventory %s: %zu pods", name, next.n_pods);
    return 0;
}

static int inventory_reload_file(struct otr_inventory *inv, bool force)
{
    struct stat st;
    if (stat(inv->file, &st) != 0) {
        if (force)
            otr_log_error("inventory %s: %s", inv->file, strerror(errno));
        return -errno;
    }
    if (!force && st.st_ino == inv->last.st_ino && st.st_size == inv->last.st_size &&
        st.st_mtim.tv_sec == inv->last.st_mtim.tv_sec && st.st_mtim.tv_nsec == inv->last.st_mtim.tv_nsec)
        return 0;
    inv->last = st;
    FILE *f = fopen(inv->file, "rb");
    if (!f)
        return -errno;
    /* A bounded read: an inventory is small; a runaway file is refused. */
    size_t cap = (size_t)st.st_size + 1;
    if (cap > 64u << 20) {
        fclose(f);
        otr_log_error("inventory %s: larger than 64 MiB, ignored", inv->file);
        return UV_EFBIG;
    }
    char *buf = otr_xmalloc(cap);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    int rc = otr_inventory_load_text(inv, buf, n, inv->file);
    free(buf);
    return rc;
}

static void inventory_on_poll(uv_timer_t *t)
{
    inventory_reload_file(t->data, false);
}

static void inventory_on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    struct otr_inventory *inv = h->data;
    const char *base = strrchr(inv->file, '/');
    base = base ? base + 1 : inv->file;
    if (status == 0 && (!filename || strcmp(filename, base) == 0))
        inventory_reload_file(inv, false);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void inventory_unwatch(struct otr_inventory *inv)
{
    if (inv->event)
        uv_close((uv_handle_t *)inv->event, free_handle);
    if (inv->poll)
        uv_close((uv_handle_t *)inv->poll, free_handle);
    inv->event = NULL;
    inv->poll = NULL;
    free(inv->file);
    inv->file = NULL;
}

int otr_inventory_watch(struct otr_inventory *inv, const char *file, uint64_t poll_ms)
{
    if (inv->file && file && strcmp(inv->file, file) == 0)
        return 0;
    inventory_unwatch(inv);
    if (!file || !*file)
        return 0;
    inv->file = otr_xstrdup(file);
    memset(&inv->last, 0, sizeof inv->last);
    int rc = inventory_reload_file(inv, true);
    /* Watch the folder: writers replace the file by rename. */
    char *dir = otr_xstrdup(file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    inv->event = otr_xcalloc(1, sizeof *inv->event);
    uv_fs_event_init(inv->loop, inv->event);
    inv->event->data = inv;
    if (uv_fs_event_start(inv->event, inventory_on_event, slash ? dir : ".", 0) != 0)
        otr_log_warn("inventory %s: cannot watch its folder; polling only", file);
    free(dir);
    inv->poll = otr_xcalloc(1, sizeof *inv->poll);
    uv_timer_init(inv->loop, inv->poll);
    inv->poll->data = inv;
    uv_timer_start(inv->poll, inventory_on_poll, poll_ms, poll_ms);
    return rc;
}

void otr_inventory_free(struct otr_inventory *inv)
{
    if (!inv)
        return;
    inventory_unwatch(inv);
    snapshot_free(&inv->snap);
    uv_mutex_destroy(&inv->lock);
    free(inv);
}

const struct otr_pod *otr_inventory_lookup(struct otr_inventory *inv, const struct sockaddr *addr)
{
    struct addr_entry probe;
    if (!addr_key_from_sockaddr(addr, probe.key))
        return NULL;
    const struct otr_pod *found = NULL;
    uv_mutex_lock(&inv->lock);
    struct addr_entry *e = inv->snap.n_addrs
                               ? bsearch(&probe, inv->snap.addrs, inv->snap.n_addrs, sizeof probe, addr_cmp)
                               : NULL;
    if (e) {
        found = &e->pod->pub;
        otr_pod_ref(found);
    }
    uv_mutex_unlock(&inv->lock);
    return found;
}

size_t otr_inventory_foreach(struct otr_inventory *inv, void (*fn)(void *arg, const struct otr_pod *pod), void *arg)
{
    /* Take references under the lock, call fn outside it: fn may be slow. */
    uv_mutex_lock(&inv->lock);
    size_t n = inv->snap.n_pods;
    struct pod **pods = otr_xcalloc(n + 1, sizeof *pods);
    for (size_t i = 0; i < n; i++) {
        pods[i] = inv->snap.pods[i];
        otr_pod_ref(&pods[i]->pub);
    }
    uv_mutex_unlock(&inv->lock);
    for (size_t i = 0; i < n; i++) {
        fn(arg, &pods[i]->pub);
        otr_pod_unref(&pods[i]->pub);
    }
    free(pods);
    return n;
}

uint64_t otr_inventory_version(struct otr_inventory *inv)
{
    return atomic_load(&inv->version);
}

size_t otr_inventory_size(struct otr_inventory *inv)
{
    uv_mutex_lock(&inv->lock);
    size_t n = inv->snap.n_pods;
    uv_mutex_unlock(&inv->lock);
    return n;
}

uint64_t otr_inventory_errors(struct otr_inventory *inv)
{
    return atomic_load(&inv->errors);
}

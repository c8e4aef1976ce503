/*
 * proxy_discovery: endpoint sets published by worker 0 (DNS names, an
 * endpoints file) and applied by every worker. See proxy_discovery.h.
 */
#include "proxy_discovery.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy_h2.h"

/* The endpoints file is stat()ed this often, in case inotify misses a
 * change (network file systems, symlink swaps of a mounted ConfigMap). */
#define FILE_POLL_MS 1000
/* Events on the file are let settle this long before it is read, so that a
 * rewrite in place is read once, after its last write. */
#define FILE_SETTLE_MS 50
/* Repeated resolution failures of one cluster are logged at most this often. */
#define WARN_EVERY_MS 60000

enum disc_kind { DISC_STATIC = 0, DISC_DNS, DISC_FILE };

/* A DNS name of a cluster and its last good answer. */
struct dns_name {
    struct proxy_discovery *d;
    const char *host; /* borrowed from the config */
    uint16_t port;
    uv_getaddrinfo_t req;
    bool busy;
    int last_err;     /* of the latest resolution, 0 when it succeeded */
    struct proxy_epaddr *addrs;
    size_t n;
};

struct proxy_discovery {
    struct proxy_state *st;
    struct proxy_cluster *c;
    struct proxy_worker *pw; /* worker 0, once started */
    int kind;                /* enum disc_kind */
    struct dns_name *names;
    size_t n_names;
    unsigned busy;           /* resolutions in flight */
    uv_timer_t timer;        /* next DNS round, or next stat of the file */
    uv_timer_t settle;       /* file: read after events settle */
    uv_fs_event_t fsev;      /* file: watches its directory */
    bool timer_open, settle_open, fsev_open, fsev_watching;
    bool running, stopping, first_done;
    unsigned closes_pending;
    /* file: what was last read, to notice changes */
    bool file_seen, file_missing;
    struct stat file_st;
    uint64_t warn_next_ms;
    unsigned warn_suppressed;
    otr_series *s_endpoints, *s_failures;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "%s:%d: out of memory\n", __FILE__, __LINE__);
        abort();
    }
    return p;
}

/* --- building (main thread) ------------------------------------------------- */

int proxy_cluster_endpoints_build(struct proxy_state *st, size_t i)
{
    struct proxy_cluster *c = &st->clusters[i];
    const struct proxy_cluster_conf *conf = c->conf;
    const char *file = conf->endpoints_file;
    char path[96];
    int errors = 0;
    if (file[0] && conf->endpoints.n) {
        snprintf(path, sizeof path, "clusters[%zu].endpoints_file", i);
        st->host->conf_error(st->ctx, path, "set either endpoints or endpoints_file, not both");
        errors++;
    } else if (!file[0] && !conf->endpoints.n) {
        snprintf(path, sizeof path, "clusters[%zu].endpoints", i);
        st->host->conf_error(st->ctx, path, "a cluster needs endpoints or an endpoints_file");
        errors++;
    } else if (file[0] && file[0] != '/') {
        snprintf(path, sizeof path, "clusters[%zu].endpoints_file", i);
        st->host->conf_error(st->ctx, path, "must be an absolute path, got \"%s\"", file);
        errors++;
    }
    struct proxy_discovery *d = c->disc = xcalloc(1, sizeof *d);
    d->st = st;
    d->c = c;
    c->literals = xcalloc(conf->endpoints.n, sizeof *c->literals);
    d->names = xcalloc(conf->endpoints.n, sizeof *d->names);
    for (size_t e = 0; e < conf->endpoints.n; e++) {
        const struct otr_conf_address *a = &OTR_CONF_AT(conf->endpoints, struct otr_conf_address, e);
        if (!a->is_unix && a->port && proxy_epaddr_set(&c->literals[c->n_literals], a->host, a->port) == 0) {
            c->n_literals++;
        } else if (!a->is_unix && a->port && proxy_dns_name_valid(a->host)) {
            struct dns_name *nm = &d->names[d->n_names++];
            nm->d = d;
            nm->host = a->host;
            nm->port = a->port;
            nm->req.data = nm;
        } else {
            snprintf(path, sizeof path, "clusters[%zu].endpoints[%zu]", i, e);
            st->host->conf_error(st->ctx, path, "expected an IP address or a DNS name with a port, got \"%s\"",
                                 a->text);
            errors++;
        }
    }
    d->kind = file[0] ? DISC_FILE : d->n_names ? DISC_DNS : DISC_STATIC;
    c->set = xcalloc(c->n_literals, sizeof *c->set);
    memcpy(c->set, c->literals, c->n_literals * sizeof *c->set);
    c->n_set = c->n_literals;
    if (proxy_epaddrs_dedupe(c->set, &c->n_set) != 0)
        return UV_ENOMEM;
    c->version = 1;
    snprintf(c->empty_why, sizeof c->empty_why, "%s",
             d->kind == DISC_FILE ? "endpoints file not read yet" : "DNS names not resolved yet");
    if (uv_mutex_init(&c->lock) != 0)
        return UV_ENOMEM;
    c->lock_init = true;
    if (d->kind != DISC_STATIC)
        atomic_fetch_add(&st->n_discovering, 1);
    return errors ? OTR_ECONFIG : 0;
}

void proxy_cluster_endpoints_free(struct proxy_cluster *c)
{
    struct proxy_discovery *d = c->disc;
    if (d) {
        for (size_t k = 0; k < d->n_names; k++)
            free(d->names[k].addrs);
        free(d->names);
        free(d);
    }
    free(c->literals);
    free(c->set);
    if (c->lock_init)
        uv_mutex_destroy(&c->lock);
}

bool proxy_discovery_ready(struct proxy_state *st)
{
    return atomic_load(&st->n_discovering) == 0;
}

/* --- applying a set on a worker ------------------------------------------------ */

static void endpoint_free(struct proxy_endpoint *ep)
{
    struct proxy_wcluster *wc = ep->wc;
    for (struct proxy_endpoint **pp = &wc->retired; *pp; pp = &(*pp)->next_retired)
        if (*pp == ep) {
            *pp = ep->next_retired;
            break;
        }
    free(ep);
}

void proxy_endpoint_unref(struct proxy_endpoint *ep)
{
    if (--ep->refs == 0 && ep->removed && ep->active == 0)
        endpoint_free(ep);
}

/* Frees the removed endpoints nothing refers to any more (those whose last
 * holder was an HTTP/1.1 request, counted in active, are found here). */
static void retired_sweep(struct proxy_wcluster *wc)
{
    struct proxy_endpoint **pp = &wc->retired;
    while (*pp) {
        struct proxy_endpoint *ep = *pp;
        if (ep->refs == 0 && ep->active == 0) {
            *pp = ep->next_retired;
            free(ep);
        } else {
            pp = &ep->next_retired;
        }
    }
}

/* ep left the set: it is not chosen again, its idle connections close, and
 * what is in flight on it finishes. */
static void endpoint_retire(struct proxy_endpoint *ep)
{
    struct proxy_wcluster *wc = ep->wc;
    ep->removed = true;
    proxy_health_endpoint_removed(ep);
    ep->next_retired = wc->retired;
    wc->retired = ep;
    while (ep->idle)
        proxy_upconn_close(ep->idle);
    proxy_h2up_retire(ep);
}

static int ep_cmp(const void *a, const void *b)
{
    return proxy_epaddr_cmp(&(*(struct proxy_endpoint *const *)a)->addr, &(*(struct proxy_endpoint *const *)b)->addr);
}

static int ep_find_cmp(const void *key, const void *elem)
{
    return proxy_epaddr_cmp(key, &(*(struct proxy_endpoint *const *)elem)->addr);
}

/* Brings wc's endpoints to the cluster's published set, in its order (the
 * round robin order): an address already known keeps its endpoint, found
 * in a copy of the old set sorted by address; the others are new; old
 * endpoints not found are retired. */
static void wcluster_apply(struct proxy_wcluster *wc)
{
    struct proxy_cluster *c = &wc->pw->st->clusters[wc->index];
    uv_mutex_lock(&c->lock);
    if (c->version == wc->version) {
        uv_mutex_unlock(&c->lock);
        return;
    }
    size_t n = c->n_set;
    struct proxy_epaddr *set = xcalloc(n, sizeof *set);
    if (n)
        memcpy(set, c->set, n * sizeof *set);
    wc->version = c->version;
    memcpy(wc->empty_why, c->empty_why, sizeof wc->empty_why);
    uv_mutex_unlock(&c->lock);

    struct proxy_endpoint **old = xcalloc(wc->n_eps, sizeof *old), **eps = xcalloc(n, sizeof *eps);
    bool *added = xcalloc(n, sizeof *added);
    for (size_t i = 0; i < wc->n_eps; i++) {
        old[i] = wc->eps[i];
        old[i]->index = SIZE_MAX; /* not (yet) in the new set */
    }
    if (wc->n_eps > 1)
        qsort(old, wc->n_eps, sizeof *old, ep_cmp);
    for (size_t j = 0; j < n; j++) {
        struct proxy_endpoint **found = wc->n_eps ? bsearch(&set[j], old, wc->n_eps, sizeof *old, ep_find_cmp) : NULL;
        if (found) {
            eps[j] = *found;
        } else {
            eps[j] = xcalloc(1, sizeof *eps[j]);
            eps[j]->wc = wc;
            eps[j]->addr = set[j];
            eps[j]->id = ++wc->last_ep_id;
            proxy_mesh_endpoint_init(eps[j]);
            added[j] = true;
        }
        eps[j]->index = j;
    }
    for (size_t i = 0; i < wc->n_eps; i++)
        if (old[i]->index == SIZE_MAX)
            endpoint_retire(old[i]);
    free(old);
    free(wc->eps);
    free(set);
    wc->eps = eps;
    wc->n_eps = n;
    retired_sweep(wc);
    for (size_t j = 0; j < n; j++)
        if (added[j])
            proxy_health_endpoint_added(eps[j]);
    free(added);
    /* The usable count (and with it max_ejection_percent's base) changed. */
    proxy_outlier_gauge(wc);
}

static void worker_on_wake(uv_async_t *a)
{
    struct proxy_worker *pw = a->data;
    for (size_t i = 0; i < pw->st->n_clusters; i++)
        wcluster_apply(&pw->clusters[i]);
}

static void wake_on_close(uv_handle_t *h)
{
    struct proxy_worker *pw = h->data;
    pw->wake_handle_open = false;
    proxy_worker_maybe_drained(pw);
}

void proxy_wcluster_endpoints_free(struct proxy_wcluster *wc)
{
    for (size_t e = 0; e < wc->n_eps; e++)
        free(wc->eps[e]);
    free(wc->eps);
    wc->eps = NULL;
    wc->n_eps = 0;
    while (wc->retired) {
        struct proxy_endpoint *ep = wc->retired;
        wc->retired = ep->next_retired;
        free(ep);
    }
}

/* --- publishing (worker 0) --------------------------------------------------------- */

static bool set_equal(const struct proxy_epaddr *a, size_t na, const struct proxy_epaddr *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (proxy_epaddr_cmp(&a[i], &b[i]) != 0)
            return false;
    return true;
}

/* Makes addrs (taken over, n entries) the cluster's set and wakes every
 * worker, unless nothing changed. why_empty: the reason given for 503s when
 * the set is empty. */
static void disc_publish(struct proxy_discovery *d, struct proxy_epaddr *addrs, size_t n, const char *why_empty)
{
    struct proxy_cluster *c = d->c;
    struct proxy_state *st = d->st;
    if (proxy_epaddrs_dedupe(addrs, &n) != 0) {
        st->host->log(st->ctx, OTR_LOG_ERROR, "cluster %s: out of memory; endpoints not updated", c->conf->name);
        free(addrs);
        return;
    }
    uv_mutex_lock(&c->lock);
    if (set_equal(c->set, c->n_set, addrs, n) && (n || strcmp(c->empty_why, why_empty) == 0)) {
        uv_mutex_unlock(&c->lock);
        free(addrs);
        return;
    }
    struct proxy_epaddr *old = c->set;
    size_t n_old = c->n_set;
    c->set = addrs;
    c->n_set = n;
    snprintf(c->empty_why, sizeof c->empty_why, "%s", why_empty);
    c->version++;
    uv_mutex_unlock(&c->lock);
    free(old);
    if (d->s_endpoints)
        st->host->gauge_set(d->s_endpoints, (double)n);
    if (n != n_old || n)
        st->host->log(st->ctx, OTR_LOG_INFO, "cluster %s: %zu endpoint%s (was %zu)%s%s", c->conf->name, n,
                      n == 1 ? "" : "s", n_old, n ? "" : ": ", n ? "" : why_empty);
    uv_mutex_lock(&st->wake_lock);
    for (unsigned w = 0; w < st->n_workers; w++)
        if (st->workers[w].wake_open)
            uv_async_send(&st->workers[w].wake);
    uv_mutex_unlock(&st->wake_lock);
}

static void disc_first_done(struct proxy_discovery *d)
{
    if (d->first_done)
        return;
    d->first_done = true;
    atomic_fetch_sub(&d->st->n_discovering, 1);
}

/* Counts a failure and logs it. DNS failures (limit) are logged at most
 * once a minute: a dead DNS server must not flood the log every
 * dns_refresh. A file is read only when it changed, so each of its failures
 * is news. */
static void disc_failed(struct proxy_discovery *d, const char *msg, bool limit)
{
    struct proxy_state *st = d->st;
    if (d->s_failures)
        st->host->counter_add(d->s_failures, 1);
    uint64_t now = uv_now(d->pw->loop);
    if (limit && now < d->warn_next_ms) {
        d->warn_suppressed++;
        return;
    }
    if (d->warn_suppressed)
        st->host->log(st->ctx, OTR_LOG_WARN, "cluster %s: %s; keeping the last good endpoints (%zu) "
                      "(%u similar failures not logged)", d->c->conf->name, msg, d->c->n_set, d->warn_suppressed);
    else
        st->host->log(st->ctx, OTR_LOG_WARN, "cluster %s: %s; keeping the last good endpoints (%zu)",
                      d->c->conf->name, msg, d->c->n_set);
    d->warn_suppressed = 0;
    d->warn_next_ms = now + WARN_EVERY_MS;
}

/* --- DNS ---------------------------------------------------------------------------- */

static void dns_on_timer(uv_timer_t *t);

static void dns_failed(struct dns_name *nm)
{
    char msg[320];
    snprintf(msg, sizeof msg, "cannot resolve %s: %s", nm->host, uv_strerror(nm->last_err));
    disc_failed(nm->d, msg, true);
}

/* Every name answered: publish the union of literals and last good answers. */
static void dns_round_end(struct proxy_discovery *d)
{
    struct proxy_cluster *c = d->c;
    size_t n = c->n_literals;
    for (size_t k = 0; k < d->n_names; k++)
        n += d->names[k].n;
    struct proxy_epaddr *all = xcalloc(n, sizeof *all);
    size_t at = c->n_literals;
    memcpy(all, c->literals, at * sizeof *all);
    char why[96] = "DNS names resolved to no address";
    for (size_t k = 0; k < d->n_names; k++) {
        struct dns_name *nm = &d->names[k];
        if (nm->n)
            memcpy(all + at, nm->addrs, nm->n * sizeof *all);
        at += nm->n;
        if (nm->last_err)
            snprintf(why, sizeof why, "DNS name %s: %s", nm->host, uv_strerror(nm->last_err));
    }
    disc_publish(d, all, n, why);
    disc_first_done(d);
    uv_timer_start(&d->timer, dns_on_timer, c->conf->dns_refresh, 0);
}

static void dns_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct dns_name *nm = req->data;
    struct proxy_discovery *d = nm->d;
    nm->busy = false;
    d->busy--;
    if (d->stopping) {
        if (res)
            uv_freeaddrinfo(res);
        proxy_worker_maybe_drained(d->pw);
        return;
    }
    size_t n = 0;
    for (struct addrinfo *ai = res; status == 0 && ai; ai = ai->ai_next)
        n++;
    if (n > PROXY_ENDPOINTS_MAX)
        n = PROXY_ENDPOINTS_MAX;
    struct proxy_epaddr *addrs = xcalloc(n, sizeof *addrs);
    size_t k = 0;
    for (struct addrinfo *ai = res; status == 0 && ai && k < n; ai = ai->ai_next)
        if (proxy_epaddr_from_sa(&addrs[k], ai->ai_addr, nm->port) == 0)
            k++;
    if (res)
        uv_freeaddrinfo(res);
    if (status == 0 && k == 0)
        status = UV_EAI_NODATA;
    if (status != 0) {
        free(addrs);
        nm->last_err = status;
        dns_failed(nm);
    } else {
        if (nm->last_err)
            d->st->host->log(d->st->ctx, OTR_LOG_INFO, "cluster %s: %s resolves again", d->c->conf->name,
                             nm->host);
        nm->last_err = 0;
        free(nm->addrs);
        nm->addrs = addrs;
        nm->n = proxy_epaddrs_normalize(addrs, k);
    }
    if (d->busy == 0)
        dns_round_end(d);
}

static void dns_round_start(struct proxy_discovery *d)
{
    static const int families[] = { AF_UNSPEC, AF_INET, AF_INET6 };
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = families[d->c->conf->dns_family];
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    for (size_t k = 0; k < d->n_names; k++) {
        struct dns_name *nm = &d->names[k];
        int rc = uv_getaddrinfo(d->pw->loop, &nm->req, dns_on_resolved, nm->host, NULL, &hints);
        if (rc) {
            nm->last_err = rc;
            dns_failed(nm);
            continue;
        }
        nm->busy = true;
        d->busy++;
    }
    if (d->busy == 0)
        dns_round_end(d);
}

static void dns_on_timer(uv_timer_t *t)
{
    dns_round_start(t->data);
}

/* --- the endpoints file ----------------------------------------------------------------- */

static bool stat_same(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Reads the whole of fd (a regular file of at most PROXY_ENDPOINTS_FILE_MAX
 * bytes) into a new buffer; *len its length. NULL with errno on failure. */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap > PROXY_ENDPOINTS_FILE_MAX) {
                errno = EFBIG;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        if (r == 0) {
            *len = n;
            return buf;
        }
        n += (size_t)r;
    }
    free(buf);
    return NULL;
}

/* Reads the file (a small local file, so synchronously on the loop: it is
 * read only when it changed) and publishes it, or logs why not. Its stat is
 * kept for the poll to notice the next change. */
static void file_load(struct proxy_discovery *d)
{
    const char *path = d->c->conf->endpoints_file;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (!d->file_missing) {
            d->file_missing = true;
            d->file_seen = false;
            char why[160];
            snprintf(why, sizeof why, "waiting for endpoints file %s", path);
            if (!d->first_done)
                disc_publish(d, NULL, 0, why);
            char msg[1200];
            snprintf(msg, sizeof msg, "endpoints file %s: %s", path, strerror(err));
            disc_failed(d, msg, false);
        }
        disc_first_done(d);
        return;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return;
    }
    d->file_missing = false;
    d->file_seen = true;
    d->file_st = sb;
    size_t len = 0;
    char *buf = NULL;
    if (!S_ISREG(sb.st_mode))
        errno = EINVAL;
    else
        buf = read_all(fd, &len);
    int err = errno;
    close(fd);
    char msg[1200];
    struct proxy_epaddr *addrs = NULL;
    size_t n = 0;
    if (!buf) {
        snprintf(msg, sizeof msg, "endpoints file %s: %s", path,
                 err == EINVAL ? "not a regular file" : err == EFBIG ? "larger than 1 MiB" : strerror(err));
        disc_failed(d, msg, false);
    } else if (proxy_endpoints_parse(buf, len, path, &addrs, &n, msg, sizeof msg) != 0) {
        disc_failed(d, msg, false); /* the message names the file itself */
    } else {
        char why[160];
        snprintf(why, sizeof why, "endpoints file %s lists no endpoints", path);
        disc_publish(d, addrs, n, why);
    }
    free(buf);
    disc_first_done(d);
}

static void file_on_settled(uv_timer_t *t)
{
    file_load(t->data);
}

static void file_on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    struct proxy_discovery *d = h->data;
    const char *path = d->c->conf->endpoints_file;
    const char *base = strrchr(path, '/') + 1;
    (void)events;
    if (status == 0 && filename && strcmp(filename, base) != 0)
        return;
    uv_timer_start(&d->settle, file_on_settled, FILE_SETTLE_MS, 0);
}

/* Watches the file's directory, which sees both a rewrite and a rename
 * over it (a watch on the file itself would stay on the replaced inode).
 * Retried from the poll while the directory does not exist. */
static void file_watch(struct proxy_discovery *d)
{
    if (d->fsev_watching)
        return;
    char dir[1024];
    const char *path = d->c->conf->endpoints_file;
    size_t dl = (size_t)(strrchr(path, '/') - path);
    snprintf(dir, sizeof dir, "%.*s", (int)(dl ? dl : 1), path);
    if (uv_fs_event_start(&d->fsev, file_on_event, dir, 0) == 0)
        d->fsev_watching = true;
}

/* The stat fallback: a change seen here is read once it settled too, so
 * that a rewrite caught half-way is not reported as a broken file. */
static void file_on_poll(uv_timer_t *t)
{
    struct proxy_discovery *d = t->data;
    file_watch(d);
    struct stat sb;
    bool exists = stat(d->c->conf->endpoints_file, &sb) == 0;
    bool changed = exists ? !d->file_seen || !stat_same(&sb, &d->file_st) : !d->file_missing;
    if (changed && !uv_is_active((uv_handle_t *)&d->settle))
        uv_timer_start(&d->settle, file_on_settled, FILE_SETTLE_MS, 0);
}

/* --- lifecycle (worker 0) --------------------------------------------------------- */

static void disc_on_close(uv_handle_t *h)
{
    struct proxy_discovery *d = h->data;
    d->closes_pending--;
    proxy_worker_maybe_drained(d->pw);
}

static void disc_start(struct proxy_discovery *d, struct proxy_worker *pw)
{
    struct proxy_state *st = d->st;
    const char *name = d->c->conf->name;
    d->pw = pw;
    d->running = true;
    if (st->m_endpoints) {
        d->s_endpoints = st->host->series(st->m_endpoints, pw->w, (const char *[]){ name, NULL });
        if (d->s_endpoints)
            st->host->gauge_set(d->s_endpoints, (double)d->c->n_set);
    }
    if (d->kind == DISC_STATIC)
        return;
    const char *source = d->kind == DISC_DNS ? "dns" : "file";
    if (st->m_discovery_failures)
        d->s_failures = st->host->series(st->m_discovery_failures, pw->w, (const char *[]){ name, source, NULL });
    uv_timer_init(pw->loop, &d->timer);
    d->timer.data = d;
    d->timer_open = true;
    if (d->kind == DISC_DNS) {
        dns_round_start(d);
        return;
    }
    uv_timer_init(pw->loop, &d->settle);
    d->settle.data = d;
    d->settle_open = true;
    uv_fs_event_init(pw->loop, &d->fsev);
    d->fsev.data = d;
    d->fsev_open = true;
    file_watch(d);
    file_load(d);
    uv_timer_start(&d->timer, file_on_poll, FILE_POLL_MS, FILE_POLL_MS);
}

static void disc_close_handle(struct proxy_discovery *d, uv_handle_t *h, bool *open)
{
    if (!*open)
        return;
    *open = false;
    d->closes_pending++;
    uv_close(h, disc_on_close);
}

static void disc_stop(struct proxy_discovery *d)
{
    if (!d->running || d->stopping)
        return;
    d->stopping = true;
    disc_close_handle(d, (uv_handle_t *)&d->timer, &d->timer_open);
    disc_close_handle(d, (uv_handle_t *)&d->settle, &d->settle_open);
    disc_close_handle(d, (uv_handle_t *)&d->fsev, &d->fsev_open);
    for (size_t k = 0; k < d->n_names; k++)
        if (d->names[k].busy)
            uv_cancel((uv_req_t *)&d->names[k].req);
}

static bool is_discovery_worker(const struct proxy_worker *pw)
{
    return pw == &pw->st->workers[0];
}

int proxy_discovery_worker_start(struct proxy_worker *pw)
{
    struct proxy_state *st = pw->st;
    int rc = uv_async_init(pw->loop, &pw->wake, worker_on_wake);
    if (rc)
        return rc;
    pw->wake.data = pw;
    pw->wake_handle_open = true;
    /* Open for wake-ups before reading the sets: a set published in
     * between is then applied by the wake-up. */
    uv_mutex_lock(&st->wake_lock);
    pw->wake_open = true;
    uv_mutex_unlock(&st->wake_lock);
    if (is_discovery_worker(pw))
        for (size_t i = 0; i < st->n_clusters; i++)
            if (st->clusters[i].disc) /* mesh slot clusters have none */
                disc_start(st->clusters[i].disc, pw);
    for (size_t i = 0; i < st->n_clusters; i++)
        wcluster_apply(&pw->clusters[i]);
    return 0;
}

void proxy_discovery_worker_stop(struct proxy_worker *pw)
{
    struct proxy_state *st = pw->st;
    uv_mutex_lock(&st->wake_lock);
    pw->wake_open = false;
    uv_mutex_unlock(&st->wake_lock);
    if (pw->wake_handle_open && !uv_is_closing((uv_handle_t *)&pw->wake))
        uv_close((uv_handle_t *)&pw->wake, wake_on_close);
    if (is_discovery_worker(pw))
        for (size_t i = 0; i < st->n_clusters; i++)
            if (st->clusters[i].disc)
                disc_stop(st->clusters[i].disc);
}

bool proxy_discovery_worker_closed(const struct proxy_worker *pw)
{
    if (pw->wake_handle_open)
        return false;
    if (is_discovery_worker(pw))
        for (size_t i = 0; i < pw->st->n_clusters; i++) {
            const struct proxy_discovery *d = pw->st->clusters[i].disc;
            if (d && (d->closes_pending || d->busy))
                return false;
        }
    return true;
}

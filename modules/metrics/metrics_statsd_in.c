/*
 * statsd input: a datagram socket (UDP or unix) read with recvmmsg in
 * batches, parsed in place and applied to the worker's store under one
 * lock per batch. uv_poll plus recvmmsg rather than uv_udp: it serves
 * both address families with one code path, gives the source address of
 * each datagram for the pod lookup, and reads a whole batch per syscall.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics_hash.h"
#include "metrics_int.h"
#include "metrics_statsd.h"

#define POD_CACHE 64
#define ROUNDS_PER_WAKEUP 16

struct pod_cache_entry {
    struct sockaddr_storage addr;
    socklen_t len;
    bool used;
    const struct otr_pod *pod; /* a reference, or NULL for "unknown" */
};

struct metrics_statsd_rx {
    uv_poll_t poll;
    uv_timer_t coalesce; /* see rx_on_readable */
    int open;            /* handles not yet closed */
    struct metrics_worker *mw;
    int fd;
    bool pod_labels;
    unsigned batch;
    size_t dgram_max;
    struct mmsghdr *msgs;
    struct iovec *iov;
    struct sockaddr_storage *addrs;
    char *bufs;
    struct statsd_line line;
    uint64_t cache_version;
    struct pod_cache_entry cache[POD_CACHE];
};

struct apply_ctx {
    struct metrics_statsd_rx *rx;
    struct prom_label extra[2];
    size_t n_extra;
    uint32_t now_ds;
    uint64_t refused[MSTORE_N];
};

static void cache_flush(struct metrics_statsd_rx *rx)
{
    const struct otr_host *h = rx->mw->st->host;
    for (size_t i = 0; i < POD_CACHE; i++) {
        if (rx->cache[i].pod)
            h->pod_unref(rx->cache[i].pod);
        rx->cache[i].pod = NULL;
        rx->cache[i].used = false;
    }
}

/* The pod that sent a datagram, by source IP (port ignored), cached per
 * receiver until the inventory changes. Borrowed: valid until the flush. */
static const struct otr_pod *pod_of(struct metrics_statsd_rx *rx, const struct sockaddr_storage *from)
{
    struct metrics_state *st = rx->mw->st;
    uint64_t v = st->host->inventory_version(st->ctx);
    if (v != rx->cache_version) {
        cache_flush(rx);
        rx->cache_version = v;
    }
    struct sockaddr_storage key;
    memset(&key, 0, sizeof key);
    socklen_t len;
    if (from->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)from;
        struct sockaddr_in *k = (struct sockaddr_in *)&key;
        k->sin_family = AF_INET;
        k->sin_addr = in->sin_addr;
        len = sizeof *k;
    } else if (from->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)from;
        struct sockaddr_in6 *k = (struct sockaddr_in6 *)&key;
        k->sin6_family = AF_INET6;
        k->sin6_addr = in6->sin6_addr;
        len = sizeof *k;
    } else {
        key.ss_family = from->ss_family;
        len = sizeof(sa_family_t);
    }
    uint64_t hsh = metrics_hash(&key, len, 3);
    struct pod_cache_entry *e = &rx->cache[hsh % POD_CACHE];
    if (e->used && e->len == len && memcmp(&e->addr, &key, len) == 0)
        return e->pod;
    if (e->pod)
        st->host->pod_unref(e->pod);
    e->addr = key;
    e->len = len;
    e->used = true;
    e->pod = st->host->pod_by_addr(st->ctx, (const struct sockaddr *)&key);
    return e->pod;
}

static void rx_on_line(void *arg, const struct statsd_line *line)
{
    struct apply_ctx *a = arg;
    a->refused[mstore_apply(a->rx->mw->store, line, a->extra, a->n_extra, a->now_ds)]++;
}

/* Reads what the socket holds, in batches, and applies it; returns the
 * number of datagrams read. */
static uint64_t rx_drain(struct metrics_statsd_rx *rx)
{
    struct metrics_worker *mw = rx->mw;
    const struct otr_host *h = mw->st->host;
    struct apply_ctx a = {.rx = rx, .now_ds = (uint32_t)(uv_now(mw->loop) / 100)};
    uint64_t packets = 0, truncated = 0;
    /* Only this worker writes its store's counters: no lock to read them. */
    uint64_t overflow0 = mw->store->set_overflow;
    struct statsd_counts counts = {0};
    /* Bounded work per wakeup, so a flood cannot starve the loop's other
     * handles (the /metrics endpoint on this worker). */
    for (int round = 0; round < ROUNDS_PER_WAKEUP; round++) {
        for (unsigned i = 0; i < rx->batch; i++)
            rx->msgs[i].msg_hdr.msg_namelen = sizeof rx->addrs[i];
        int n = recvmmsg(rx->fd, rx->msgs, rx->batch, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        pthread_mutex_lock(&mw->store->lock);
        for (int i = 0; i < n; i++) {
            packets++;
            if (rx->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                /* A cut datagram may end in half a line: drop it all. */
                truncated++;
                continue;
            }
            a.n_extra = 0;
            if (rx->pod_labels) {
                const struct otr_pod *pod = pod_of(rx, &rx->addrs[i]);
                if (pod) {
                    a.extra[0] = (struct prom_label){{"namespace", 9}, {pod->namespace_, strlen(pod->namespace_)}};
                    a.extra[1] = (struct prom_label){{"pod", 3}, {pod->name, strlen(pod->name)}};
                    a.n_extra = 2;
                }
            }
            statsd_parse_datagram(rx->iov[i].iov_base, rx->msgs[i].msg_len, &rx->line, rx_on_line, &a, &counts);
        }
        pthread_mutex_unlock(&mw->store->lock);
        if ((unsigned)n < rx->batch)
            break;
    }
    metrics_count(h, mw->c.packets, (double)packets);
    metrics_count(h, mw->c.lines, (double)counts.lines);
    metrics_count(h, mw->c.malformed, (double)counts.malformed);
    metrics_count(h, mw->c.truncated, (double)truncated);
    for (int r = 1; r < MSTORE_N; r++)
        metrics_count(h, mw->c.refused[r], (double)a.refused[r]);
    metrics_count(h, mw->c.set_overflow, (double)(mw->store->set_overflow - overflow0));
    return packets;
}

static void rx_on_readable(uv_poll_t *poll, int status, int events);

/* Timer mode: while datagrams keep coming, read them every
 * statsd.coalesce without going back to the poll (each round trip through
 * it costs two epoll_ctl and a wakeup that finds one datagram). An empty
 * read means the traffic paused: back to waiting for readability. A read
 * that hit the per-wakeup bound left datagrams behind: poll, which fires
 * at once. */
static void rx_on_coalesced(uv_timer_t *t)
{
    struct metrics_statsd_rx *rx = t->data;
    uint64_t n = rx_drain(rx);
    if (n > 0 && n < (uint64_t)rx->batch * ROUNDS_PER_WAKEUP)
        uv_timer_start(&rx->coalesce, rx_on_coalesced, rx->mw->st->conf->statsd.coalesce, 0);
    else
        uv_poll_start(&rx->poll, UV_READABLE, rx_on_readable);
}

/* Interrupt coalescing: after a wakeup, stop polling for statsd.coalesce
 * and read everything that arrived meanwhile in one go. Each wakeup costs
 * an epoll_wait and a recvmmsg whatever it brings; at moderate rates this
 * turns many one-datagram wakeups into few full batches, for at most that
 * much latency, which statsd (aggregated, scraped every few seconds)
 * does not notice. A wakeup that already found a full batch means the
 * load is high enough to batch by itself: then no pause, so a busy
 * socket's buffer never waits on the timer. */
static void rx_on_readable(uv_poll_t *poll, int status, int events)
{
    struct metrics_statsd_rx *rx = poll->data;
    if (status < 0)
        return;
    uint64_t n = rx_drain(rx);
    uint64_t delay = rx->mw->st->conf->statsd.coalesce;
    if (delay && n < rx->batch) {
        uv_poll_stop(&rx->poll);
        uv_timer_start(&rx->coalesce, rx_on_coalesced, delay, 0);
    }
}

static struct metrics_statsd_rx *rx_new(struct metrics_worker *mw, int fd, bool pod_labels)
{
    const struct metrics_conf *conf = mw->st->conf;
    struct metrics_statsd_rx *rx = xcalloc(1, sizeof *rx);
    rx->mw = mw;
    rx->fd = fd;
    rx->pod_labels = pod_labels;
    rx->batch = (unsigned)conf->statsd.batch;
    rx->dgram_max = (size_t)conf->statsd.max_datagram;
    rx->msgs = xcalloc(rx->batch, sizeof *rx->msgs);
    rx->iov = xcalloc(rx->batch, sizeof *rx->iov);
    rx->addrs = xcalloc(rx->batch, sizeof *rx->addrs);
    rx->bufs = xmalloc(rx->batch * rx->dgram_max);
    rx->cache_version = UINT64_MAX;
    for (unsigned i = 0; i < rx->batch; i++) {
        rx->iov[i] = (struct iovec){rx->bufs + i * rx->dgram_max, rx->dgram_max};
        rx->msgs[i].msg_hdr.msg_iov = &rx->iov[i];
        rx->msgs[i].msg_hdr.msg_iovlen = 1;
        rx->msgs[i].msg_hdr.msg_name = &rx->addrs[i];
    }
    return rx;
}

static void rx_on_close(uv_handle_t *handle)
{
    struct metrics_statsd_rx *rx = handle->data;
    struct metrics_worker *mw = rx->mw;
    metrics_worker_closed(mw);
    if (--rx->open > 0)
        return;
    cache_flush(rx);
    close(rx->fd);
    free(rx->msgs);
    free(rx->iov);
    free(rx->addrs);
    free(rx->bufs);
    free(rx);
}

static int rx_open(struct metrics_worker *mw, otr_listener *l, bool pod_labels, struct metrics_statsd_rx **out)
{
    const struct otr_host *h = mw->st->host;
    uv_os_sock_t fd;
    int rc = h->listener_socket(l, mw->w, &fd);
    if (rc) {
        h->log(mw->st->ctx, OTR_LOG_ERROR, "statsd listener %s: %s", h->listener_address(l), uv_strerror(rc));
        return rc;
    }
    int rcvbuf = (int)mw->st->conf->statsd.rcvbuf;
    /* Best effort: the kernel caps it at net.core.rmem_max. */
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct metrics_statsd_rx *rx = rx_new(mw, fd, pod_labels);
    if ((rc = uv_poll_init_socket(mw->loop, &rx->poll, fd)) != 0) {
        close(fd);
        free(rx->msgs);
        free(rx->iov);
        free(rx->addrs);
        free(rx->bufs);
        free(rx);
        return rc;
    }
    uv_timer_init(mw->loop, &rx->coalesce);
    rx->poll.data = rx->coalesce.data = rx;
    rx->open = 2;
    mw->open_handles += 2;
    *out = rx;
    if ((rc = uv_poll_start(&rx->poll, UV_READABLE, rx_on_readable)) != 0)
        return rc; /* the drain closes it */
    return 0;
}

static void rx_close(struct metrics_statsd_rx *rx)
{
    uv_close((uv_handle_t *)&rx->poll, rx_on_close);
    uv_close((uv_handle_t *)&rx->coalesce, rx_on_close);
}

int metrics_statsd_start(struct metrics_worker *mw)
{
    struct metrics_state *st = mw->st;
    bool pods = st->conf->statsd.pod_labels && st->host->role(st->ctx) == OTR_ROLE_NODE;
    int rc = 0;
    if (st->udp && (rc = rx_open(mw, st->udp, pods, &mw->udp_rx)) != 0)
        return rc;
    /* A unix socket's peer is on this host, with no IP to find a pod by. */
    if (st->unixl && (rc = rx_open(mw, st->unixl, false, &mw->unix_rx)) != 0)
        return rc;
    return 0;
}

void metrics_statsd_stop(struct metrics_worker *mw)
{
    if (mw->udp_rx)
        rx_close(mw->udp_rx);
    if (mw->unix_rx)
        rx_close(mw->unix_rx);
    mw->udp_rx = mw->unix_rx = NULL;
}

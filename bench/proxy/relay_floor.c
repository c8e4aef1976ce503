/*
 * relay_floor: the least work any proxy can do for bench/proxy's traffic, so that the benchmark
 * can tell how much of a proxy's CPU per request is the kernel's unavoidable part (loopback TCP:
 * accept, read, write, close, epoll) and how much is the proxy's own work.
 *
 * A MEASURING INSTRUMENT, NOT A PROXY. It is valid only for the traffic bench/proxy/run sends, and
 * it refuses any other: when the traffic breaks one of its assumptions it prints which one on
 * stderr and exits 3, so it can never silently measure something else.
 *
 *   relay_floor pair   127.0.0.1:LISTEN_PORT 127.0.0.1:UPSTREAM_PORT
 *   relay_floor pooled 127.0.0.1:LISTEN_PORT 127.0.0.1:UPSTREAM_PORT
 *
 * pair (for h2c and gRPC): each accepted client connection gets its own upstream connection,
 * opened at accept; bytes are copied both ways with read/write, never looked at; either side
 * closing (or failing) closes both.
 *
 * pooled (for HTTP/1.1 keep-alive, `Connection: close` and fixed-rate HTTP/1.1): upstream
 * connections are kept in a pool. It relies on what the bench's clients (wrk, h2load --h1, curl)
 * and backend (nginx `return 200`) do, and checks each of it:
 *   - one read from a client is exactly one GET request head, no body, no pipelining;
 *   - one read from an upstream is exactly one complete response: a head, then as many bytes as
 *     its Content-Length says (nginx writes its small answer in one segment);
 * A client's request goes to an idle upstream connection (one is connected when none is idle);
 * the upstream's response goes to that client and the upstream connection back to the pool. If
 * the request said `Connection: close`, that header is taken out of the request (so the
 * upstream connection stays reusable, as every proxy does), the response's Connection header
 * says `close`, and the client connection is closed once the response is written.
 *
 * One thread, one level-triggered epoll set, non-blocking sockets with TCP_NODELAY, one read
 * buffer per connection: one read and one write per direction per wake-up, epoll_ctl only when a
 * write would block or a connect is in progress. On SIGTERM or SIGINT it prints its counts on
 * stderr and exits 0; on a setup or connect error it exits 1.
 *
 * The connection record, the pool, the checks and the exits live in relay_floor_common.h, shared
 * with relay_floor_uring.c, the same floor on io_uring.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror bench/proxy/relay_floor.c -o relay_floor
 */
#include <sys/epoll.h>

/* What epoll watches on a connection's descriptor now. */
struct conn_io {
    uint32_t events;
};

#include "relay_floor_common.h"

static int ep;
static struct conn listener;
static struct conn *closed;  /* closed during this epoll batch: events may still name them */

/* --- connections ------------------------------------------------------------------------------ */

static void watch(struct conn *c, uint32_t events)
{
    if (c->io.events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail(1, "epoll_ctl: %s", strerror(errno));
    c->io.events = events;
}

static struct conn *conn_new(enum kind kind, int fd, uint32_t events)
{
    struct conn *c = conn_alloc(kind, fd);
    c->io.events = events;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        fail(1, "epoll_ctl: %s", strerror(errno));
    return c;
}

/* Closing the descriptor also takes it out of the epoll set; the struct waits for the end of the
 * batch, whose remaining events may point at it. */
static void conn_close(struct conn *c)
{
    if (c->fd < 0)
        return;
    if (c->in_pool)
        pool_remove(c);
    close(c->fd);
    c->fd = -1;
    c->peer = NULL;
    c->next_free = closed;
    closed = c;
}

static struct conn *upstream_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail(1, "socket: %s", strerror(errno));
    set_nodelay(fd);
    bool connecting = false;
    if (connect(fd, (struct sockaddr *)&relay.upstream_addr, sizeof relay.upstream_addr) < 0) {
        if (errno != EINPROGRESS)
            fail(1, "connect to upstream: %s", strerror(errno));
        connecting = true;
    }
    /* While connecting, EPOLLOUT says when the connect is done. */
    struct conn *u = conn_new(UPSTREAM, fd, connecting ? EPOLLIN | EPOLLOUT : EPOLLIN);
    u->connecting = connecting;
    relay.upstreams++;
    return u;
}

static void connect_finish(struct conn *u)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err)
        fail(1, "connect to upstream: %s", strerror(err));
    u->connecting = false;
}

/* --- relaying --------------------------------------------------------------------------------- */

/* Writes what src read to its peer. Returns 0 when all of it is written, 1 when the rest waits for
 * the peer to become writable (src stops reading meanwhile), -1 on a write error. */
static int flush(struct conn *src)
{
    struct conn *dst = src->peer;
    if (!dst->connecting) {
        ssize_t n = write(dst->fd, src->buf + src->off, src->len - src->off);
        if (n < 0 && errno != EAGAIN)
            return -1;
        if (n > 0)
            src->off += (size_t)n;
        if (src->off == src->len) {
            src->off = src->len = 0;
            return 0;
        }
    }
    watch(src, src->io.events & ~EPOLLIN);
    watch(dst, dst->io.events | EPOLLOUT);
    return 1;
}

/* All that src read is now written to its peer: for pooled, a response delivered. */
static void on_sent(struct conn *src)
{
    if (relay.pooled && src->kind == UPSTREAM)
        response_delivered(src);
}

static void relay_out(struct conn *src)
{
    int r = flush(src);
    if (r < 0)
        close_both(src);
    else if (r == 0)
        on_sent(src);
}

static void on_readable(struct conn *c)
{
    ssize_t n = read(c->fd, c->buf, BUF_SIZE);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        close_both(c);  /* pooled: an idle connection has no peer, so only it closes */
        return;
    }
    relay_received(c, (size_t)n);
    relay_out(c);
}

/* dst can take bytes again (or its connect is done): write what its peer holds for it. */
static void on_writable(struct conn *dst)
{
    if (dst->connecting)
        connect_finish(dst);
    struct conn *src = dst->peer;
    if (!src || src->off == src->len) {
        watch(dst, dst->io.events & ~EPOLLOUT);
        return;
    }
    int r = flush(src);
    if (r < 0) {
        close_both(dst);
        return;
    }
    if (r == 0) {
        watch(dst, dst->io.events & ~EPOLLOUT);
        watch(src, src->io.events | EPOLLIN);
        on_sent(src);
    }
}

static void on_accept(void)
{
    int fd = accept4(listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
            return;
        fail(1, "accept: %s", strerror(errno));
    }
    struct conn *c = conn_new(CLIENT, fd, EPOLLIN); /* TCP_NODELAY: the listener's */
    relay.clients++;
    if (!relay.pooled) {
        struct conn *u = upstream_open();
        c->peer = u;
        u->peer = c;
    }
}

static void on_event(struct conn *c, uint32_t events)
{
    if (c->kind == LISTENER) {
        on_accept();
        return;
    }
    if (events & EPOLLOUT)
        on_writable(c);
    if (c->fd < 0 || !(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    if (c->off == c->len)
        on_readable(c);  /* on an error or hang-up the read says which */
    else
        close_both(c);   /* hung up with bytes still waiting for the peer */
}

/* --- setup ------------------------------------------------------------------------------------ */

static void listen_on(const char *text)
{
    listener.kind = LISTENER;
    listener.fd = listen_socket(text, SOCK_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, listener.fd, &ev) < 0)
        fail(1, "epoll_ctl: %s", strerror(errno));
}

static void free_closed(void)
{
    while (closed) {
        struct conn *c = closed;
        closed = c->next_free;
        conn_recycle(c);
    }
}

int main(int argc, char **argv)
{
    relay_setup("epoll", argc, argv);
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        fail(1, "epoll_create1: %s", strerror(errno));
    listen_on(argv[2]);


    struct epoll_event events[256];
    while (!stopping) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0 && errno != EINTR)
            fail(1, "epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->fd >= 0)
                on_event(c, events[i].events);
        }
        free_closed();
    }
    print_counts();
    return 0;
}
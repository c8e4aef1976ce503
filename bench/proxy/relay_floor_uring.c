/*
 * relay_floor_uring: relay_floor.c's floor with io_uring instead of epoll, to tell whether the
 * I/O model, not the relaying, is what the kernel's share of bench/proxy's CPU per request costs.
 *
 * A MEASURING INSTRUMENT, NOT A PROXY, with the same modes, the same relaying and the same checks
 * as relay_floor.c (shared through relay_floor_common.h): it exits 3 on any traffic it is not
 * valid for, so it can never silently measure something else.
 *
 *   relay_floor_uring pair|pooled 127.0.0.1:LISTEN_PORT 127.0.0.1:UPSTREAM_PORT
 *
 * The io_uring side: one ring (DEFER_TASKRUN and SINGLE_ISSUER when the kernel has them, so
 * completions run only inside the loop's own io_uring_enter), its fd registered; one multishot
 * accept; sends, connects and recvs as operations, each naming its connection and operation in
 * user_data; closing is a cancel of what is still in flight on the descriptor (by user_data)
 * hard-linked to an IORING_OP_CLOSE. Each loop iteration is one io_uring_submit_and_wait:
 * everything prepared while handling the previous completions goes in, and it waits for at least
 * one completion. No SQPOLL: its kernel thread would spin and poll on a core of its own. No
 * syscalls beyond that but those relay_floor.c also makes (TCP_NODELAY per upstream socket, socket() per
 * upstream). Blocking sockets: io_uring tries each operation without blocking and otherwise polls
 * the socket itself, so the descriptors need no O_NONBLOCK.
 *
 * Pooled mode reads with one multishot recv per connection, armed for the connection's life, into
 * a ring of provided buffers: the bytes (one request or response head, 100-200 bytes) are copied
 * into the connection's buffer and the provided one given back at once. Epoll watches an idle
 * socket for free, and so does the multishot recv: bytes from an idle upstream, from a client
 * with a request in flight, or from a connection whose last read is still being sent on, exit 3
 * as in relay_floor.c. Pair mode (h2c, gRPC) keeps epoll's backpressure: one recv into the
 * connection's buffer, armed again only once what it received is sent.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror bench/proxy/relay_floor_uring.c -luring
 */
#include <liburing.h>

/* What is in flight for a connection: the operations whose completions name it (its recv, its
 * connect, the send of its buffer and a send into its descriptor), so that its record outlives
 * them, and which ones to cancel when it closes. */
struct conn_io {
    unsigned inflight;      /* completions still to come that refer to this record */
    bool recv_armed;
    bool send_armed;        /* this connection's buffer is being sent to send_to */
    struct conn *send_to;
    struct conn *sender;    /* whose send into this descriptor is in flight */
};

#include "relay_floor_common.h"

enum op { OP_ACCEPT, OP_RECV, OP_SEND, OP_CONNECT, OP_CANCEL, OP_CLOSE };

#define OP_BITS 7u  /* struct conn comes from malloc, so its address has 3 zero low bits */

/* Pooled mode's provided buffers: each is copied into its connection's buffer and given back at
 * once, so at most one per connection is out at a time; 512 covers the bench's ~100 connections,
 * and running out ends a multishot recv with -ENOBUFS, an exit 1, never a silent stall. */
#define RING_BUFS 512
#define RING_GROUP 1

static struct io_uring ring;
static int listen_fd;
static struct io_uring_buf_ring *buf_ring;
static char *ring_bufs;

static uint64_t tag(struct conn *c, enum op op)
{
    return (uint64_t)(uintptr_t)c | op;
}

/* A free submission slot; when all are taken, submit them first (a ring of 4096 rarely fills). */
static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (sqe)
        return sqe;
    int r = io_uring_submit(&ring);
    if (r < 0)
        fail(1, "io_uring_submit: %s", strerror(-r));
    if (!(sqe = io_uring_get_sqe(&ring)))
        fail(1, "io_uring: no submission slot after submitting");
    return sqe;
}

/* --- operations ------------------------------------------------------------------------------- */

static void accept_arm(void)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, tag(NULL, OP_ACCEPT));
}

/* Pair mode: one recv into the connection's buffer, armed again once that is sent on. */
static void recv_arm(struct conn *c)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv(sqe, c->fd, c->buf, BUF_SIZE, 0);
    io_uring_sqe_set_data64(sqe, tag(c, OP_RECV));
    c->io.recv_armed = true;
    c->io.inflight++;
}

/* Pooled mode: one multishot recv for the connection's life, into provided buffers: each read
 * completes without a new submission or poll arming. */
static void recv_multishot_arm(struct conn *c)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RING_GROUP;
    io_uring_sqe_set_data64(sqe, tag(c, OP_RECV));
    c->io.recv_armed = true;
    c->io.inflight++;
}

static char *ring_buf(unsigned bid)
{
    return ring_bufs + (size_t)bid * BUF_SIZE;
}

/* Offers buffer bid to the kernel, as the offset-th of those added before the next advance. */
static void ring_buf_add(unsigned bid, int offset)
{
    io_uring_buf_ring_add(buf_ring, ring_buf(bid), BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(RING_BUFS), offset);
}

/* Sends what src holds (buf[off..len)) to its peer. */
static void send_arm(struct conn *src)
{
    struct conn *dst = src->peer;
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, dst->fd, src->buf + src->off, src->len - src->off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag(src, OP_SEND));
    src->io.send_armed = true;
    src->io.send_to = dst;
    src->io.inflight++;
    dst->io.sender = src;
    dst->io.inflight++;
}

static void cancel(uint64_t user_data)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_cancel64(sqe, user_data, 0);
    io_uring_sqe_set_data64(sqe, tag(NULL, OP_CANCEL));
    sqe->flags |= IOSQE_IO_HARDLINK;  /* the close waits for it, whatever it finds */
}

/* --- connections ------------------------------------------------------------------------------ */

/* Once closed and no completion refers to it, the record can be reused. */
static void conn_release_if_done(struct conn *c)
{
    if (c->fd < 0 && c->io.inflight == 0)
        conn_recycle(c);
}

/* A pending operation holds its own reference to the socket, so closing the descriptor alone
 * would keep the connection open: what is in flight on it is cancelled first. */
static void conn_close(struct conn *c)
{
    if (c->fd < 0)
        return;
    if (c->in_pool)
        pool_remove(c);
    if (c->io.recv_armed)
        cancel(tag(c, OP_RECV));
    if (c->connecting)
        cancel(tag(c, OP_CONNECT));
    if (c->io.sender)
        cancel(tag(c->io.sender, OP_SEND));
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_close(sqe, c->fd);
    io_uring_sqe_set_data64(sqe, tag(NULL, OP_CLOSE));
    c->fd = -1;
    c->peer = NULL;
    conn_release_if_done(c);
}

static struct conn *upstream_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail(1, "socket: %s", strerror(errno));
    set_nodelay(fd);
    struct conn *u = conn_alloc(UPSTREAM, fd);
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&relay.upstream_addr,
                          sizeof relay.upstream_addr);
    io_uring_sqe_set_data64(sqe, tag(u, OP_CONNECT));
    u->connecting = true;
    u->io.inflight++;
    relay.upstreams++;
    return u;
}

/* --- completions ------------------------------------------------------------------------------ */

static void on_accept(int res, bool more)
{
    if (!more)
        accept_arm();  /* the kernel ended the multishot accept: arm it again */
    if (res < 0) {
        if (res == -EAGAIN || res == -EINTR || res == -ECONNABORTED)
            return;
        fail(1, "accept: %s", strerror(-res));
    }
    struct conn *c = conn_alloc(CLIENT, res); /* TCP_NODELAY: the listener's */
    relay.clients++;
    if (relay.pooled)
        recv_multishot_arm(c);
    else
        recv_arm(c);
    if (!relay.pooled) {
        struct conn *u = upstream_open();
        c->peer = u;
        u->peer = c;
    }
}

static void on_connect(struct conn *u, int res)
{
    u->io.inflight--;
    u->connecting = false;
    if (u->fd < 0) {
        conn_release_if_done(u);
        return;
    }
    if (res < 0)
        fail(1, "connect to upstream: %s", strerror(-res));
    if (relay.pooled)
        recv_multishot_arm(u);
    else
        recv_arm(u);
    struct conn *src = u->peer;
    if (src && src->len > src->off && !src->io.send_armed)
        send_arm(src);  /* what the client sent while this connected */
}

/* A recv's completion; a multishot one goes on while IORING_CQE_F_MORE is set, and its bytes are
 * in a provided buffer, copied here (a request or response head, ~100-200 bytes). */
static void on_recv(struct conn *c, int res, unsigned flags)
{
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && c->fd >= 0 && !c->io.send_armed)
            memcpy(c->buf, ring_buf(bid), (size_t)res);
        ring_buf_add(bid, 0);
        io_uring_buf_ring_advance(buf_ring, 1);
    }
    if (!(flags & IORING_CQE_F_MORE)) {
        c->io.inflight--;
        c->io.recv_armed = false;
    }
    if (c->fd < 0) {
        conn_release_if_done(c);
        return;
    }
    if (res == -ENOBUFS)
        fail(1, "io_uring: the %d provided buffers ran out", RING_BUFS);
    if (res <= 0) {
        close_both(c);  /* pooled: an idle connection has no peer, so only it closes */
        return;
    }
    if (c->io.send_armed)  /* only pooled: a pair connection receives only once that is done */
        fail(EXIT_PROTOCOL, "a connection sent %d bytes while its last were relayed", res);
    if (relay.pooled && !c->io.recv_armed)
        recv_multishot_arm(c);  /* the kernel ended it (it may): start it again */
    relay_received(c, (size_t)res);
    if (!c->peer->connecting)
        send_arm(c);
}

/* All that src received is sent: pair, it may receive again; pooled, a response sent is
 * delivered (its multishot recv watches the upstream in the pool). */
static void on_sent(struct conn *src)
{
    src->off = src->len = 0;
    if (!relay.pooled)
        recv_arm(src);
    else if (src->kind == UPSTREAM)
        response_delivered(src);
}

static void on_send(struct conn *src, int res)
{
    struct conn *dst = src->io.send_to;
    src->io.inflight--;
    src->io.send_armed = false;
    src->io.send_to = NULL;
    dst->io.inflight--;
    dst->io.sender = NULL;
    if (src->fd < 0 || dst->fd < 0) {
        conn_release_if_done(src);
        conn_release_if_done(dst);
        return;
    }
    if (res < 0) {
        close_both(src);
        return;
    }
    src->off += (size_t)res;
    if (src->off < src->len)
        send_arm(src);  /* a short send: the rest */
    else
        on_sent(src);
}

static void on_completion(const struct io_uring_cqe *cqe)
{
    struct conn *c = (struct conn *)(uintptr_t)(cqe->user_data & ~(uint64_t)OP_BITS);
    switch ((enum op)(cqe->user_data & OP_BITS)) {
    case OP_ACCEPT:
        on_accept(cqe->res, cqe->flags & IORING_CQE_F_MORE);
        break;
    case OP_RECV:
        on_recv(c, cqe->res, cqe->flags);
        break;
    case OP_SEND:
        on_send(c, cqe->res);
        break;
    case OP_CONNECT:
        on_connect(c, cqe->res);
        break;
    case OP_CANCEL:
        break;  /* found it (0), or it had completed meanwhile (-ENOENT, -EALREADY) */
    case OP_CLOSE:
        if (cqe->res < 0)
            fail(1, "close: %s", strerror(-cqe->res));
        break;
    }
}

/* --- setup ------------------------------------------------------------------------------------ */

/* A ring whose completions are processed only when the loop waits for them (DEFER_TASKRUN, 6.1),
 * else a plain one. Sockets must be polled by the kernel, not handed to io-wq threads. */
static void ring_open(void)
{
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                         IORING_SETUP_CQSIZE,
                                .cq_entries = 16384};
    int r = io_uring_queue_init_params(4096, &ring, &p);
    if (r == -EINVAL) {
        p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE, .cq_entries = 16384};
        r = io_uring_queue_init_params(4096, &ring, &p);
    }
    if (r < 0)
        fail(1, "io_uring_queue_init: %s", strerror(-r));
    if (!(p.features & IORING_FEAT_FAST_POLL) || !(p.features & IORING_FEAT_NODROP))
        fail(1, "io_uring: this kernel lacks FAST_POLL or NODROP");
    io_uring_register_ring_fd(&ring);  /* saves a descriptor lookup per enter; optional */
}

static void buf_ring_open(void)
{
    if (posix_memalign((void **)&buf_ring, 4096, RING_BUFS * sizeof(struct io_uring_buf)) != 0 ||
        !(ring_bufs = malloc((size_t)RING_BUFS * BUF_SIZE)))
        fail(1, "out of memory");
    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)buf_ring, .ring_entries = RING_BUFS,
                                   .bgid = RING_GROUP};
    int r = io_uring_register_buf_ring(&ring, &reg, 0);
    if (r < 0)
        fail(1, "io_uring_register_buf_ring: %s", strerror(-r));
    io_uring_buf_ring_init(buf_ring);
    for (unsigned i = 0; i < RING_BUFS; i++)
        ring_buf_add(i, (int)i);
    io_uring_buf_ring_advance(buf_ring, RING_BUFS);
}

int main(int argc, char **argv)
{
    relay_setup("io_uring", argc, argv);
    ring_open();
    if (relay.pooled)
        buf_ring_open();
    listen_fd = listen_socket(argv[2], 0);
    accept_arm();
    while (!stopping) {
        int r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -EBUSY)
            fail(1, "io_uring_submit_and_wait: %s", strerror(-r));
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            on_completion(cqe);
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
    }
    print_counts();
    return 0;
}

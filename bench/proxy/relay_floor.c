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
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror bench/proxy/relay_floor.c -o relay_floor
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 16384
#define EXIT_PROTOCOL 3
#define CONNECTION_CLOSE "Connection: close"

enum kind { LISTENER, CLIENT, UPSTREAM };

struct conn {
    enum kind kind;
    int fd;                /* -1 once closed; freed after the current epoll batch */
    struct conn *peer;     /* where what this connection reads goes; pooled: NULL between requests */
    bool connecting;       /* upstream: non-blocking connect in progress */
    bool close_after;      /* client: close once the response is written (`Connection: close`) */
    bool upstream_closes;  /* upstream: its response said `Connection: close`, so not reusable */
    bool in_pool;
    uint32_t events;       /* what epoll watches on fd now */
    struct conn *pool_prev, *pool_next, *next_free;
    size_t off, len;       /* buf[off..len) still to be written to peer */
    char buf[BUF_SIZE];
};

static struct {
    bool pooled;
    int ep;
    struct sockaddr_in upstream_addr;
    struct conn listener;
    struct conn *pool;    /* idle upstream connections, most recently used first */
    struct conn *closed;  /* closed during this epoll batch: events may still name them */
    struct conn *spare;   /* freed, for reuse */
    unsigned long clients, upstreams, requests, responses;
    unsigned long long bytes;
} relay;

static volatile sig_atomic_t stopping;

static void fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void print_counts(void)
{
    fprintf(stderr,
            "relay_floor %s: %lu client connections, %lu upstream connections opened, "
            "%lu requests, %lu responses, %llu bytes read\n",
            relay.pooled ? "pooled" : "pair", relay.clients, relay.upstreams, relay.requests,
            relay.responses, relay.bytes);
}

/* Exits: code 1 for a setup or connect error, EXIT_PROTOCOL for traffic the instrument is not
 * valid for. */
static void fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, code == EXIT_PROTOCOL ? "relay_floor: protocol error: " : "relay_floor: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    print_counts();
    exit(code);
}

/* --- connections ------------------------------------------------------------------------------ */

static void watch(struct conn *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(relay.ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail(1, "epoll_ctl: %s", strerror(errno));
    c->events = events;
}

static struct conn *conn_new(enum kind kind, int fd, uint32_t events)
{
    struct conn *c = relay.spare;
    if (c)
        relay.spare = c->next_free;
    else if (!(c = malloc(sizeof *c)))
        fail(1, "out of memory");
    memset(c, 0, offsetof(struct conn, buf));
    c->kind = kind;
    c->fd = fd;
    c->events = events;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(relay.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        fail(1, "epoll_ctl: %s", strerror(errno));
    return c;
}

static void pool_remove(struct conn *u)
{
    if (u->pool_prev)
        u->pool_prev->pool_next = u->pool_next;
    else
        relay.pool = u->pool_next;
    if (u->pool_next)
        u->pool_next->pool_prev = u->pool_prev;
    u->in_pool = false;
}

static void pool_put(struct conn *u)
{
    u->pool_prev = NULL;
    u->pool_next = relay.pool;
    if (relay.pool)
        relay.pool->pool_prev = u;
    relay.pool = u;
    u->in_pool = true;
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
    c->next_free = relay.closed;
    relay.closed = c;
}

static void close_both(struct conn *c)
{
    struct conn *peer = c->peer;
    conn_close(c);
    if (peer)
        conn_close(peer);
}

static void set_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        fail(1, "TCP_NODELAY: %s", strerror(errno));
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

/* --- the little HTTP/1.1 the pooled mode needs ------------------------------------------------ */

/* A header line found in a head: [start, end) is the line without its CRLF, value its value
 * without surrounding blanks. */
struct header {
    size_t start, end;
    const char *value;
    size_t value_len;
};

/* Finds the first header line named `name` (case-insensitive) in head[0..head_len), the head
 * including its final empty line. */
static bool header_find(const char *head, size_t head_len, const char *name, struct header *h)
{
    size_t name_len = strlen(name);
    const char *p = memchr(head, '\n', head_len);  /* skip the request or status line */
    while (p && (size_t)(p + 1 - head) < head_len) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\r', head_len - (size_t)(line - head));
        if (!eol || eol == line)
            return false;
        if ((size_t)(eol - line) > name_len && line[name_len] == ':' &&
            strncasecmp(line, name, name_len) == 0) {
            const char *v = line + name_len + 1, *end = eol;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            *h = (struct header){(size_t)(line - head), (size_t)(eol - head), v, (size_t)(end - v)};
            return true;
        }
        p = eol + 1;
    }
    return false;
}

static bool value_is(const struct header *h, const char *want)
{
    return h->value_len == strlen(want) && strncasecmp(h->value, want, h->value_len) == 0;
}

/* Whether a Connection header's value lists the `close` token. */
static bool value_has_close(const struct header *h)
{
    for (size_t i = 0; i + 5 <= h->value_len; i++)
        if (strncasecmp(h->value + i, "close", 5) == 0)
            return true;
    return false;
}

/* Replaces buf[start..end) by `with` (with_len bytes), moving the rest; *len grows or shrinks. */
static void splice_bytes(char *buf, size_t *len, size_t start, size_t end, const char *with,
                         size_t with_len)
{
    if (*len - (end - start) + with_len > BUF_SIZE)
        fail(EXIT_PROTOCOL, "no room to rewrite a head of %zu bytes", *len);
    memmove(buf + start + with_len, buf + end, *len - end);
    memcpy(buf + start, with, with_len);
    *len = *len - (end - start) + with_len;
}

/* Length of the head (up to and including its empty line) if buf holds exactly one, else 0. */
static size_t head_length(const char *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    return end ? (size_t)(end + 4 - buf) : 0;
}

/* One read from a client: must be exactly one GET head without a body. Takes a
 * `Connection: close` line out and remembers to close the client after the response. */
static void request_accept(struct conn *c)
{
    size_t head = head_length(c->buf, c->len);
    struct header h;
    if (head != c->len)
        fail(EXIT_PROTOCOL, "a client read of %zu bytes is not exactly one request head "
                            "(split across reads, pipelined or with a body)", c->len);
    const char *eol = memchr(c->buf, '\r', c->len);
    if (memcmp(c->buf, "GET ", 4) != 0 || eol - c->buf < 9 || memcmp(eol - 9, " HTTP/1.1", 9) != 0)
        fail(EXIT_PROTOCOL, "request line %.*s is not an HTTP/1.1 GET",
             (int)(eol - c->buf > 80 ? 80 : eol - c->buf), c->buf);
    if (header_find(c->buf, head, "transfer-encoding", &h) ||
        (header_find(c->buf, head, "content-length", &h) && !value_is(&h, "0")))
        fail(EXIT_PROTOCOL, "a request with a body");
    if (header_find(c->buf, head, "connection", &h) && value_has_close(&h)) {
        c->close_after = true;
        splice_bytes(c->buf, &c->len, h.start, h.end + 2, "", 0);
    }
}

/* One read from an upstream: must be exactly one complete response per its Content-Length. For a
 * client that asked to close, its Connection header says so. */
static void response_accept(struct conn *u)
{
    size_t head = head_length(u->buf, u->len);
    struct header h;
    if (!head)
        fail(EXIT_PROTOCOL, "an upstream read of %zu bytes holds no complete response head", u->len);
    if (head < 13 || memcmp(u->buf, "HTTP/1.1 ", 9) != 0 || u->buf[9] == '1')
        fail(EXIT_PROTOCOL, "status line %.*s is not a final HTTP/1.1 answer",
             (int)(head > 80 ? 80 : head - 4), u->buf);
    if (header_find(u->buf, head, "transfer-encoding", &h))
        fail(EXIT_PROTOCOL, "a response with Transfer-Encoding (not one read by Content-Length)");
    if (!header_find(u->buf, head, "content-length", &h))
        fail(EXIT_PROTOCOL, "a response without Content-Length");
    char digits[24];
    size_t n = h.value_len < sizeof digits - 1 ? h.value_len : sizeof digits - 1;
    memcpy(digits, h.value, n);
    digits[n] = '\0';
    char *stop;
    unsigned long long body = strtoull(digits, &stop, 10);
    if (n == 0 || *stop || digits[0] == '-' || head + body != u->len)
        fail(EXIT_PROTOCOL, "an upstream read of %zu bytes is not exactly one response "
                            "(head %zu + Content-Length %s)", u->len, head, digits);
    bool has_connection = header_find(u->buf, head, "connection", &h);
    u->upstream_closes = has_connection && value_has_close(&h);
    if (!u->peer->close_after || u->upstream_closes)
        return;
    if (has_connection)
        splice_bytes(u->buf, &u->len, h.start, h.end, CONNECTION_CLOSE, strlen(CONNECTION_CLOSE));
    else
        splice_bytes(u->buf, &u->len, head - 2, head - 2, CONNECTION_CLOSE "\r\n",
                     strlen(CONNECTION_CLOSE) + 2);
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
    watch(src, src->events & ~EPOLLIN);
    watch(dst, dst->events | EPOLLOUT);
    return 1;
}

/* All that src read is now written to its peer. Pooled: an upstream's response has reached its
 * client, so the upstream goes back to the pool, and a client that asked to close is closed. */
static void on_sent(struct conn *src)
{
    if (!relay.pooled || src->kind != UPSTREAM)
        return;
    struct conn *client = src->peer;
    relay.responses++;
    src->peer = client->peer = NULL;
    if (src->upstream_closes)
        conn_close(src);
    else
        pool_put(src);
    if (client->close_after)
        conn_close(client);
}

static void relay_out(struct conn *src)
{
    int r = flush(src);
    if (r < 0)
        close_both(src);
    else if (r == 0)
        on_sent(src);
}

/* Pooled: a client's request finds an upstream connection, idle or new. */
static void request_route(struct conn *c)
{
    struct conn *u = relay.pool;
    if (u)
        pool_remove(u);
    else
        u = upstream_open();
    c->peer = u;
    u->peer = c;
    relay.requests++;
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
    c->off = 0;
    c->len = (size_t)n;
    relay.bytes += (size_t)n;
    if (relay.pooled && c->kind == CLIENT) {
        if (c->peer)
            fail(EXIT_PROTOCOL, "a client sent %zd bytes while its request was in flight", n);
        request_accept(c);
        request_route(c);
    } else if (relay.pooled) {
        if (!c->peer)
            fail(EXIT_PROTOCOL, "an idle upstream connection sent %zd bytes", n);
        response_accept(c);
    }
    relay_out(c);
}

/* dst can take bytes again (or its connect is done): write what its peer holds for it. */
static void on_writable(struct conn *dst)
{
    if (dst->connecting)
        connect_finish(dst);
    struct conn *src = dst->peer;
    if (!src || src->off == src->len) {
        watch(dst, dst->events & ~EPOLLOUT);
        return;
    }
    int r = flush(src);
    if (r < 0) {
        close_both(dst);
        return;
    }
    if (r == 0) {
        watch(dst, dst->events & ~EPOLLOUT);
        watch(src, src->events | EPOLLIN);
        on_sent(src);
    }
}

static void on_accept(void)
{
    int fd = accept4(relay.listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
            return;
        fail(1, "accept: %s", strerror(errno));
    }
    set_nodelay(fd);
    struct conn *c = conn_new(CLIENT, fd, EPOLLIN);
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

static void parse_addr(const char *text, struct sockaddr_in *sa)
{
    const char *colon = strrchr(text, ':');
    char host[64];
    if (!colon || (size_t)(colon - text) >= sizeof host)
        fail(1, "%s: expected IPv4:PORT", text);
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (*end || port < 1 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        fail(1, "%s: expected IPv4:PORT", text);
}

static void listen_on(const char *text)
{
    struct sockaddr_in sa;
    parse_addr(text, &sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0)
        fail(1, "listen on %s: %s", text, strerror(errno));
    relay.listener.kind = LISTENER;
    relay.listener.fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &relay.listener};
    if (epoll_ctl(relay.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        fail(1, "epoll_ctl: %s", strerror(errno));
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void free_closed(void)
{
    while (relay.closed) {
        struct conn *c = relay.closed;
        relay.closed = c->next_free;
        c->next_free = relay.spare;
        relay.spare = c;
    }
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "pair") != 0 && strcmp(argv[1], "pooled") != 0)) {
        fprintf(stderr, "usage: relay_floor pair|pooled LISTEN_IPv4:PORT UPSTREAM_IPv4:PORT\n");
        return 2;
    }
    relay.pooled = strcmp(argv[1], "pooled") == 0;
    parse_addr(argv[3], &relay.upstream_addr);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};  /* no SA_RESTART: epoll_wait returns */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if ((relay.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        fail(1, "epoll_create1: %s", strerror(errno));
    listen_on(argv[2]);

    struct epoll_event events[256];
    while (!stopping) {
        int n = epoll_wait(relay.ep, events, 256, -1);
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

/*
 * relay_floor_common.h: what relay_floor.c (epoll) and relay_floor_uring.c (io_uring) share, so
 * that the two floors differ only in how they wait for and issue I/O, never in what they check or
 * relay: the connection record, the upstream pool, the exits, the addresses, and the little
 * HTTP/1.1 the pooled mode needs (one read = one request head, one read = one response).
 *
 * The including file defines `struct conn_io` (its I/O model's per-connection state) before the
 * #include, and defines conn_close() (close one connection, take it out of the pool) and
 * upstream_open() (a new upstream connection, counted, connect under way) after it.
 */
#ifndef RELAY_FLOOR_COMMON_H
#define RELAY_FLOOR_COMMON_H

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
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 16384
#define EXIT_PROTOCOL 3
#define CONNECTION_CLOSE "Connection: close"

enum kind { LISTENER, CLIENT, UPSTREAM };

struct conn {
    enum kind kind;
    int fd;                /* -1 once closed; reused once the I/O model is done with it */
    struct conn *peer;     /* where what this connection reads goes; pooled: NULL between requests */
    bool connecting;       /* upstream: connect in progress */
    bool close_after;      /* client: close once the response is written (`Connection: close`) */
    bool upstream_closes;  /* upstream: its response said `Connection: close`, so not reusable */
    bool in_pool;
    struct conn_io io;     /* the I/O model's own state */
    struct conn *pool_prev, *pool_next, *next_free;
    size_t off, len;       /* buf[off..len) still to be written to peer */
    char buf[BUF_SIZE];
};

static struct {
    const char *model;    /* "epoll" or "io_uring", for the counts line */
    bool pooled;
    struct sockaddr_in upstream_addr;
    struct conn *pool;    /* idle upstream connections, most recently used first */
    struct conn *spare;   /* freed, for reuse */
    unsigned long clients, upstreams, requests, responses;
    unsigned long long bytes;
} relay;

static volatile sig_atomic_t stopping;

static void conn_close(struct conn *c);
static struct conn *upstream_open(void);

static void fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void print_counts(void)
{
    fprintf(stderr,
            "relay_floor %s %s: %lu client connections, %lu upstream connections opened, "
            "%lu requests, %lu responses, %llu bytes read\n",
            relay.model, relay.pooled ? "pooled" : "pair", relay.clients, relay.upstreams,
            relay.requests, relay.responses, relay.bytes);
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

/* A connection record for fd, zeroed but for its buffer; the I/O model then registers it. */
static struct conn *conn_alloc(enum kind kind, int fd)
{
    struct conn *c = relay.spare;
    if (c)
        relay.spare = c->next_free;
    else if (!(c = malloc(sizeof *c)))
        fail(1, "out of memory");
    memset(c, 0, offsetof(struct conn, buf));
    c->kind = kind;
    c->fd = fd;
    return c;
}

/* The I/O model no longer refers to c: its record can be reused. */
static void conn_recycle(struct conn *c)
{
    c->next_free = relay.spare;
    relay.spare = c;
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

/* --- pooled relaying -------------------------------------------------------------------------- */

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

/* n bytes arrived in c's buffer, to go to its peer. Pooled, a client's are one request, routed
 * now; an upstream's one response, for the client it was routed to. */
static void relay_received(struct conn *c, size_t n)
{
    c->off = 0;
    c->len = n;
    relay.bytes += n;
    if (relay.pooled && c->kind == CLIENT) {
        if (c->peer)
            fail(EXIT_PROTOCOL, "a client sent %zu bytes while its request was in flight", n);
        request_accept(c);
        request_route(c);
    } else if (relay.pooled) {
        if (!c->peer)
            fail(EXIT_PROTOCOL, "an idle upstream connection sent %zu bytes", n);
        response_accept(c);
    }
}

/* Pooled: an upstream's response is all written to its client, so the upstream goes back to the
 * pool (unless it said it closes), and a client that asked to close is closed. */
static void response_delivered(struct conn *upstream)
{
    struct conn *client = upstream->peer;
    relay.responses++;
    upstream->peer = client->peer = NULL;
    if (upstream->upstream_closes)
        conn_close(upstream);
    else
        pool_put(upstream);
    if (client->close_after)
        conn_close(client);
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

/* A listening socket on text (IPv4:PORT); flags add SOCK_NONBLOCK or not. */
static int listen_socket(const char *text, int flags)
{
    struct sockaddr_in sa;
    parse_addr(text, &sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0)
        fail(1, "listen on %s: %s", text, strerror(errno));
    /* Linux hands TCP_NODELAY down to every accepted socket: set once here, not
     * per accept (a syscall per connection saved, as outrider does). */
    set_nodelay(fd);
    return fd;
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* Reads the command line (MODE LISTEN UPSTREAM; exits 2 on a bad one), sets the signals: SIGTERM
 * and SIGINT stop the loop (no SA_RESTART, so the wait returns), SIGPIPE is ignored. */
static void relay_setup(const char *model, int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "pair") != 0 && strcmp(argv[1], "pooled") != 0)) {
        fprintf(stderr, "usage: %s pair|pooled LISTEN_IPv4:PORT UPSTREAM_IPv4:PORT\n", argv[0]);
        exit(2);
    }
    relay.model = model;
    relay.pooled = strcmp(argv[1], "pooled") == 0;
    parse_addr(argv[3], &relay.upstream_addr);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

#endif

/* patterns-app: the workload of one pod in bench/patterns.
 *
 * One single-threaded epoll process per pod does what a small service does:
 *   - serves HTTP/1.1 (keep-alive, pipelining) on --listen; GET /metrics answers in
 *     Prometheus text, anything else answers "<pod>\n" so a client can tell it reached
 *     the pod it meant to (a misrouting proxy is counted, not hidden);
 *   - calls other pods at a fixed open-loop rate (--rate per second, round robin over
 *     --target), directly, through a localhost sidecar (Host = service) or through a
 *     node agent (absolute-form request, http_proxy style); latency is measured from the
 *     time a request was due, so a stalled connection cannot hide its queueing delay;
 *   - appends numbered CRI log lines to --log-file at --log-rate per second;
 *   - sends statsd lines over UDP to --statsd at --statsd-rate per second.
 * After --duration seconds of client work it writes a JSON result file (--out) and keeps
 * serving until SIGTERM/SIGINT, because other pods may still be calling it.
 *
 * Plain epoll + timerfd rather than libuv: the bench measures agents, so the app must
 * cost as little CPU as possible and depend on nothing. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 256
#define QUEUE_CAP 1024          /* due requests waiting for a free connection, per target */
#define BUF_SIZE 4096          /* requests and answers here are a few hundred bytes */
#define HIST_SUB_BITS 5         /* 32 sub-buckets per power of two: <= 3.2% relative error */
#define HIST_SIZE 2048

enum mode { MODE_DIRECT, MODE_SIDECAR, MODE_NODE };
enum kind { K_LISTEN, K_SERVER, K_CLIENT, K_TIMER, K_SIGNAL };

struct source { enum kind kind; };

struct server_conn {
    struct source src;
    int fd;
    char in[BUF_SIZE];
    size_t in_len;
    char *out;
    size_t out_len, out_off, out_cap;
};

struct target;

struct client_conn {
    struct source src;
    int fd;
    struct target *t;
    bool connecting, busy;
    uint64_t due_ns;            /* when the in-flight request was due */
    char req[512];
    size_t req_len, req_off;
    char in[BUF_SIZE];
    size_t in_len;
};

struct target {
    char service[128];          /* "app-3.bench:8080": what the caller asks for */
    char expect[64];            /* body the destination pod answers with */
    struct sockaddr_in connect_to;
    struct client_conn **conns;
    int nconns;
    uint64_t queue[QUEUE_CAP];
    int q_head, q_len;
};

struct stats {
    uint64_t sent, ok, bad_status, misrouted, conn_errors, timeouts, dropped, conns_opened;
    uint64_t served, log_lines, log_errors, statsd_sent, statsd_errors;
    uint64_t hist[HIST_SIZE];
};

static struct {
    const char *pod, *listen, *log_file, *statsd, *out, *proxy, *ns;
    enum mode mode;
    double rate, log_rate, statsd_rate, duration, start_at, timeout;
    int pool;
    struct target targets[MAX_TARGETS];
    int ntargets, next_target;
    int ep, tfd, log_fd, statsd_fd, signal_fd;
    struct sockaddr_in statsd_addr;
    uint64_t start_ns, end_ns, next_req_ns, next_log_ns, next_statsd_ns;
    uint64_t req_period, log_period, statsd_period;
    bool client_done, results_written, stopping, wait_start, started;
    const char *ready_file;
    struct stats st;
    struct source timer_src, signal_src;
    struct { struct source src; int fd; } listener;
} g;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "patterns-app[%s]: ", g.pod ? g.pod : "?");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram: log-linear buckets over microseconds, like HDR ---- */

static int hist_index(uint64_t us)
{
    if (us < (2u << HIST_SUB_BITS))
        return (int)us;
    int msb = 63 - __builtin_clzll(us);
    int shift = msb - HIST_SUB_BITS;
    int idx = (1 << HIST_SUB_BITS) + shift * (1 << HIST_SUB_BITS) + (int)((us >> shift) - (1u << HIST_SUB_BITS));
    return idx < HIST_SIZE ? idx : HIST_SIZE - 1;
}

/* Lowest and highest value a bucket holds (the inverse of hist_index). */
static void hist_bounds(int idx, uint64_t *lo, uint64_t *hi)
{
    if (idx < (2 << HIST_SUB_BITS)) {
        *lo = *hi = (uint64_t)idx;
        return;
    }
    int shift = (idx - (1 << HIST_SUB_BITS)) >> HIST_SUB_BITS;
    uint64_t mant = (uint64_t)((idx - (1 << HIST_SUB_BITS)) & ((1 << HIST_SUB_BITS) - 1)) + (1u << HIST_SUB_BITS);
    *lo = mant << shift;
    *hi = ((mant + 1) << shift) - 1;
}

static void hist_record(uint64_t ns) { g.st.hist[hist_index(ns / 1000)]++; }

/* ---- small helpers ---- */

static void parse_addr(const char *s, struct sockaddr_in *sa, const char *what)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
        die("%s: expected IPv4:PORT, got \"%s\"", what, s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    if (*end || port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        die("%s: expected IPv4:PORT, got \"%s\"", what, s);
    sa->sin_port = htons((uint16_t)port);
}

static void ep_add(int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev = { .events = events, .data.ptr = ptr };
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl add: %s", strerror(errno));
}

static void ep_mod(int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev = { .events = events, .data.ptr = ptr };
    if (epoll_ctl(g.ep, EPOLL_CTL_MOD, fd, &ev) < 0)
        die("epoll_ctl mod: %s", strerror(errno));
}

/* Finds the end of an HTTP header block; returns its length or 0 if incomplete. */
static size_t header_end(const char *buf, size_t len)
{
    const char *p = memmem(buf, len, "\r\n\r\n", 4);
    return p ? (size_t)(p - buf) + 4 : 0;
}

/* Value of a header (case-insensitive name) inside a header block, or NULL. */
static const char *header_value(const char *hdr, size_t len, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = memchr(hdr, '\n', len);
    while (p && (size_t)(p + 1 - hdr) < len) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', len - (size_t)(line - hdr));
        if (!eol)
            break;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = eol;
            while (e > v && (e[-1] == '\r' || e[-1] == ' '))
                e--;
            *vlen = (size_t)(e - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* ---- HTTP server ---- */

static void server_close(struct server_conn *c)
{
    close(c->fd);
    free(c->out);
    free(c);
}

static void server_queue(struct server_conn *c, const char *data, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        c->out_cap = (c->out_len + len) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (!c->out)
            die("out of memory");
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

static void server_respond(struct server_conn *c, const char *path, size_t plen)
{
    char body[512], resp[768];
    const char *ctype = "text/plain";
    int blen;
    g.st.served++;
    if (plen == 8 && memcmp(path, "/metrics", 8) == 0) {
        ctype = "text/plain; version=0.0.4";
        blen = snprintf(body, sizeof body,
                        "# HELP patterns_app_requests_served_total Requests this pod served.\n"
                        "# TYPE patterns_app_requests_served_total counter\n"
                        "patterns_app_requests_served_total %" PRIu64 "\n"
                        "# HELP patterns_app_requests_sent_total Requests this pod sent.\n"
                        "# TYPE patterns_app_requests_sent_total counter\n"
                        "patterns_app_requests_sent_total %" PRIu64 "\n",
                        g.st.served, g.st.sent);
    } else {
        blen = snprintf(body, sizeof body, "%s\n", g.pod);
    }
    int rlen = snprintf(resp, sizeof resp,
                        "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
                        ctype, blen, body);
    server_queue(c, resp, (size_t)rlen);
}

/* Writes what is queued; returns false if the connection died. */
static bool server_flush(struct server_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            return false;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    ep_mod(c->fd, EPOLLIN | (c->out_len ? EPOLLOUT : 0), c);
    return true;
}

static void server_on_readable(struct server_conn *c)
{
    for (;;) {
        if (c->in_len == sizeof c->in) {       /* a request larger than we ever send: refuse */
            server_close(c);
            return;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            server_close(c);
            return;
        }
        if (n < 0)
            break;
        c->in_len += (size_t)n;
    }
    size_t off = 0;
    for (;;) {
        size_t hl = header_end(c->in + off, c->in_len - off);
        if (!hl)
            break;
        const char *req = c->in + off;
        size_t vlen, body = 0;
        const char *cl = header_value(req, hl, "Content-Length", &vlen);
        if (cl)
            body = strtoul(cl, NULL, 10);
        if (body > sizeof c->in) {      /* never sent here: refuse rather than wait for it */
            server_close(c);
            return;
        }
        if (hl + body > c->in_len - off)
            break;
        const char *sp = memchr(req, ' ', hl);
        const char *path = sp ? sp + 1 : req;
        const char *sp2 = sp ? memchr(path, ' ', hl - (size_t)(path - req)) : NULL;
        size_t plen = sp2 ? (size_t)(sp2 - path) : 0;
        /* absolute-form target (a proxy forwarding as-is): keep only the path */
        if (plen > 7 && memcmp(path, "http://", 7) == 0) {
            const char *slash = memchr(path + 7, '/', plen - 7);
            plen = slash ? plen - (size_t)(slash - path) : 1;
            path = slash ? slash : "/";
        }
        server_respond(c, path, plen);
        off += hl + body;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    if (!server_flush(c))
        server_close(c);
}

static void listen_on_readable(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct server_conn *c = calloc(1, sizeof *c);
        if (!c)
            die("out of memory");
        c->src.kind = K_SERVER;
        c->fd = fd;
        ep_add(fd, EPOLLIN, c);
    }
}

/* ---- HTTP client ---- */

static void client_build_request(struct client_conn *c)
{
    struct target *t = c->t;
    switch (g.mode) {
    case MODE_NODE:     /* the node agent is this app's http_proxy */
        c->req_len = (size_t)snprintf(c->req, sizeof c->req,
                                      "GET http://%s/call HTTP/1.1\r\nHost: %s\r\nUser-Agent: patterns-app\r\n\r\n",
                                      t->service, t->service);
        break;
    default:            /* direct, or the sidecar on localhost routing on Host */
        c->req_len = (size_t)snprintf(c->req, sizeof c->req,
                                      "GET /call HTTP/1.1\r\nHost: %s\r\nUser-Agent: patterns-app\r\n\r\n",
                                      t->service);
    }
    c->req_off = 0;
}

static void client_reset(struct client_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->busy = c->connecting = false;
    c->in_len = 0;
}

static bool client_connect(struct client_conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return false;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    g.st.conns_opened++;
    if (connect(c->fd, (struct sockaddr *)&c->t->connect_to, sizeof c->t->connect_to) < 0 && errno != EINPROGRESS) {
        client_reset(c);
        return false;
    }
    c->connecting = true;
    ep_add(c->fd, EPOLLIN | EPOLLOUT, c);
    return true;
}

static void client_write(struct client_conn *c)
{
    while (c->req_off < c->req_len) {
        ssize_t n = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            g.st.conn_errors++;
            client_reset(c);
            return;
        }
        c->req_off += (size_t)n;
    }
    ep_mod(c->fd, EPOLLIN | (c->req_off < c->req_len ? EPOLLOUT : 0), c);
}

/* Starts the request that was due at due_ns on connection c (connecting if needed). */
static void client_send(struct client_conn *c, uint64_t due_ns)
{
    c->busy = true;
    c->due_ns = due_ns;
    g.st.sent++;
    client_build_request(c);
    if (c->fd < 0) {
        if (!client_connect(c)) {
            g.st.conn_errors++;
            c->busy = false;
        }
        return;             /* the request goes out once the connection is up */
    }
    client_write(c);
}

/* An idle connection to t, or a new one while the pool has room (allocated on demand, so
 * an app calling 49 pods at a low rate holds about one per pod, not --pool per pod). */
static struct client_conn *target_idle_conn(struct target *t)
{
    for (int i = 0; i < t->nconns; i++)
        if (!t->conns[i]->busy)
            return t->conns[i];
    if (t->nconns == g.pool)
        return NULL;
    struct client_conn *c = calloc(1, sizeof *c);
    if (!c)
        die("out of memory");
    c->src.kind = K_CLIENT;
    c->fd = -1;
    c->t = t;
    t->conns[t->nconns++] = c;
    return c;
}

static void target_dispatch(struct target *t)
{
    struct client_conn *c;
    while (t->q_len && (c = target_idle_conn(t))) {
        uint64_t due = t->queue[t->q_head];
        t->q_head = (t->q_head + 1) % QUEUE_CAP;
        t->q_len--;
        client_send(c, due);
    }
}

static void target_enqueue(struct target *t, uint64_t due)
{
    if (t->q_len == QUEUE_CAP) {
        g.st.dropped++;
        return;
    }
    t->queue[(t->q_head + t->q_len) % QUEUE_CAP] = due;
    t->q_len++;
    target_dispatch(t);
}

/* Parses a complete response at the start of c->in; returns its length, 0 if incomplete,
 * -1 if malformed. Sets *status and the body span. */
static long parse_response(const char *in, size_t len, int *status, const char **body, size_t *blen)
{
    size_t hl = header_end(in, len);
    if (!hl)
        return len >= BUF_SIZE ? -1 : 0;
    if (len < 12 || memcmp(in, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(in + 9);
    size_t vlen;
    const char *te = header_value(in, hl, "Transfer-Encoding", &vlen);
    if (te && vlen >= 7 && strncasecmp(te + vlen - 7, "chunked", 7) == 0) {
        /* the bodies are tiny: reassemble the chunks in place of nothing, only find the end */
        size_t off = hl;
        *body = in + hl;
        *blen = 0;
        for (;;) {
            const char *eol = memmem(in + off, len - off, "\r\n", 2);
            if (!eol)
                return 0;
            size_t n = strtoul(in + off, NULL, 16);
            off = (size_t)(eol - in) + 2;
            if (n == 0) {
                const char *end = memmem(in + off, len - off, "\r\n", 2);   /* no trailers expected */
                if (!end)
                    return 0;
                return (long)((size_t)(end - in) + 2);
            }
            if (off + n + 2 > len)
                return 0;
            if (*blen == 0) {
                *body = in + off;
                *blen = n;
            }
            off += n + 2;
        }
    }
    const char *cl = header_value(in, hl, "Content-Length", &vlen);
    size_t n = cl ? strtoul(cl, NULL, 10) : 0;
    if (n > BUF_SIZE)
        return -1;
    if (hl + n > len)
        return hl + n > BUF_SIZE ? -1 : 0;
    *body = in + hl;
    *blen = n;
    return (long)(hl + n);
}

static void client_on_event(struct client_conn *c, uint32_t events)
{
    if (c->connecting) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            g.st.conn_errors++;
            client_reset(c);
            target_dispatch(c->t);
            return;
        }
        c->connecting = false;
        if (c->busy)
            client_write(c);
        return;
    }
    if ((events & EPOLLOUT) && c->busy && c->req_off < c->req_len) {
        client_write(c);
        if (c->fd < 0)
            return;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        if (c->busy)
            g.st.conn_errors++;
        client_reset(c);
        target_dispatch(c->t);
        return;
    }
    c->in_len += (size_t)n;
    int status = 0;
    const char *body = NULL;
    size_t blen = 0;
    long used = parse_response(c->in, c->in_len, &status, &body, &blen);
    if (used == 0)
        return;
    if (used < 0 || !c->busy) {
        g.st.conn_errors++;
        client_reset(c);
        target_dispatch(c->t);
        return;
    }
    hist_record(now_ns() - c->due_ns);
    if (status != 200)
        g.st.bad_status++;
    else if (blen != strlen(c->t->expect) || memcmp(body, c->t->expect, blen) != 0)
        g.st.misrouted++;
    else
        g.st.ok++;
    memmove(c->in, c->in + used, c->in_len - (size_t)used);
    c->in_len -= (size_t)used;
    c->busy = false;
    target_dispatch(c->t);
}

static void client_check_timeouts(uint64_t now)
{
    uint64_t limit = (uint64_t)(g.timeout * 1e9);
    for (int i = 0; i < g.ntargets; i++)
        for (int j = 0; j < g.targets[i].nconns; j++) {
            struct client_conn *c = g.targets[i].conns[j];
            if (c->busy && now - c->due_ns > limit) {
                g.st.timeouts++;
                client_reset(c);
            }
        }
    for (int i = 0; i < g.ntargets; i++)
        target_dispatch(&g.targets[i]);
}

static int client_in_flight(void)
{
    int n = 0;
    for (int i = 0; i < g.ntargets; i++) {
        n += g.targets[i].q_len;
        for (int j = 0; j < g.targets[i].nconns; j++)
            n += g.targets[i].conns[j]->busy;
    }
    return n;
}

/* ---- CRI log lines and statsd ---- */

static void log_write_line(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[256];
    uint64_t seq = g.st.log_lines + 1;
    /* CRI: <RFC3339Nano time> <stream> <P|F> <message> */
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ stdout F seq=%" PRIu64 " pod=%s msg=\"handled batch\"\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec, seq, g.pod);
    if (write(g.log_fd, line, (size_t)n) == n)
        g.st.log_lines++;
    else
        g.st.log_errors++;
}

static void statsd_send(void)
{
    char msg[160];
    int n;
    switch (g.st.statsd_sent % 3) {
    case 0: n = snprintf(msg, sizeof msg, "patterns.app.calls:1|c|#pod:%s", g.pod); break;
    case 1: n = snprintf(msg, sizeof msg, "patterns.app.queue:%d|g|#pod:%s", client_in_flight(), g.pod); break;
    default: n = snprintf(msg, sizeof msg, "patterns.app.work_ms:%u|ms|#pod:%s", (unsigned)(g.st.statsd_sent % 17), g.pod);
    }
    if (sendto(g.statsd_fd, msg, (size_t)n, 0, (struct sockaddr *)&g.statsd_addr, sizeof g.statsd_addr) == n)
        g.st.statsd_sent++;
    else
        g.st.statsd_errors++;
}

/* ---- schedule ---- */

static void timer_arm(void);

/* Starts the client, log and statsd schedules at start (CLOCK_MONOTONIC ns). */
static void schedule_from(uint64_t start)
{
    g.start_ns = start;
    g.end_ns = g.start_ns + (uint64_t)(g.duration * 1e9);
    g.req_period = g.rate > 0 ? (uint64_t)(1e9 / g.rate) : 0;
    g.log_period = g.log_rate > 0 ? (uint64_t)(1e9 / g.log_rate) : 0;
    g.statsd_period = g.statsd_rate > 0 ? (uint64_t)(1e9 / g.statsd_rate) : 0;
    /* stagger the three schedules so they don't all wake at the same instant */
    g.next_req_ns = g.start_ns;
    g.next_log_ns = g.start_ns + g.log_period / 3;
    g.next_statsd_ns = g.start_ns + 2 * g.statsd_period / 3;
    g.started = true;
    timer_arm();
}

static void timer_arm(void)
{
    if (!g.started) {           /* waiting for SIGUSR1: nothing scheduled yet */
        struct itimerspec off = {0};
        timerfd_settime(g.tfd, 0, &off, NULL);
        return;
    }
    uint64_t next = g.end_ns + 1000000000u;       /* after the end: housekeeping once more */
    if (g.client_done)
        next = now_ns() + 200000000u;
    if (!g.client_done) {
        if (g.req_period && g.next_req_ns < next) next = g.next_req_ns;
        if (g.log_period && g.next_log_ns < next) next = g.next_log_ns;
        if (g.statsd_period && g.next_statsd_ns < next) next = g.next_statsd_ns;
        uint64_t house = now_ns() + 100000000u;    /* timeouts are checked every 100 ms */
        if (house < next) next = house;
        if (g.end_ns < next) next = g.end_ns;
    }
    struct itimerspec its = { .it_value = { .tv_sec = (time_t)(next / 1000000000u), .tv_nsec = (long)(next % 1000000000u) } };
    if (timerfd_settime(g.tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        die("timerfd_settime: %s", strerror(errno));
}

static void write_results(void)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", g.out);
    FILE *f = fopen(tmp, "w");
    if (!f)
        die("%s: %s", tmp, strerror(errno));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(f, "{\"pod\":\"%s\",\"mode\":%d,\"duration_s\":%.3f,\"rate\":%.3f,"
               "\"sent\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"bad_status\":%" PRIu64 ",\"misrouted\":%" PRIu64
               ",\"conn_errors\":%" PRIu64 ",\"timeouts\":%" PRIu64 ",\"dropped\":%" PRIu64
               ",\"unfinished\":%d,\"conns_opened\":%" PRIu64 ",\"served\":%" PRIu64
               ",\"log_lines\":%" PRIu64 ",\"log_errors\":%" PRIu64
               ",\"statsd_sent\":%" PRIu64 ",\"statsd_errors\":%" PRIu64
               ",\"maxrss_kib\":%ld,\"hist_us\":[",
            g.pod, (int)g.mode, g.duration, g.rate, g.st.sent, g.st.ok, g.st.bad_status, g.st.misrouted,
            g.st.conn_errors, g.st.timeouts, g.st.dropped, client_in_flight(), g.st.conns_opened, g.st.served,
            g.st.log_lines, g.st.log_errors, g.st.statsd_sent, g.st.statsd_errors, ru.ru_maxrss);
    bool first = true;
    for (int i = 0; i < HIST_SIZE; i++) {
        if (!g.st.hist[i])
            continue;
        uint64_t lo, hi;
        hist_bounds(i, &lo, &hi);
        fprintf(f, "%s[%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", lo, hi, g.st.hist[i]);
        first = false;
    }
    fprintf(f, "]}\n");
    if (fclose(f) != 0 || rename(tmp, g.out) != 0)
        die("%s: %s", g.out, strerror(errno));
    g.results_written = true;
}

static void on_timer(void)
{
    uint64_t exp;
    if (read(g.tfd, &exp, sizeof exp) < 0 && errno != EAGAIN)
        die("timerfd read: %s", strerror(errno));
    uint64_t now = now_ns();
    if (g.started && !g.client_done) {
        while (g.req_period && g.next_req_ns <= now && g.next_req_ns < g.end_ns) {
            struct target *t = &g.targets[g.next_target];
            g.next_target = (g.next_target + 1) % g.ntargets;
            target_enqueue(t, g.next_req_ns);
            g.next_req_ns += g.req_period;
        }
        while (g.log_period && g.next_log_ns <= now && g.next_log_ns < g.end_ns) {
            log_write_line();
            g.next_log_ns += g.log_period;
        }
        while (g.statsd_period && g.next_statsd_ns <= now && g.next_statsd_ns < g.end_ns) {
            statsd_send();
            g.next_statsd_ns += g.statsd_period;
        }
        client_check_timeouts(now);
        /* done once the schedule ran out and every request finished (or timed out) */
        if (now >= g.end_ns && client_in_flight() == 0) {
            g.client_done = true;
            write_results();
        }
    }
    timer_arm();
}

static void on_signal(void)
{
    struct signalfd_siginfo si;
    while (read(g.signal_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGUSR1) {
            if (!g.started)
                schedule_from(now_ns());
        } else {
            g.stopping = true;
        }
    }
}

/* ---- set-up ---- */

static void usage(void)
{
    fprintf(stderr,
            "usage: patterns-app --pod NAME --listen IP:PORT --out FILE [options]\n"
            "  --target SERVICE=IP:PORT=EXPECT   a service to call (repeatable); EXPECT is the pod\n"
            "                                    name its answer must carry\n"
            "  --mode direct|sidecar|node        how calls travel (default direct)\n"
            "  --proxy IP:PORT                   sidecar or node agent address (modes sidecar, node)\n"
            "  --rate R       requests per second, round robin over targets (0..5000, default 10)\n"
            "  --pool K       connections per target (1..64, default 4)\n"
            "  --timeout S    request timeout in seconds (default 2)\n"
            "  --log-file F   CRI log file to append numbered lines to\n"
            "  --log-rate R   lines per second (0..10000, default 10)\n"
            "  --statsd IP:PORT  --statsd-rate R   (0..10000, default 10)\n"
            "  --start-at T   CLOCK_REALTIME epoch seconds to begin the client work (default now),\n"
            "                 or usr1: begin when SIGUSR1 arrives\n"
            "  --ready-file F created once the server listens\n"
            "  --duration S   seconds of client work (0.5..3600, default 5)\n");
    exit(2);
}

static double num_arg(const char *name, const char *v, double lo, double hi)
{
    char *end;
    double d = strtod(v, &end);
    if (*end || d < lo || d > hi)
        die("%s: expected a number in [%g, %g], got \"%s\"", name, lo, hi, v);
    return d;
}

static void add_target(const char *spec)
{
    if (g.ntargets == MAX_TARGETS)
        die("--target: at most %d targets", MAX_TARGETS);
    struct target *t = &g.targets[g.ntargets++];
    const char *eq1 = strchr(spec, '='), *eq2 = eq1 ? strchr(eq1 + 1, '=') : NULL;
    if (!eq1 || !eq2 || (size_t)(eq1 - spec) >= sizeof t->service || strlen(eq2 + 1) >= sizeof t->expect)
        die("--target: expected SERVICE=IP:PORT=EXPECT, got \"%s\"", spec);
    memcpy(t->service, spec, (size_t)(eq1 - spec));
    char addr[64];
    if ((size_t)(eq2 - eq1 - 1) >= sizeof addr)
        die("--target: address too long in \"%s\"", spec);
    memcpy(addr, eq1 + 1, (size_t)(eq2 - eq1 - 1));
    addr[eq2 - eq1 - 1] = 0;
    parse_addr(addr, &t->connect_to, "--target");
    snprintf(t->expect, sizeof t->expect, "%s\n", eq2 + 1);
}

static void parse_args(int argc, char **argv)
{
    g.mode = MODE_DIRECT;
    g.rate = g.log_rate = g.statsd_rate = 10;
    g.duration = 5;
    g.timeout = 2;
    g.pool = 4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--pod")) g.pod = v;
        else if (!strcmp(a, "--listen")) g.listen = v;
        else if (!strcmp(a, "--out")) g.out = v;
        else if (!strcmp(a, "--target")) add_target(v);
        else if (!strcmp(a, "--proxy")) g.proxy = v;
        else if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "direct")) g.mode = MODE_DIRECT;
            else if (!strcmp(v, "sidecar")) g.mode = MODE_SIDECAR;
            else if (!strcmp(v, "node")) g.mode = MODE_NODE;
            else die("--mode: expected direct, sidecar or node, got \"%s\"", v);
        }
        else if (!strcmp(a, "--rate")) g.rate = num_arg(a, v, 0, 5000);
        else if (!strcmp(a, "--pool")) g.pool = (int)num_arg(a, v, 1, 64);
        else if (!strcmp(a, "--timeout")) g.timeout = num_arg(a, v, 0.01, 60);
        else if (!strcmp(a, "--log-file")) g.log_file = v;
        else if (!strcmp(a, "--log-rate")) g.log_rate = num_arg(a, v, 0, 10000);
        else if (!strcmp(a, "--statsd")) g.statsd = v;
        else if (!strcmp(a, "--statsd-rate")) g.statsd_rate = num_arg(a, v, 0, 10000);
        else if (!strcmp(a, "--start-at") && !strcmp(v, "usr1")) g.wait_start = true;
        else if (!strcmp(a, "--start-at")) g.start_at = num_arg(a, v, 0, 1e11);
        else if (!strcmp(a, "--ready-file")) g.ready_file = v;
        else if (!strcmp(a, "--duration")) g.duration = num_arg(a, v, 0.5, 3600);
        else usage();
    }
    if (!g.pod || !g.listen || !g.out)
        usage();
    if (g.rate > 0 && g.ntargets == 0)
        die("--rate %g needs at least one --target", g.rate);
    if (g.mode != MODE_DIRECT && !g.proxy)
        die("--mode %s needs --proxy", g.mode == MODE_NODE ? "node" : "sidecar");
    if (g.log_rate > 0 && !g.log_file)
        die("--log-rate %g needs --log-file", g.log_rate);
    if (g.statsd_rate > 0 && !g.statsd)
        die("--statsd-rate %g needs --statsd", g.statsd_rate);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep < 0)
        die("epoll_create1: %s", strerror(errno));

    struct sockaddr_in la;
    parse_addr(g.listen, &la, "--listen");
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&la, sizeof la) < 0 || listen(lfd, 1024) < 0)
        die("--listen %s: %s", g.listen, strerror(errno));
    g.listener.src.kind = K_LISTEN;
    g.listener.fd = lfd;
    ep_add(lfd, EPOLLIN, &g.listener);

    if (g.mode != MODE_DIRECT) {
        struct sockaddr_in pa;
        parse_addr(g.proxy, &pa, "--proxy");
        for (int i = 0; i < g.ntargets; i++)
            g.targets[i].connect_to = pa;
    }
    for (int i = 0; i < g.ntargets; i++) {
        struct target *t = &g.targets[i];
        t->conns = calloc((size_t)g.pool, sizeof *t->conns);
        if (!t->conns)
            die("out of memory");
    }
    if (g.log_rate > 0) {
        g.log_fd = open(g.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (g.log_fd < 0)
            die("--log-file %s: %s", g.log_file, strerror(errno));
    }
    if (g.statsd_rate > 0) {
        parse_addr(g.statsd, &g.statsd_addr, "--statsd");
        g.statsd_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (g.statsd_fd < 0)
            die("statsd socket: %s", strerror(errno));
    }

    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGUSR1);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    int sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        die("signalfd: %s", strerror(errno));
    g.signal_src.kind = K_SIGNAL;
    g.signal_fd = sfd;
    ep_add(sfd, EPOLLIN, &g.signal_src);

    g.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (g.tfd < 0)
        die("timerfd_create: %s", strerror(errno));
    g.timer_src.kind = K_TIMER;
    ep_add(g.tfd, EPOLLIN, &g.timer_src);

    /* start_at is wall-clock so every pod can be told the same instant; convert once */
    uint64_t now = now_ns();
    if (g.wait_start) {
        timer_arm();
    } else if (g.start_at > 0) {
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        double delta = g.start_at - ((double)rt.tv_sec + rt.tv_nsec / 1e9);
        schedule_from(delta > 0 ? now + (uint64_t)(delta * 1e9) : now);
    } else {
        schedule_from(now);
    }
    if (g.ready_file) {         /* the listener is bound: callers may come */
        int fd = open(g.ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            die("--ready-file %s: %s", g.ready_file, strerror(errno));
        close(fd);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    setup();
    struct epoll_event evs[64];
    while (!g.stopping) {
        int n = epoll_wait(g.ep, evs, 64, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct source *s = evs[i].data.ptr;
            switch (s->kind) {
            case K_LISTEN: listen_on_readable(g.listener.fd); break;
            case K_SERVER: server_on_readable((struct server_conn *)s); break;
            case K_CLIENT: client_on_event((struct client_conn *)s, evs[i].events); break;
            case K_TIMER: on_timer(); break;
            case K_SIGNAL: on_signal(); break;
            }
        }
    }
    if (!g.results_written)
        write_results();    /* stopped early: say what happened so far */
    return 0;
}

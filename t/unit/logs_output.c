/*
 * logs_queue + logs_output + logs_forward_in over real files and real
 * loopback sockets: acknowledgement order, batching, a TCP sink that is
 * down then up (nothing lost, memory bounded), HTTP status handling and
 * formats, syslog framing, and forward with end-to-end acknowledgement.
 */
#include "tap.h"

#include "../../modules/logs/logs_encode.c"
#include "../../modules/logs/logs_format.c"
#include "../../modules/logs/logs_forward_in.c"
#include "../../modules/logs/logs_http_resp.c"
#include "../../modules/logs/logs_json.c"
#include "../../modules/logs/logs_out_file.c"
#include "../../modules/logs/logs_out_net.c"
#include "../../modules/logs/logs_output.c"
#include "../../modules/logs/logs_queue.c"
#include "../../modules/logs/logs_spool.c"
#include "../../modules/logs/logs_time.c"

#include <arpa/inet.h>
#include <dirent.h>
#include <sys/socket.h>

static uv_loop_t loop;

/* A source that records what the queue acknowledged. */
struct src {
    uint64_t acked, acks, refs;
    bool out_of_order;
};
static void src_ack(void *p, uint64_t a, uint64_t b)
{
    struct src *s = p;
    if (a < s->acked)
        s->out_of_order = true;
    s->acked = a;
    s->acks++;
}
static void src_ref(void *p)
{
    ((struct src *)p)->refs++;
}
static void src_unref(void *p)
{
    ((struct src *)p)->refs--;
}
static const struct logs_source_ops src_ops = {.ack = src_ack, .ref = src_ref, .unref = src_unref};

static void push_lines(struct logs_queue *q, struct src *s, uint64_t from, uint64_t to)
{
    char line[128];
    for (uint64_t i = from; i <= to; i++) {
        int n = snprintf(line, sizeof line, "{\"time\":\"2026-01-01T00:00:00.000000000Z\",\"message\":\"line %llu\"}\n",
                         (unsigned long long)i);
        logs_queue_push(q, line, (size_t)n, &src_ops, s, i, 0, uv_now(&loop));
    }
}

static void kick_outputs(void *arg, struct logs_queue *q)
{
    struct logs_output **outs = arg;
    for (size_t i = 0; i < q->n_outputs; i++)
        if (outs[i])
            logs_output_kick(outs[i]);
}

static bool wait_for(bool (*cond)(void *), void *arg, int ms)
{
    uint64_t deadline = uv_now(&loop) + (uint64_t)ms;
    while (!cond(arg) && uv_now(&loop) < deadline) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
    }
    return cond(arg);
}

struct acked_at {
    struct src *s;
    uint64_t n;
};
static bool src_acked(void *p)
{
    struct acked_at *a = p;
    return a->s->acked >= a->n;
}

static void output_closed(struct logs_output *o)
{
    logs_output_free(o);
}

/* Checks that file holds "line from".."line to" exactly once, in order. */
static int count_lines(const char *path, uint64_t to, bool *in_order)
{
    FILE *f = fopen(path, "r");
    char buf[512];
    uint64_t next = 1;
    int n = 0;
    *in_order = true;
    while (f && fgets(buf, sizeof buf, f)) {
        char *m = strstr(buf, "line ");
        unsigned long long v;
        if (m && sscanf(m, "line %llu", &v) == 1) {
            if (v != next)
                *in_order = false;
            next = v + 1;
            n++;
        }
    }
    if (f)
        fclose(f);
    return n;
}

static char tmpdir[128];

static void test_file_output(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/out.json", tmpdir);
    struct logs_queue q;
    logs_queue_init(&q, 1 << 20, 4096, 1);
    struct logs_output *outs[1];
    q.on_sealed = kick_outputs;
    q.arg = outs;
    struct logs_output_conf c = {.name = "f", .kind = LOGS_OUT_FILE, .path = path, .batch_size = 16384,
                                 .retry_min_ms = 10, .retry_max_ms = 100};
    char err[256];
    is_int(logs_output_new(&loop, &q, 0, &c, &outs[0], err, sizeof err), 0, "file output opens");
    struct src s = {0};
    push_lines(&q, &s, 1, 1000);
    logs_queue_seal(&q);
    struct acked_at a = {&s, 1000};
    ok(wait_for(src_acked, &a, 5000), "all 1000 lines acknowledged");
    ok(!s.out_of_order, "acknowledgements in order");
    ok(s.acks > 1, "in several chunks (%llu acks)", (unsigned long long)s.acks);
    is_int(s.refs, 0, "queue released every reference");
    bool order;
    is_int(count_lines(path, 1000, &order), 1000, "file holds the 1000 lines");
    ok(order, "in order");
    ok(logs_queue_empty(&q), "queue empty");
    logs_output_close(outs[0], output_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    logs_queue_fini(&q);

    struct logs_output_conf bad = {.name = "f", .kind = LOGS_OUT_FILE, .path = "/nonexistent/dir/x",
                                   .batch_size = 1024};
    struct logs_queue q2;
    logs_queue_init(&q2, 1 << 20, 4096, 1);
    struct logs_output *o;
    ok(logs_output_new(&loop, &q2, 0, &bad, &o, err, sizeof err) < 0, "unwritable file refused");
    ok(strstr(err, "/nonexistent/dir/x") != NULL, "error names the path: %s", err);
    logs_output_close(o, output_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    logs_queue_fini(&q2);
}

/* ---- a TCP sink: accepts, appends everything received to a buffer. An
 * optional HTTP mode answers each request with a status from a list. */
struct sink {
    uv_tcp_t server;
    struct sockaddr_in addr;
    int port;
    struct logs_buf got;
    int http_statuses[8], n_statuses, requests;
    bool http, fwd_acks;
    uv_tcp_t *conns[16];
    int n_conns;
};

struct sink_conn {
    uv_tcp_t tcp;
    struct sink *s;
    struct logs_buf req;
};

static void sink_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char slab[65536];
    *buf = uv_buf_init(slab, sizeof slab);
}

static void free_on_close(uv_handle_t *h)
{
    struct sink_conn *c = h->data;
    logs_buf_free(&c->req);
    free(c);
}

static void write_done(uv_write_t *w, int status)
{
    free(w);
}

static void sink_write(uv_tcp_t *t, const char *text)
{
    uv_write_t *w = malloc(sizeof *w + strlen(text));
    memcpy(w + 1, text, strlen(text));
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)strlen(text));
    uv_write(w, (uv_stream_t *)t, &b, 1, write_done);
}

static void sink_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct sink_conn *c = st->data;
    struct sink *s = c->s;
    if (n < 0) {
        for (int i = 0; i < s->n_conns; i++)
            if (s->conns[i] == &c->tcp)
                s->conns[i] = NULL;
        uv_close((uv_handle_t *)st, free_on_close);
        return;
    }
    if (!s->http) {
        logs_buf_append(&s->got, buf->base, (size_t)n);
        if (s->fwd_acks) {
            /* Answer every complete frame at once (a stand-in receiver). */
            logs_buf_append(&c->req, buf->base, (size_t)n);
        }
        return;
    }
    logs_buf_append(&c->req, buf->base, (size_t)n);
    char *end = memmem(c->req.p, c->req.n, "\r\n\r\n", 4);
    if (!end)
        return;
    char *cl = strcasestr(c->req.p, "Content-Length: ");
    size_t len = cl ? strtoul(cl + 16, NULL, 10) : 0;
    size_t head = (size_t)(end - c->req.p) + 4;
    if (c->req.n < head + len)
        return;
    int status = s->requests < s->n_statuses ? s->http_statuses[s->requests] : 200;
    s->requests++;
    if (status == 200)
        logs_buf_append(&s->got, c->req.p, head + len);
    char resp[128];
    snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
    sink_write(&c->tcp, resp);
    c->req.n = 0;
}

static void sink_on_conn(uv_stream_t *server, int status)
{
    struct sink *s = server->data;
    struct sink_conn *c = calloc(1, sizeof *c);
    c->s = s;
    uv_tcp_init(&loop, &c->tcp);
    c->tcp.data = c;
    uv_accept(server, (uv_stream_t *)&c->tcp);
    if (s->n_conns < 16)
        s->conns[s->n_conns++] = &c->tcp;
    uv_read_start((uv_stream_t *)&c->tcp, sink_alloc, sink_read);
}

static void sink_listen(struct sink *s, int port)
{
    uv_tcp_init(&loop, &s->server);
    s->server.data = s;
    uv_ip4_addr("127.0.0.1", port, &s->addr);
    if (uv_tcp_bind(&s->server, (struct sockaddr *)&s->addr, 0) || uv_listen((uv_stream_t *)&s->server, 16, sink_on_conn))
        diag("sink cannot listen on %d", port);
    struct sockaddr_in a;
    int len = sizeof a;
    uv_tcp_getsockname(&s->server, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
}

static void sink_close(struct sink *s)
{
    uv_close((uv_handle_t *)&s->server, NULL);
    for (int i = 0; i < s->n_conns; i++)
        if (s->conns[i] && !uv_is_closing((uv_handle_t *)s->conns[i]))
            uv_close((uv_handle_t *)s->conns[i], free_on_close);
    s->n_conns = 0;
}

/* A port that refuses connections: bound, never listening. */
static int dead_port(uv_tcp_t *h)
{
    uv_tcp_init(&loop, h);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(h, (struct sockaddr *)&a, 0);
    int len = sizeof a;
    uv_tcp_getsockname(h, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

static size_t count_substr(const struct logs_buf *b, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    const char *p = b->p, *e = b->p + b->n;
    while (p && (p = memmem(p, (size_t)(e - p), needle, k))) {
        n++;
        p += k;
    }
    return n;
}

struct sink_count {
    struct sink *s;
    const char *needle;
    size_t n;
};
static bool sink_has(void *p)
{
    struct sink_count *c = p;
    return count_substr(&c->s->got, c->needle) >= c->n;
}

static bool full_seen;
static void on_full(void *arg, struct logs_queue *q)
{
    full_seen = true;
}

static void test_tcp_down_then_up(void)
{
    /* The sink's port is reserved while down, so the retry hits the same
     * port later. */
    uv_tcp_t hold;
    int port = dead_port(&hold);
    struct logs_queue q;
    logs_queue_init(&q, 64 * 1024, 4096, 1);
    struct logs_output *outs[1];
    q.on_sealed = kick_outputs;
    q.on_full = on_full;
    q.arg = outs;
    struct logs_output_conf c = {.name = "t", .kind = LOGS_OUT_TCP, .host = "127.0.0.1", .port = (uint16_t)port,
                                 .batch_size = 16384, .timeout_ms = 1000, .retry_min_ms = 20, .retry_max_ms = 200};
    char err[256];
    logs_output_new(&loop, &q, 0, &c, &outs[0], err, sizeof err);
    struct src s = {0};
    push_lines(&q, &s, 1, 2000);
    logs_queue_seal(&q);
    uint64_t until = uv_now(&loop) + 600;
    while (uv_now(&loop) < until)
        uv_run(&loop, UV_RUN_ONCE), uv_update_time(&loop);
    ok(outs[0]->retries >= 2, "sink down: retried %llu times", (unsigned long long)outs[0]->retries);
    is_int(s.acked, 0, "nothing acknowledged while down");
    ok(full_seen, "queue reported full (sources pause)");
    ok(q.mem_bytes <= 64 * 1024 + 140 * 2000, "memory bounded by the limit plus what was pushed");
    uv_close((uv_handle_t *)&hold, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    struct sink sk = {0};
    sink_listen(&sk, port);
    struct acked_at a = {&s, 2000};
    ok(wait_for(src_acked, &a, 5000), "sink up: everything acknowledged");
    struct sink_count sc = {&sk, "\"message\":\"line ", 2000};
    wait_for(sink_has, &sc, 3000);
    is_int(count_substr(&sk.got, "\"message\":\"line "), 2000, "2000 lines arrived");
    /* Exactly once: every number appears once. */
    bool dup = false;
    for (int i = 1; i <= 2000 && !dup; i += 97) {
        char needle[64];
        snprintf(needle, sizeof needle, "\"line %d\"", i);
        dup = count_substr(&sk.got, needle) != 1;
    }
    ok(!dup, "no duplicate");
    /* The peer goes away; the next batch reconnects. */
    sink_close(&sk);
    uv_run(&loop, UV_RUN_NOWAIT);
    sink_listen(&sk, port);
    push_lines(&q, &s, 2001, 2100);
    logs_queue_seal(&q);
    a.n = 2100;
    ok(wait_for(src_acked, &a, 5000), "reconnected after the peer closed");
    logs_output_close(outs[0], output_closed);
    sink_close(&sk);
    uv_run(&loop, UV_RUN_DEFAULT);
    logs_buf_free(&sk.got);
    logs_queue_fini(&q);
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strncmp(e->d_name, "spool-", 6) == 0;
    if (d)
        closedir(d);
    return n;
}

/* Memory full while the sink is down: chunks move to the spool, memory
 * stays bounded, the sources need not pause; then everything arrives in
 * order and the segments are deleted. With the spool full too, the drop
 * policy applies. */
static void test_spool(void)
{
    char sdir[256];
    snprintf(sdir, sizeof sdir, "%s/spool", tmpdir);
    uv_tcp_t hold;
    int port = dead_port(&hold);
    struct logs_spool sp;
    is_int(logs_spool_open(&sp, sdir, 1 << 20, 32768), 0, "spool opens");
    struct logs_queue q;
    logs_queue_init(&q, 32768, 4096, 1);
    logs_queue_set_spool(&q, &sp, LOGS_DROP_NEWEST);
    struct logs_output *outs[1];
    q.on_sealed = kick_outputs;
    q.arg = outs;
    full_seen = false;
    q.on_full = on_full;
    struct logs_output_conf c = {.name = "t", .kind = LOGS_OUT_TCP, .host = "127.0.0.1", .port = (uint16_t)port,
                                 .batch_size = 8192, .timeout_ms = 1000, .retry_min_ms = 20, .retry_max_ms = 100};
    char err[256];
    logs_output_new(&loop, &q, 0, &c, &outs[0], err, sizeof err);
    struct src s = {0};
    size_t peak = 0;
    for (uint64_t i = 1; i <= 5000; i += 100) {
        push_lines(&q, &s, i, i + 99);
        if (q.mem_bytes > peak)
            peak = q.mem_bytes;
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    logs_queue_seal(&q);
    ok(sp.bytes > 200000, "records moved to the spool (%llu bytes)", (unsigned long long)sp.bytes);
    ok(peak <= 32768 + 2 * 8192, "memory stayed bounded (peak %zu)", peak);
    ok(!full_seen, "sources never had to pause");
    ok(count_segments(sdir) > 3, "several segment files (%d)", count_segments(sdir));
    uv_close((uv_handle_t *)&hold, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    struct sink sk = {0};
    sink_listen(&sk, port);
    struct acked_at a = {&s, 5000};
    ok(wait_for(src_acked, &a, 10000), "sink up: everything acknowledged");
    ok(!s.out_of_order, "in order");
    struct sink_count sc = {&sk, "\"message\":\"line ", 5000};
    wait_for(sink_has, &sc, 3000);
    is_int(count_substr(&sk.got, "\"message\":\"line "), 5000, "5000 lines arrived");
    bool order = true;
    const char *p = sk.got.p;
    for (int i = 1; i <= 5000 && order; i++) {
        char needle[48];
        snprintf(needle, sizeof needle, "\"line %d\"", i);
        const char *f = memmem(p, (size_t)(sk.got.p + sk.got.n - p), needle, strlen(needle));
        order = f != NULL;
        p = f ? f : p;
    }
    ok(order, "each once, in order, through the spool");
    is_int(sp.bytes, 0, "spool empty once delivered");
    ok(count_segments(sdir) <= 1, "delivered segments deleted (%d left: the open one)", count_segments(sdir));
    logs_output_close(outs[0], output_closed);
    sink_close(&sk);
    uv_run(&loop, UV_RUN_DEFAULT);
    logs_buf_free(&sk.got);
    logs_queue_fini(&q);
    logs_spool_close(&sp);
    is_int(count_segments(sdir), 0, "no segment left after close");

    /* Spool full: the queue is full; drop_newest refuses, drop_oldest
     * frees the oldest chunk nobody sends. */
    port = dead_port(&hold);
    logs_spool_open(&sp, sdir, 16384, 8192);
    logs_queue_init(&q, 16384, 4096, 1);
    logs_queue_set_spool(&q, &sp, LOGS_DROP_NEWEST);
    q.on_sealed = kick_outputs;
    q.arg = outs;
    full_seen = false;
    q.on_full = on_full;
    c.port = (uint16_t)port;
    logs_output_new(&loop, &q, 0, &c, &outs[0], err, sizeof err);
    struct src s2 = {0};
    push_lines(&q, &s2, 1, 2000);
    ok(full_seen && q.full, "memory and spool full: the queue is full");
    ok(!logs_queue_make_room(&q), "drop_newest: no room made");
    is_int(q.dropped_records, 0, "(the caller counts that drop)");
    q.drop_policy = LOGS_DROP_OLDEST;
    ok(logs_queue_make_room(&q), "drop_oldest: room made");
    ok(q.dropped_records > 0, "records of the dropped chunk counted (%llu)", (unsigned long long)q.dropped_records);
    logs_output_close(outs[0], output_closed);
    uv_close((uv_handle_t *)&hold, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    logs_queue_fini(&q);
    logs_spool_close(&sp);
    is_int(s2.refs, 0, "dropped and freed chunks released their sources");
}

static void test_http_and_syslog(void)
{
    struct sink sk = {.http = true, .http_statuses = {500, 503}, .n_statuses = 2};
    sink_listen(&sk, 0);
    struct logs_queue q;
    logs_queue_init(&q, 1 << 20, 4096, 1);
    struct logs_output *outs[1];
    q.on_sealed = kick_outputs;
    q.arg = outs;
    struct logs_output_conf c = {.name = "h", .kind = LOGS_OUT_HTTP, .host = "127.0.0.1", .port = (uint16_t)sk.port,
                                 .http_path = "/logs/_bulk", .http_format = LOGS_HTTP_ES_BULK, .batch_size = 1 << 20,
                                 .timeout_ms = 1000, .retry_min_ms = 10, .retry_max_ms = 50};
    char err[256];
    logs_output_new(&loop, &q, 0, &c, &outs[0], err, sizeof err);
    struct src s = {0};
    push_lines(&q, &s, 1, 100);
    logs_queue_seal(&q);
    struct acked_at a = {&s, 100};
    ok(wait_for(src_acked, &a, 5000), "http: acknowledged after 500 and 503");
    is_int(outs[0]->retries, 2, "two retries");
    is_int(sk.requests, 3, "three requests");
    ok(strstr(sk.got.p, "POST /logs/_bulk HTTP/1.1\r\n") != NULL, "POST to the path");
    is_int(count_substr(&sk.got, "{\"index\":{}}\n{\"time\":"), 100, "Elasticsearch _bulk: action line before each");
    logs_output_close(outs[0], output_closed);
    sink_close(&sk);
    uv_run(&loop, UV_RUN_DEFAULT);
    logs_buf_free(&sk.got);
    logs_queue_fini(&q);

    uv_buf_t b = uv_buf_init("{\"time\":\"2026-01-02T03:04:05.123456789Z\",\"stream\":\"stderr\",\"message\":\"x\"}\n"
                             "{\"message\":\"no time\"}\n", 99);
    b.len = strlen(b.base);
    struct logs_buf out = {0};
    logs_format_syslog(&out, &b, 1, "outrider", "node-1");
    logs_buf_append(&out, "", 1);
    const char *want1 = "<11>1 2026-01-02T03:04:05.123456Z node-1 outrider - - - "
                        "{\"time\":\"2026-01-02T03:04:05.123456789Z\",\"stream\":\"stderr\",\"message\":\"x\"}";
    char expect[512];
    snprintf(expect, sizeof expect, "%zu %s%zu <14>1 - node-1 outrider - - - {\"message\":\"no time\"}", strlen(want1),
             want1, strlen("<14>1 - node-1 outrider - - - {\"message\":\"no time\"}"));
    is_str(out.p, expect, "syslog: RFC 5424, octet counting, stderr as err, 6 fraction digits");
    out.n = 0;
    logs_format_loki(&out, &b, 1, "{\"job\":\"outrider\"}");
    ok(logs_json_is_object(out.p, out.p + out.n), "loki body is JSON");
    ok(memmem(out.p, out.n, "[\"1767323045123456789\",\"{\\\"time\\\"", 33) != NULL, "loki: ns timestamp and line");
    logs_buf_free(&out);
}

/* forward: sender queue -> forward output -> receiver (logs_forward_in)
 * -> receiver queue -> file output. The sender's lines are acknowledged
 * only once the receiver's file has them. */
static void fwd_closed(struct logs_fwd_server *s)
{
}

/* What the pipeline's flush timer does: seal the newest chunk. */
static void flush_on_tick(uv_timer_t *h)
{
    logs_queue_seal(h->data);
}

static void test_forward(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/fwd.json", tmpdir);
    struct logs_queue rq;
    logs_queue_init(&rq, 1 << 20, 4096, 1);
    struct logs_output *routs[1] = {NULL};
    rq.arg = routs;
    struct logs_output_conf rc = {.name = "f", .kind = LOGS_OUT_FILE, .path = path, .batch_size = 1 << 20,
                                  .retry_min_ms = 10, .retry_max_ms = 50};
    char err[256];
    /* The receiver's output starts later: until then the sender must not
     * see acknowledgements. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t alen = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &alen);
    struct logs_fwd_server srv;
    is_int(logs_fwd_server_open(&srv, &loop, fd, &rq, 1 << 20), 0, "forward input listens");

    struct logs_queue sq;
    logs_queue_init(&sq, 1 << 20, 4096, 1);
    struct logs_output *souts[1];
    sq.on_sealed = kick_outputs;
    sq.arg = souts;
    struct logs_output_conf sc = {.name = "fw", .kind = LOGS_OUT_FORWARD, .host = "127.0.0.1",
                                  .port = ntohs(a.sin_port), .batch_size = 1 << 20, .timeout_ms = 5000,
                                  .retry_min_ms = 10, .retry_max_ms = 50};
    logs_output_new(&loop, &sq, 0, &sc, &souts[0], err, sizeof err);
    struct src s = {0};
    push_lines(&sq, &s, 1, 500);
    logs_queue_seal(&sq);
    uint64_t until = uv_now(&loop) + 300;
    while (uv_now(&loop) < until)
        uv_run(&loop, UV_RUN_ONCE), uv_update_time(&loop);
    /* One batch at a time: the first one waits for its acknowledgement. */
    ok(srv.lines > 0 && srv.lines < 500, "receiver got the first batch (%llu lines) and no more",
       (unsigned long long)srv.lines);
    is_int(s.acked, 0, "sender not acknowledged before the receiver delivered");
    rq.on_sealed = kick_outputs;
    logs_output_new(&loop, &rq, 0, &rc, &routs[0], err, sizeof err);
    uv_timer_t flush;
    uv_timer_init(&loop, &flush);
    flush.data = &rq;
    uv_timer_start(&flush, flush_on_tick, 10, 10);
    struct acked_at w = {&s, 500};
    ok(wait_for(src_acked, &w, 5000), "sender acknowledged after the receiver's file has them");
    is_int(souts[0]->retries, 0, "no retry needed");
    bool order;
    is_int(count_lines(path, 500, &order), 500, "receiver's file holds 500 lines");
    ok(order, "in order");

    /* A bad frame closes that connection and is counted. */
    struct logs_fwd_parse p = {0};
    int frames = 0;
    is_int(logs_fwd_parse_feed(&p, "OTRF 1 5\nab\n", 12, 100, NULL, &frames) == 0 && p.in_payload, 1,
           "a frame split across reads waits for the rest");
    logs_buf_free(&p.in);
    struct logs_fwd_parse p2 = {0};
    ok(logs_fwd_parse_feed(&p2, "HELLO\n", 6, 100, NULL, NULL) < 0, "bad header refused");
    logs_buf_free(&p2.in);
    struct logs_fwd_parse p3 = {0};
    ok(logs_fwd_parse_feed(&p3, "OTRF 1 1000\n", 12, 100, NULL, NULL) < 0, "frame above max_frame refused");
    logs_buf_free(&p3.in);

    logs_output_close(souts[0], output_closed);
    logs_output_close(routs[0], output_closed);
    logs_fwd_server_close(&srv, fwd_closed);
    uv_close((uv_handle_t *)&flush, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    logs_queue_fini(&sq);
    logs_queue_fini(&rq);
}

static void uv_update_time_ticker(uv_timer_t *h)
{
}

int main(void)
{
    (void)tap_is_str;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/logs_output.%d", (int)getpid());
    mkdir(tmpdir, 0700);
    uv_loop_init(&loop);
    /* Wakes the loop often so the tests' waits end on time. */
    uv_timer_t ticker;
    uv_timer_init(&loop, &ticker);
    uv_timer_start(&ticker, (uv_timer_cb)uv_update_time_ticker, 5, 5);
    uv_unref((uv_handle_t *)&ticker);
    test_file_output();
    test_tcp_down_then_up();
    test_spool();
    test_http_and_syslog();
    test_forward();
    uv_close((uv_handle_t *)&ticker, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "loop closed: no handle leaked");
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd))
        diag("cleanup failed");
    return done_testing();
}

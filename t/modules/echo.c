/*
 * echo: a test-only module that proves the module ABI end to end. It serves
 * a line protocol on a TCP listener: each line read is published on the bus
 * stream "echo.lines", passed through the Lua hook transform(line) when a
 * script is configured (falling back to the line itself), counted in the
 * metrics registry, and written back. It also subscribes to its own stream
 * and counts what the bus delivered, so a test sees publish, subscribe,
 * metrics and Lua work through the real host table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>

#include "outrider/module.h"

struct echo_conf {
    struct otr_conf_address listen;
    char *greeting;
    char *script;
    int64_t max_line;
    uint64_t idle_timeout;
    int mode;
    bool fail_start;
};

static const struct otr_conf_field echo_fields[] = {
    OTR_CONF_FIELD("listen", OTR_CONF_ADDRESS, struct echo_conf, listen, .def = "\"127.0.0.1:0\"",
                   .help = "Where the echo listener binds."),
    OTR_CONF_FIELD("greeting", OTR_CONF_STRING, struct echo_conf, greeting, .def = "\"\"", .max = 64,
                   .help = "Written to each new connection."),
    OTR_CONF_FIELD("script", OTR_CONF_STRING, struct echo_conf, script, .def = "\"\"",
                   .help = "Lua script defining transform(line)."),
    OTR_CONF_FIELD("max_line", OTR_CONF_INT, struct echo_conf, max_line, .def = "1024", .min = 16, .max = 65536,
                   .help = "Longest line accepted."),
    OTR_CONF_FIELD("idle_timeout", OTR_CONF_DURATION, struct echo_conf, idle_timeout, .def = "\"30s\"",
                   .help = "Idle connections are closed after this long."),
    OTR_CONF_FIELD("mode", OTR_CONF_ENUM, struct echo_conf, mode, .choices = "plain|upper", .def = "\"plain\"",
                   .def_node = "\"upper\"", .help = "Echo as is, or upper-cased (node role default)."),
    OTR_CONF_FIELD("fail_start", OTR_CONF_BOOL, struct echo_conf, fail_start, .def = "false",
                   .help = "Make start() fail (for tests of start-up failures)."),
    OTR_CONF_TABLE_END,
};

struct echo_state {
    otr_ctx *ctx;
    const struct echo_conf *conf;
    otr_listener *listener;
    otr_metric *lines, *bus_records;
    otr_hook *hook;
    struct echo_worker *workers;
};

struct echo_worker {
    struct echo_state *st;
    otr_worker *w;
    uv_tcp_t server;
    bool serving;
    unsigned open_conns;
    bool draining;
    struct echo_conn *conns;
    otr_series *lines_series, *bus_series;
};

struct echo_conn {
    uv_tcp_t tcp;
    struct echo_worker *ew;
    struct echo_conn *prev, *next;
    char *buf;
    size_t len;
};

struct echo_write {
    uv_write_t req;
    char *data;
};

static void echo_maybe_drained(struct echo_worker *ew)
{
    if (ew->draining && ew->open_conns == 0 && !ew->serving)
        ew->st->ctx->host->drained(ew->st->ctx, ew->w);
}

static void conn_on_close(uv_handle_t *h)
{
    struct echo_conn *c = h->data;
    struct echo_worker *ew = c->ew;
    if (c->prev)
        c->prev->next = c->next;
    else
        ew->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->buf);
    free(c);
    ew->open_conns--;
    echo_maybe_drained(ew);
}

static void write_on_done(uv_write_t *req, int status)
{
    struct echo_write *wr = (struct echo_write *)req;
    free(wr->data);
    free(wr);
}

static void conn_send(struct echo_conn *c, const char *p, size_t n)
{
    struct echo_write *wr = malloc(sizeof *wr);
    wr->data = malloc(n + 1);
    memcpy(wr->data, p, n);
    wr->data[n] = '\n';
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)n + 1);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, write_on_done) != 0) {
        free(wr->data);
        free(wr);
    }
}

struct transform_call {
    const char *line;
    size_t len;
    char out[1024];
    size_t out_len;
};

static int transform_push(lua_State *L, void *arg)
{
    struct transform_call *t = arg;
    lua_pushlstring(L, t->line, t->len);
    return 1;
}

static int transform_pull(lua_State *L, int nres, void *arg)
{
    struct transform_call *t = arg;
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (!s)
        return OTR_EFALLBACK;
    t->out_len = n < sizeof t->out ? n : sizeof t->out;
    memcpy(t->out, s, t->out_len);
    return 0;
}

/* "WHO" asks who the agent thinks the caller is (pod_by_addr). */
static void answer_who(struct echo_conn *c)
{
    const struct otr_host *host = c->ew->st->ctx->host;
    struct sockaddr_storage peer;
    int len = sizeof peer;
    char out[512] = "unknown";
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) == 0) {
        const struct otr_pod *pod = host->pod_by_addr(c->ew->st->ctx, (struct sockaddr *)&peer);
        if (pod) {
            const char *app = "";
            for (size_t i = 0; i < pod->n_labels; i++)
                if (strcmp(pod->labels[i].key, "app") == 0)
                    app = pod->labels[i].value;
            snprintf(out, sizeof out, "%s/%s app=%s", pod->namespace_, pod->name, app);
            host->pod_unref(pod);
        }
    }
    conn_send(c, out, strlen(out));
}

static void handle_line(struct echo_conn *c, const char *line, size_t len)
{
    struct echo_worker *ew = c->ew;
    const struct otr_host *host = ew->st->ctx->host;
    if (len == 3 && memcmp(line, "WHO", 3) == 0) {
        answer_who(c);
        return;
    }
    if (len == 5 && memcmp(line, "STALL", 5) == 0) {
        /* Blocks this worker's loop on purpose: readiness must notice. */
        usleep(6500 * 1000);
        conn_send(c, "stalled", 7);
        return;
    }
    struct transform_call t = {.line = line, .len = len};
    if (ew->st->hook && host->hook_run(ew->st->hook, ew->w, transform_push, transform_pull, 1, &t) == 0) {
        line = t.out;
        len = t.out_len;
    }
    char upper[1024];
    if (ew->st->conf->mode == 1) {
        for (size_t i = 0; i < len && i < sizeof upper; i++)
            upper[i] = (line[i] >= 'a' && line[i] <= 'z') ? (char)(line[i] - 32) : line[i];
        line = upper;
        len = len < sizeof upper ? len : sizeof upper;
    }
    struct otr_field f = {.key = "line", .type = OTR_VAL_STR, .v.s = {line, len}};
    struct otr_record rec = {.time_ns = 0, .fields = &f, .n_fields = 1};
    host->bus_publish(ew->st->ctx, ew->w, "echo.lines", &rec);
    if (ew->lines_series)
        host->counter_add(ew->lines_series, 1);
    conn_send(c, line, len);
}

static void conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct echo_conn *c = h->data;
    size_t cap = (size_t)c->ew->st->conf->max_line + 1;
    buf->base = c->buf + c->len;
    buf->len = cap - c->len;
}

static void conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct echo_conn *c = s->data;
    if (n < 0) {
        uv_close((uv_handle_t *)s, conn_on_close);
        return;
    }
    c->len += (size_t)n;
    char *nl;
    while ((nl = memchr(c->buf, '\n', c->len))) {
        handle_line(c, c->buf, (size_t)(nl - c->buf));
        size_t used = (size_t)(nl - c->buf) + 1;
        memmove(c->buf, nl + 1, c->len - used);
        c->len -= used;
    }
    if (c->len > (size_t)c->ew->st->conf->max_line) {
        conn_send(c, "ERR line too long", 17);
        uv_read_stop(s);
        uv_close((uv_handle_t *)s, conn_on_close);
    }
}

static void server_on_connection(uv_stream_t *server, int status)
{
    struct echo_worker *ew = server->data;
    if (status < 0)
        return;
    struct echo_conn *c = calloc(1, sizeof *c);
    c->ew = ew;
    c->buf = malloc((size_t)ew->st->conf->max_line + 2);
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    c->next = ew->conns;
    if (ew->conns)
        ew->conns->prev = c;
    ew->conns = c;
    ew->open_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, conn_on_close);
        return;
    }
    if (ew->st->conf->greeting[0])
        conn_send(c, ew->st->conf->greeting, strlen(ew->st->conf->greeting));
    uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
}

static void echo_on_bus(void *arg, otr_worker *w, const char *stream, const struct otr_record *rec)
{
    struct echo_state *st = arg;
    struct echo_worker *ew = &st->workers[st->ctx->host->worker_index(w)];
    if (ew->bus_series)
        st->ctx->host->counter_add(ew->bus_series, 1);
}

static int echo_check(otr_ctx *ctx, const void *conf)
{
    const struct echo_conf *c = conf;
    if (c->greeting[0] && strchr(c->greeting, '\n')) {
        ctx->host->conf_error(ctx, "greeting", "must not contain a newline");
        return OTR_ECONFIG;
    }
    return 0;
}

static int echo_init(otr_ctx *ctx, const void *conf)
{
    const struct otr_host *host = ctx->host;
    struct echo_state *st = calloc(1, sizeof *st);
    st->ctx = ctx;
    st->conf = conf;
    st->workers = calloc(host->n_workers(ctx), sizeof *st->workers);
    host->set_data(ctx, st);
    int rc = host->listener_open(ctx, "listen", &st->conf->listen, SOCK_STREAM, &st->listener);
    if (rc)
        return rc;
    static const char *const labels[] = {"worker", NULL};
    static const struct otr_metric_desc lines = {"outrider_echo_lines_total", "Lines echoed.", OTR_METRIC_COUNTER,
                                                 labels, NULL, 0};
    static const struct otr_metric_desc bus = {"outrider_echo_bus_records_total",
                                               "Records the echo module received from the bus.",
                                               OTR_METRIC_COUNTER, labels, NULL, 0};
    st->lines = host->metric_new(ctx, &lines);
    st->bus_records = host->metric_new(ctx, &bus);
    if (!st->lines || !st->bus_records)
        return UV_EINVAL;
    if (st->conf->script[0] && (rc = host->hook_declare(ctx, "script", st->conf->script, "transform", &st->hook)))
        return rc;
    return host->bus_subscribe(ctx, "echo.lines", echo_on_bus, st, NULL);
}

static int echo_start(otr_ctx *ctx, otr_worker *w)
{
    const struct otr_host *host = ctx->host;
    struct echo_state *st = host->data(ctx);
    struct echo_worker *ew = &st->workers[host->worker_index(w)];
    ew->st = st;
    ew->w = w;
    char idx[16];
    snprintf(idx, sizeof idx, "%u", host->worker_index(w));
    ew->lines_series = host->series(st->lines, w, (const char *[]){idx, NULL});
    ew->bus_series = host->series(st->bus_records, w, (const char *[]){idx, NULL});
    if (st->conf->fail_start)
        return UV_EADDRNOTAVAIL;
    uv_os_sock_t fd;
    int rc = host->listener_socket(st->listener, w, &fd);
    if (rc)
        return rc;
    uv_tcp_init(host->loop(w), &ew->server);
    ew->server.data = ew;
    ew->serving = true;
    if ((rc = uv_tcp_open(&ew->server, fd)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&ew->server, 128, server_on_connection)) != 0)
        return rc;
    return 0;
}

static void server_on_close(uv_handle_t *h)
{
    struct echo_worker *ew = h->data;
    ew->serving = false;
    echo_maybe_drained(ew);
}

static void echo_drain(otr_ctx *ctx, otr_worker *w, uint64_t deadline_ms)
{
    struct echo_state *st = ctx->host->data(ctx);
    struct echo_worker *ew = &st->workers[ctx->host->worker_index(w)];
    ew->draining = true;
    ew->st = st;
    ew->w = w;
    /* A line protocol has no request boundary to wait for: close at once. */
    for (struct echo_conn *c = ew->conns; c; c = c->next)
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, conn_on_close);
    if (ew->serving)
        uv_close((uv_handle_t *)&ew->server, server_on_close);
    else
        echo_maybe_drained(ew);
}

static void echo_fini(otr_ctx *ctx)
{
    struct echo_state *st = ctx->host->data(ctx);
    if (!st)
        return;
    free(st->workers);
    free(st);
}

static void echo_status(otr_ctx *ctx, void (*emit)(void *, const char *, size_t), void *arg)
{
    struct echo_state *st = ctx->host->data(ctx);
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"listen\":\"%s\"}", ctx->host->listener_address(st->listener));
    emit(arg, buf, (size_t)n);
}

OTR_MODULE_EXPORT const struct otr_module otr_module_echo = {
    .magic = OTR_MODULE_MAGIC,
    .abi_major = OTR_ABI_MAJOR,
    .abi_minor = OTR_ABI_MINOR,
    .size = sizeof(struct otr_module),
    .build_sig = OTR_BUILD_SIG,
    .name = "echo",
    .version = "1.0.0",
    .summary = "Test module: a line echo server exercising the whole host table.",
    .roles = OTR_ROLE_ANY,
    .conf = echo_fields,
    .conf_size = sizeof(struct echo_conf),
    .check = echo_check,
    .init = echo_init,
    .start = echo_start,
    .drain = echo_drain,
    .fini = echo_fini,
    .status = echo_status,
};

/*
 * The host table: everything a module may ask of the agent. Each function
 * finds its way back from the module's otr_ctx to its generation and agent.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "agent.h"
#include "log.h"
#include "util.h"

static struct otr_modctx *mod(otr_ctx *ctx)
{
    return (struct otr_modctx *)ctx;
}

static void host_log(otr_ctx *ctx, enum otr_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    otr_logv(level, ctx->name, fmt, ap);
    va_end(ap);
}

static bool host_log_enabled(otr_ctx *ctx, enum otr_log_level level)
{
    return otr_log_enabled(level);
}

static void host_conf_error(otr_ctx *ctx, const char *path, const char *fmt, ...)
{
    struct otr_modctx *mc = mod(ctx);
    char full[512];
    snprintf(full, sizeof full, "%s%s%s", ctx->name, path && *path && path[0] != '[' ? "." : "", path ? path : "");
    va_list ap;
    va_start(ap, fmt);
    if (mc->diag) {
        otr_diag_vat(mc->diag, full, fmt, ap);
    } else {
        char msg[1024];
        vsnprintf(msg, sizeof msg, fmt, ap);
        otr_log(OTR_LOG_ERROR, ctx->name, "%s: %s", full, msg);
    }
    va_end(ap);
}

static const char *host_scripts_dir(otr_ctx *ctx)
{
    return mod(ctx)->gen->scripts_dir;
}

static const char *host_state_dir(otr_ctx *ctx)
{
    struct otr_modctx *mc = mod(ctx);
    if (!mc->gen->state_dir)
        return NULL;
    if (!mc->state_dir) {
        mc->state_dir = otr_xasprintf("%s/%s", mc->gen->state_dir, ctx->name);
        if (!mc->gen->dry) {
            mkdir(mc->gen->state_dir, 0750);
            if (mkdir(mc->state_dir, 0750) != 0 && errno != EEXIST)
                otr_log(OTR_LOG_ERROR, ctx->name, "cannot create state dir %s: %s", mc->state_dir, strerror(errno));
        }
    }
    return mc->state_dir;
}

static enum otr_role host_role(otr_ctx *ctx)
{
    return mod(ctx)->gen->agent->role;
}

static const char *host_node_name(otr_ctx *ctx)
{
    return mod(ctx)->gen->core.identity.node_name;
}

static const struct otr_pod *host_self_pod(otr_ctx *ctx)
{
    return mod(ctx)->gen->self_pod;
}

static bool is_self_address(struct otr_gen *g, const struct sockaddr *sa)
{
    char buf[64] = "";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if ((ntohl(in->sin_addr.s_addr) >> 24) == 127)
            return true;
        inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    } else {
        return sa->sa_family == AF_UNIX;
    }
    return g->self_pod && g->self_pod->ip[0] && strcmp(buf, g->self_pod->ip) == 0;
}

static const struct otr_pod *host_pod_by_addr(otr_ctx *ctx, const struct sockaddr *addr)
{
    struct otr_gen *g = mod(ctx)->gen;
    if (g->agent->role == OTR_ROLE_SIDECAR && g->self_pod && is_self_address(g, addr)) {
        otr_pod_ref(g->self_pod);
        return g->self_pod;
    }
    return otr_inventory_lookup(g->agent->inventory, addr);
}

static size_t host_pods_foreach(otr_ctx *ctx, void (*fn)(void *, const struct otr_pod *), void *arg)
{
    return otr_inventory_foreach(mod(ctx)->gen->agent->inventory, fn, arg);
}

static uint64_t host_inventory_version(otr_ctx *ctx)
{
    return otr_inventory_version(mod(ctx)->gen->agent->inventory);
}

static uv_loop_t *host_loop(otr_worker *w)
{
    return &w->loop;
}

static unsigned host_worker_index(otr_worker *w)
{
    return w->index;
}

static unsigned host_n_workers(otr_ctx *ctx)
{
    return mod(ctx)->gen->agent->n_workers;
}

static void host_set_data(otr_ctx *ctx, void *data)
{
    mod(ctx)->data = data;
}

static void *host_data(otr_ctx *ctx)
{
    return mod(ctx)->data;
}

static void host_drained(otr_ctx *ctx, otr_worker *w)
{
    otr_modctx_drained(mod(ctx), w);
}

static int host_listener_open(otr_ctx *ctx, const char *name, const struct otr_conf_address *addr, int kind,
                              otr_listener **out)
{
    struct otr_modctx *mc = mod(ctx);
    char full[160], err[256];
    snprintf(full, sizeof full, "%s.%s", ctx->name, name);
    int rc = otr_listener_open(full, addr, kind, mc->gen->agent->n_workers, mc->gen->dry, out, err, sizeof err);
    if (rc)
        host_conf_error(ctx, name, "%s", err);
    else
        otr_gen_hold_listener(mc->gen, *out);
    return rc;
}

static int host_listener_socket(otr_listener *l, otr_worker *w, uv_os_sock_t *out)
{
    return otr_listener_socket(l, w->index, out);
}

static const char *host_listener_address(otr_listener *l)
{
    return l->bound;
}

static otr_metric *host_metric_new(otr_ctx *ctx, const struct otr_metric_desc *desc)
{
    char err[256];
    otr_metric *m = otr_registry_metric(mod(ctx)->gen->agent->registry, desc, err, sizeof err);
    if (!m)
        otr_log(OTR_LOG_ERROR, ctx->name, "metric %s: %s", desc->name, err);
    return m;
}

static otr_series *host_series(otr_metric *m, otr_worker *w, const char *const *label_values)
{
    return otr_registry_series(m, w ? w->index + 1 : 0, label_values);
}

static int host_metrics_render(otr_ctx *ctx, enum otr_metrics_format fmt,
                               void (*emit)(void *, const char *, size_t), void *arg)
{
    return otr_registry_render(mod(ctx)->gen->agent->registry, fmt, emit, arg);
}

static int host_bus_subscribe(otr_ctx *ctx, const char *stream, otr_bus_cb cb, void *arg, otr_sub **out)
{
    otr_sub *s = otr_bus_sub_add(&mod(ctx)->gen->subs, stream, cb, arg);
    if (out)
        *out = s;
    return 0;
}

static size_t host_bus_publish(otr_ctx *ctx, otr_worker *w, const char *stream, const struct otr_record *rec)
{
    return otr_bus_publish(w, stream, rec);
}

static bool host_bus_has_subscribers(otr_ctx *ctx, const char *stream)
{
    return otr_bus_has_subscribers(stream);
}

const struct otr_host otr_host_table = {
    .size = sizeof(struct otr_host),
    .log = host_log,
    .log_enabled = host_log_enabled,
    .conf_error = host_conf_error,
    .scripts_dir = host_scripts_dir,
    .state_dir = host_state_dir,
    .role = host_role,
    .node_name = host_node_name,
    .self_pod = host_self_pod,
    .pod_by_addr = host_pod_by_addr,
    .pod_unref = otr_pod_unref,
    .pods_foreach = host_pods_foreach,
    .inventory_version = host_inventory_version,
    .loop = host_loop,
    .worker_index = host_worker_index,
    .n_workers = host_n_workers,
    .set_data = host_set_data,
    .data = host_data,
    .drained = host_drained,
    .listener_open = host_listener_open,
    .listener_socket = host_listener_socket,
    .listener_address = host_listener_address,
    .metric_new = host_metric_new,
    .series = host_series,
    .counter_add = otr_series_counter_add,
    .gauge_set = otr_series_gauge_set,
    .gauge_add = otr_series_gauge_add,
    .observe = otr_series_observe,
    .metrics_render = host_metrics_render,
    .bus_subscribe = host_bus_subscribe,
    .bus_publish = host_bus_publish,
    .bus_has_subscribers = host_bus_has_subscribers,
    .hook_declare = otr_hook_declare,
    .hook_run = otr_hook_run,
};

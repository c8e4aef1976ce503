/*
 * Lua hooks declared by modules: one script function, loaded into every
 * worker's VM of the generation, called on the worker's own VM. Failures
 * are counted per module, hook and reason, and logged at most once per
 * second per worker and hook, so a broken script cannot flood the log.
 */
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "util.h"

static const char *const failure_names[] = {"ok", "error", "budget", "memory", "missing"};

static int ensure_vms(struct otr_gen *g, struct otr_modctx *mc, const char *conf_path)
{
    if (g->vms)
        return 0;
    struct otr_lua_limits limits = {.memory = g->core.lua.memory_limit,
                                    .instructions = (uint64_t)g->core.lua.instruction_limit};
    unsigned n = g->dry ? 1 : g->agent->n_workers;
    g->vms = otr_xcalloc(n, sizeof *g->vms);
    for (unsigned i = 0; i < n; i++) {
        int rc = otr_lua_vm_new(&limits, &g->vms[i]);
        if (rc) {
            mc->pub.host->conf_error(&mc->pub, conf_path, "cannot create a Lua VM: %s", uv_strerror(rc));
            return rc;
        }
        g->n_vms++;
    }
    return 0;
}

static char *script_path(struct otr_gen *g, const char *script)
{
    return script[0] == '/' ? otr_xstrdup(script) : otr_xasprintf("%s/%s", g->scripts_dir, script);
}

int otr_hook_declare(otr_ctx *ctx, const char *conf_path, const char *script, const char *function, otr_hook **out)
{
    struct otr_modctx *mc = (struct otr_modctx *)ctx;
    struct otr_gen *g = mc->gen;
    int rc = ensure_vms(g, mc, conf_path);
    if (rc)
        return rc;
    struct otr_hook *h = otr_xcalloc(1, sizeof *h);
    h->mc = mc;
    h->script = script_path(g, script);
    h->function = otr_xstrdup(function);
    h->script_ids = otr_xcalloc(g->n_vms, sizeof *h->script_ids);
    h->last_log_ms = otr_xcalloc(g->agent->n_workers + 1, sizeof *h->last_log_ms);
    h->next = g->hooks;
    g->hooks = h;
    for (unsigned i = 0; i < g->n_vms; i++) {
        char err[512];
        if (otr_lua_vm_load(g->vms[i], h->script, &h->script_ids[i], err, sizeof err) != 0) {
            ctx->host->conf_error(ctx, conf_path, "%s", err);
            return OTR_ECONFIG;
        }
        if (!otr_lua_vm_has_function(g->vms[i], h->script_ids[i], function)) {
            ctx->host->conf_error(ctx, conf_path, "%s does not define a function \"%s\"", script, function);
            return OTR_ECONFIG;
        }
    }
    *out = h;
    return 0;
}

static void count_failure(struct otr_hook *h, struct otr_worker *w, enum otr_lua_failure why, const char *err)
{
    struct otr_agent *a = h->mc->gen->agent;
    if (a->lua_errors) {
        const char *labels[] = {h->mc->pub.name, h->function, failure_names[why], NULL};
        otr_series *s = otr_registry_series(a->lua_errors, w->index + 1, labels);
        if (s)
            otr_series_counter_add(s, 1);
    }
    uint64_t now = otr_now_ms();
    if (now - h->last_log_ms[w->index] >= 1000) {
        h->last_log_ms[w->index] = now;
        otr_log(OTR_LOG_WARN, h->mc->pub.name, "Lua hook %s (%s) failed, using its fallback: %s", h->function,
                failure_names[why], err);
    }
}

int otr_hook_run(otr_hook *h, otr_worker *w, int (*push)(lua_State *, void *), int (*pull)(lua_State *, int, void *),
                 int nres, void *arg)
{
    struct otr_gen *g = h->mc->gen;
    unsigned i = w ? w->index : 0;
    if (i >= g->n_vms)
        return OTR_EFALLBACK;
    enum otr_lua_failure why = OTR_LUA_OK;
    char err[256];
    int rc = otr_lua_vm_call(g->vms[i], h->script_ids[i], h->function, push, pull, nres, arg, &why, err, sizeof err);
    if (rc == OTR_EFALLBACK && w)
        count_failure(h, w, why, err);
    return rc;
}

void otr_hooks_free(struct otr_gen *g)
{
    while (g->hooks) {
        struct otr_hook *h = g->hooks;
        g->hooks = h->next;
        free(h->script);
        free(h->function);
        free(h->script_ids);
        free(h->last_log_ms);
        free(h);
    }
}

#include "status.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "util.h"

static json_t *listeners_json(struct otr_gen *g)
{
    json_t *obj = json_object();
    for (size_t i = 0; g && i < g->n_listeners; i++)
        json_object_set_new(obj, g->listeners[i]->name, json_string(g->listeners[i]->bound));
    return obj;
}

/* A module's own status text, which it writes as a JSON object. */
static json_t *module_status(struct otr_modctx *mc)
{
    if (!mc->lm->desc.status)
        return NULL;
    struct otr_buf b = {0};
    mc->lm->desc.status(&mc->pub, otr_buf_emit, &b);
    size_t start = 0;
    while (start < b.len && (b.p[start] == ' ' || b.p[start] == '\n'))
        start++;
    if (start < b.len && b.p[start] != '{') {
        /* Members without their braces: wrap them. */
        struct otr_buf w = {0};
        otr_buf_append(&w, "{", 1);
        otr_buf_append(&w, b.p, b.len);
        otr_buf_append(&w, "}", 1);
        otr_buf_fini(&b);
        b = w;
    }
    json_error_t err;
    json_t *v = b.len ? json_loadb(b.p, b.len, 0, &err) : NULL;
    if (b.len && !v)
        otr_log(OTR_LOG_WARN, mc->pub.name, "status callback wrote invalid JSON: %s", err.text);
    otr_buf_fini(&b);
    return v;
}

static json_t *modules_json(struct otr_gen *g)
{
    json_t *arr = json_array();
    for (size_t i = 0; g && i < g->n_mods; i++) {
        struct otr_modctx *mc = &g->mods[i];
        bool ready = !mc->lm->desc.ready || mc->lm->desc.ready(&mc->pub);
        json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "name", mc->pub.name, "version", mc->lm->desc.version,
                              "file", mc->lm->path, "state", ready ? "ready" : "not ready");
        json_t *st = module_status(mc);
        if (st)
            json_object_set_new(m, "status", st);
        json_array_append_new(arr, m);
    }
    return arr;
}

static json_t *status_object(struct otr_agent *a)
{
    struct otr_gen *g = a->current;
    const struct otr_pod *self = g ? g->self_pod : NULL;
    json_t *identity = json_pack("{s:s, s:s, s:s, s:s}", "node", g ? g->core.identity.node_name : "", "namespace",
                                 self ? self->namespace_ : "", "pod", self ? self->name : "", "pod_ip",
                                 self ? self->ip : "");
    json_t *workers = json_array();
    for (unsigned i = 0; i < a->n_workers; i++)
        json_array_append_new(workers,
                              json_pack("{s:i, s:b, s:f}", "index", i, "alive", otr_worker_alive(&a->workers[i]),
                                        "loop_lag_seconds", (double)atomic_load(&a->workers[i].lag_us) / 1e6));
    return json_pack("{s:s, s:s, s:i, s:i, s:f, s:I, s:b, s:b, s:o, s:o, s:o, s:o, s:I}", "version", OTR_VERSION,
                     "role", otr_role_name(a->role), "abi_major", OTR_ABI_MAJOR, "abi_minor", OTR_ABI_MINOR,
                     "uptime_seconds", (double)(otr_now_ms() - a->start_ms) / 1000.0, "generation",
                     (json_int_t)(g ? g->id : 0), "ready", otr_agent_ready(a), "draining", a->shutting_down,
                     "identity", identity, "workers", workers, "modules", modules_json(g), "listeners",
                     listeners_json(g), "inventory_pods", (json_int_t)otr_inventory_size(a->inventory));
}

void otr_status_json(struct otr_agent *a, struct otr_buf *out)
{
    json_t *st = status_object(a);
    char *text = json_dumps(st, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    otr_buf_append(out, text, strlen(text));
    otr_buf_append(out, "\n", 1);
    free(text);
    json_decref(st);
}

static void html_escape(struct otr_buf *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': otr_buf_append(out, "&lt;", 4); break;
        case '>': otr_buf_append(out, "&gt;", 4); break;
        case '&': otr_buf_append(out, "&amp;", 5); break;
        case '"': otr_buf_append(out, "&quot;", 6); break;
        default: otr_buf_append(out, s, 1);
        }
    }
}

void otr_status_html(struct otr_agent *a, struct otr_buf *out)
{
    struct otr_gen *g = a->current;
    otr_buf_printf(out,
                   "<!doctype html><html><head><meta charset=\"utf-8\"><title>outrider</title>"
                   "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em 1em;text-align:left}"
                   "</style></head><body><h1>outrider %s</h1><p>role <b>%s</b>, generation %llu, %s, up %.0f s"
                   "</p><h2>Modules</h2><table><tr><th>name</th><th>version</th><th>state</th></tr>",
                   OTR_VERSION, otr_role_name(a->role), (unsigned long long)(g ? g->id : 0),
                   otr_agent_ready(a) ? "ready" : "not ready", (double)(otr_now_ms() - a->start_ms) / 1000.0);
    for (size_t i = 0; g && i < g->n_mods; i++) {
        struct otr_modctx *mc = &g->mods[i];
        bool ready = !mc->lm->desc.ready || mc->lm->desc.ready(&mc->pub);
        otr_buf_append(out, "<tr><td>", 8);
        html_escape(out, mc->pub.name);
        otr_buf_append(out, "</td><td>", 9);
        html_escape(out, mc->lm->desc.version);
        otr_buf_printf(out, "</td><td>%s</td></tr>", ready ? "ready" : "not ready");
    }
    otr_buf_printf(out, "</table><h2>Listeners</h2><table>");
    for (size_t i = 0; g && i < g->n_listeners; i++) {
        otr_buf_append(out, "<tr><td>", 8);
        html_escape(out, g->listeners[i]->name);
        otr_buf_append(out, "</td><td>", 9);
        html_escape(out, g->listeners[i]->bound);
        otr_buf_append(out, "</td></tr>", 10);
    }
    otr_buf_printf(out, "</table><p><a href=\"/metrics\">metrics</a> &middot; <a href=\"/status\">status</a> "
                        "&middot; <a href=\"/ready\">ready</a></p></body></html>\n");
}

void otr_status_write_state_file(struct otr_agent *a)
{
    if (!a->opt.state_file)
        return;
    json_t *st = json_pack("{s:i, s:s, s:s, s:I, s:o}", "pid", (int)getpid(), "role", otr_role_name(a->role),
                           "version", OTR_VERSION, "generation", (json_int_t)(a->current ? a->current->id : 0),
                           "listeners", listeners_json(a->current));
    char *text = json_dumps(st, JSON_COMPACT);
    int rc = otr_write_file_atomic(a->opt.state_file, text, strlen(text), false);
    if (rc)
        otr_log_error("cannot write state file %s: %s", a->opt.state_file, strerror(-rc));
    free(text);
    json_decref(st);
}

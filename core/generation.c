/*
 * Building and freeing generations: configuration file to running modules'
 * state, all or nothing.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "conf_schema.h"
#include "config.h"
#include "log.h"
#include "util.h"

/* Module names listed under "modules", for the top-level parse to accept
 * their sections; malformed entries are left to the parse to report. */
static const char **module_names(json_t *root, size_t *n)
{
    json_t *mods = json_object_get(root, "modules");
    size_t i, k = 0;
    json_t *v;
    const char **names = otr_xcalloc(json_array_size(mods) + 1, sizeof *names);
    json_array_foreach(mods, i, v) {
        if (json_is_string(v))
            names[k++] = json_string_value(v);
    }
    *n = k;
    return names;
}

/* A path relative to the config file's folder, absolute otherwise. */
static char *beside_config(const char *conf_path, const char *rel)
{
    if (rel[0] == '/')
        return otr_xstrdup(rel);
    const char *slash = strrchr(conf_path, '/');
    if (!slash)
        return otr_xstrdup(rel);
    return otr_xasprintf("%.*s/%s", (int)(slash - conf_path), conf_path, rel);
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *resolve_scripts_dir(const char *conf_path, const char *configured)
{
    if (configured && *configured)
        return beside_config(conf_path, configured);
    if (is_dir("/usr/share/outrider/scripts"))
        return otr_xstrdup("/usr/share/outrider/scripts");
    return beside_config(conf_path, "scripts");
}

static const struct otr_pod *build_self_pod(const struct otr_core_conf *c)
{
    json_t *labels = json_object();
    for (size_t i = 0; i < c->identity.labels.n; i++)
        json_object_set_new(labels, c->identity.labels.items[i].key,
                            json_string(c->identity.labels.items[i].value));
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "namespace", c->identity.pod_namespace, "name",
                            c->identity.pod_name, "uid", c->identity.pod_uid, "ip", c->identity.pod_ip, "node",
                            c->identity.node_name, "labels", labels);
    const char *why;
    const struct otr_pod *pod = obj ? otr_pod_from_json(obj, &why) : NULL;
    json_decref(obj);
    return pod;
}

static int parse_core(struct otr_gen *g, json_t *root, struct otr_diag *d)
{
    size_t n;
    const char **names = module_names(root, &n);
    int errs = otr_conf_parse(otr_core_conf_fields, root, &g->core, "", g->agent->role, names, d);
    free(names);
    return errs;
}

/* Loads each listed module and parses its section. */
static int load_modules(struct otr_gen *g, json_t *root, struct otr_diag *d)
{
    struct otr_agent *a = g->agent;
    int errs = 0;
    g->n_mods = g->core.modules.n;
    g->mods = otr_xcalloc(g->n_mods + 1, sizeof *g->mods);
    for (size_t i = 0; i < g->n_mods; i++) {
        const char *name = OTR_CONF_AT(g->core.modules, char *, i);
        struct otr_modctx *mc = &g->mods[i];
        for (size_t j = 0; j < i; j++)
            if (strcmp(g->mods[j].pub.name, name) == 0) {
                otr_diag_at(d, "modules", "module \"%s\" is listed twice", name);
                errs++;
            }
        mc->gen = g;
        mc->pub.host = &otr_host_table;
        mc->pub.name = name;
        mc->pub.generation = g->id;
        if (otr_loader_open(a->modules_dir, name, a->role, d, &mc->lm) != 0) {
            errs++;
            continue;
        }
        mc->conf = otr_xcalloc(1, mc->lm->desc.conf_size + 1);
        mc->pub.conf = mc->conf;
        json_t *section = json_object_get(root, name);
        if (section && !json_is_object(section)) {
            otr_diag_at(d, name, "expected an object with the %s module's settings", name);
            errs++;
            continue;
        }
        static const struct otr_conf_field no_fields[] = {OTR_CONF_TABLE_END};
        errs += otr_conf_parse(mc->lm->desc.conf ? mc->lm->desc.conf : no_fields, section, mc->conf, name, a->role,
                               NULL, d);
    }
    return errs;
}

static int check_modules(struct otr_gen *g, struct otr_diag *d)
{
    int errs = 0;
    for (size_t i = 0; i < g->n_mods; i++) {
        struct otr_modctx *mc = &g->mods[i];
        if (!mc->lm->desc.check)
            continue;
        size_t before = d->n;
        mc->diag = d;
        int rc = mc->lm->desc.check(&mc->pub, mc->conf);
        mc->diag = NULL;
        if (rc != 0) {
            errs++;
            if (d->n == before)
                otr_diag_at(d, mc->pub.name, "rejected by the module (%s)", rc == OTR_ECONFIG ? "config" : uv_strerror(rc));
        }
    }
    return errs;
}

static int init_modules(struct otr_gen *g, struct otr_diag *d)
{
    for (size_t i = 0; i < g->n_mods; i++) {
        struct otr_modctx *mc = &g->mods[i];
        /* Sized here: the first generation is parsed before the agent
         * knows how many workers it will run. */
        mc->drained = otr_xcalloc(g->agent->n_workers + 1, sizeof *mc->drained);
        if (!mc->lm->desc.init) {
            mc->inited = true;
            continue;
        }
        size_t before = d->n;
        mc->diag = d;
        /* fini() is owed even if init() fails half-way: one cleanup path
         * in the module covers both. */
        mc->inited = true;
        int rc = mc->lm->desc.init(&mc->pub, mc->conf);
        mc->diag = NULL;
        if (rc != 0) {
            if (d->n == before)
                otr_diag_raw(d, "module \"%s\": %s: init failed: %s", mc->pub.name, mc->lm->path,
                             rc == OTR_ECONFIG ? "configuration rejected" : uv_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static int open_admin(struct otr_gen *g, struct otr_diag *d)
{
    if (!g->core.admin.enabled)
        return 0;
    char err[256];
    int rc = otr_listener_open("admin", &g->core.admin.address, SOCK_STREAM, 1, g->dry, &g->admin_listener, err,
                               sizeof err);
    if (rc)
        otr_diag_at(d, "admin.address", "%s", err);
    else
        otr_gen_hold_listener(g, g->admin_listener);
    return rc;
}

static int open_control(struct otr_gen *g, struct otr_diag *d)
{
    if (!g->core.control_socket || !*g->core.control_socket)
        return 0;
    struct otr_conf_address addr = {.text = g->core.control_socket, .host = g->core.control_socket, .is_unix = true};
    char err[256];
    int rc = otr_listener_open("control", &addr, SOCK_STREAM, 1, g->dry, &g->control_listener, err, sizeof err);
    if (rc)
        otr_diag_at(d, "control_socket", "%s", err);
    else
        otr_gen_hold_listener(g, g->control_listener);
    return rc;
}

static void apply_log_settings(struct otr_gen *g)
{
    int level = g->agent->opt.log_level >= 0 ? g->agent->opt.log_level : g->core.log.level;
    otr_log_configure((enum otr_log_level)level, (enum otr_log_format)g->core.log.format);
}

struct otr_gen *otr_gen_build(struct otr_agent *a, bool dry, struct otr_diag *d)
{
    json_t *root = otr_config_read(a->opt.conf_path, d);
    if (!root)
        return NULL;
    struct otr_gen *g = otr_xcalloc(1, sizeof *g);
    g->agent = a;
    g->dry = dry;
    /* Taken for good only when the generation starts (otr_gen_start):
     * a configuration that fails to build uses no number. */
    g->id = a->next_gen_id + 1;
    int errs = otr_config_merge_role(root, a->role, d);
    errs += parse_core(g, root, d);
    if (!a->modules_dir)
        a->modules_dir = otr_agent_modules_dir(a->opt.modules_dir, g->core.modules_dir);
    g->scripts_dir = resolve_scripts_dir(a->opt.conf_path, g->core.scripts_dir);
    if (g->core.state_dir && *g->core.state_dir)
        g->state_dir = beside_config(a->opt.conf_path, g->core.state_dir);
    if (errs == 0)
        errs += load_modules(g, root, d);
    json_decref(root);
    if (errs == 0)
        errs += check_modules(g, d);
    if (errs) {
        otr_gen_free(g);
        return NULL;
    }
    return g;
}

int otr_gen_init(struct otr_gen *g, struct otr_diag *d)
{
    if (!g->dry)
        apply_log_settings(g);
    g->self_pod = build_self_pod(&g->core);
    int rc = open_admin(g, d);
    if (rc == 0)
        rc = open_control(g, d);
    return rc ? rc : init_modules(g, d);
}

void otr_gen_hold_listener(struct otr_gen *g, otr_listener *l)
{
    g->listeners = otr_xrealloc(g->listeners, (g->n_listeners + 1) * sizeof *g->listeners);
    g->listeners[g->n_listeners++] = l;
}

void otr_gen_free(struct otr_gen *g)
{
    if (!g)
        return;
    for (size_t i = g->n_mods; i-- > 0;) {
        struct otr_modctx *mc = &g->mods[i];
        if (mc->inited && mc->lm->desc.fini)
            mc->lm->desc.fini(&mc->pub);
    }
    otr_hooks_free(g);
    for (unsigned i = 0; i < g->n_vms; i++)
        otr_lua_vm_free(g->vms[i]);
    free(g->vms);
    otr_bus_sub_free_list(g->subs);
    for (size_t i = 0; i < g->n_listeners; i++)
        otr_listener_release(g->listeners[i]);
    free(g->listeners);
    for (size_t i = 0; i < g->n_mods; i++) {
        struct otr_modctx *mc = &g->mods[i];
        if (mc->conf && mc->lm && mc->lm->desc.conf)
            otr_conf_free(mc->lm->desc.conf, mc->conf);
        free(mc->conf);
        free(mc->drained);
        free(mc->state_dir);
    }
    free(g->mods);
    otr_pod_unref(g->self_pod);
    otr_conf_free(otr_core_conf_fields, &g->core);
    free(g->scripts_dir);
    free(g->state_dir);
    free(g);
}

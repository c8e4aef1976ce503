/*
 * The agent's main thread: start-up, signals, reload, readiness, shutdown.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "agent.h"
#include "config.h"
#include "lifecycle.h"
#include "log.h"
#include "notify.h"
#include "status.h"
#include "upgrade.h"
#include "util.h"

/* --- roles and paths ------------------------------------------------------ */

enum otr_role otr_agent_resolve_role(enum otr_role cli, enum otr_role from_config, bool *env_bad)
{
    *env_bad = false;
    if (cli)
        return cli;
    const char *env = getenv("OUTRIDER_ROLE");
    if (env && *env) {
        enum otr_role r = otr_role_parse(env);
        if (!r)
            *env_bad = true;
        return r;
    }
    return from_config ? from_config : OTR_ROLE_SIDECAR;
}

static bool dir_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

char *otr_agent_modules_dir(const char *cli, const char *conf)
{
    if (cli && *cli)
        return otr_xstrdup(cli);
    if (conf && *conf)
        return otr_xstrdup(conf);
    /* In a build tree the modules sit beside the binary. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            char *dir = otr_xasprintf("%s/modules", exe);
            if (dir_exists(dir) && strncmp(exe, "/usr/", 5) != 0)
                return dir;
            free(dir);
        }
    }
    return otr_xstrdup("/usr/lib/outrider/modules");
}

/* The role named by the configuration file's "role" key, before any merge. */
static enum otr_role config_role(const char *path)
{
    struct otr_diag d;
    otr_diag_init(&d, path);
    json_t *root = otr_config_read(path, &d);
    enum otr_role r = 0;
    if (root)
        r = otr_role_parse(json_string_value(json_object_get(root, "role")) ?: "");
    json_decref(root);
    otr_diag_fini(&d);
    return r;
}

static int resolve_role(struct otr_agent *a)
{
    bool env_bad;
    a->role = otr_agent_resolve_role(a->opt.role, a->opt.role ? 0 : config_role(a->opt.conf_path), &env_bad);
    if (env_bad) {
        fprintf(stderr, "outrider: OUTRIDER_ROLE: unknown role \"%s\": expected \"sidecar\" or \"node\"\n",
                getenv("OUTRIDER_ROLE"));
        return OTR_EXIT_USAGE;
    }
    return 0;
}

/* --- readiness and admin ------------------------------------------------- */

bool otr_agent_ready(struct otr_agent *a)
{
    if (!a->current || a->shutting_down)
        return false;
    for (unsigned i = 0; i < a->n_workers; i++)
        if (!otr_worker_alive(&a->workers[i]))
            return false;
    for (size_t i = 0; i < a->current->n_mods; i++) {
        struct otr_modctx *mc = &a->current->mods[i];
        if (mc->lm->desc.ready && !mc->lm->desc.ready(&mc->pub))
            return false;
    }
    return true;
}

static bool admin_ready(void *arg)
{
    return otr_agent_ready(arg);
}

static void admin_metrics(void *arg, enum otr_metrics_format fmt, struct otr_buf *out)
{
    struct otr_agent *a = arg;
    otr_registry_render(a->registry, fmt, otr_buf_emit, out);
}

static void admin_status(void *arg, struct otr_buf *out)
{
    otr_status_json(arg, out);
}

static void admin_html(void *arg, struct otr_buf *out)
{
    otr_status_html(arg, out);
}

static int admin_reload(void *arg, struct otr_buf *out)
{
    struct otr_agent *a = arg;
    struct otr_diag d;
    otr_diag_init(&d, a->opt.conf_path);
    int rc = otr_agent_reload(a, &d);
    for (size_t i = 0; i < d.n; i++)
        otr_buf_printf(out, "%s\n", d.msgs[i]);
    if (rc == 0)
        otr_buf_printf(out, "reload accepted: generation %llu starting\n", (unsigned long long)a->next_gen_id);
    otr_diag_fini(&d);
    return rc;
}

static int start_admin(struct otr_agent *a, struct otr_gen *g)
{
    if (!g->admin_listener)
        return 0;
    static const struct otr_admin_ops ops_template = {
        .ready = admin_ready, .metrics = admin_metrics, .status = admin_status, .html = admin_html,
        .reload = admin_reload};
    static struct otr_admin_ops ops;
    ops = ops_template;
    ops.arg = a;
    uv_os_sock_t fd;
    int rc = otr_listener_socket(g->admin_listener, 0, &fd);
    if (rc == 0)
        rc = otr_admin_start(a->loop, fd, &ops, &a->admin);
    if (rc)
        otr_log_error("admin endpoint on %s: %s", g->admin_listener->bound, uv_strerror(rc));
    else
        snprintf(a->admin_bound, sizeof a->admin_bound, "%s", g->admin_listener->bound);
    return rc;
}

int otr_agent_follow_endpoints(struct otr_agent *a, struct otr_gen *g)
{
    int rc = 0;
    if (g->admin_listener != a->admin_serving) {
        if (a->admin)
            otr_admin_stop(a->admin);
        a->admin = NULL;
        a->admin_serving = NULL;
        if (g->admin_listener && (rc = start_admin(a, g)) == 0)
            a->admin_serving = g->admin_listener;
    }
    if (g->control_listener != a->control_serving) {
        otr_control_stop(a);
        a->control_serving = NULL;
        if (g->control_listener) {
            int crc = otr_control_start(a, g->control_listener);
            if (crc == 0)
                a->control_serving = g->control_listener;
            rc = rc ? rc : crc;
        }
    }
    return rc;
}

/* --- reload ----------------------------------------------------------------- */

int otr_agent_reload(struct otr_agent *a, struct otr_diag *d)
{
    if (a->shutting_down) {
        otr_diag_raw(d, "reload refused: the agent is shutting down");
        return UV_ECANCELED;
    }
    if (a->starting) {
        otr_diag_raw(d, "reload refused: generation %llu is still starting", (unsigned long long)a->starting->id);
        return UV_EBUSY;
    }
    otr_log_info("reloading %s", a->opt.conf_path);
    otr_notify("RELOADING=1");
    struct otr_gen *g = otr_gen_build(a, false, d);
    int rc = g ? otr_gen_init(g, d) : OTR_ECONFIG;
    if (rc) {
        otr_gen_free(g);
        otr_series_counter_add(a->reloads_failed, 1);
        for (size_t i = 0; i < d->n; i++)
            otr_log_error("reload: %s", d->msgs[i]);
        otr_log_error("reload failed; still serving generation %llu",
                      (unsigned long long)(a->current ? a->current->id : 0));
        otr_notify("READY=1");
        return rc;
    }
    unsigned want = g->core.workers ? (unsigned)g->core.workers : 0;
    if (want && want != a->n_workers)
        otr_log_warn("workers: %u configured, %u running: a reload cannot change workers; a restart can (an "
                     "upgrade can add workers)",
                     want, a->n_workers);
    otr_gen_start(g);
    return 0;
}

/* --- shutdown --------------------------------------------------------------- */

static void close_handle(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
}

void otr_agent_maybe_finish(struct otr_agent *a)
{
    if (!a->shutting_down || a->current || a->starting || a->draining)
        return;
    if (a->admin)
        otr_admin_stop(a->admin);
    a->admin = NULL;
    for (unsigned i = 0; i < a->n_workers; i++)
        if (otr_worker_quit_join(&a->workers[i]) != 0 && a->exit_code == 0)
            a->exit_code = OTR_EXIT_DRAIN;
    a->n_workers = 0;
    close_handle((uv_handle_t *)&a->sig_hup);
    close_handle((uv_handle_t *)&a->sig_term);
    close_handle((uv_handle_t *)&a->sig_int);
    close_handle((uv_handle_t *)&a->sig_usr2);
    otr_control_stop(a);
    close_handle((uv_handle_t *)&a->drain_timer);
    close_handle((uv_handle_t *)&a->deadline_timer);
    otr_inventory_watch(a->inventory, NULL, 0);
    otr_mailbox_close(&a->mb, NULL);
    otr_log_info("stopped");
}

static void agent_on_deadline(uv_timer_t *t)
{
    otr_log_error("modules did not finish draining in time; exiting anyway");
    _exit(OTR_EXIT_DRAIN);
}

static void agent_on_drain_delay(uv_timer_t *t)
{
    struct otr_agent *a = t->data;
    struct otr_gen *g = a->current;
    uint64_t timeout = g ? g->core.drain.timeout : 0;
    a->current = NULL;
    otr_bus_activate(NULL);
    /* Past the drain timeout, modules had their chance; the grace period
     * covers closing what they forced shut. */
    uv_timer_start(&a->deadline_timer, agent_on_deadline, timeout + 5000, 0);
    if (g)
        otr_gen_drain(g, timeout);
    /* Workers close their duplicates as they drain; these are the last. */
    otr_listener_close_sockets();
    otr_agent_maybe_finish(a);
}

void otr_agent_shutdown(struct otr_agent *a, bool use_delay)
{
    if (a->shutting_down)
        return;
    a->shutting_down = true;
    if (!a->handed_over)
        otr_notify("STOPPING=1");
    /* Commands make no sense any more; a new agent may want the path. */
    otr_control_stop(a);
    uint64_t delay = use_delay && a->current ? a->current->core.drain.delay : 0;
    otr_log_info("shutting down: not ready now, draining in %llu ms", (unsigned long long)delay);
    uv_timer_start(&a->drain_timer, agent_on_drain_delay, delay, 0);
}

static void agent_on_signal(uv_signal_t *s, int signum)
{
    struct otr_agent *a = s->data;
    if (signum == SIGUSR2) {
        otr_upgrade_start(a, NULL, NULL);
        return;
    }
    if (signum == SIGHUP) {
        struct otr_diag d;
        otr_diag_init(&d, a->opt.conf_path);
        otr_agent_reload(a, &d);
        otr_diag_fini(&d);
        return;
    }
    if (a->shutting_down && signum == SIGINT) {
        otr_log_warn("second interrupt: exiting now");
        _exit(OTR_EXIT_DRAIN);
    }
    otr_agent_shutdown(a, true);
}

/* --- start-up --------------------------------------------------------------- */

static double gauge_uptime(void *arg)
{
    struct otr_agent *a = arg;
    return (double)(otr_now_ms() - a->start_ms) / 1000.0;
}

static double gauge_rss(void *arg)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static double gauge_start_time(void *arg)
{
    struct otr_agent *a = arg;
    return (double)a->start_wall_ns / 1e9;
}

static void register_core_metrics(struct otr_agent *a)
{
    char err[256];
    static const char *const build_labels[] = {"version", "role", NULL};
    static const struct otr_metric_desc build_info = {
        "outrider_build_info", "Build and role of this agent (always 1).", OTR_METRIC_GAUGE, build_labels, NULL, 0};
    const char *values[] = {OTR_VERSION, otr_role_name(a->role), NULL};
    otr_series_gauge_set(otr_registry_series(otr_registry_metric(a->registry, &build_info, err, sizeof err), 0, values),
                         1);
    static const char *const result_label[] = {"result", NULL};
    static const struct otr_metric_desc reloads = {"outrider_reloads_total",
                                                   "Configuration reloads by outcome.", OTR_METRIC_COUNTER,
                                                   result_label, NULL, 0};
    otr_metric *rl = otr_registry_metric(a->registry, &reloads, err, sizeof err);
    a->reloads_ok = otr_registry_series(rl, 0, (const char *[]){"ok", NULL});
    a->reloads_failed = otr_registry_series(rl, 0, (const char *[]){"failed", NULL});
    static const char *const lua_labels[] = {"module", "hook", "reason", NULL};
    static const struct otr_metric_desc lua_errors = {
        "outrider_lua_errors_total", "Lua hook calls that failed and used the hook's fallback.", OTR_METRIC_COUNTER,
        lua_labels, NULL, 0};
    a->lua_errors = otr_registry_metric(a->registry, &lua_errors, err, sizeof err);
    static const char *const worker_label[] = {"worker", NULL};
    static const struct otr_metric_desc lag = {"outrider_worker_loop_lag_seconds",
                                               "How late each worker's event loop ran its last heartbeat.",
                                               OTR_METRIC_GAUGE, worker_label, NULL, 0};
    otr_metric *lagm = otr_registry_metric(a->registry, &lag, err, sizeof err);
    for (unsigned i = 0; i < a->n_workers; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%u", i);
        a->workers[i].lag_series = otr_registry_series(lagm, i + 1, (const char *[]){idx, NULL});
    }
    otr_registry_gauge_fn(a->registry, "outrider_uptime_seconds", "Seconds since the agent started.", gauge_uptime, a);
    otr_registry_gauge_fn(a->registry, "process_resident_memory_bytes", "Resident memory size in bytes.", gauge_rss,
                          a);
    otr_registry_gauge_fn(a->registry, "process_start_time_seconds", "Start time of the process since the epoch.",
                          gauge_start_time, a);
}

static void register_module_info(struct otr_agent *a, struct otr_gen *g)
{
    char err[256];
    static const char *const labels[] = {"module", "version", NULL};
    static const struct otr_metric_desc info = {"outrider_module_info", "Modules loaded (always 1).",
                                                OTR_METRIC_GAUGE, labels, NULL, 0};
    otr_metric *m = otr_registry_metric(a->registry, &info, err, sizeof err);
    for (size_t i = 0; m && i < g->n_mods; i++)
        otr_series_gauge_set(otr_registry_series(m, 0, (const char *[]){g->mods[i].pub.name,
                                                                         g->mods[i].lm->desc.version, NULL}),
                             1);
}

/* The configured count, else one per CPU (node) or one (sidecar); never
 * fewer than the sockets per listener a previous process handed over: a
 * socket without a worker would hold the connections the kernel sends it
 * unanswered. Closing it would reset those already queued. */
static unsigned default_workers(struct otr_agent *a, struct otr_gen *g)
{
    unsigned n = g->core.workers > 0 ? (unsigned)g->core.workers
                                     : a->role == OTR_ROLE_NODE ? uv_available_parallelism() : 1;
    unsigned handed = otr_listener_most_adopted_sockets();
    if (handed > n) {
        otr_log_warn("workers: %u configured, but %u sockets per listener were handed over: running %u (restart to "
                     "run fewer)",
                     n, handed, handed);
        n = handed;
    }
    return n;
}

static int start_workers(struct otr_agent *a)
{
    a->workers = otr_xcalloc(a->n_workers, sizeof *a->workers);
    for (unsigned i = 0; i < a->n_workers; i++) {
        int rc = otr_worker_start(&a->workers[i], i);
        if (rc) {
            otr_log_error("cannot start worker %u: %s", i, uv_strerror(rc));
            a->n_workers = i;
            return rc;
        }
    }
    return 0;
}

static void init_main_handles(struct otr_agent *a)
{
    uv_signal_init(a->loop, &a->sig_hup);
    uv_signal_init(a->loop, &a->sig_term);
    uv_signal_init(a->loop, &a->sig_int);
    uv_signal_init(a->loop, &a->sig_usr2);
    a->sig_hup.data = a->sig_term.data = a->sig_int.data = a->sig_usr2.data = a;
    uv_signal_start(&a->sig_usr2, agent_on_signal, SIGUSR2);
    uv_signal_start(&a->sig_hup, agent_on_signal, SIGHUP);
    uv_signal_start(&a->sig_term, agent_on_signal, SIGTERM);
    uv_signal_start(&a->sig_int, agent_on_signal, SIGINT);
    uv_timer_init(a->loop, &a->drain_timer);
    uv_timer_init(a->loop, &a->deadline_timer);
    a->drain_timer.data = a->deadline_timer.data = a;
}

static int build_first_generation(struct otr_agent *a, struct otr_gen **out)
{
    struct otr_diag d;
    otr_diag_init(&d, a->opt.conf_path);
    int code = OTR_EXIT_OK;
    struct otr_gen *g = otr_gen_build(a, false, &d);
    if (!g) {
        otr_diag_print(&d, stderr);
        code = OTR_EXIT_CONFIG;
        goto out;
    }
    a->n_workers = default_workers(a, g);
    a->registry = otr_registry_new(a->n_workers + 1);
    a->workers = NULL;
    /* Workers exist before init so that modules see their count; their
     * metrics need the registry, hence this order. */
    if (start_workers(a) != 0) {
        code = OTR_EXIT_STARTUP;
        goto out;
    }
    register_core_metrics(a);
    int rc = otr_gen_init(g, &d);
    if (rc) {
        otr_diag_print(&d, stderr);
        code = rc == OTR_ECONFIG ? OTR_EXIT_CONFIG : OTR_EXIT_STARTUP;
        goto out;
    }
    register_module_info(a, g);
    *out = g;
    g = NULL;
out:
    otr_gen_free(g);
    otr_diag_fini(&d);
    return code;
}

/* The binary's path as it was at start, so an upgrade runs what the
 * package manager put there since (not the replaced inode). */
static char *self_exe_path(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return otr_xstrdup("/usr/bin/outrider");
    exe[n] = '\0';
    /* A suffix compare, not strstr: glibc picks a strstr for the CPU, and the
     * AVX-512 one lies in 64 KiB of libc nothing else the agent runs at idle
     * touches; this one call kept all of it mapped (+64 KiB RSS). */
    static const char deleted[] = " (deleted)";
    size_t dl = sizeof deleted - 1;
    if ((size_t)n > dl && memcmp(exe + n - dl, deleted, dl) == 0)
        exe[n - dl] = '\0';
    return otr_xstrdup(exe);
}

static void agent_cleanup(struct otr_agent *a)
{
    free(a->self_exe);
    for (unsigned i = 0; i < a->n_workers; i++)
        otr_worker_quit_join(&a->workers[i]);
    free(a->workers);
    otr_inventory_free(a->inventory);
    otr_registry_free(a->registry);
    free(a->modules_dir);
    otr_loader_shutdown();
}

int otr_agent_run(const struct otr_options *opt)
{
    struct otr_agent a = {.opt = *opt};
    uv_loop_t loop;
    int code = resolve_role(&a);
    if (code)
        return code;
    a.start_ms = otr_now_ms();
    a.start_wall_ns = otr_wall_ns();
    a.self_exe = self_exe_path();
    if (otr_upgrade_receive(&a) != 0) {
        free(a.self_exe);
        return OTR_EXIT_STARTUP;
    }
    uv_loop_init(&loop);
    a.loop = &loop;
    otr_mailbox_init(&a.mb, a.loop);
    a.inventory = otr_inventory_new(a.loop);
    signal(SIGPIPE, SIG_IGN);
    struct otr_gen *g = NULL;
    code = build_first_generation(&a, &g);
    if (code == 0 && otr_agent_follow_endpoints(&a, g) != 0)
        code = OTR_EXIT_STARTUP;
    if (code) {
        otr_gen_free(g);
        otr_mailbox_close(&a.mb, NULL);
        otr_inventory_watch(a.inventory, NULL, 0);
        uv_run(a.loop, UV_RUN_DEFAULT);
        uv_loop_close(a.loop);
        agent_cleanup(&a);
        return code;
    }
    init_main_handles(&a);
    otr_gen_start(g);
    uv_run(a.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(a.loop) != 0)
        otr_log_error("main loop: handles left open at exit");
    agent_cleanup(&a);
    return a.exit_code;
}

/* --- -t ----------------------------------------------------------------------- */

int otr_agent_check(const struct otr_options *opt)
{
    struct otr_agent a = {.opt = *opt};
    int code = resolve_role(&a);
    if (code)
        return code;
    a.n_workers = 1;
    a.registry = otr_registry_new(2);
    uv_loop_t loop;
    uv_loop_init(&loop);
    a.loop = &loop;
    a.inventory = otr_inventory_new(a.loop);
    struct otr_diag d;
    otr_diag_init(&d, opt->conf_path);
    struct otr_gen *g = otr_gen_build(&a, true, &d);
    if (g && otr_gen_init(g, &d) != 0 && d.n == 0)
        otr_diag_raw(&d, "%s: a module failed to initialise", opt->conf_path);
    otr_gen_free(g);
    if (d.n) {
        otr_diag_print(&d, stderr);
        code = OTR_EXIT_CONFIG;
    } else {
        printf("%s: configuration ok (role %s)\n", opt->conf_path, otr_role_name(a.role));
    }
    otr_diag_fini(&d);
    otr_inventory_free(a.inventory);
    uv_run(a.loop, UV_RUN_DEFAULT);
    uv_loop_close(a.loop);
    otr_registry_free(a.registry);
    free(a.modules_dir);
    otr_loader_shutdown();
    return code;
}

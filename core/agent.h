/*
 * agent: the running agent — its workers, its generations of configuration
 * and modules, and their lifecycle (start, reload, drain, shutdown).
 *
 * A generation is everything one configuration produced: core's parsed
 * section, each module's context and parsed section, Lua VMs and hooks, bus
 * subscriptions. It is built whole on the main thread (generation.c); only
 * then started on every worker; only when every worker started it does it
 * become current, its bus subscriptions active, and the previous generation
 * drain. A generation is freed once every module drained on every worker.
 */
#ifndef OTR_AGENT_H
#define OTR_AGENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "core_conf.h"
#include "diag.h"
#include "inventory.h"
#include "listener.h"
#include "loader.h"
#include "lua_host.h"
#include "mailbox.h"
#include "metrics_registry.h"
#include "outrider/module.h"
#include "worker.h"

struct otr_agent;
struct otr_gen;

/* One module in one generation. pub comes first: modules get &pub. */
struct otr_modctx {
    struct otr_ctx pub;
    struct otr_gen *gen;
    struct otr_loaded_module *lm;
    void *conf;         /* lm->desc.conf_size bytes, parsed */
    void *data;         /* set_data */
    bool inited;        /* init() succeeded: fini() is owed */
    bool *drained;      /* per worker: drained() was called */
    struct otr_diag *diag; /* while checking/initialising */
    char *state_dir;    /* created on demand */
};

struct otr_hook {
    struct otr_hook *next;
    struct otr_modctx *mc;
    char *script, *function;
    int *script_ids;    /* per VM */
    uint64_t *last_log_ms; /* per worker: rate-limits failure logs */
};

struct otr_gen {
    uint64_t id;
    struct otr_agent *agent;
    bool dry;                 /* built for -t: nothing bound or started */
    struct otr_core_conf core;
    char *scripts_dir, *state_dir;
    struct otr_modctx *mods;
    size_t n_mods;
    struct otr_sub *subs;
    struct otr_lua_vm **vms;  /* one per worker (one when dry), or NULL */
    unsigned n_vms;
    struct otr_hook *hooks;
    const struct otr_pod *self_pod;
    otr_listener **listeners; /* references this generation holds */
    size_t n_listeners;
    otr_listener *admin_listener, *control_listener;
    _Atomic unsigned pending; /* worker acknowledgements still awaited */
    _Atomic unsigned drain_begun; /* workers where drain() has been called */
    _Atomic unsigned start_failures;
    bool started;
    struct otr_gen *next_draining;
};

struct otr_options {
    const char *conf_path;
    enum otr_role role;       /* 0: from OUTRIDER_ROLE or the config */
    const char *modules_dir;  /* NULL: config, then defaults */
    const char *state_file;   /* NULL: none */
    int log_level;            /* -1: from the config */
    bool check_only;          /* -t */
    char **argv;              /* as started: a hot upgrade starts the same */
};

struct otr_agent {
    struct otr_options opt;
    enum otr_role role;
    char *modules_dir;
    uv_loop_t *loop;
    struct otr_mailbox mb;    /* tasks for the main thread */
    unsigned n_workers;
    struct otr_worker *workers;
    struct otr_registry *registry;
    struct otr_inventory *inventory;
    uint64_t next_gen_id;     /* the id of the newest generation started */
    struct otr_gen *current;  /* serving */
    struct otr_gen *starting; /* being started on the workers */
    struct otr_gen *draining; /* list of generations draining */
    struct otr_admin *admin;
    char admin_bound[160];
    otr_listener *admin_serving, *control_serving; /* what admin and control serve */
    uv_signal_t sig_hup, sig_term, sig_int;
    uv_timer_t drain_timer, deadline_timer;
    bool shutting_down;
    bool handed_over;         /* a new process took over the listeners */
    int exit_code;
    uint64_t start_ms, start_wall_ns;
    otr_series *reloads_ok, *reloads_failed;
    char *self_exe;           /* the binary's path, for hot upgrades */
    struct otr_upgrade *upgrade; /* an upgrade in progress (old side) */
    int upgrade_fd;           /* new side: report readiness here, or -1 */
    uv_pipe_t *control;       /* the control socket server */
    uv_signal_t sig_usr2;
    otr_metric *lua_errors;
};

/* --- generation.c --- */
/* Builds a generation from the configuration file: reads, merges the role,
 * parses core's and each module's section, loads modules, runs check().
 * On any error returns NULL with every error in d. */
struct otr_gen *otr_gen_build(struct otr_agent *a, bool dry, struct otr_diag *d);
/* Then, once the agent knows its workers and registry: binds the admin
 * listener and runs every module's init(). On failure returns the error
 * with messages in d; the caller frees the generation. */
int otr_gen_init(struct otr_gen *g, struct otr_diag *d);
/* Keeps a listener reference for the generation's lifetime. */
void otr_gen_hold_listener(struct otr_gen *g, otr_listener *l);
/* fini()s every initialised module and frees the generation (main thread;
 * no worker may still use it). */
void otr_gen_free(struct otr_gen *g);

/* --- agent.c --- */
/* Runs the agent until it exits; returns the process exit code. */
int otr_agent_run(const struct otr_options *opt);
/* Checks the configuration as -t does; prints the outcome; returns the exit code. */
int otr_agent_check(const struct otr_options *opt);
/* Reloads; returns 0 or OTR_ECONFIG with the errors in d (main thread). */
int otr_agent_reload(struct otr_agent *a, struct otr_diag *d);
bool otr_agent_ready(struct otr_agent *a);
/* Makes the admin endpoint and the control socket serve g's listeners,
 * restarting them when a reload moved them. Returns 0 or the first error. */
int otr_agent_follow_endpoints(struct otr_agent *a, struct otr_gen *g);
/* Resolves the role from --role, OUTRIDER_ROLE, then the config's. */
enum otr_role otr_agent_resolve_role(enum otr_role cli, enum otr_role from_config, bool *from_env_bad);
/* Where modules are: --modules-dir, config, beside the binary, system. */
char *otr_agent_modules_dir(const char *cli, const char *conf);

/* --- host.c --- */
extern const struct otr_host otr_host_table;
/* Called by host->drained and by core for modules without drain(). */
void otr_modctx_drained(struct otr_modctx *mc, struct otr_worker *w);

/* --- hooks.c --- */
int otr_hook_declare(otr_ctx *ctx, const char *conf_path, const char *script, const char *function,
                     otr_hook **out);
int otr_hook_run(otr_hook *h, otr_worker *w, int (*push)(lua_State *, void *), int (*pull)(lua_State *, int, void *),
                 int nres, void *arg);
void otr_hooks_free(struct otr_gen *g);

#endif

/*
 * outrider: command line. Parses arguments and hands over to the agent.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "conf_schema.h"
#include "config.h"
#include "lifecycle.h"
#include "log.h"
#include "upgrade.h"

static const char usage_text[] =
    "usage: outrider [--role sidecar|node] [-c FILE] [-t] [-V] [--describe [MODULE]]\n"
    "                [--log-level error|warn|info|debug] [--modules-dir DIR] [--state-file FILE]\n"
    "       outrider upgrade|reload [-c FILE] [--role ROLE] [--control PATH]\n"
    "\n"
    "  -c, --config FILE     configuration file (default /etc/outrider/agent.conf)\n"
    "      --role ROLE       sidecar or node; beats OUTRIDER_ROLE, which beats the config's \"role\"\n"
    "  -t, --test            check configuration, modules and scripts; print \"configuration ok\" or\n"
    "                        every error; exit 0 or 1; binds nothing\n"
    "  -V, --version         print versions of the agent, its module ABI and every module found\n"
    "      --describe [MOD]  print the configuration reference (core's and every module's, or MOD's)\n"
    "      --log-level LVL   override log.level\n"
    "      --modules-dir DIR where module .so files are\n"
    "      --state-file FILE write pid, role and bound addresses there once ready (atomically)\n"
    "  upgrade               ask the running agent (via its control socket) to start this binary anew,\n"
    "                        hand it the listeners and drain; prints the outcome\n"
    "  reload                ask the running agent to reload its configuration\n"
    "\n"
    "exit codes: 0 ok, 1 invalid configuration, 2 usage, 3 start-up failed, 4 drain deadline exceeded\n";

enum action { RUN, CHECK, VERSION, DESCRIBE };

struct cli {
    struct otr_options opt;
    enum action action;
    const char *describe_module;
};

static void print_module_line(void *arg, const char *file, const struct otr_loaded_module *m, const char *error)
{
    if (m)
        printf("  %-10s %-8s %s\n", m->desc.name, m->desc.version, m->desc.summary ? m->desc.summary : "");
    else
        printf("  %-10s ERROR    %s\n", strrchr(file, '/') ? strrchr(file, '/') + 1 : file, error);
}

static int print_version(const struct cli *c)
{
    char *dir = otr_agent_modules_dir(c->opt.modules_dir, NULL);
    printf("outrider %s\nmodule ABI %d.%d (%s)\nmodules in %s:\n", OTR_VERSION, OTR_ABI_MAJOR, OTR_ABI_MINOR,
           OTR_BUILD_SIG, dir);
    otr_loader_scan(dir, print_module_line, NULL);
    free(dir);
    otr_loader_shutdown();
    return OTR_EXIT_OK;
}

struct describe_ctx {
    const char *only;
    int found;
};

static void describe_module(void *arg, const char *file, const struct otr_loaded_module *m, const char *error)
{
    struct describe_ctx *dc = arg;
    if (!m || (dc->only && strcmp(dc->only, m->desc.name) != 0))
        return;
    dc->found++;
    printf("\n## %s %s\n\n%s\n\nEnable with `\"modules\": [\"%s\"]`; settings go under `\"%s\": {...}`.\n\n",
           m->desc.name, m->desc.version, m->desc.summary ? m->desc.summary : "", m->desc.name, m->desc.name);
    if (m->desc.conf)
        otr_conf_describe(stdout, m->desc.name, m->desc.conf);
}

static int print_describe(const struct cli *c)
{
    char *dir = otr_agent_modules_dir(c->opt.modules_dir, NULL);
    struct describe_ctx dc = {.only = c->describe_module};
    if (!dc.only || strcmp(dc.only, "core") == 0) {
        printf("## core\n\nTop-level keys of the configuration file.\n\n");
        otr_conf_describe(stdout, "", otr_core_conf_fields);
    }
    if (!dc.only || strcmp(dc.only, "core") != 0)
        otr_loader_scan(dir, describe_module, &dc);
    int code = OTR_EXIT_OK;
    if (dc.only && strcmp(dc.only, "core") != 0 && dc.found == 0) {
        fprintf(stderr, "outrider: --describe: no module \"%s\" in %s\n", dc.only, dir);
        code = OTR_EXIT_USAGE;
    }
    free(dir);
    otr_loader_shutdown();
    return code;
}

static int parse_args(int argc, char **argv, struct cli *c)
{
    enum { OPT_ROLE = 256, OPT_DESCRIBE, OPT_LOG_LEVEL, OPT_MODULES_DIR, OPT_STATE_FILE };
    static const struct option longopts[] = {
        {"role", required_argument, NULL, OPT_ROLE},
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"describe", optional_argument, NULL, OPT_DESCRIBE},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"modules-dir", required_argument, NULL, OPT_MODULES_DIR},
        {"state-file", required_argument, NULL, OPT_STATE_FILE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_ROLE:
            c->opt.role = otr_role_parse(optarg);
            if (!c->opt.role) {
                fprintf(stderr, "outrider: --role: unknown role \"%s\": expected \"sidecar\" or \"node\"\n", optarg);
                return OTR_EXIT_USAGE;
            }
            break;
        case 'c': c->opt.conf_path = optarg; break;
        case 't': c->action = CHECK; break;
        case 'V': c->action = VERSION; break;
        case OPT_DESCRIBE:
            c->action = DESCRIBE;
            /* Accept "--describe proxy" as well as "--describe=proxy". */
            if (optarg)
                c->describe_module = optarg;
            else if (optind < argc && argv[optind][0] != '-')
                c->describe_module = argv[optind++];
            break;
        case OPT_LOG_LEVEL:
            c->opt.log_level = otr_log_level_parse(optarg);
            if (c->opt.log_level < 0) {
                fprintf(stderr, "outrider: --log-level: expected error, warn, info or debug, got \"%s\"\n", optarg);
                return OTR_EXIT_USAGE;
            }
            break;
        case OPT_MODULES_DIR: c->opt.modules_dir = optarg; break;
        case OPT_STATE_FILE: c->opt.state_file = optarg; break;
        case 'h': fputs(usage_text, stdout); exit(OTR_EXIT_OK);
        default: fputs(usage_text, stderr); return OTR_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "outrider: unexpected argument \"%s\"\n%s", argv[optind], usage_text);
        return OTR_EXIT_USAGE;
    }
    return 0;
}

/* The control socket path of the agent that runs with this configuration. */
static char *control_path_from_config(const struct otr_options *opt)
{
    struct otr_diag d;
    otr_diag_init(&d, opt->conf_path);
    json_t *root = otr_config_read(opt->conf_path, &d);
    char *path = NULL;
    if (root) {
        bool env_bad;
        enum otr_role cfg = otr_role_parse(json_string_value(json_object_get(root, "role")) ?: "");
        otr_config_merge_role(root, otr_agent_resolve_role(opt->role, cfg, &env_bad), &d);
        const char *raw = json_string_value(json_object_get(root, "control_socket"));
        char err[256];
        if (raw)
            path = otr_env_expand(raw, err, sizeof err);
    }
    otr_diag_print(&d, stderr);
    otr_diag_fini(&d);
    json_decref(root);
    return path;
}

/* `outrider upgrade|reload [-c FILE] [--role R] [--control PATH]` */
static int run_client(int argc, char **argv)
{
    enum { OPT_ROLE = 256, OPT_CONTROL };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"role", required_argument, NULL, OPT_ROLE},
        {"control", required_argument, NULL, OPT_CONTROL},
        {NULL, 0, NULL, 0},
    };
    struct otr_options opt = {.conf_path = "/etc/outrider/agent.conf"};
    const char *control = NULL;
    int ch;
    while ((ch = getopt_long(argc - 1, argv + 1, "c:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': opt.conf_path = optarg; break;
        case OPT_ROLE: opt.role = otr_role_parse(optarg); break;
        case OPT_CONTROL: control = optarg; break;
        default: fputs(usage_text, stderr); return OTR_EXIT_USAGE;
        }
    }
    char *path = control ? strdup(control) : control_path_from_config(&opt);
    int code = otr_control_request(path, argv[1], 180000);
    free(path);
    return code;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "upgrade") == 0 || strcmp(argv[1], "reload") == 0))
        return run_client(argc, argv);

    struct cli c = {.opt = {.conf_path = "/etc/outrider/agent.conf", .log_level = -1, .argv = argv}, .action = RUN};
    int code = parse_args(argc, argv, &c);
    if (code)
        return code;
    if (c.opt.log_level >= 0)
        otr_log_configure((enum otr_log_level)c.opt.log_level, OTR_LOG_TEXT);
    switch (c.action) {
    case VERSION: return print_version(&c);
    case DESCRIBE: return print_describe(&c);
    case CHECK: c.opt.check_only = true; return otr_agent_check(&c.opt);
    case RUN: break;
    }
    return otr_agent_run(&c.opt);
}

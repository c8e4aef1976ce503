#include "core_conf.h"

#include <stddef.h>

#define F(k, t, m, ...) OTR_CONF_FIELD(k, t, struct otr_core_conf, m, __VA_ARGS__)
#define FIN(st, k, t, m, ...) OTR_CONF_FIELD(k, t, struct st, m, __VA_ARGS__)

static const struct otr_conf_field log_fields[] = {
    FIN(otr_log_conf, "level", OTR_CONF_ENUM, level, .choices = "error|warn|info|debug", .def = "\"info\"",
      .help = "Lowest level of the agent's own log lines (stderr)."),
    FIN(otr_log_conf, "format", OTR_CONF_ENUM, format, .choices = "text|json", .def = "\"text\"",
      .help = "Log line format: human-readable text or one JSON object per line."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field admin_fields[] = {
    FIN(otr_admin_conf, "enabled", OTR_CONF_BOOL, enabled, .def = "true", .help = "Serve the admin endpoint."),
    FIN(otr_admin_conf, "address", OTR_CONF_ADDRESS, address, .def = "\"127.0.0.1:9901\"",
      .help = "Where the admin endpoint listens (/healthz, /ready, /metrics, /status, POST /reload)."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field module_name = {
    .key = NULL, .type = OTR_CONF_STRING, .max = 64, .help = "A module name: loads <modules_dir>/<name>.so."};

static const struct otr_conf_field lua_fields[] = {
    FIN(otr_lua_conf, "memory_limit", OTR_CONF_SIZE, memory_limit, .def = "\"16MiB\"", .min = 65536, .max = 4294967296.0,
      .help = "Memory cap of each worker's Lua VM; an allocation past it fails the call."),
    FIN(otr_lua_conf, "instruction_limit", OTR_CONF_INT, instruction_limit, .def = "1000000", .min = 1000, .max = 1e12,
      .help = "Lua VM instructions one hook call may run before it is cut off and its fallback used."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field drain_fields[] = {
    FIN(otr_drain_conf, "delay", OTR_CONF_DURATION, delay, .def = "\"0s\"", .def_node = "\"5s\"", .max = 3600000,
      .help = "On SIGTERM, how long to keep serving after /ready turns 503, so load balancers stop "
              "sending new work."),
    FIN(otr_drain_conf, "timeout", OTR_CONF_DURATION, timeout, .def = "\"30s\"", .max = 3600000,
      .help = "How long in-flight work may take to finish after accepting stopped."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field identity_fields[] = {
    FIN(otr_identity_conf, "pod_name", OTR_CONF_STRING, pod_name, .def = "\"${POD_NAME:-}\"",
      .help = "This pod's name (sidecar role); from the downward API."),
    FIN(otr_identity_conf, "pod_namespace", OTR_CONF_STRING, pod_namespace, .def = "\"${POD_NAMESPACE:-}\"",
      .help = "This pod's namespace (sidecar role)."),
    FIN(otr_identity_conf, "pod_uid", OTR_CONF_STRING, pod_uid, .def = "\"${POD_UID:-}\"", .help = "This pod's UID."),
    FIN(otr_identity_conf, "pod_ip", OTR_CONF_STRING, pod_ip, .def = "\"${POD_IP:-}\"", .help = "This pod's IP address."),
    FIN(otr_identity_conf, "node_name", OTR_CONF_STRING, node_name, .def = "\"${NODE_NAME:-}\"",
      .help = "The node's name; labels every record and series."),
    FIN(otr_identity_conf, "labels", OTR_CONF_MAP, labels, .help = "This pod's labels (sidecar role)."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field inventory_fields[] = {
    FIN(otr_inventory_conf, "file", OTR_CONF_STRING, file, .def = "\"\"",
      .help = "Node role: JSON file listing the node's pods ({\"pods\":[{namespace, name, uid, ip, ips, "
              "labels, annotations}]}), watched for changes. Empty: no inventory."),
    FIN(otr_inventory_conf, "poll_interval", OTR_CONF_DURATION, poll_interval, .def = "\"2s\"", .min = 100, .max = 3600000,
      .help = "How often the inventory file is checked in addition to change notifications."),
    OTR_CONF_TABLE_END,
};

static const struct otr_conf_field upgrade_fields[] = {
    FIN(otr_upgrade_conf, "timeout", OTR_CONF_DURATION, timeout, .def = "\"60s\"", .min = 1000, .max = 3600000,
        .help = "How long a new binary started by a hot upgrade has to become ready before it is stopped and "
                "the running agent keeps serving."),
    OTR_CONF_TABLE_END,
};

const struct otr_conf_field otr_core_conf_fields[] = {
    F("role", OTR_CONF_ENUM, role, .choices = "sidecar|node", .def = "\"sidecar\"",
      .help = "The agent's role; --role and OUTRIDER_ROLE take precedence."),
    F("workers", OTR_CONF_INT, workers, .def = "0", .min = 0, .max = 256,
      .help = "Worker threads, each with its own event loop; 0: 1 in sidecar role, one per CPU in node role."),
    F("log", OTR_CONF_OBJECT, log, .fields = log_fields, .help = "The agent's own log."),
    F("admin", OTR_CONF_OBJECT, admin, .fields = admin_fields, .help = "The admin endpoint."),
    F("modules_dir", OTR_CONF_STRING, modules_dir, .def = "\"\"",
      .help = "Where module .so files are; --modules-dir wins. Empty: next to the binary (build tree) or "
              "/usr/lib/outrider/modules."),
    F("scripts_dir", OTR_CONF_STRING, scripts_dir, .def = "\"\"",
      .help = "Where Lua scripts are; relative to the config file's folder. Empty: /usr/share/outrider/scripts "
              "if it exists, else scripts/ beside the config file."),
    F("state_dir", OTR_CONF_STRING, state_dir, .def = "\"\"",
      .help = "Where modules keep state across restarts (log checkpoints). Empty: none."),
    F("modules", OTR_CONF_ARRAY, modules, .elem = &module_name, .elem_size = sizeof(char *), .max = 64,
      .help = "Modules to load, by name; each takes its settings from the top-level key of its name."),
    F("lua", OTR_CONF_OBJECT, lua, .fields = lua_fields, .help = "Limits of the Lua script host."),
    F("drain", OTR_CONF_OBJECT, drain, .fields = drain_fields, .help = "Graceful shutdown."),
    F("identity", OTR_CONF_OBJECT, identity, .fields = identity_fields,
      .help = "Who this agent is; defaults come from the downward API environment variables."),
    F("inventory", OTR_CONF_OBJECT, inventory, .fields = inventory_fields, .help = "The node's pod inventory."),
    F("control_socket", OTR_CONF_STRING, control_socket, .def = "\"\"", .max = 100,
      .help = "Unix socket path on which `outrider upgrade` and `outrider reload` reach the running agent. "
              "Empty: none (SIGUSR2 and SIGHUP still work)."),
    F("upgrade", OTR_CONF_OBJECT, upgrade, .fields = upgrade_fields, .help = "Hot binary upgrade."),
    OTR_CONF_TABLE_END,
};

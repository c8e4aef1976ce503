/*
 * core_conf: the agent's own configuration section (the top-level keys that
 * are not module sections), described by the same kind of table as modules'.
 */
#ifndef OTR_CORE_CONF_H
#define OTR_CORE_CONF_H

#include <stdint.h>

#include "outrider/module.h"

/* Nested sections are their own struct types: a table's offsets are
 * relative to the object the table describes. */
struct otr_log_conf {
    int level;  /* enum otr_log_level */
    int format; /* enum otr_log_format */
};

struct otr_admin_conf {
    bool enabled;
    struct otr_conf_address address;
};

struct otr_lua_conf {
    uint64_t memory_limit;
    int64_t instruction_limit;
};

struct otr_drain_conf {
    uint64_t delay;   /* ms to keep serving after /ready turns 503 */
    uint64_t timeout; /* ms for in-flight work to finish */
};

struct otr_identity_conf {
    char *pod_name, *pod_namespace, *pod_uid, *pod_ip, *node_name;
    struct otr_conf_map labels;
};

struct otr_inventory_conf {
    char *file;
    uint64_t poll_interval;
};

struct otr_upgrade_conf {
    uint64_t timeout; /* ms the new process has to become ready */
};

struct otr_core_conf {
    int role;        /* index in "sidecar|node": only read when no --role/env */
    int64_t workers; /* 0: role default (sidecar 1, node = CPUs) */
    struct otr_log_conf log;
    struct otr_admin_conf admin;
    char *modules_dir;
    char *scripts_dir;
    char *state_dir;
    struct otr_conf_array modules; /* of char * */
    struct otr_lua_conf lua;
    struct otr_drain_conf drain;
    struct otr_identity_conf identity;
    struct otr_inventory_conf inventory;
    char *control_socket;
    struct otr_upgrade_conf upgrade;
};

/* The table for struct otr_core_conf. */
extern const struct otr_conf_field otr_core_conf_fields[];

#endif

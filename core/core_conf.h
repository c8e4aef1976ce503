/*
 * core_conf: the agent's own configuration section (the top-level keys that
 * are not module sections), described by the same kind of table as modules'.
 */
#ifndef OTR_CORE_CONF_H
#define OTR_CORE_CONF_H

#include <stdint.h>

#include "outrider/module.h"

struct otr_core_conf {
    int role;         /* index in "sidecar|node": only read when no --role/env */
    int64_t workers;  /* 0: role default (sidecar 1, node = CPUs) */
    struct {
        int level;    /* enum otr_log_level */
        int format;   /* enum otr_log_format */
    } log;
    struct {
        bool enabled;
        struct otr_conf_address address;
    } admin;
    char *modules_dir;
    char *scripts_dir;
    char *state_dir;
    struct otr_conf_array modules; /* of char * */
    struct {
        uint64_t memory_limit;
        int64_t instruction_limit;
    } lua;
    struct {
        uint64_t delay;   /* ms to keep serving after /ready turns 503 */
        uint64_t timeout; /* ms for in-flight work to finish */
    } drain;
    struct {
        char *pod_name, *pod_namespace, *pod_uid, *pod_ip, *node_name;
        struct otr_conf_map labels;
    } identity;
    struct {
        char *file;
        uint64_t poll_interval;
    } inventory;
};

/* The table for struct otr_core_conf. */
extern const struct otr_conf_field otr_core_conf_fields[];

#endif

/* A module whose init fails with a configuration error: nothing may be
 * half-started, and the error must name the module and the key. */
#include "outrider/module.h"

struct failinit_conf {
    char *reason;
};

static const struct otr_conf_field failinit_fields[] = {
    OTR_CONF_FIELD("reason", OTR_CONF_STRING, struct failinit_conf, reason, .def = "\"on purpose\"",
                   .help = "Why init fails."),
    OTR_CONF_TABLE_END,
};

static int failinit_init(otr_ctx *ctx, const void *conf)
{
    const struct failinit_conf *c = conf;
    ctx->host->conf_error(ctx, "reason", "init failed: %s", c->reason);
    return OTR_ECONFIG;
}

OTR_MODULE_EXPORT const struct otr_module otr_module_failinit = {
    .magic = OTR_MODULE_MAGIC,
    .abi_major = OTR_ABI_MAJOR,
    .abi_minor = OTR_ABI_MINOR,
    .size = sizeof(struct otr_module),
    .build_sig = OTR_BUILD_SIG,
    .name = "failinit",
    .version = "1.0.0",
    .summary = "Test module whose init fails.",
    .roles = OTR_ROLE_ANY,
    .conf = failinit_fields,
    .conf_size = sizeof(struct failinit_conf),
    .init = failinit_init,
};

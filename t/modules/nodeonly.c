/* A module that supports only the node role: loading it as a sidecar is refused. */
#include "outrider/module.h"

OTR_MODULE_EXPORT const struct otr_module otr_module_nodeonly = {
    .magic = OTR_MODULE_MAGIC,
    .abi_major = OTR_ABI_MAJOR,
    .abi_minor = OTR_ABI_MINOR,
    .size = sizeof(struct otr_module),
    .build_sig = OTR_BUILD_SIG,
    .name = "nodeonly",
    .version = "1.0.0",
    .summary = "Test module for the node role only.",
    .roles = OTR_ROLE_NODE,
};

/* A shared object exporting no otr_module_nosym: the loader must say so. */
#include "outrider/module.h"

OTR_MODULE_EXPORT const struct otr_module otr_module_somethingelse = {
    .magic = OTR_MODULE_MAGIC,
    .abi_major = OTR_ABI_MAJOR,
    .abi_minor = OTR_ABI_MINOR,
    .size = sizeof(struct otr_module),
    .build_sig = OTR_BUILD_SIG,
    .name = "somethingelse",
    .version = "1.0.0",
    .roles = OTR_ROLE_ANY,
};

/* A module built for a future major ABI: the loader must refuse it. */
#include "outrider/module.h"

OTR_MODULE_EXPORT const struct otr_module otr_module_badabi = {
    .magic = OTR_MODULE_MAGIC,
    .abi_major = OTR_ABI_MAJOR + 1,
    .abi_minor = 0,
    .size = sizeof(struct otr_module),
    .build_sig = OTR_BUILD_SIG,
    .name = "badabi",
    .version = "9.9.9",
    .summary = "Test module built for another ABI.",
    .roles = OTR_ROLE_ANY,
};

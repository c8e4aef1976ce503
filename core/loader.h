/*
 * loader: finds module .so files, dlopens them and checks their descriptor
 * before any module code runs: the file, dlopen, the symbol, magic, ABI,
 * descriptor size, build signature, name, role—each failure with its own
 * message naming the module and the file. A loaded module stays loaded for
 * the life of the process (modules are never dlclosed: an in-flight callback
 * or a pending uv handle must never point into unmapped code).
 */
#ifndef OTR_LOADER_H
#define OTR_LOADER_H

#include <stddef.h>

#include "diag.h"
#include "outrider/module.h"

struct otr_loaded_module {
    char *name;
    char *path;
    void *dl;
    /* The descriptor copied into the agent's own layout: members a module
     * built against an older minor lacks are zero (callbacks NULL). */
    struct otr_module desc;
};

/* Loads <dir>/<name>.so (once per process: later calls return the same
 * object). On failure returns a negative code and adds one message to d. */
int otr_loader_open(const char *dir, const char *name, enum otr_role role, struct otr_diag *d,
                    struct otr_loaded_module **out);

/* Calls fn for every *.so in dir, loaded and checked (role ignored); a
 * module failing its checks is passed with mod NULL and the reason. */
void otr_loader_scan(const char *dir, void (*fn)(void *arg, const char *file, const struct otr_loaded_module *mod,
                                                 const char *error),
                     void *arg);

/* Frees every loaded module's bookkeeping at exit (no dlclose under
 * sanitizers, so leak reports still symbolize). */
void otr_loader_shutdown(void);

#endif

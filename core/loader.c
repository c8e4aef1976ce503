#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "util.h"

/* Loaded modules, process-wide; touched on the main thread only. */
static struct otr_loaded_module **loaded;
static size_t n_loaded;

/* The fixed header every ABI version starts with: the loader may read it
 * from any module, whatever its version. */
#define DESC_HEADER_SIZE (offsetof(struct otr_module, build_sig) + sizeof(const char *))

static struct otr_loaded_module *find_loaded(const char *path)
{
    for (size_t i = 0; i < n_loaded; i++)
        if (strcmp(loaded[i]->path, path) == 0)
            return loaded[i];
    return NULL;
}

/* Checks the descriptor; returns NULL or the reason (in buf). */
static const char *check_descriptor(const struct otr_module *m, const char *name, enum otr_role role, char *buf,
                                    size_t len)
{
    if (m->magic != OTR_MODULE_MAGIC)
        return "otr_module_* is not an outrider module descriptor (bad magic)";
    if (m->abi_major != OTR_ABI_MAJOR || m->abi_minor > OTR_ABI_MINOR) {
        snprintf(buf, len, "was built for module ABI %u.%u, this agent has %u.%u: rebuild the module",
                 m->abi_major, m->abi_minor, OTR_ABI_MAJOR, OTR_ABI_MINOR);
        return buf;
    }
    if (m->size < DESC_HEADER_SIZE || (m->abi_minor == OTR_ABI_MINOR && m->size != sizeof(struct otr_module))) {
        snprintf(buf, len, "descriptor size %u does not match ABI %u.%u (expected %zu)", m->size, m->abi_major,
                 m->abi_minor, sizeof(struct otr_module));
        return buf;
    }
    if (!m->build_sig || strcmp(m->build_sig, OTR_BUILD_SIG) != 0) {
        snprintf(buf, len, "was built as \"%s\", this agent is \"%s\": rebuild it with the same build",
                 m->build_sig ? m->build_sig : "(none)", OTR_BUILD_SIG);
        return buf;
    }
    if (!m->name || strcmp(m->name, name) != 0) {
        snprintf(buf, len, "declares the name \"%s\", expected \"%s\"", m->name ? m->name : "(none)", name);
        return buf;
    }
    if (role && !(m->roles & role)) {
        snprintf(buf, len, "does not support the %s role", otr_role_name(role));
        return buf;
    }
    return NULL;
}

/* Opens and checks path; returns the loaded module or NULL with why set. */
static struct otr_loaded_module *load_path(const char *path, const char *name, enum otr_role role, char *why,
                                           size_t whylen)
{
    struct otr_loaded_module *lm = find_loaded(path);
    if (lm) {
        const char *err = check_descriptor(&lm->desc, name, role, why, whylen);
        if (err && err != why)
            snprintf(why, whylen, "%s", err);
        return err ? NULL : lm;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(why, whylen, "%s (is the outrider-mod-%s package installed?)", strerror(errno), name);
        return NULL;
    }
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(why, whylen, "dlopen failed: %s", dlerror());
        return NULL;
    }
    char sym[128];
    snprintf(sym, sizeof sym, "otr_module_%s", name);
    const struct otr_module *m = dlsym(dl, sym);
    if (!m) {
        snprintf(why, whylen, "has no symbol %s: not an outrider module, or built for another name", sym);
        dlclose(dl);
        return NULL;
    }
    const char *err = check_descriptor(m, name, role, why, whylen);
    if (err) {
        if (err != why)
            snprintf(why, whylen, "%s", err);
        dlclose(dl);
        return NULL;
    }
    lm = otr_xcalloc(1, sizeof *lm);
    lm->name = otr_xstrdup(name);
    lm->path = otr_xstrdup(path);
    lm->dl = dl;
    memcpy(&lm->desc, m, m->size < sizeof lm->desc ? m->size : sizeof lm->desc);
    loaded = otr_xrealloc(loaded, (n_loaded + 1) * sizeof *loaded);
    loaded[n_loaded++] = lm;
    return lm;
}

static bool valid_module_name(const char *name)
{
    if (!*name)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

int otr_loader_open(const char *dir, const char *name, enum otr_role role, struct otr_diag *d,
                    struct otr_loaded_module **out)
{
    char path[4096], why[512];
    if (!valid_module_name(name)) {
        otr_diag_at(d, "modules", "module name \"%s\" must be lowercase letters and digits (it names the "
                                  "file, the symbol and the package outrider-mod-<name>)", name);
        return UV_EINVAL;
    }
    snprintf(path, sizeof path, "%s/%s.so", dir, name);
    *out = load_path(path, name, role, why, sizeof why);
    if (!*out) {
        otr_diag_raw(d, "module \"%s\": %s: %s", name, path, why);
        return OTR_ECONFIG;
    }
    return 0;
}

void otr_loader_scan(const char *dir,
                     void (*fn)(void *arg, const char *file, const struct otr_loaded_module *mod, const char *error),
                     void *arg)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0)
        return;
    for (int i = 0; i < n; i++) {
        const char *f = ents[i]->d_name;
        size_t len = strlen(f);
        if (len > 3 && strcmp(f + len - 3, ".so") == 0) {
            char name[256], path[4096], why[512];
            snprintf(name, sizeof name, "%.*s", (int)(len - 3), f);
            snprintf(path, sizeof path, "%s/%s", dir, f);
            const struct otr_loaded_module *lm = load_path(path, name, 0, why, sizeof why);
            fn(arg, path, lm, lm ? NULL : why);
        }
        free(ents[i]);
    }
    free(ents);
}

void otr_loader_shutdown(void)
{
    for (size_t i = 0; i < n_loaded; i++) {
        free(loaded[i]->name);
        free(loaded[i]->path);
        free(loaded[i]);
    }
    free(loaded);
    loaded = NULL;
    n_loaded = 0;
}

/*
 * Lua relabel hook glue: sample -> table -> script -> table -> builder.
 * The result is read while the script's table is still on the Lua stack,
 * so label strings are borrowed from Lua without copies.
 */
#include "metrics_relabel.h"

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

struct relabel_call {
    const struct prom_sample *s;
    struct msnap_builder *b;
    int dropped;
};

static const char *const type_words[] = {
    [PROM_UNTYPED] = "untyped", [PROM_COUNTER] = "counter",   [PROM_GAUGE] = "gauge",
    [PROM_HISTOGRAM] = "histogram", [PROM_SUMMARY] = "summary", [PROM_GAUGEHISTOGRAM] = "gaugehistogram",
    [PROM_INFO] = "info",       [PROM_STATESET] = "stateset",
};

static int relabel_push(lua_State *L, void *arg)
{
    struct relabel_call *c = arg;
    const struct prom_sample *s = c->s;
    lua_createtable(L, 0, 4);
    lua_pushlstring(L, s->family.p, s->family.n);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, type_words[s->type]);
    lua_setfield(L, -2, "type");
    lua_pushnumber(L, s->value);
    lua_setfield(L, -2, "value");
    lua_createtable(L, 0, (int)s->n_labels);
    for (size_t i = 0; i < s->n_labels; i++) {
        lua_pushlstring(L, s->labels[i].name.p, s->labels[i].name.n);
        lua_pushlstring(L, s->labels[i].value.p, s->labels[i].value.n);
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "labels");
    return 1;
}

static bool label_less(const struct prom_label *a, const struct prom_label *b)
{
    size_t n = a->name.n < b->name.n ? a->name.n : b->name.n;
    int c = memcmp(a->name.p, b->name.p, n);
    return c < 0 || (c == 0 && a->name.n < b->name.n);
}

static int relabel_pull(lua_State *L, int nres, void *arg)
{
    struct relabel_call *c = arg;
    if (lua_isnil(L, -1) || (lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
        c->dropped = 1;
        return 0;
    }
    if (!lua_istable(L, -1))
        return OTR_EFALLBACK;
    struct prom_sample out = *c->s;
    /* A renamed family keeps the sample's suffix (_bucket, _sum, ...). */
    lua_getfield(L, -1, "name");
    size_t n;
    const char *name = lua_tolstring(L, -1, &n);
    if (!name || lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        return OTR_EFALLBACK;
    }
    char sample_name[512];
    size_t sfx = c->s->name.n - c->s->family.n;
    if (n + sfx >= sizeof sample_name) {
        lua_pop(L, 1);
        return OTR_EFALLBACK;
    }
    memcpy(sample_name, name, n);
    memcpy(sample_name + n, c->s->name.p + c->s->family.n, sfx);
    out.family = (struct prom_str){name, n};
    out.name = (struct prom_str){sample_name, n + sfx};
    lua_getfield(L, -2, "value");
    if (lua_type(L, -1) == LUA_TNUMBER)
        out.value = lua_tonumber(L, -1);
    lua_pop(L, 1);
    out.n_labels = 0;
    lua_getfield(L, -2, "labels");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING && out.n_labels < PROM_MAX_LABELS) {
                struct prom_label *l = &out.labels[out.n_labels++];
                l->name.p = lua_tolstring(L, -2, &l->name.n);
                l->value.p = lua_tolstring(L, -1, &l->value.n);
            }
            lua_pop(L, 1);
        }
    }
    /* Lua tables have no order: sort labels so series stay stable. */
    for (size_t i = 1; i < out.n_labels; i++) {
        struct prom_label l = out.labels[i];
        size_t j = i;
        while (j > 0 && label_less(&l, &out.labels[j - 1])) {
            out.labels[j] = out.labels[j - 1];
            j--;
        }
        out.labels[j] = l;
    }
    msnap_builder_add_prom(c->b, &out);
    lua_pop(L, 2);
    return 0;
}

int metrics_relabel_add(const struct otr_host *host, otr_hook *hook, otr_worker *w, struct msnap_builder *b,
                        const struct prom_sample *s)
{
    struct relabel_call c = {.s = s, .b = b};
    if (host->hook_run(hook, w, relabel_push, relabel_pull, 1, &c) != 0) {
        msnap_builder_add_prom(b, s);
        return 0;
    }
    return c.dropped;
}

/*
 * proxy_route: matching requests to routes and routes to clusters.
 * Routes are tried in configuration order; the first whose every condition
 * holds wins.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"

static int cluster_index(struct proxy_state *st, const char *name)
{
    for (size_t i = 0; i < st->n_clusters; i++)
        if (strcmp(st->clusters[i].conf->name, name) == 0)
            return (int)i;
    return -1;
}

static int route_build(struct proxy_state *st, size_t i, struct proxy_route *r)
{
    const struct otr_host *host = st->host;
    const struct proxy_route_conf *rc = &OTR_CONF_AT(st->conf->routes, struct proxy_route_conf, i);
    char path[96];
    int errors = 0;
    r->conf = rc;
    r->cluster = -1;
    if (!rc->listener[0])
        r->listener_mask = (1u << PROXY_OUTBOUND) | (1u << PROXY_INBOUND);
    else if (strcmp(rc->listener, "outbound") == 0)
        r->listener_mask = 1u << PROXY_OUTBOUND;
    else if (strcmp(rc->listener, "inbound") == 0)
        r->listener_mask = 1u << PROXY_INBOUND;
    else {
        snprintf(path, sizeof path, "routes[%zu].listener", i);
        host->conf_error(st->ctx, path, "expected \"outbound\" or \"inbound\", got \"%s\"", rc->listener);
        errors++;
    }
    r->authority_wildcard = strncmp(rc->authority, "*.", 2) == 0;
    r->authority_has_port = rc->authority[0] != '[' ? strchr(rc->authority, ':') != NULL
                                                    : strstr(rc->authority, "]:") != NULL;
    if (rc->path_exact[0] && rc->path_prefix[0]) {
        snprintf(path, sizeof path, "routes[%zu]", i);
        host->conf_error(st->ctx, path, "path_exact and path_prefix are exclusive");
        errors++;
    }
    if ((rc->path_exact[0] && rc->path_exact[0] != '/') || (rc->path_prefix[0] && rc->path_prefix[0] != '/')) {
        snprintf(path, sizeof path, "routes[%zu].%s", i, rc->path_exact[0] ? "path_exact" : "path_prefix");
        host->conf_error(st->ctx, path, "a path starts with '/'");
        errors++;
    }
    if (rc->cluster[0] && rc->split.n) {
        snprintf(path, sizeof path, "routes[%zu]", i);
        host->conf_error(st->ctx, path, "give either cluster or split, not both");
        errors++;
    } else if (!rc->cluster[0] && !rc->split.n) {
        snprintf(path, sizeof path, "routes[%zu]", i);
        host->conf_error(st->ctx, path, "needs a cluster or a split");
        errors++;
    }
    if (rc->cluster[0] && (r->cluster = cluster_index(st, rc->cluster)) < 0) {
        snprintf(path, sizeof path, "routes[%zu].cluster", i);
        host->conf_error(st->ctx, path, "no cluster named \"%s\"", rc->cluster);
        errors++;
    }
    if (rc->split.n) {
        r->n_split = rc->split.n;
        r->split_cluster = calloc(rc->split.n, sizeof *r->split_cluster);
        r->split_weight = calloc(rc->split.n, sizeof *r->split_weight);
        if (!r->split_cluster || !r->split_weight)
            return 1;
        for (size_t k = 0; k < rc->split.n; k++) {
            const struct proxy_split_conf *sc = &OTR_CONF_AT(rc->split, struct proxy_split_conf, k);
            r->split_weight[k] = sc->weight;
            r->total_weight += sc->weight;
            if ((r->split_cluster[k] = cluster_index(st, sc->cluster)) < 0) {
                snprintf(path, sizeof path, "routes[%zu].split[%zu].cluster", i, k);
                host->conf_error(st->ctx, path, "no cluster named \"%s\"", sc->cluster);
                errors++;
            }
        }
        if (r->total_weight == 0) {
            snprintf(path, sizeof path, "routes[%zu].split", i);
            host->conf_error(st->ctx, path, "all weights are 0");
            errors++;
        }
    }
    return errors;
}

int proxy_routes_build(struct proxy_state *st)
{
    int errors = 0;
    st->n_routes = st->conf->routes.n;
    st->routes = calloc(st->n_routes ? st->n_routes : 1, sizeof *st->routes);
    if (!st->routes)
        return UV_ENOMEM;
    for (size_t i = 0; i < st->n_routes; i++)
        errors += route_build(st, i, &st->routes[i]);
    const char *names[PROXY_LISTENERS] = { st->conf->outbound.default_cluster, st->conf->inbound.default_cluster };
    const char *paths[PROXY_LISTENERS] = { "outbound.default_cluster", "inbound.default_cluster" };
    for (int l = 0; l < PROXY_LISTENERS; l++) {
        st->default_cluster[l] = -1;
        if (names[l][0] && (st->default_cluster[l] = cluster_index(st, names[l])) < 0) {
            st->host->conf_error(st->ctx, paths[l], "no cluster named \"%s\"", names[l]);
            errors++;
        }
    }
    return errors ? OTR_ECONFIG : 0;
}

void proxy_routes_free(struct proxy_state *st)
{
    for (size_t i = 0; i < st->n_routes; i++) {
        free(st->routes[i].split_cluster);
        free(st->routes[i].split_weight);
    }
    free(st->routes);
    st->routes = NULL;
}

static bool span_eq_case(const char *a, size_t an, const char *b)
{
    return strlen(b) == an && strncasecmp(a, b, an) == 0;
}

/* The host part of an authority: without ":port" (brackets kept). */
static size_t authority_host_len(const char *a, size_t n)
{
    size_t i = n;
    while (i > 0 && a[i - 1] >= '0' && a[i - 1] <= '9')
        i--;
    if (i > 0 && i < n + 1 && a[i - 1] == ':' && (a[0] != '[' || (i >= 2 && a[i - 2] == ']')))
        return i - 1;
    return n;
}

static bool authority_match(const struct proxy_route *r, const char *a, size_t n)
{
    const char *pat = r->conf->authority;
    if (!pat[0])
        return true;
    if (r->authority_has_port)
        return span_eq_case(a, n, pat);
    size_t hn = authority_host_len(a, n);
    if (r->authority_wildcard) {
        size_t sl = strlen(pat + 1); /* ".suffix" */
        return hn > sl && strncasecmp(a + hn - sl, pat + 1, sl) == 0;
    }
    return span_eq_case(a, hn, pat);
}

struct proxy_route *proxy_route_match(struct proxy_state *st, enum proxy_listener_id l,
                                      const struct proxy_req_view *v)
{
    const char *path = v->path;
    size_t path_len = v->path_len;
    const char *q = memchr(path, '?', path_len);
    if (q)
        path_len = (size_t)(q - path);
    for (size_t i = 0; i < st->n_routes; i++) {
        struct proxy_route *r = &st->routes[i];
        const struct proxy_route_conf *rc = r->conf;
        if (!(r->listener_mask & (1u << l)))
            continue;
        if (!authority_match(r, v->authority, v->authority_len))
            continue;
        if (rc->path_exact[0] && !(strlen(rc->path_exact) == path_len && !memcmp(rc->path_exact, path, path_len)))
            continue;
        if (rc->path_prefix[0]) {
            size_t pl = strlen(rc->path_prefix);
            if (pl > path_len || memcmp(rc->path_prefix, path, pl) != 0)
                continue;
        }
        if (rc->method[0] && !(strlen(rc->method) == v->method_len && !memcmp(rc->method, v->method, v->method_len)))
            continue;
        bool all = true;
        for (size_t k = 0; k < rc->headers.n && all; k++)
            all = v->header_eq(v->arg, rc->headers.items[k].key, rc->headers.items[k].value);
        if (all)
            return r;
    }
    return NULL;
}

int proxy_route_cluster(const struct proxy_route *r, uint64_t *rng)
{
    if (r->cluster >= 0)
        return r->cluster;
    int64_t x = (int64_t)(proxy_rand(rng) % (uint64_t)r->total_weight);
    for (size_t k = 0; k < r->n_split; k++) {
        if (x < r->split_weight[k])
            return r->split_cluster[k];
        x -= r->split_weight[k];
    }
    return r->split_cluster[r->n_split - 1];
}

bool proxy_route_drops_header(const struct proxy_route_conf *rc, const char *name, size_t nl)
{
    /* The mesh's own headers: set by the outgoing agent, consumed by the
     * incoming one; what a client sent is never passed on. */
    if ((nl == PROXY_MESH_DST_LEN && strncasecmp(name, PROXY_MESH_DST, nl) == 0) ||
        (nl == PROXY_MESH_CALLER_LEN && strncasecmp(name, PROXY_MESH_CALLER, nl) == 0))
        return true;
    if (!rc)
        return false;
    for (size_t i = 0; i < rc->remove_headers.n; i++) {
        const char *h = OTR_CONF_AT(rc->remove_headers, char *, i);
        if (strlen(h) == nl && strncasecmp(h, name, nl) == 0)
            return true;
    }
    for (size_t i = 0; i < rc->add_headers.n; i++) {
        const char *k = rc->add_headers.items[i].key;
        if (strlen(k) == nl && strncasecmp(k, name, nl) == 0)
            return true;
    }
    return false;
}

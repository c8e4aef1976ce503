/*
 * proxy_caller: who is calling. Normally the pod owning the request's
 * source address (node role: from the inventory; sidecar role: the own
 * pod). Across an agent-to-agent hop the incoming agent sees only the
 * outgoing agent's address, so that agent names the calling pod in
 * x-outrider-caller: "namespace/name". The incoming side believes the
 * header only when the connection comes from a node agent listed in
 * proxy.mesh.agents; from anyone else it is ignored, and it is never
 * passed on to an app (proxy_route.c drops it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

static bool dns_char(char ch, bool dot)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || (dot && ch == '.');
}

/* A Kubernetes name: a DNS label (namespace) or subdomain (pod name):
 * lower-case alphanumerics, '-' (and '.'), starting and ending with an
 * alphanumeric. */
static bool dns_name_ok(const char *s, size_t n, size_t max, bool dot)
{
    if (n == 0 || n > max || s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!dns_char(s[i], dot))
            return false;
    return true;
}

bool proxy_caller_parse(const char *value, size_t len, char out[PROXY_CALLER_MAX])
{
    const char *slash = len ? memchr(value, '/', len) : NULL;
    if (!slash)
        return false;
    size_t nl = (size_t)(slash - value);
    if (!dns_name_ok(value, nl, 63, false) || !dns_name_ok(slash + 1, len - nl - 1, 253, true))
        return false;
    memcpy(out, value, len);
    out[len] = 0;
    return true;
}

void proxy_caller_take(struct proxy_worker *pw, enum proxy_listener_id l, const struct sockaddr *peer,
                       struct proxy_caller_buf **cbp, const char *value, size_t len, unsigned count)
{
    struct proxy_caller_buf *cb = *cbp;
    if (cb)
        cb->has_fwd = false;
    if (l != PROXY_INBOUND || !peer || !proxy_mesh_trusts_caller(pw->st, peer))
        return;
    if (!cb && !(cb = *cbp = calloc(1, sizeof *cb)))
        return; /* out of memory: the caller stays the source address's */
    cb->has_fwd = true;
    /* An agent speaks for its caller: one it cannot name (none, several or
     * a malformed one) is unknown, not the agent's own node. */
    if (count != 1 || !proxy_caller_parse(value, len, cb->fwd))
        cb->fwd[0] = 0;
}

struct pod_find {
    const char *ns, *name;
    char ip[64];
};

static void pod_find_on_pod(void *arg, const struct otr_pod *pod)
{
    struct pod_find *f = arg;
    if (!f->ip[0] && pod->ip[0] && strcmp(pod->namespace_, f->ns) == 0 && strcmp(pod->name, f->name) == 0)
        snprintf(f->ip, sizeof f->ip, "%s", pod->ip);
}

/* The inventory's pod namespace/name, as a reference, or NULL. */
static const struct otr_pod *pod_by_name(struct proxy_state *st, const char *ns, const char *name)
{
    struct pod_find f = { ns, name, "" };
    st->host->pods_foreach(st->ctx, pod_find_on_pod, &f);
    struct sockaddr_storage sa;
    if (!f.ip[0] || (uv_ip4_addr(f.ip, 0, (struct sockaddr_in *)&sa) != 0 &&
                     uv_ip6_addr(f.ip, 0, (struct sockaddr_in6 *)&sa) != 0))
        return NULL;
    /* foreach only lends its pods: take a reference through the address,
     * and check it is still the same pod (the inventory may have changed). */
    const struct otr_pod *pod = st->host->pod_by_addr(st->ctx, (struct sockaddr *)&sa);
    if (pod && (strcmp(pod->namespace_, ns) != 0 || strcmp(pod->name, name) != 0)) {
        st->host->pod_unref(pod);
        pod = NULL;
    }
    return pod;
}

const struct otr_pod *proxy_caller_get(struct proxy_state *st, const struct sockaddr *peer,
                                       const struct proxy_caller_buf *cb, bool labels, struct proxy_caller *out)
{
    memset(out, 0, sizeof *out);
    if (!cb || !cb->has_fwd)
        return out->ref = peer ? st->host->pod_by_addr(st->ctx, peer) : NULL;
    const char *slash = strchr(cb->fwd, '/');
    if (!slash)
        return NULL;
    size_t nl = (size_t)(slash - cb->fwd);
    memcpy(out->ns, cb->fwd, nl);
    out->ns[nl] = 0;
    snprintf(out->name, sizeof out->name, "%s", slash + 1);
    if (labels && (out->ref = pod_by_name(st, out->ns, out->name)))
        return out->ref;
    out->own.namespace_ = out->ns;
    out->own.name = out->name;
    out->own.uid = out->own.node = out->own.ip = "";
    return &out->own;
}

void proxy_caller_put(struct proxy_state *st, struct proxy_caller *c)
{
    if (c->ref)
        st->host->pod_unref(c->ref);
    c->ref = NULL;
}

size_t proxy_caller_text(struct proxy_state *st, const struct sockaddr *peer, const struct proxy_caller_buf *cb,
                         char *buf)
{
    if (cb && cb->has_fwd) {
        size_t n = strlen(cb->fwd);
        memcpy(buf, cb->fwd, n + 1);
        return n;
    }
    const struct otr_pod *pod = peer ? st->host->pod_by_addr(st->ctx, peer) : NULL;
    size_t n = 0;
    buf[0] = 0;
    /* Only a name the incoming side would accept is sent. */
    if (pod) {
        size_t nl = strlen(pod->namespace_), pl = strlen(pod->name);
        if (nl + 1 + pl < PROXY_CALLER_MAX && dns_name_ok(pod->namespace_, nl, 63, false) &&
            dns_name_ok(pod->name, pl, 253, true)) {
            memcpy(buf, pod->namespace_, nl);
            buf[nl] = '/';
            memcpy(buf + nl + 1, pod->name, pl + 1);
            n = nl + 1 + pl;
        }
        st->host->pod_unref(pod);
    }
    return n;
}

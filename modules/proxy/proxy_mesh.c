/*
 * proxy_mesh: the agent-to-agent topology (what Linkerd 1 ran as a
 * DaemonSet with its daemonset transformer).
 *
 * Outgoing: an endpoint whose address lies in the pods of a configured
 * agent (proxy.mesh.agents: a node agent and its node's pod CIDRs, or a
 * sidecar and its pod's address) is not called directly: the connection
 * goes to that agent's incoming listener, and every request on it carries
 * the endpoint in x-outrider-dst. Endpoints of no agent, and the pods of
 * this agent's own node, are called directly.
 *
 * Incoming: a request on the inbound listener carrying x-outrider-dst is
 * delivered to that address, but only if it is local: a pod of this node
 * (the inventory says the pod is on this node, or the address is in the
 * pod CIDRs of this node's entry in agents) or, for a sidecar, its own pod.
 * Anything else is refused with 403 and a log line: an incoming listener
 * is no open relay. The header is never forwarded (proxy_route.c drops it).
 * The calling pod travels in x-outrider-caller (proxy_caller.c), believed
 * only from node agents listed here (proxy_mesh_trusts_caller).
 *
 * Local destinations are delivered through slot clusters appended to the
 * configured ones: one endpoint each, whose address is set per worker when
 * a slot is taken. A slot without requests in flight is reused for another
 * destination, its pooled connections closed first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy.h"
#include "proxy_h2.h"

#define M(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_mesh_conf, m, __VA_ARGS__)
#define A(k, t, m, ...) OTR_CONF_FIELD(k, t, struct proxy_mesh_agent_conf, m, __VA_ARGS__)

static const struct otr_conf_field cidr_elem = {
    .type = OTR_CONF_STRING, .max = 64, .help = "A CIDR (\"10.1.0.0/24\", \"fd00::/64\") or one address."};

static const struct otr_conf_field agent_fields[] = {
    A("node", OTR_CONF_STRING, node, .def = "\"\"", .max = 253,
      .help = "The node the agent serves; the entry naming this agent's own node tells the incoming side its "
              "local pods, and is never used as a hop. Empty for a sidecar."),
    A("address", OTR_CONF_ADDRESS, address, .flags = OTR_CONF_REQUIRED,
      .help = "Its incoming listener, \"ip:port\": a node agent's proxy.inbound (4141) or a sidecar's (4143)."),
    A("pods", OTR_CONF_ARRAY, pods, .elem = &cidr_elem, .elem_size = sizeof(char *), .min = 1, .max = 64,
      .help = "Addresses it delivers to: the node's pod CIDRs (node.spec.podCIDRs), or the sidecar's pod IP."),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field agent_elem = {
    .type = OTR_CONF_OBJECT, .fields = agent_fields, .help = "An agent and the pods it delivers to."};

const struct otr_conf_field proxy_mesh_conf_fields[] = {
    M("enabled", OTR_CONF_BOOL, enabled, .def = "false",
      .help = "Send calls for endpoints in an agent's pods through that agent (naming the calling pod in "
              "x-outrider-caller), and deliver x-outrider-dst requests arriving on the inbound listener to this "
              "agent's own pods (others: 403), running the route script on them as policy."),
    M("agents", OTR_CONF_ARRAY, agents, .elem = &agent_elem, .elem_size = sizeof(struct proxy_mesh_agent_conf),
      .max = 4096, .help = "The agents of the mesh; the first whose pods hold an endpoint carries calls to it. Incoming side: "
              "x-outrider-caller (the calling pod) is believed only from the address of a node agent listed "
              "here (one with node, not this node)."),
    M("sidecar_annotation", OTR_CONF_STRING, sidecar_annotation, .def = "\"outrider.io/inbound-port\"", .max = 253,
      .help = "Outgoing side: a pod of the inventory whose annotation of this name holds a port (\"4143\") has a "
              "sidecar listening there on the pod IP, used as the agent for that pod when no agents entry "
              "holds its address. \"\": off."),
    M("local_slots", OTR_CONF_INT, local_slots, .def = "64", .min = 1, .max = 4096,
      .help = "Incoming side: local destinations with open connections at a time, per worker and protocol; "
              "a slot without requests in flight is reused, beyond that 503."),
    M("connect_timeout", OTR_CONF_DURATION, connect_timeout, .def = "\"1s\"", .min = 1, .max = 600000,
      .help = "Incoming side: time allowed to connect to a local pod."),
    M("request_timeout", OTR_CONF_DURATION, request_timeout, .def = "\"15s\"", .max = 3600000,
      .help = "Incoming side: time for a delivered request's response to complete; 0: none."),
    OTR_CONF_TABLE_END,
};

/* An address as 16 bytes: IPv6, or IPv4-mapped IPv6. */
struct mesh_cidr {
    unsigned char net[16];
    unsigned bits;
};

struct mesh_agent {
    struct sockaddr_storage addr;
    bool own_node; /* names this agent's node: its pods are local here */
    bool node_agent; /* serves a node (node given), not one pod */
    struct mesh_cidr *cidrs;
    size_t n_cidrs;
};

struct proxy_mesh {
    const struct proxy_mesh_conf *conf;
    struct mesh_agent *agents;
    size_t n_agents;
    unsigned char (*trusted)[16]; /* node agents' addresses, sorted: whose x-outrider-caller is believed */
    size_t n_trusted;
    size_t first_slot, n_slots; /* slot clusters: n_slots HTTP/1.1, then n_slots HTTP/2 */
    struct proxy_cluster_conf slot_conf[2];
    otr_metric *m_requests;
};

struct mesh_slot {
    struct sockaddr_storage addr;
    char text[64];
    uint64_t last_ms;
    bool used;
};

struct proxy_mesh_worker {
    struct mesh_slot *slots; /* 2 * n_slots, like the slot clusters */
    otr_series *s_out, *s_in, *s_refused;
    struct sockaddr_storage listen[PROXY_LISTENERS]; /* ss_family 0: none */
    uint64_t log_ms;    /* last refusal logged */
    unsigned log_quiet; /* refusals not logged since */
};

/* --- addresses -------------------------------------------------------------- */

static bool key_from_sockaddr(const struct sockaddr *sa, unsigned char key[16])
{
    if (sa->sa_family == AF_INET) {
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

static uint16_t sockaddr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

static bool sockaddr_same(const struct sockaddr *a, const struct sockaddr *b)
{
    unsigned char ka[16], kb[16];
    return key_from_sockaddr(a, ka) && key_from_sockaddr(b, kb) && memcmp(ka, kb, 16) == 0 &&
           sockaddr_port(a) == sockaddr_port(b);
}

static bool key_is_wildcard(const unsigned char k[16])
{
    static const unsigned char any6[16], any4[16] = { [10] = 0xff, [11] = 0xff };
    return memcmp(k, any6, 16) == 0 || memcmp(k, any4, 16) == 0;
}

static bool key_is_loopback(const unsigned char k[16])
{
    static const unsigned char lo6[16] = { [15] = 1 }, v4[12] = { [10] = 0xff, [11] = 0xff };
    return memcmp(k, lo6, 16) == 0 || (memcmp(k, v4, 12) == 0 && k[12] == 127);
}

/* "ip:port" or "[v6]:port" (the form of x-outrider-dst) into sa. */
static bool hostport_parse(const char *s, size_t n, struct sockaddr_storage *sa)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *colon = strrchr(buf, ':');
    if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) || strlen(colon + 1) > 5)
        return false;
    long port = strtol(colon + 1, NULL, 10);
    if (port < 1 || port > 65535)
        return false;
    *colon = 0;
    memset(sa, 0, sizeof *sa);
    if (buf[0] == '[') {
        size_t hl = strlen(buf);
        if (hl < 3 || buf[hl - 1] != ']')
            return false;
        buf[hl - 1] = 0;
        return uv_ip6_addr(buf + 1, (int)port, (struct sockaddr_in6 *)sa) == 0;
    }
    return uv_ip4_addr(buf, (int)port, (struct sockaddr_in *)sa) == 0;
}

static bool cidr_parse(const char *s, struct mesh_cidr *c)
{
    char buf[64];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n + 1);
    long bits = -1;
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash = 0;
        if (!slash[1] || strspn(slash + 1, "0123456789") != strlen(slash + 1) || strlen(slash + 1) > 3)
            return false;
        bits = strtol(slash + 1, NULL, 10);
    }
    struct in_addr v4;
    memset(c->net, 0, sizeof c->net);
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        if (bits > 32)
            return false;
        c->net[10] = c->net[11] = 0xff;
        memcpy(c->net + 12, &v4, 4);
        c->bits = 96 + (unsigned)(bits < 0 ? 32 : bits);
    } else if (inet_pton(AF_INET6, buf, c->net) == 1) {
        if (bits > 128)
            return false;
        c->bits = (unsigned)(bits < 0 ? 128 : bits);
    } else {
        return false;
    }
    /* Host bits set ("10.1.0.5/24") are almost always a typo: refuse. */
    for (unsigned b = c->bits; b < 128; b++)
        if (c->net[b / 8] & (0x80u >> (b % 8)))
            return false;
    return true;
}

static bool cidr_contains(const struct mesh_cidr *c, const unsigned char k[16])
{
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->net, k, full) != 0)
        return false;
    return !rest || ((c->net[full] ^ k[full]) & (0xffu << (8 - rest)) & 0xffu) == 0;
}

static bool agent_holds(const struct mesh_agent *a, const unsigned char k[16])
{
    for (size_t i = 0; i < a->n_cidrs; i++)
        if (cidr_contains(&a->cidrs[i], k))
            return true;
    return false;
}

/* The first configured agent whose pods hold sa, or -1. */
static int agent_holding(const struct proxy_mesh *m, const struct sockaddr *sa)
{
    unsigned char k[16];
    if (!key_from_sockaddr(sa, k))
        return -1;
    for (size_t i = 0; i < m->n_agents; i++)
        if (agent_holds(&m->agents[i], k))
            return (int)i;
    return -1;
}

/* The agent to reach endpoint sa through, or -1 to call it directly. */
static int agent_for(const struct proxy_mesh *m, const struct sockaddr *sa)
{
    int i = agent_holding(m, sa);
    /* Own node's pods are called directly, and so is an agent's own
     * listener given as an endpoint. */
    if (i < 0 || m->agents[i].own_node || sockaddr_same(sa, (const struct sockaddr *)&m->agents[i].addr))
        return -1;
    return i;
}

/* --- building ---------------------------------------------------------------- */

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* The addresses whose x-outrider-caller is believed, sorted for a binary
 * search per request: node agents' (by IP: they call from ephemeral
 * ports), not this node's own (never a hop to itself). A sidecar's is
 * its pod's, shared with the apps in it: its word is not taken (that
 * pod, known by address, is its caller anyway). */
static int trusted_build(struct proxy_mesh *m)
{
    m->trusted = calloc(m->n_agents ? m->n_agents : 1, sizeof *m->trusted);
    if (!m->trusted)
        return UV_ENOMEM;
    for (size_t i = 0; i < m->n_agents; i++) {
        const struct mesh_agent *a = &m->agents[i];
        if (a->node_agent && !a->own_node &&
            key_from_sockaddr((const struct sockaddr *)&a->addr, m->trusted[m->n_trusted]))
            m->n_trusted++;
    }
    qsort(m->trusted, m->n_trusted, sizeof *m->trusted, key_cmp);
    return 0;
}

static int agents_build(struct proxy_state *st, struct proxy_mesh *m)
{
    const struct proxy_mesh_conf *mc = &st->conf->mesh;
    const char *node = st->host->node_name(st->ctx);
    const struct otr_pod *self = st->host->role(st->ctx) == OTR_ROLE_SIDECAR ? st->host->self_pod(st->ctx) : NULL;
    struct sockaddr_storage self_sa;
    unsigned char self_buf[16];
    const unsigned char *self_key = NULL;
    if (self && self->ip[0] &&
        (uv_ip4_addr(self->ip, 0, (struct sockaddr_in *)&self_sa) == 0 ||
         uv_ip6_addr(self->ip, 0, (struct sockaddr_in6 *)&self_sa) == 0) &&
        key_from_sockaddr((const struct sockaddr *)&self_sa, self_buf))
        self_key = self_buf;
    int errors = 0;
    char path[96];
    m->n_agents = mc->agents.n;
    m->agents = calloc(m->n_agents ? m->n_agents : 1, sizeof *m->agents);
    if (!m->agents)
        return UV_ENOMEM;
    for (size_t i = 0; i < m->n_agents; i++) {
        const struct proxy_mesh_agent_conf *ac = &OTR_CONF_AT(mc->agents, struct proxy_mesh_agent_conf, i);
        struct mesh_agent *a = &m->agents[i];
        a->own_node = ac->node[0] && node && node[0] && strcmp(ac->node, node) == 0;
        a->node_agent = ac->node[0] != 0;
        const struct otr_conf_address *ad = &ac->address;
        if (ad->is_unix || ad->port == 0 ||
            (uv_ip4_addr(ad->host, ad->port, (struct sockaddr_in *)&a->addr) != 0 &&
             uv_ip6_addr(ad->host, ad->port, (struct sockaddr_in6 *)&a->addr) != 0)) {
            snprintf(path, sizeof path, "mesh.agents[%zu].address", i);
            st->host->conf_error(st->ctx, path, "expected an IP address with a port, got \"%s\"", ad->text);
            errors++;
        }
        a->cidrs = calloc(ac->pods.n ? ac->pods.n : 1, sizeof *a->cidrs);
        if (!a->cidrs)
            return UV_ENOMEM;
        for (size_t k = 0; k < ac->pods.n; k++) {
            const char *s = OTR_CONF_AT(ac->pods, char *, k);
            if (!cidr_parse(s, &a->cidrs[a->n_cidrs])) {
                snprintf(path, sizeof path, "mesh.agents[%zu].pods[%zu]", i, k);
                st->host->conf_error(st->ctx, path,
                                     "expected a CIDR like \"10.1.0.0/24\" (no host bits) or an address, got \"%s\"", s);
                errors++;
                continue;
            }
            a->n_cidrs++;
        }
        /* A sidecar's own entry: its pod is local, never a hop. */
        if (self_key && agent_holds(a, self_key))
            a->own_node = true;
    }
    return errors ? OTR_ECONFIG : trusted_build(m);
}

/* Appends the slot clusters (HTTP/1.1 then HTTP/2) to st->clusters. */
static int slots_build(struct proxy_state *st, struct proxy_mesh *m)
{
    const struct proxy_mesh_conf *mc = &st->conf->mesh;
    m->n_slots = (size_t)mc->local_slots;
    m->first_slot = st->n_clusters;
    for (int p = 0; p < 2; p++) {
        struct proxy_cluster_conf *cc = &m->slot_conf[p];
        cc->name = "mesh-local";
        cc->lb = PROXY_LB_ROUND_ROBIN;
        cc->protocol = p ? PROXY_PROTO_H2 : PROXY_PROTO_HTTP1;
        cc->connect_timeout = mc->connect_timeout;
        cc->request_timeout = mc->request_timeout;
        cc->idle_timeout = 60000;
        cc->max_connections = 1024;
        cc->max_pending = 1024;
        cc->max_idle = 64;
        cc->retries = 0; /* one pod: nowhere else to go */
        /* The other cluster keys are off here, stated rather than left to
         * zeroes: no retry conditions, body held, ejection, health checks
         * or request limit (max_connections and the slots bound it). */
        cc->endpoints_file = "";
        cc->retry_budget = 0;
        cc->retry_buffer = 0;
        cc->retry_backoff = 0;
        cc->max_requests = 0;
        cc->outlier.consecutive_failures = 0;
        cc->health_check.path = "";
        cc->health_check.host = "";
        cc->health_check.grpc = false;
        cc->health_check.grpc_service = "";
    }
    /* clusters_build reserved the room: the array does not move. */
    size_t n = st->n_clusters + 2 * m->n_slots;
    for (size_t i = st->n_clusters; i < n; i++) {
        struct proxy_cluster *c = &st->clusters[i];
        bool h2 = i - m->first_slot >= m->n_slots;
        c->conf = &m->slot_conf[h2 ? 1 : 0];
        /* One endpoint, its address set whenever the slot is assigned a
         * destination (slot_assign); no discovery. */
        c->set = calloc(1, sizeof *c->set);
        c->n_set = 1;
        c->version = 1;
        st->n_clusters = i + 1; /* freed by state_free from here on */
        if (!c->set || uv_mutex_init(&c->lock) != 0)
            return UV_ENOMEM;
        c->lock_init = true;
    }
    return 0;
}

int proxy_mesh_build(struct proxy_state *st)
{
    const struct proxy_mesh_conf *mc = &st->conf->mesh;
    if (!mc->enabled) {
        if (mc->agents.n) {
            st->host->conf_error(st->ctx, "mesh.agents", "agents are given but mesh.enabled is false");
            return OTR_ECONFIG;
        }
        return 0;
    }
    struct proxy_mesh *m = calloc(1, sizeof *m);
    if (!m)
        return UV_ENOMEM;
    m->conf = mc;
    st->mesh = m;
    int rc = agents_build(st, m);
    if (rc)
        return rc;
    return slots_build(st, m);
}

void proxy_mesh_free(struct proxy_state *st)
{
    struct proxy_mesh *m = st->mesh;
    if (!m)
        return;
    for (size_t i = 0; i < m->n_agents; i++)
        free(m->agents[i].cidrs);
    free(m->agents);
    free(m->trusted);
    for (unsigned w = 0; st->workers && w < st->n_workers; w++) {
        struct proxy_mesh_worker *mw = st->workers[w].mesh;
        if (mw)
            free(mw->slots);
        free(mw);
        st->workers[w].mesh = NULL;
    }
    free(m);
    st->mesh = NULL;
}

int proxy_mesh_metrics(struct proxy_state *st)
{
    static const char *const direction[] = { "direction", NULL };
    const struct otr_metric_desc d = {
        "outrider_proxy_mesh_requests_total",
        "Agent-to-agent requests: outgoing (sent to another agent), incoming (delivered to a local pod), "
        "refused (destination not local, malformed or no slot).",
        OTR_METRIC_COUNTER, direction, NULL, 0 };
    if (!st->mesh)
        return 0;
    if (!(st->mesh->m_requests = st->host->metric_new(st->ctx, &d)))
        return UV_EINVAL;
    return 0;
}

int proxy_mesh_worker_start(struct proxy_worker *pw)
{
    struct proxy_state *st = pw->st;
    struct proxy_mesh *m = st->mesh;
    if (!m)
        return 0;
    struct proxy_mesh_worker *mw = calloc(1, sizeof *mw);
    if (!mw)
        return UV_ENOMEM;
    pw->mesh = mw;
    if (!(mw->slots = calloc(2 * m->n_slots, sizeof *mw->slots)))
        return UV_ENOMEM;
    static const char *const dirs[3] = { "outgoing", "incoming", "refused" };
    otr_series **s[3] = { &mw->s_out, &mw->s_in, &mw->s_refused };
    for (int k = 0; k < 3; k++)
        *s[k] = st->host->series(m->m_requests, pw->w, (const char *[]){ dirs[k], NULL });
    for (int l = 0; l < PROXY_LISTENERS; l++) {
        const char *a = st->listeners[l] ? st->host->listener_address(st->listeners[l]) : NULL;
        if (!a || !hostport_parse(a, strlen(a), &mw->listen[l]))
            mw->listen[l].ss_family = 0;
    }
    return 0;
}

/* --- the outgoing side ------------------------------------------------------ */

static bool is_slot(const struct proxy_mesh *m, const struct proxy_wcluster *wc)
{
    return m && (size_t)wc->index >= m->first_slot;
}

void proxy_mesh_endpoint_init(struct proxy_endpoint *ep)
{
    /* Kept on the endpoint, whose address never changes (a slot's
     * endpoint is never a hop): endpoints discovery adds or reorders get
     * theirs when they are made. */
    const struct proxy_mesh *m = ep->wc->pw->st->mesh;
    bool hops = m && !is_slot(m, ep->wc);
    const struct sockaddr *sa = (const struct sockaddr *)&ep->addr.sa;
    ep->mesh_agent = hops ? agent_for(m, sa) : -1;
    /* Slots and endpoints a configured agent holds never look for a
     * sidecar in the inventory. */
    ep->mesh_config = !hops || agent_holding(m, sa) >= 0 || !m->conf->sidecar_annotation[0];
    ep->mesh_sidecar.ss_family = 0;
    ep->mesh_inv = UINT64_MAX; /* looked up at its first connection */
}

/* The port pod announces its sidecar's incoming listener on, or 0. */
static uint16_t sidecar_port(const struct otr_pod *pod, const char *annotation)
{
    for (size_t i = 0; i < pod->n_annotations; i++) {
        const char *v = pod->annotations[i].value;
        if (strcmp(pod->annotations[i].key, annotation) != 0)
            continue;
        if (!v[0] || strlen(v) > 5 || strspn(v, "0123456789") != strlen(v))
            return 0;
        long port = strtol(v, NULL, 10);
        return port >= 1 && port <= 65535 ? (uint16_t)port : 0;
    }
    return 0;
}

/* Looks ep's pod up in the inventory again if it changed since: a pod
 * announcing a sidecar is reached through it (not this agent's own pod,
 * nor the sidecar's listener given as the endpoint). */
static void sidecar_refresh(struct proxy_endpoint *ep)
{
    struct proxy_state *st = ep->wc->pw->st;
    const struct otr_host *host = st->host;
    if (ep->mesh_config)
        return;
    uint64_t v = host->inventory_version(st->ctx);
    if (v == ep->mesh_inv)
        return;
    ep->mesh_inv = v;
    ep->mesh_sidecar.ss_family = 0;
    const struct sockaddr *sa = (const struct sockaddr *)&ep->addr.sa;
    const struct otr_pod *pod = host->pod_by_addr(st->ctx, sa);
    if (!pod)
        return;
    const struct otr_pod *self = host->role(st->ctx) == OTR_ROLE_SIDECAR ? host->self_pod(st->ctx) : NULL;
    uint16_t port = sidecar_port(pod, st->mesh->conf->sidecar_annotation);
    bool own = self && self->ip[0] && strcmp(self->ip, pod->ip) == 0;
    if (port && port != sockaddr_port(sa) && !own) {
        memcpy(&ep->mesh_sidecar, &ep->addr.sa, sizeof ep->mesh_sidecar);
        if (sa->sa_family == AF_INET6)
            ((struct sockaddr_in6 *)&ep->mesh_sidecar)->sin6_port = htons(port);
        else
            ((struct sockaddr_in *)&ep->mesh_sidecar)->sin_port = htons(port);
    }
    host->pod_unref(pod);
}

void proxy_mesh_endpoint_check(struct proxy_endpoint *ep)
{
    const struct proxy_mesh *m = ep->wc->pw->st->mesh;
    if (!m || ep->mesh_config)
        return;
    struct sockaddr_storage before = ep->mesh_sidecar;
    sidecar_refresh(ep);
    if (before.ss_family == ep->mesh_sidecar.ss_family &&
        (!before.ss_family ||
         sockaddr_same((const struct sockaddr *)&before, (const struct sockaddr *)&ep->mesh_sidecar)))
        return;
    /* Pooled connections go the old way: closed, so the next request
     * connects the new one. Connections in use keep their own decision
     * (mesh_hop) until done; HTTP/2 sessions still carrying streams take
     * no new one and end after their last. */
    while (ep->idle)
        proxy_upconn_close(ep->idle);
    proxy_h2up_retire(ep);
}

const struct sockaddr *proxy_endpoint_connect_addr(struct proxy_endpoint *ep, bool *hop)
{
    const struct proxy_mesh *m = ep->wc->pw->st->mesh;
    *hop = false;
    if (!m)
        return (const struct sockaddr *)&ep->addr.sa;
    if (ep->mesh_agent >= 0) {
        *hop = true;
        return (const struct sockaddr *)&m->agents[ep->mesh_agent].addr;
    }
    if (ep->mesh_sidecar.ss_family) {
        *hop = true;
        return (const struct sockaddr *)&ep->mesh_sidecar;
    }
    return (const struct sockaddr *)&ep->addr.sa;
}

const char *proxy_endpoint_text(const struct proxy_endpoint *ep)
{
    return ep->addr.text;
}

const char *proxy_mesh_hop(const struct proxy_endpoint *ep, bool hop, size_t *len)
{
    const struct proxy_worker *pw = ep->wc->pw;
    if (!hop)
        return NULL;
    if (pw->mesh->s_out)
        pw->st->host->counter_add(pw->mesh->s_out, 1);
    const char *t = ep->addr.text;
    *len = strlen(t);
    return t;
}

/* --- the incoming side ------------------------------------------------------ */

bool proxy_mesh_trusts_caller(const struct proxy_state *st, const struct sockaddr *peer)
{
    const struct proxy_mesh *m = st->mesh;
    unsigned char kp[16];
    return m && m->n_trusted && key_from_sockaddr(peer, kp) &&
           bsearch(kp, m->trusted, m->n_trusted, sizeof *m->trusted, key_cmp);
}

/* Whether dst is one of this agent's own listeners (a loop). */
static bool is_own_listener(const struct proxy_mesh_worker *mw, const struct sockaddr *dst)
{
    unsigned char kd[16], kl[16];
    if (!key_from_sockaddr(dst, kd))
        return false;
    for (int l = 0; l < PROXY_LISTENERS; l++) {
        const struct sockaddr *ls = (const struct sockaddr *)&mw->listen[l];
        if (!ls->sa_family || !key_from_sockaddr(ls, kl) || sockaddr_port(ls) != sockaddr_port(dst))
            continue;
        if (memcmp(kd, kl, 16) == 0 || key_is_wildcard(kl) || key_is_loopback(kd))
            return true;
    }
    return false;
}

/* Whether dst is a pod this agent delivers to: its own pod IP (sidecar), or
 * a pod of its node (node: the inventory places the pod on this node, or
 * the address is in this node's pod CIDRs). */
static bool is_local(struct proxy_worker *pw, const struct sockaddr *dst)
{
    struct proxy_state *st = pw->st;
    const struct otr_host *host = st->host;
    unsigned char k[16];
    if (!key_from_sockaddr(dst, k))
        return false;
    if (host->role(st->ctx) == OTR_ROLE_SIDECAR) {
        const struct otr_pod *self = host->self_pod(st->ctx);
        char ip[64] = "";
        if (dst->sa_family == AF_INET)
            uv_ip4_name((const struct sockaddr_in *)dst, ip, sizeof ip);
        else
            uv_ip6_name((const struct sockaddr_in6 *)dst, ip, sizeof ip);
        /* Only the pod IP: other agents address pods by it, and loopback
         * would reach the sidecar's own admin endpoint too. */
        return self && self->ip[0] && strcmp(self->ip, ip) == 0;
    }
    const struct proxy_mesh *m = st->mesh;
    for (size_t i = 0; i < m->n_agents; i++)
        if (m->agents[i].own_node && agent_holds(&m->agents[i], k))
            return true;
    const struct otr_pod *pod = host->pod_by_addr(st->ctx, dst);
    if (!pod)
        return false;
    const char *node = host->node_name(st->ctx);
    bool local = !pod->node[0] || !node || !node[0] || strcmp(pod->node, node) == 0;
    host->pod_unref(pod);
    return local;
}

/* Whether slot cluster ci has nothing in flight (nor a connection that is
 * not pooled), so it may serve another destination. */
static bool slot_idle(struct proxy_worker *pw, size_t ci)
{
    const struct proxy_wcluster *wc = &pw->clusters[ci];
    const struct proxy_endpoint *ep = wc->eps[0];
    if (ep->active || wc->n_pending)
        return false;
    unsigned n_h2;
    if (ep->h2)
        return proxy_h2up_idle(ep, &n_h2) && wc->n_conns == n_h2;
    return wc->n_conns == ep->n_idle;
}

/* Closes what a slot still holds for its previous destination. */
static void slot_retire(struct proxy_worker *pw, size_t ci)
{
    struct proxy_endpoint *ep = pw->clusters[ci].eps[0];
    while (ep->idle)
        proxy_upconn_close(ep->idle);
    proxy_h2up_retire(ep);
    ep->ewma_ms = 0;
    ep->ewma_stamp = 0;
}

/* The slot cluster already serving dst for protocol h2, or -1. */
static int slot_find(struct proxy_worker *pw, bool h2, const struct sockaddr *dst)
{
    const struct proxy_mesh *m = pw->st->mesh;
    struct mesh_slot *slots = pw->mesh->slots + (h2 ? m->n_slots : 0);
    for (size_t i = 0; i < m->n_slots; i++)
        if (slots[i].used && sockaddr_same((const struct sockaddr *)&slots[i].addr, dst)) {
            slots[i].last_ms = uv_now(pw->loop);
            return (int)(m->first_slot + (h2 ? m->n_slots : 0) + i);
        }
    return -1;
}

/* A slot cluster made to serve dst for protocol h2 (a free one, or the
 * least recently used with nothing in flight), or -1 when all are busy. */
static int slot_assign(struct proxy_worker *pw, bool h2, const struct sockaddr *dst)
{
    const struct proxy_mesh *m = pw->st->mesh;
    struct mesh_slot *slots = pw->mesh->slots + (h2 ? m->n_slots : 0);
    size_t base = m->first_slot + (h2 ? m->n_slots : 0);
    uint64_t now = uv_now(pw->loop);
    int best = -1;
    for (size_t i = 0; i < m->n_slots; i++) {
        if (!slots[i].used) {
            best = (int)i;
            break;
        }
        if (slot_idle(pw, base + i) && (best < 0 || slots[i].last_ms < slots[best].last_ms))
            best = (int)i;
    }
    if (best < 0)
        return -1;
    struct mesh_slot *s = &slots[best];
    if (s->used)
        slot_retire(pw, base + (size_t)best);
    memcpy(&s->addr, dst, dst->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    if (dst->sa_family == AF_INET6) {
        char ip[48];
        uv_ip6_name((const struct sockaddr_in6 *)dst, ip, sizeof ip);
        snprintf(s->text, sizeof s->text, "[%s]:%u", ip, sockaddr_port(dst));
    } else {
        char ip[16];
        uv_ip4_name((const struct sockaddr_in *)dst, ip, sizeof ip);
        snprintf(s->text, sizeof s->text, "%s:%u", ip, sockaddr_port(dst));
    }
    s->used = true;
    s->last_ms = now;
    /* The slot's one endpoint now stands for dst (connects, logs). */
    struct proxy_endpoint *ep = pw->clusters[base + (size_t)best].eps[0];
    memset(&ep->addr, 0, sizeof ep->addr);
    memcpy(&ep->addr.sa, &s->addr, sizeof ep->addr.sa);
    snprintf(ep->addr.text, sizeof ep->addr.text, "%s", s->text);
    return (int)(base + (size_t)best);
}

/* Whether dst is an address of this host (node role): the node's own IP
 * is no pod, even if a hostNetwork pod in the inventory carries it, and
 * delivering there would open the node's own services to other agents.
 * Binding a socket to it succeeds exactly when the host has it. Returns 1,
 * 0, or a negative error (then the caller refuses: fail closed). */
static int is_host_address(const struct sockaddr *dst)
{
    int fd = socket(dst->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_storage a;
    socklen_t len = dst->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    memcpy(&a, dst, len);
    if (a.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a)->sin6_port = 0;
    else
        ((struct sockaddr_in *)&a)->sin_port = 0;
    int rc = bind(fd, (struct sockaddr *)&a, len) == 0 ? 1 : errno == EADDRNOTAVAIL ? 0 : -errno;
    close(fd);
    return rc;
}

/* Logs a refusal, at most once a second per worker (a caller retrying in
 * a loop must not flood the log), with the count of those not logged. */
static void refusal_log(struct proxy_worker *pw, const char *peer, const char *why)
{
    struct proxy_mesh_worker *mw = pw->mesh;
    uint64_t now = uv_now(pw->loop);
    if (mw->s_refused)
        pw->st->host->counter_add(mw->s_refused, 1);
    if (mw->log_ms && now - mw->log_ms < 1000) {
        mw->log_quiet++;
        return;
    }
    if (mw->log_quiet)
        pw->st->host->log(pw->st->ctx, OTR_LOG_WARN, "mesh: refused a request from %s: %s (and %u more since)",
                          peer[0] ? peer : "?", why, mw->log_quiet);
    else
        pw->st->host->log(pw->st->ctx, OTR_LOG_WARN, "mesh: refused a request from %s: %s", peer[0] ? peer : "?", why);
    mw->log_ms = now ? now : 1;
    mw->log_quiet = 0;
}

int proxy_mesh_incoming(struct proxy_worker *pw, enum proxy_listener_id l, bool h2, const char *value,
                        size_t len, unsigned count, const char *peer, int *status, char *why, size_t whylen)
{
    struct proxy_mesh_worker *mw = pw->mesh;
    if (!mw || l != PROXY_INBOUND || !value || !count)
        return -1;
    struct sockaddr_storage dst;
    if (count > 1) {
        /* Which one would the next hop believe? Neither. */
        *status = 400;
        snprintf(why, whylen, "mesh: " PROXY_MESH_DST " given %u times", count);
    } else if (!hostport_parse(value, len, &dst)) {
        *status = 400;
        snprintf(why, whylen, "mesh: malformed " PROXY_MESH_DST " \"%.*s\" (expected ip:port)",
                 (int)(len > 64 ? 64 : len), value);
    } else if (is_own_listener(mw, (const struct sockaddr *)&dst)) {
        *status = 403;
        snprintf(why, whylen, "mesh: " PROXY_MESH_DST " %.*s is this agent's own listener", (int)len, value);
    } else if (!is_local(pw, (const struct sockaddr *)&dst)) {
        *status = 403;
        snprintf(why, whylen, "mesh: " PROXY_MESH_DST " %.*s is not %s", (int)len, value,
                 pw->st->host->role(pw->st->ctx) == OTR_ROLE_SIDECAR ? "this pod" : "a pod of this node");
    } else {
        /* A destination gets a slot once; the host-address check (a
         * syscall) is made then. Locality above is checked every time: the
         * inventory changes. */
        const struct sockaddr *d = (const struct sockaddr *)&dst;
        int ci = slot_find(pw, h2, d);
        int host = ci < 0 && pw->st->host->role(pw->st->ctx) == OTR_ROLE_NODE ? is_host_address(d) : 0;
        if (host > 0) {
            *status = 403;
            snprintf(why, whylen, "mesh: " PROXY_MESH_DST " %.*s is an address of this node, not a pod", (int)len,
                     value);
        } else if (host < 0) {
            *status = 503;
            snprintf(why, whylen, "mesh: cannot tell whether " PROXY_MESH_DST " %.*s is this node's: %s", (int)len,
                     value, uv_strerror(host));
        } else if (ci >= 0 || (ci = slot_assign(pw, h2, d)) >= 0) {
            if (mw->s_in)
                pw->st->host->counter_add(mw->s_in, 1);
            return ci;
        } else {
            *status = 503;
            snprintf(why, whylen, "mesh: all %zu local slots are busy", pw->st->mesh->n_slots);
        }
    }
    refusal_log(pw, peer, why);
    return -2;
}

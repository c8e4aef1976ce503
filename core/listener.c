#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

static struct otr_listener *listeners;
static bool keep_paths;

static struct otr_listener *find(const char *name)
{
    for (struct otr_listener *l = listeners; l; l = l->next)
        if (strcmp(l->name, name) == 0)
            return l;
    return NULL;
}

/* An IPv4 or IPv6 literal, the usual listener address, is converted by libuv
 * (its own parser and formatter, in pages the agent maps anyway): libc's
 * getaddrinfo, inet_pton and inet_ntop live in a 64 KiB stretch of libc that
 * nothing else touches at idle, and one call maps all of it for good (the
 * kernel maps file pages 64 KiB around each fault). inet_aton forms
 * ("127.1") and names go to getaddrinfo. (The config admits no IPv6 zone
 * index: otr_parse_address.) */
static bool literal_address(const struct otr_conf_address *a, struct sockaddr_storage *ss, socklen_t *len)
{
    if (!a->host[0])
        return false;
    if (uv_ip4_addr(a->host, a->port, (struct sockaddr_in *)ss) == 0) {
        *len = sizeof(struct sockaddr_in);
        return true;
    }
    if (uv_ip6_addr(a->host, a->port, (struct sockaddr_in6 *)ss) == 0) {
        *len = sizeof(struct sockaddr_in6);
        return true;
    }
    return false;
}

static int resolve(const struct otr_conf_address *a, int kind, struct sockaddr_storage *ss, socklen_t *len,
                   char *err, size_t errlen)
{
    memset(ss, 0, sizeof *ss);
    if (a->is_unix) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        if (strlen(a->host) >= sizeof un->sun_path) {
            snprintf(err, errlen, "unix socket path too long");
            return UV_ENAMETOOLONG;
        }
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, a->host);
        *len = sizeof *un;
        return 0;
    }
    if (literal_address(a, ss, len))
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = kind, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port[8];
    snprintf(port, sizeof port, "%u", a->port);
    int rc = getaddrinfo(a->host[0] ? a->host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", a->host, gai_strerror(rc));
        return UV_EAI_NONAME;
    }
    /* Without a host, AI_PASSIVE yields the wildcard; prefer IPv4's so the
     * default behaves the same on hosts without IPv6. */
    struct addrinfo *pick = res;
    for (struct addrinfo *ai = res; ai && !a->host[0]; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *len = pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* uv_inet_ntop, not inet_ntop: see literal_address. */
static void format_bound(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        uv_inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        uv_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(out, len, "unix:%s", ((const struct sockaddr_un *)ss)->sun_path);
    }
}

/* Binds one socket; returns the fd or a negative errno. */
static int bind_one(struct sockaddr_storage *ss, socklen_t len, int kind)
{
    int fd = socket(ss->ss_family, kind | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (ss->ss_family != AF_UNIX) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    } else {
        /* A stale socket file from a previous run would make bind fail. */
        unlink(((struct sockaddr_un *)ss)->sun_path);
    }
    if (bind(fd, (struct sockaddr *)ss, len) != 0 || (kind == SOCK_STREAM && listen(fd, 4096) != 0)) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static int bind_all(struct otr_listener *l, const struct otr_conf_address *a, unsigned n, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = resolve(a, l->kind, &ss, &len, err, errlen);
    if (rc)
        return rc;
    if (a->is_unix)
        n = 1;
    l->fds = otr_xcalloc(n, sizeof *l->fds);
    for (unsigned i = 0; i < n; i++) {
        int fd = bind_one(&ss, len, l->kind);
        if (fd < 0) {
            snprintf(err, errlen, "cannot listen on %s: %s", a->text, strerror(-fd));
            return fd;
        }
        l->fds[l->n_fds++] = fd;
        if (i == 0) {
            /* With port 0 the kernel chose one: the address read back
             * makes the other workers' sockets join that port. */
            socklen_t blen = sizeof ss;
            getsockname(fd, (struct sockaddr *)&ss, &blen);
            len = blen;
            format_bound(&ss, l->bound, sizeof l->bound);
        }
    }
    return 0;
}

static void listener_close_fds(struct otr_listener *l)
{
    if (l->n_fds && !keep_paths && strncmp(l->bound, "unix:", 5) == 0)
        unlink(l->bound + 5);
    for (unsigned i = 0; i < l->n_fds; i++)
        close(l->fds[i]);
    l->n_fds = 0;
}

static void listener_free(struct otr_listener *l)
{
    listener_close_fds(l);
    free(l->fds);
    free(l->name);
    free(l->addr_text);
    free(l);
}

/* Whether addr, resolved, is where l is bound: "127.0.0.1:0" in one
 * configuration and the port it got in the next are the same socket, and
 * so are the old process's and the new one's after a hot upgrade. */
static bool same_socket(const struct otr_listener *l, const struct otr_conf_address *addr)
{
    if (strcmp(l->addr_text, addr->text) == 0)
        return true;
    if (l->dry || (!addr->is_unix && addr->port == 0))
        return false;
    struct sockaddr_storage ss;
    socklen_t len;
    char err[128], bound[sizeof l->bound];
    if (resolve(addr, l->kind, &ss, &len, err, sizeof err) != 0)
        return false;
    format_bound(&ss, bound, sizeof bound);
    return strcmp(bound, l->bound) == 0;
}

int otr_listener_open(const char *name, const struct otr_conf_address *addr, int kind, unsigned n_sockets,
                      bool dry, otr_listener **out, char *err, size_t errlen)
{
    struct otr_listener *l = find(name);
    if (l && l->kind == kind && l->dry == dry && same_socket(l, addr)) {
        l->users++;
        *out = l;
        return 0;
    }
    l = otr_xcalloc(1, sizeof *l);
    l->name = otr_xstrdup(name);
    l->addr_text = otr_xstrdup(addr->text);
    l->kind = kind;
    l->users = 1;
    l->dry = dry;
    snprintf(l->bound, sizeof l->bound, "%s", addr->text);
    if (!dry) {
        int rc = bind_all(l, addr, n_sockets ? n_sockets : 1, err, errlen);
        if (rc) {
            listener_free(l);
            return rc;
        }
    }
    /* Newest first, so find() prefers it over one being replaced. */
    l->next = listeners;
    listeners = l;
    *out = l;
    return 0;
}

void otr_listener_release(otr_listener *l)
{
    if (--l->users > 0)
        return;
    for (struct otr_listener **pp = &listeners; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    listener_free(l);
}

int otr_listener_socket(otr_listener *l, unsigned i, uv_os_sock_t *out)
{
    if (l->n_fds == 0)
        return UV_EBADF;
    int fd = fcntl(l->fds[i % l->n_fds], F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    *out = fd;
    return 0;
}


void otr_listener_adopt(const char *name, const char *addr_text, int kind, const char *bound, const int *fds,
                        unsigned n)
{
    struct otr_listener *l = otr_xcalloc(1, sizeof *l);
    l->name = otr_xstrdup(name);
    l->addr_text = otr_xstrdup(addr_text);
    l->kind = kind;
    snprintf(l->bound, sizeof l->bound, "%s", bound);
    l->fds = otr_xcalloc(n ? n : 1, sizeof *l->fds);
    memcpy(l->fds, fds, n * sizeof *fds);
    l->n_fds = n;
    l->next = listeners;
    listeners = l;
}

unsigned otr_listener_most_adopted_sockets(void)
{
    unsigned most = 0;
    for (struct otr_listener *l = listeners; l; l = l->next)
        if (l->users == 0 && l->n_fds > most)
            most = l->n_fds;
    return most;
}

void otr_listener_close_unused(void)
{
    struct otr_listener **pp = &listeners;
    while (*pp) {
        struct otr_listener *l = *pp;
        if (l->users == 0) {
            *pp = l->next;
            listener_free(l);
        } else {
            pp = &l->next;
        }
    }
}

void otr_listener_foreach(void (*fn)(void *arg, const otr_listener *l), void *arg)
{
    for (struct otr_listener *l = listeners; l; l = l->next)
        if (!l->dry && l->n_fds)
            fn(arg, l);
}

void otr_listener_close_sockets(void)
{
    for (struct otr_listener *l = listeners; l; l = l->next)
        listener_close_fds(l);
}

void otr_listener_keep_paths(void)
{
    keep_paths = true;
}

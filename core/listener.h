/*
 * listener: sockets bound by core on behalf of modules (and the admin
 * endpoint). A listener is bound once and kept while configurations keep
 * naming it with the same address, so reloads never refuse a connection.
 * TCP and UDP listeners get one SO_REUSEPORT socket per worker, bound to the
 * same port (port 0 is resolved by the first); unix sockets get one, shared.
 * Workers receive dup()s: closing a worker's handle never closes the socket
 * (its accept queue survives a generation swap). Main thread only, except
 * otr_listener_socket.
 */
#ifndef OTR_LISTENER_H
#define OTR_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outrider/module.h"

struct otr_listener {
    char *name;      /* "admin", "proxy.outbound" */
    char *addr_text; /* as configured */
    int kind;        /* SOCK_STREAM or SOCK_DGRAM */
    char bound[160]; /* "127.0.0.1:4140", "[::1]:80", "unix:/run/x.sock" */
    int *fds;
    unsigned n_fds;
    unsigned users;      /* generations holding it */
    bool dry;            /* -t: nothing bound */
    struct otr_listener *next;
};

/* Finds (same name, kind and address) or binds the listener `name` and
 * takes a reference for the calling generation. n_sockets: how many
 * SO_REUSEPORT sockets (one per worker). dry: bind nothing (-t).
 * Returns 0, or a negative error with a message in err. */
int otr_listener_open(const char *name, const struct otr_conf_address *addr, int kind, unsigned n_sockets,
                      bool dry, otr_listener **out, char *err, size_t errlen);
/* Drops a generation's reference; the last one closes the sockets. */
void otr_listener_release(otr_listener *l);
/* Hot upgrade, new process: registers sockets handed over by the old one
 * (takes ownership of fds). otr_listener_open adopts them instead of
 * binding when name, kind and address match. */
void otr_listener_adopt(const char *name, const char *addr_text, int kind, const char *bound, const int *fds,
                        unsigned n);
/* The most sockets any adopted listener holds: each must be served by a
 * worker of its own, since the kernel spreads connections over all of them. */
unsigned otr_listener_most_adopted_sockets(void);
/* Closes adopted sockets no generation took. */
void otr_listener_close_unused(void);
/* Hot upgrade, old process: calls fn for every listener with its sockets. */
void otr_listener_foreach(void (*fn)(void *arg, const otr_listener *l), void *arg);
/* Shutdown: closes every listening socket now, so that new connections are
 * refused instead of waiting in a backlog nobody accepts from (sockets
 * handed to a new process live on there). */
void otr_listener_close_sockets(void);
/* After a handover the new process owns unix socket paths: never unlink. */
void otr_listener_keep_paths(void);

/* A new descriptor (dup) of socket i (modulo the count), for a worker. */
int otr_listener_socket(otr_listener *l, unsigned i, uv_os_sock_t *out);

#endif

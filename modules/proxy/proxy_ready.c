/*
 * proxy_ready: the proxy's part of /ready. The proxy is ready while every
 * worker serves every enabled listener, no listener's accept has been
 * failing (an error within the last PROXY_ACCEPT_ERROR_MS with no accepted
 * connection since), and the process has file descriptors to take a
 * connection and its upstream: at least PROXY_FD_RESERVE free under
 * RLIMIT_NOFILE and in the system's file table.
 *
 * Why descriptors are counted rather than accept errors seen: when the
 * table is full, libuv's accept loop closes the pending connections itself
 * (it keeps a spare descriptor for that) and does not report EMFILE to us.
 * The reserve also makes /ready turn 503 before the very last descriptor
 * is gone, while the admin listener can still answer it.
 *
 * A stuck worker loop is core's business: it makes the agent not ready
 * through the workers' heartbeats (t/21-readiness.t).
 *
 * Workers write their state; the admin thread reads it: atomics only.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "proxy.h"
#include "proxy_discovery.h"

#define PROXY_FD_RESERVE 16       /* descriptors kept free for a connection, its upstream, probes */
#define PROXY_ACCEPT_ERROR_MS 5000 /* an accept error this recent, with no success since: not ready */
#define PROXY_FD_CHECK_MS 1000     /* the descriptor count is taken at most once a second */

enum listen_state { LISTEN_UNUSED = 0, LISTEN_SERVING, LISTEN_DOWN };

struct ready_listener {
    atomic_int state;                /* enum listen_state */
    atomic_uint_fast64_t error_ms;   /* last accept error (monotonic ms), 0: none */
    atomic_uint_fast64_t ok_ms;      /* last accepted connection */
    atomic_int error;                /* its code, for the log */
};

struct proxy_ready {
    unsigned n_workers;
    atomic_uint_fast64_t fd_checked_ms;
    atomic_bool fd_ok;
    atomic_bool was_ready;           /* for logging changes once */
    struct ready_listener l[];       /* n_workers * PROXY_LISTENERS */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int proxy_ready_new(struct proxy_state *st)
{
    size_t n = (size_t)st->n_workers * PROXY_LISTENERS;
    struct proxy_ready *r = calloc(1, sizeof *r + n * sizeof r->l[0]);
    if (!r)
        return UV_ENOMEM;
    r->n_workers = st->n_workers;
    atomic_init(&r->fd_ok, true);
    atomic_init(&r->was_ready, true);
    st->ready = r;
    return 0;
}

void proxy_ready_free(struct proxy_state *st)
{
    if (st) {
        free(st->ready);
        st->ready = NULL;
    }
}

static struct ready_listener *slot(struct proxy_state *st, unsigned worker, int l)
{
    if (!st->ready || worker >= st->ready->n_workers)
        return NULL;
    return &st->ready->l[(size_t)worker * PROXY_LISTENERS + (size_t)l];
}

void proxy_ready_listening(struct proxy_state *st, unsigned worker, int l, bool serving)
{
    struct ready_listener *s = slot(st, worker, l);
    if (s)
        atomic_store(&s->state, serving ? LISTEN_SERVING : LISTEN_DOWN);
}

void proxy_ready_accepted(struct proxy_state *st, unsigned worker, int l, int status)
{
    struct ready_listener *s = slot(st, worker, l);
    if (!s)
        return;
    if (status < 0) {
        atomic_store(&s->error, status);
        atomic_store(&s->error_ms, mono_ms());
    } else {
        atomic_store(&s->ok_ms, mono_ms());
    }
}

/* Free descriptors under the process limit, or -1 when they cannot be
 * counted (no /proc, no limit); 0 when even the count cannot open one. */
static long fds_free_process(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY)
        return -1;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return errno == EMFILE || errno == ENFILE ? 0 : -1;
    long open = -1; /* the directory's own descriptor */
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            open++;
    closedir(d);
    return (long)rl.rlim_cur - open;
}

/* Free entries in the system's file table, or -1 if unknown. */
static long fds_free_system(void)
{
    FILE *f = fopen("/proc/sys/fs/file-nr", "re");
    if (!f)
        return errno == EMFILE || errno == ENFILE ? 0 : -1;
    unsigned long long alloc, unused, max;
    int n = fscanf(f, "%llu %llu %llu", &alloc, &unused, &max);
    fclose(f);
    if (n != 3 || alloc > max)
        return -1;
    return max - alloc > (unsigned long long)LONG_MAX ? LONG_MAX : (long)(max - alloc);
}

static bool fds_ok(struct proxy_state *st, char *why, size_t len)
{
    struct proxy_ready *r = st->ready;
    uint64_t now = mono_ms(), last = atomic_load(&r->fd_checked_ms);
    if (last && now - last < PROXY_FD_CHECK_MS)
        return atomic_load(&r->fd_ok);
    long proc = fds_free_process(), sys = fds_free_system();
    bool ok = (proc < 0 || proc >= PROXY_FD_RESERVE) && (sys < 0 || sys >= PROXY_FD_RESERVE);
    if (!ok)
        snprintf(why, len, "%ld file descriptors free in the %s (fewer than %d)", proc >= 0 && proc < PROXY_FD_RESERVE ? proc : sys,
                 proc >= 0 && proc < PROXY_FD_RESERVE ? "process (RLIMIT_NOFILE)" : "system", PROXY_FD_RESERVE);
    atomic_store(&r->fd_ok, ok);
    atomic_store(&r->fd_checked_ms, now);
    return ok;
}

static bool listeners_ok(struct proxy_state *st, char *why, size_t len)
{
    struct proxy_ready *r = st->ready;
    uint64_t now = mono_ms();
    static const char *const names[PROXY_LISTENERS] = { "outbound", "inbound" };
    for (unsigned w = 0; w < r->n_workers; w++) {
        for (int l = 0; l < PROXY_LISTENERS; l++) {
            struct ready_listener *s = &r->l[(size_t)w * PROXY_LISTENERS + (size_t)l];
            if (atomic_load(&s->state) == LISTEN_DOWN) {
                snprintf(why, len, "worker %u does not serve the %s listener", w, names[l]);
                return false;
            }
            uint64_t err = atomic_load(&s->error_ms);
            if (err && err > atomic_load(&s->ok_ms) && now - err < PROXY_ACCEPT_ERROR_MS) {
                snprintf(why, len, "worker %u cannot accept on the %s listener: %s", w, names[l],
                         uv_strerror(atomic_load(&s->error)));
                return false;
            }
        }
    }
    return true;
}

static bool discovery_ok(struct proxy_state *st, char *why, size_t len)
{
    if (proxy_discovery_ready(st))
        return true;
    snprintf(why, len, "endpoint discovery has not finished its first round");
    return false;
}

bool proxy_ready(otr_ctx *ctx)
{
    struct proxy_state *st = ctx->host->data(ctx);
    if (!st || !st->ready)
        return true; /* nothing of ours runs yet */
    char why[160] = "";
    bool ok = discovery_ok(st, why, sizeof why) && listeners_ok(st, why, sizeof why) && fds_ok(st, why, sizeof why);
    bool was = atomic_exchange(&st->ready->was_ready, ok);
    if (was && !ok)
        st->host->log(ctx, OTR_LOG_WARN, "not ready: %s", why);
    else if (!was && ok)
        st->host->log(ctx, OTR_LOG_INFO, "ready again");
    return ok;
}

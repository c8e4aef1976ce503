#include "upgrade.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "lifecycle.h"
#include "log.h"
#include "util.h"

extern char **environ;

#define UPGRADE_FD_ENV "OUTRIDER_UPGRADE_FD"
#define MAX_FDS_PER_MSG 250

struct otr_upgrade {
    struct otr_agent *a;
    uv_process_t proc;
    uv_poll_t poll;
    uv_timer_t timer;
    int sock;
    bool ready, exited, failed, polling;
    uint64_t timeout_ms;
    unsigned open_handles;
    void (*done)(void *arg, int status, const char *msg);
    void *arg;
};

/* --- old side --------------------------------------------------------------- */

static void upgrade_on_handle_closed(uv_handle_t *h)
{
    struct otr_upgrade *u = h->data;
    if (--u->open_handles == 0) {
        if (u->a->upgrade == u)
            u->a->upgrade = NULL;
        free(u);
    }
}

static void upgrade_close(struct otr_upgrade *u)
{
    if (u->sock >= 0) {
        if (u->polling)
            uv_close((uv_handle_t *)&u->poll, upgrade_on_handle_closed);
        close(u->sock);
        u->sock = -1;
    }
    if (!uv_is_closing((uv_handle_t *)&u->timer))
        uv_close((uv_handle_t *)&u->timer, upgrade_on_handle_closed);
    /* The process handle closes once the child is gone, or now if it is
     * ready: the new agent outlives this one. */
    if ((u->exited || u->ready) && !uv_is_closing((uv_handle_t *)&u->proc))
        uv_close((uv_handle_t *)&u->proc, upgrade_on_handle_closed);
}

static void upgrade_fail(struct otr_upgrade *u, const char *fmt, ...) OTR_PRINTF(2, 3);
static void upgrade_fail(struct otr_upgrade *u, const char *fmt, ...)
{
    if (u->failed || u->ready)
        return;
    u->failed = true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    otr_log_error("upgrade failed, still serving: %s", msg);
    if (!u->exited)
        uv_process_kill(&u->proc, SIGKILL);
    if (u->done)
        u->done(u->arg, UV_ECANCELED, msg);
    upgrade_close(u);
}

static void upgrade_succeed(struct otr_upgrade *u, int pid)
{
    u->ready = true;
    char msg[64];
    snprintf(msg, sizeof msg, "new process %d is serving", pid);
    otr_log_info("upgrade: %s; draining this one", msg);
    if (u->done)
        u->done(u->arg, 0, msg);
    upgrade_close(u);
    u->a->handed_over = true;
    otr_listener_keep_paths();
    /* The new process answers probes and commands from now on: an old
     * admin endpoint would report "not ready" while it drains. */
    otr_control_stop(u->a);
    if (u->a->admin)
        otr_admin_stop(u->a->admin);
    u->a->admin = NULL;
    otr_agent_shutdown(u->a, false);
}

static void upgrade_on_exit(uv_process_t *p, int64_t status, int signal)
{
    struct otr_upgrade *u = p->data;
    u->exited = true;
    if (signal)
        upgrade_fail(u, "the new process was killed by signal %d before it was ready", signal);
    else
        upgrade_fail(u, "the new process exited with status %lld before it was ready (its log says why)",
                     (long long)status);
    if (!uv_is_closing((uv_handle_t *)p))
        uv_close((uv_handle_t *)p, upgrade_on_handle_closed);
}

static void upgrade_on_readable(uv_poll_t *h, int status, int events)
{
    struct otr_upgrade *u = h->data;
    char buf[64];
    ssize_t n = status < 0 ? -1 : recv(u->sock, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0) {
        buf[n] = '\0';
        int pid;
        if (sscanf(buf, "R %d", &pid) == 1) {
            upgrade_succeed(u, pid);
            return;
        }
    }
    /* EOF without "ready": the exit callback reports the status. Stop
     * polling a dead socket meanwhile. */
    uv_poll_stop(h);
}

static void upgrade_on_timeout(uv_timer_t *t)
{
    struct otr_upgrade *u = t->data;
    upgrade_fail(u, "the new process did not become ready within %llu ms", (unsigned long long)u->timeout_ms);
}

static int send_listener_msg(int sock, const otr_listener *l)
{
    char text[1024];
    int len = snprintf(text, sizeof text, "L\t%d\t%u\t%s\t%s\t%s", l->kind, l->n_fds, l->name, l->addr_text, l->bound);
    if (len < 0 || (size_t)len >= sizeof text || l->n_fds > MAX_FDS_PER_MSG)
        return UV_E2BIG;
    struct iovec iov = {.iov_base = text, .iov_len = (size_t)len};
    union {
        char buf[CMSG_SPACE(MAX_FDS_PER_MSG * sizeof(int))];
        struct cmsghdr align;
    } cmsg;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cmsg.buf,
                         .msg_controllen = CMSG_SPACE(l->n_fds * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(l->n_fds * sizeof(int));
    memcpy(CMSG_DATA(c), l->fds, l->n_fds * sizeof(int));
    return sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

struct send_ctx {
    int sock;
    int err;
};

static void send_one(void *arg, const otr_listener *l)
{
    struct send_ctx *sc = arg;
    if (sc->err == 0)
        sc->err = send_listener_msg(sc->sock, l);
}

static char **child_env(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = otr_xcalloc(n + 2, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], UPGRADE_FD_ENV "=", sizeof UPGRADE_FD_ENV) != 0)
            env[k++] = environ[i];
    env[k] = UPGRADE_FD_ENV "=3";
    return env;
}

int otr_upgrade_start(struct otr_agent *a, void (*done)(void *arg, int status, const char *msg), void *arg)
{
    if (a->upgrade || a->shutting_down || !a->current) {
        if (done)
            done(arg, UV_EBUSY, a->upgrade ? "an upgrade is already in progress" : "the agent is not serving");
        return UV_EBUSY;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        int err = -errno;
        if (done)
            done(arg, err, strerror(-err));
        return err;
    }
    struct otr_upgrade *u = otr_xcalloc(1, sizeof *u);
    *u = (struct otr_upgrade){
        .a = a, .sock = sv[0], .done = done, .arg = arg, .timeout_ms = a->current->core.upgrade.timeout};
    uv_stdio_container_t stdio[4] = {
        {.flags = UV_INHERIT_FD, .data.fd = 0},
        {.flags = UV_INHERIT_FD, .data.fd = 1},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
        {.flags = UV_INHERIT_FD, .data.fd = sv[1]},
    };
    char **env = child_env();
    uv_process_options_t opts = {.exit_cb = upgrade_on_exit, .file = a->self_exe, .args = a->opt.argv,
                                 .env = env, .stdio_count = 4, .stdio = stdio};
    u->proc.data = u;
    int rc = uv_spawn(a->loop, &u->proc, &opts);
    free(env);
    close(sv[1]);
    if (rc) {
        otr_log_error("upgrade failed, still serving: cannot start %s: %s", a->self_exe, uv_strerror(rc));
        if (done)
            done(arg, rc, uv_strerror(rc));
        close(sv[0]);
        /* A failed spawn still initialised the handle: close it. */
        u->sock = -1;
        u->open_handles = 1;
        a->upgrade = u;
        uv_close((uv_handle_t *)&u->proc, upgrade_on_handle_closed);
        return rc;
    }
    a->upgrade = u;
    u->open_handles = 3; /* process, timer, poll */
    otr_log_info("upgrade: started %s as pid %d; handing over the listeners", a->self_exe, u->proc.pid);
    struct send_ctx sc = {.sock = sv[0]};
    otr_listener_foreach(send_one, &sc);
    if (sc.err == 0 && send(sv[0], "E", 1, MSG_NOSIGNAL) < 0)
        sc.err = -errno;
    uv_timer_init(a->loop, &u->timer);
    u->timer.data = u;
    uv_timer_start(&u->timer, upgrade_on_timeout, u->timeout_ms, 0);
    uv_poll_init(a->loop, &u->poll, sv[0]);
    u->poll.data = u;
    u->polling = true;
    uv_poll_start(&u->poll, UV_READABLE | UV_DISCONNECT, upgrade_on_readable);
    if (sc.err)
        upgrade_fail(u, "cannot hand over the listeners: %s", uv_strerror(sc.err));
    return 0;
}

/* --- new side --------------------------------------------------------------- */

static int adopt_message(char *text, const int *fds, unsigned n_fds)
{
    char *fields[6];
    int k = 0;
    for (char *save, *tok = strtok_r(text, "\t", &save); tok && k < 6; tok = strtok_r(NULL, "\t", &save))
        fields[k++] = tok;
    if (k != 6 || strcmp(fields[0], "L") != 0 || (unsigned)atoi(fields[2]) != n_fds)
        return UV_EPROTO;
    otr_listener_adopt(fields[3], fields[4], atoi(fields[1]), fields[5], fds, n_fds);
    otr_log_debug("upgrade: adopted %s (%s, %u socket%s)", fields[3], fields[5], n_fds, n_fds == 1 ? "" : "s");
    return 0;
}

/* Receives one message; returns its length, 0 at the end marker, or an error. */
static ssize_t receive_one(int fd, char *text, size_t cap, int *fds, unsigned *n_fds)
{
    union {
        char buf[CMSG_SPACE(MAX_FDS_PER_MSG * sizeof(int))];
        struct cmsghdr align;
    } cmsg;
    struct iovec iov = {.iov_base = text, .iov_len = cap - 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cmsg.buf, .msg_controllen = sizeof cmsg.buf};
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0)
        return n < 0 ? -errno : UV_EOF;
    text[n] = '\0';
    *n_fds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            *n_fds = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds, CMSG_DATA(c), *n_fds * sizeof(int));
        }
    return strcmp(text, "E") == 0 ? 0 : n;
}

int otr_upgrade_receive(struct otr_agent *a)
{
    a->upgrade_fd = -1;
    const char *env = getenv(UPGRADE_FD_ENV);
    if (!env)
        return 0;
    int fd = atoi(env);
    unsetenv(UPGRADE_FD_ENV);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char text[1100];
    int fds[MAX_FDS_PER_MSG];
    unsigned n_fds = 0;
    ssize_t n;
    while ((n = receive_one(fd, text, sizeof text, fds, &n_fds)) > 0) {
        if (adopt_message(text, fds, n_fds) != 0) {
            otr_log_error("upgrade: malformed handover message");
            for (unsigned i = 0; i < n_fds; i++)
                close(fds[i]);
            close(fd);
            return UV_EPROTO;
        }
    }
    if (n < 0) {
        otr_log_error("upgrade: receiving the listeners failed: %s", uv_strerror((int)n));
        close(fd);
        return (int)n;
    }
    a->upgrade_fd = fd;
    return 0;
}

void otr_upgrade_announce_ready(struct otr_agent *a)
{
    if (a->upgrade_fd < 0)
        return;
    otr_listener_close_unused();
    char msg[32];
    int n = snprintf(msg, sizeof msg, "R %d", (int)getpid());
    if (send(a->upgrade_fd, msg, (size_t)n, MSG_NOSIGNAL) < 0)
        otr_log_warn("upgrade: cannot tell the old process we are ready: %s", strerror(errno));
    close(a->upgrade_fd);
    a->upgrade_fd = -1;
}

/* --- control socket --------------------------------------------------------- */

struct control_conn {
    uv_pipe_t pipe;
    struct otr_agent *a;
    char line[128];
    size_t len;
    bool answered;
};

struct control_write {
    uv_write_t req;
    struct control_conn *c;
    char text[];
};

static void control_conn_on_close(uv_handle_t *h)
{
    free(h->data);
}

static void control_on_written(uv_write_t *req, int status)
{
    struct control_write *w = (struct control_write *)req;
    if (!uv_is_closing((uv_handle_t *)&w->c->pipe))
        uv_close((uv_handle_t *)&w->c->pipe, control_conn_on_close);
    free(w);
}

static void control_answer(void *arg, int status, const char *msg)
{
    struct control_conn *c = arg;
    if (c->answered)
        return;
    c->answered = true;
    size_t n = strlen(msg) + 16;
    struct control_write *w = otr_xmalloc(sizeof *w + n);
    w->c = c;
    int len = snprintf(w->text, n, "%s%s\n", status == 0 ? "ok " : "failed: ", msg);
    uv_buf_t b = uv_buf_init(w->text, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, control_on_written) != 0) {
        free(w);
        uv_close((uv_handle_t *)&c->pipe, control_conn_on_close);
    }
}

static void control_run(struct control_conn *c)
{
    if (strcmp(c->line, "upgrade") == 0) {
        otr_upgrade_start(c->a, control_answer, c);
    } else if (strcmp(c->line, "reload") == 0) {
        struct otr_diag d;
        otr_diag_init(&d, c->a->opt.conf_path);
        int rc = otr_agent_reload(c->a, &d);
        control_answer(c, rc, rc == 0 ? "reload accepted" : d.n ? d.msgs[0] : uv_strerror(rc));
        otr_diag_fini(&d);
    } else {
        control_answer(c, UV_EINVAL, "unknown command (expected \"upgrade\" or \"reload\")");
    }
}

static void control_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct control_conn *c = h->data;
    buf->base = c->line + c->len;
    buf->len = sizeof c->line - 1 - c->len;
}

static void control_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct control_conn *c = s->data;
    if (n < 0 || (n == 0 && c->len == sizeof c->line - 1)) {
        uv_read_stop(s);
        if (!c->answered)
            uv_close((uv_handle_t *)s, control_conn_on_close);
        return;
    }
    c->len += (size_t)n;
    c->line[c->len] = '\0';
    char *nl = strchr(c->line, '\n');
    if (!nl)
        return;
    *nl = '\0';
    uv_read_stop(s);
    control_run(c);
}

static void control_on_connection(uv_stream_t *server, int status)
{
    struct otr_agent *a = server->data;
    if (status < 0)
        return;
    struct control_conn *c = otr_xcalloc(1, sizeof *c);
    c->a = a;
    uv_pipe_init(a->loop, &c->pipe, 0);
    c->pipe.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
        uv_close((uv_handle_t *)&c->pipe, control_conn_on_close);
        return;
    }
    uv_read_start((uv_stream_t *)&c->pipe, control_alloc, control_on_read);
}

int otr_control_start(struct otr_agent *a, otr_listener *l)
{
    uv_os_sock_t fd;
    int rc = otr_listener_socket(l, 0, &fd);
    if (rc)
        return rc;
    a->control = otr_xcalloc(1, sizeof *a->control);
    uv_pipe_init(a->loop, a->control, 0);
    a->control->data = a;
    if ((rc = uv_pipe_open(a->control, fd)) != 0 ||
        (rc = uv_listen((uv_stream_t *)a->control, 16, control_on_connection)) != 0) {
        otr_log_error("control socket %s: %s", l->bound, uv_strerror(rc));
        otr_control_stop(a);
    }
    return rc;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void otr_control_stop(struct otr_agent *a)
{
    if (a->control && !uv_is_closing((uv_handle_t *)a->control))
        uv_close((uv_handle_t *)a->control, free_handle);
    a->control = NULL;
}

int otr_control_request(const char *path, const char *cmd, uint64_t timeout_ms)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    if (!path || !*path || strlen(path) >= sizeof un.sun_path) {
        fprintf(stderr, "outrider: no control socket: set control_socket in the config or pass --control PATH\n");
        return OTR_EXIT_USAGE;
    }
    strcpy(un.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof un) != 0) {
        fprintf(stderr, "outrider: cannot reach the agent at %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return OTR_EXIT_STARTUP;
    }
    char line[64];
    int len = snprintf(line, sizeof line, "%s\n", cmd);
    if (write(fd, line, (size_t)len) != len) {
        fprintf(stderr, "outrider: %s: %s\n", path, strerror(errno));
        close(fd);
        return OTR_EXIT_STARTUP;
    }
    char answer[1024];
    size_t got = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (got < sizeof answer - 1 && poll(&p, 1, (int)timeout_ms) > 0) {
        ssize_t n = read(fd, answer + got, sizeof answer - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    answer[got] = '\0';
    if (got == 0) {
        fprintf(stderr, "outrider: no answer from the agent at %s\n", path);
        return OTR_EXIT_STARTUP;
    }
    fputs(answer, strncmp(answer, "ok", 2) == 0 ? stdout : stderr);
    return strncmp(answer, "ok", 2) == 0 ? 0 : 1;
}

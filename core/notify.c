#include "notify.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

void otr_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return;
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof un.sun_path) {
        otr_log_warn("NOTIFY_SOCKET \"%s\" is not a usable socket path", path);
        return;
    }
    memcpy(un.sun_path, path, len);
    /* "@name" is an abstract socket: its first byte is NUL. */
    if (path[0] == '@')
        un.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&un, alen) < 0)
        otr_log_warn("cannot notify the service manager: %s", strerror(errno));
    close(fd);
}

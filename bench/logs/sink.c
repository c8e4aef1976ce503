/*
 * bench/logs/sink: a TCP sink for the logs benchmark. Listens on
 * 127.0.0.1:0, writes its port to the file given as argv[1], counts the
 * newlines received on any number of connections, and exits once argv[2]
 * lines arrived (or after argv[3] seconds), printing the count and the
 * seconds from the first byte to the last line.
 *   cc -O2 -o build/bench/logs_sink bench/logs/sink.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: sink PORTFILE LINES TIMEOUT_S\n");
        return 2;
    }
    long long want = atoll(argv[2]), got = 0;
    double limit = atof(argv[3]);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 16) || getsockname(l, (struct sockaddr *)&a, &alen))
        return perror("listen"), 1;
    FILE *pf = fopen(argv[1], "w");
    fprintf(pf, "%d\n", ntohs(a.sin_port));
    fclose(pf);
    struct pollfd fds[64] = {{.fd = l, .events = POLLIN}};
    int n = 1;
    static char buf[1 << 20];
    double start = 0, end = 0, deadline = now() + limit;
    while (got < want && now() < deadline) {
        if (poll(fds, (nfds_t)n, 200) <= 0)
            continue;
        if (fds[0].revents & POLLIN && n < 64) {
            int c = accept(l, NULL, NULL);
            if (c >= 0)
                fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
        }
        for (int i = 1; i < n; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(fds[i].fd, buf, sizeof buf);
            if (r <= 0) {
                close(fds[i].fd);
                fds[i--] = fds[--n];
                continue;
            }
            if (!start)
                start = now();
            for (char *p = buf, *e = buf + r; (p = memchr(p, '\n', (size_t)(e - p))); p++)
                got++;
            end = now();
        }
    }
    printf("%lld %.3f\n", got, start ? end - start : 0.0);
    return got >= want ? 0 : 1;
}

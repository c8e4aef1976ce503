/*
 * statsd_blast: sends statsd counter lines over UDP at a fixed packet rate
 * for a fixed time, with sendmmsg, so that outrider and collectd get the
 * very same packets. Line k of the run is "bench.c<k % 10>:1|c".
 *
 *   statsd_blast HOST PORT LINES_PER_DATAGRAM PACKETS_PER_SECOND SECONDS
 *
 * Prints "packets=N lines=M seconds=S".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT LINES_PER_DATAGRAM PPS SECONDS\n", argv[0]);
        return 2;
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &to.sin_addr);
    int lines = atoi(argv[3]);
    double pps = atof(argv[4]), secs = atof(argv[5]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        perror("connect");
        return 1;
    }
    /* Ten distinct payloads rotate so every counter gets its share. */
    static char payload[10][1024];
    size_t plen[10];
    for (int p = 0; p < 10; p++) {
        size_t n = 0;
        for (int l = 0; l < lines; l++)
            n += (size_t)snprintf(payload[p] + n, sizeof payload[p] - n, "%sbench.c%d:1|c", l ? "\n" : "",
                                  (p + l) % 10);
        plen[p] = n;
    }
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    memset(msgs, 0, sizeof msgs);
    long long sent = 0, seq = 0;
    double start = now(), end = start + secs;
    while (1) {
        double t = now();
        if (t >= end)
            break;
        long long due = (long long)((t - start) * pps);
        if (due <= sent) {
            struct timespec nap = {0, 20000};
            nanosleep(&nap, NULL);
            continue;
        }
        int n = (int)(due - sent > BATCH ? BATCH : due - sent);
        for (int i = 0; i < n; i++) {
            int p = (int)(seq++ % 10);
            iov[i] = (struct iovec){payload[p], plen[p]};
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(fd, msgs, (unsigned)n, 0);
        if (r > 0)
            sent += r;
        if (r < n)
            seq -= n - (r > 0 ? r : 0);
    }
    printf("packets=%lld lines=%lld seconds=%.2f\n", sent, sent * lines, now() - start);
    return 0;
}

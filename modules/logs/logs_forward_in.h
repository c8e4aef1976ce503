/*
 * logs_forward_in: the receiving side of the "forward" output. Another
 * outrider (typically a sidecar) connects and sends frames
 *
 *     OTRF <seq> <length>\n<length bytes of JSON lines>
 *
 * The lines go into this agent's queue; once every output here has
 * delivered the last line of frame <seq>, the connection answers
 * "OK <seq>\n", so the chain stays at least once end to end. Frames larger
 * than max_frame, bad headers and lines that are not JSON objects are
 * errors: a bad header closes the connection (counted); a bad line is
 * passed on wrapped as a raw message, flagged malformed.
 */
#ifndef LOGS_FORWARD_IN_H
#define LOGS_FORWARD_IN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "logs_buf.h"
#include "logs_queue.h"

struct logs_fwd_conn;

struct logs_fwd_server {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    struct logs_queue *q;
    size_t max_frame;
    struct logs_fwd_conn *conns;
    bool paused, closing;
    int pending_closes;
    void (*on_closed)(struct logs_fwd_server *s);
    struct logs_buf scratch;
    /* Counters. */
    uint64_t frames, lines, bytes, malformed, bad_frames, connections;
};

/* Frame parser state of one connection, apart from sockets (fuzzed). */
struct logs_fwd_parse {
    struct logs_buf in;
    uint64_t seq;     /* of the frame being read */
    size_t need;      /* payload bytes still expected; 0: reading a header */
    bool in_payload;
};

/* Consumes bytes: calls frame(arg, seq, payload, n) per complete frame.
 * Returns 0, or -1 on a malformed header or a frame above max_frame (the
 * connection must be closed). */
int logs_fwd_parse_feed(struct logs_fwd_parse *p, const char *data, size_t n, size_t max_frame,
                        int (*frame)(void *arg, uint64_t seq, const char *payload, size_t n), void *arg);

/* Listens on fd (a bound socket, owned from now on). Returns 0 or an error. */
int logs_fwd_server_open(struct logs_fwd_server *s, uv_loop_t *loop, uv_os_sock_t fd, struct logs_queue *q,
                         size_t max_frame);
/* Stops reading from every connection / resumes (queue backpressure). */
void logs_fwd_server_pause(struct logs_fwd_server *s);
void logs_fwd_server_resume(struct logs_fwd_server *s);
/* Closes the listener and the connections; on_closed runs when all are
 * closed (connections with lines still queued are freed when those are
 * released or the queue is freed). */
void logs_fwd_server_close(struct logs_fwd_server *s, void (*on_closed)(struct logs_fwd_server *s));

#endif

/*
 * logs_http_resp: reads an HTTP/1.x response to the http output's POST,
 * fed in pieces as they arrive. It keeps the status and whether the
 * connection may carry the next request, and reads the body to its end
 * (Content-Length, chunked, or until the server closes) without keeping it:
 * a kept connection is only reused once the whole response is consumed.
 */
#ifndef LOGS_HTTP_RESP_H
#define LOGS_HTTP_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOGS_HTTP_RESP_MAX_HEAD 16384 /* status line and headers together */
#define LOGS_HTTP_RESP_MAX_LINE 4096  /* one header, chunk-size or trailer line */

enum logs_http_resp_state {
    LOGS_HTTP_RESP_HEAD = 0,
    LOGS_HTTP_RESP_BODY_LENGTH,  /* remaining bytes of a Content-Length body */
    LOGS_HTTP_RESP_CHUNK_SIZE,   /* a chunk-size line */
    LOGS_HTTP_RESP_CHUNK_DATA,   /* remaining bytes of a chunk */
    LOGS_HTTP_RESP_CHUNK_CRLF,   /* the CRLF after a chunk's data */
    LOGS_HTTP_RESP_TRAILER,      /* trailer lines up to an empty one */
    LOGS_HTTP_RESP_BODY_TO_EOF,  /* no length: the body ends when the server closes */
    LOGS_HTTP_RESP_DONE,
};

struct logs_http_resp {
    enum logs_http_resp_state state;
    int status;
    bool keep_alive;             /* the connection may carry another request */
    uint64_t remaining;
    /* What the head said so far. */
    int minor;                   /* HTTP/1.<minor> */
    bool has_length, chunked, conn_close, conn_keep_alive;
    uint64_t length;
    size_t head_bytes;
    char line[LOGS_HTTP_RESP_MAX_LINE];
    size_t line_n;
    const char *error;           /* why the response was refused */
};

/* Starts reading a new response. */
void logs_http_resp_init(struct logs_http_resp *r);

/* Consumes up to n bytes of p. Returns 1 when the response is complete
 * (*used: the bytes it took; more are not part of it), 0 when it needs
 * more, or -1 for a malformed response (r->error says why). */
int logs_http_resp_feed(struct logs_http_resp *r, const char *p, size_t n, size_t *used);

/* The server closed the connection: returns 1 if that completes the
 * response (a body read to the end of the connection), else -1. */
int logs_http_resp_eof(struct logs_http_resp *r);

#endif

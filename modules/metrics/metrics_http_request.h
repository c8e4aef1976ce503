/*
 * metrics_http_request: parses the head of an HTTP/1.x request to the
 * /metrics endpoint. Pure and allocation-free, so it is fuzzed alone.
 */
#ifndef OTR_METRICS_HTTP_REQUEST_H
#define OTR_METRICS_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

struct mreq {
    size_t head_len;     /* bytes of the head, through the blank line */
    bool get, head;      /* the method */
    bool keep_alive;     /* HTTP/1.1 without "Connection: close", or 1.0 with keep-alive */
    bool has_body;       /* Content-Length other than 0, or Transfer-Encoding */
    const char *path;    /* into the buffer, without the query */
    size_t path_len;
    bool has_accept;
    char accept[512];    /* the Accept header, truncated */
};

/* Returns 1 with *r filled when buf holds a complete head, 0 when more is
 * needed, -1 when it is not an HTTP/1.x request. */
int mreq_parse(const char *buf, size_t len, struct mreq *r);

/* Finds header `name` (case-insensitive) in the header lines [p, end);
 * copies its trimmed value into out (truncated to cap - 1). */
bool mreq_find_header(const char *p, const char *end, const char *name, char *out, size_t cap);

#endif

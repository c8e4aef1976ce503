/*
 * metrics_http_client: a small HTTP/1.1 client on libuv for scrapes and
 * Pushgateway pushes. One request per connection ("Connection: close"),
 * a deadline for the whole exchange, a bound on the body size, fixed
 * length, chunked and read-to-close bodies. Hosts are IP literals or DNS
 * names, resolved (uv_getaddrinfo) for every request; the addresses of
 * a name are tried in order until one accepts the connection.
 */
#ifndef OTR_METRICS_HTTP_CLIENT_H
#define OTR_METRICS_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct metrics_url;
struct mhttp_client;

struct mhttp_request {
    const char *method; /* "GET", "PUT" */
    const struct metrics_url *url;
    const char *accept;       /* NULL: none */
    const char *content_type; /* with a body */
    const char *body;         /* copied */
    size_t body_len;
    uint64_t timeout_ms;
    size_t max_body;
};

/* Called once per request: err is 0 or a negative libuv code
 * (UV_ETIMEDOUT, UV_E2BIG for a body over max_body, UV_EPROTO for a
 * response that is not HTTP, UV_ECANCELED after mhttp_abort). On err 0,
 * status is the HTTP status and body/len/content_type the response,
 * valid during the call only. */
typedef void (*mhttp_done_cb)(void *arg, int err, int status, char *body, size_t len, const char *content_type);

/* Starts a request on loop. The client opens two handles, which the owner
 * counts for its drain: handle_closed(owner) runs once as each closes.
 * Returns the client, which frees itself after the callback; NULL when
 * the callback already ran, with an error, before this returned. */
struct mhttp_client *mhttp_start(uv_loop_t *loop, const struct mhttp_request *r, mhttp_done_cb cb, void *arg,
                                 void (*handle_closed)(void *owner), void *owner);

/* Stops a request in flight: the callback runs with UV_ECANCELED. */
void mhttp_abort(struct mhttp_client *c);

/* Parses the head of a response in buf (NUL-terminated copy not needed):
 * returns the head length, 0 if incomplete, -1 if not HTTP. Fills the
 * status, content length (-1 if none), chunked flag and content type. */
long mhttp_parse_head(const char *buf, size_t len, int *status, long long *content_length, int *chunked,
                      char *ctype, size_t ctype_cap);

/* Decodes a chunked body in place; returns its length, or -1 if it is
 * malformed or incomplete. */
long mhttp_dechunk(char *p, size_t len);

#endif

/*
 * proxy_endpoints: endpoint addresses (the identity of an endpoint) and the
 * parser of endpoints files. Pure functions, no I/O: the file is read and
 * watched by proxy_discovery.c.
 *
 * An endpoints file is JSON:
 *   {"endpoints": ["10.0.0.1:8080", "[fd00::7]:8080", ...]}
 * with IP literals only ("ip:port", "[ipv6]:port"); other keys are errors,
 * so a misspelt key is not silently an empty cluster.
 */
#ifndef OUTRIDER_PROXY_ENDPOINTS_H
#define OUTRIDER_PROXY_ENDPOINTS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most endpoints in one set (file or DNS answers together). */
#define PROXY_ENDPOINTS_MAX 4096
/* Largest endpoints file read. */
#define PROXY_ENDPOINTS_FILE_MAX (1024 * 1024)

/* One endpoint address. Two endpoints are the same endpoint when their
 * addresses compare equal (proxy_epaddr_cmp): family, address, scope, port. */
struct proxy_epaddr {
    struct sockaddr_storage sa;
    char text[64]; /* canonical "ip:port" or "[ip6]:port", for logs and access records */
};

/* Fills out from an IP literal (v4, or v6 without brackets) and a port.
 * Returns 0, or UV_EINVAL when host is not an IP literal. */
int proxy_epaddr_set(struct proxy_epaddr *out, const char *host, uint16_t port);
/* Same from a socket address (AF_INET/AF_INET6) and a port. */
int proxy_epaddr_from_sa(struct proxy_epaddr *out, const struct sockaddr *sa, uint16_t port);
/* Parses "ip:port" or "[ipv6]:port" (port 1..65535). 0 or UV_EINVAL. */
int proxy_epaddr_parse(const char *text, size_t len, struct proxy_epaddr *out);
int proxy_epaddr_cmp(const struct proxy_epaddr *a, const struct proxy_epaddr *b);
/* Sorts addrs and drops duplicates; returns the new count. */
size_t proxy_epaddrs_normalize(struct proxy_epaddr *addrs, size_t n);
/* Drops repeated addresses, keeping the first of each in its place (the
 * order given is the round robin order). 0, or UV_ENOMEM (addrs untouched). */
int proxy_epaddrs_dedupe(struct proxy_epaddr *addrs, size_t *n);

/* Whether name is a DNS host name we resolve: dot-separated labels of
 * letters, digits, '-' and '_' (1..63 each, 253 in all, one trailing dot
 * allowed), the last not all digits so that a mistyped IPv4 address is not
 * taken for a name. */
bool proxy_dns_name_valid(const char *name);

/* Parses an endpoints file's bytes. On success returns 0 and *out (the
 * caller frees it; NULL when the list is empty) holding *n addresses,
 * in the file's order without duplicates. On error returns UV_EINVAL and writes one
 * line into err naming the place: "file:line:column: why" for JSON syntax,
 * "file: $.endpoints[3]: why" for content. file only labels the messages. */
int proxy_endpoints_parse(const char *buf, size_t len, const char *file, struct proxy_epaddr **out, size_t *n,
                          char *err, size_t errlen);

#endif

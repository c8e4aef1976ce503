/*
 * libFuzzer target for the mesh's parsers of outside input: the
 * x-outrider-dst value another agent sends (hostport_parse) and the CIDRs
 * of proxy.mesh.agents[].pods (cidr_parse). Besides memory safety: a parsed
 * destination has a real family and a port, and a parsed CIDR holds its own
 * network address and has no host bits.
 *
 *   t/fuzz/run 60
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../../modules/proxy/proxy_mesh.c"

void proxy_upconn_close(struct proxy_upconn *u) { abort(); }
void proxy_h2up_retire(struct proxy_endpoint *ep) { abort(); }
bool proxy_h2up_idle(const struct proxy_endpoint *ep, unsigned *n) { abort(); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    /* Exactly len bytes, unterminated, as HTTP/2 header values are. */
    char *v = malloc(len ? len : 1);
    if (!v)
        return 0;
    memcpy(v, data, len);
    struct sockaddr_storage sa;
    if (hostport_parse(v, len, &sa)) {
        assert(sa.ss_family == AF_INET || sa.ss_family == AF_INET6);
        assert(sockaddr_port((struct sockaddr *)&sa) != 0);
    }
    free(v);
    char *s = malloc(len + 1);
    if (!s)
        return 0;
    memcpy(s, data, len);
    s[len] = 0;
    struct mesh_cidr c;
    if (cidr_parse(s, &c)) {
        assert(c.bits <= 128);
        assert(cidr_contains(&c, c.net));
    }
    free(s);
    return 0;
}

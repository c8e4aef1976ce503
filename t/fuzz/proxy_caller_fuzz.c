/*
 * libFuzzer target for the x-outrider-caller value a node agent sends
 * (proxy_caller_parse). Besides memory safety: an accepted value is
 * "namespace/name" with one slash, fits the buffer, and is copied as given.
 *
 *   t/fuzz/run 60
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../../modules/proxy/proxy_caller.c"

bool proxy_mesh_trusts_caller(const struct proxy_state *st, const struct sockaddr *peer) { return false; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    /* Exactly len bytes, unterminated, as HTTP/2 header values are. */
    char *v = malloc(len ? len : 1);
    if (!v)
        return 0;
    memcpy(v, data, len);
    char out[PROXY_CALLER_MAX];
    if (proxy_caller_parse(v, len, out)) {
        assert(len < PROXY_CALLER_MAX);
        assert(strlen(out) == len && memcmp(out, v, len) == 0);
        const char *slash = strchr(out, '/');
        assert(slash && slash != out && slash[1] && !strchr(slash + 1, '/'));
    }
    free(v);
    return 0;
}

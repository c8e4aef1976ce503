/*
 * libFuzzer target for the health check's status-line parser, which reads
 * whatever an endpoint sends back.
 *
 *   t/fuzz/run 60   (builds build-fuzz/proxy_health_fuzz)
 *
 * Also the gRPC HealthCheckResponse reader, on the same bytes.
 * Besides memory safety it checks the parser's promises: a verdict is -1,
 * 0 (more bytes needed) or a status 100-599, and once a prefix gives a
 * verdict every longer input gives the same one (no verdict depends on
 * bytes past the status line's 13th).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../../modules/proxy/proxy_health.c"
#include "../../modules/proxy/proxy_outlier.c"

void proxy_worker_maybe_drained(struct proxy_worker *pw)
{
    (void)pw;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    /* Exactly len bytes, so ASan sees any read past them. */
    char *b = malloc(len ? len : 1);
    if (!b)
        return 0;
    memcpy(b, data, len);
    int first = 0;
    for (size_t n = 0; n <= len; n++) {
        int v = proxy_health_parse_status(b, n);
        assert(v == -1 || v == 0 || (v >= 100 && v <= 599));
        if (first)
            assert(v == first);
        else
            first = v;
    }
    /* The gRPC health response reader on the same bytes. */
    int g = proxy_health_grpc_serving((const uint8_t *)b, len);
    assert(g == -1 || g == 0 || g == 1);
    free(b);
    return 0;
}

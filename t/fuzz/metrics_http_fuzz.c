/* libFuzzer target: the metrics module's HTTP parsers of outside input,
 * the /metrics endpoint's request head parser and the scrape client's
 * response head parser and chunked decoder. None may crash, read out of
 * bounds, or report lengths beyond its input. */
#include <stdint.h>
#include <stdlib.h>

#include "../../modules/metrics/metrics_buf.c"
#include "../../modules/metrics/metrics_number.c"
#include "../../modules/metrics/metrics_http_client.c"
#include "../../modules/metrics/metrics_http_request.c"

/* metrics_http_client.c's callers live elsewhere in the module. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);

    struct mreq r;
    if (mreq_parse(buf, size, &r) == 1) {
        if (r.head_len > size || r.path < buf || r.path + r.path_len > buf + size || strlen(r.accept) >= sizeof r.accept)
            abort();
    }

    int status, chunked;
    long long clen;
    char ctype[64];
    long head = mhttp_parse_head(buf, size, &status, &clen, &chunked, ctype, sizeof ctype);
    if (head > (long)size || strlen(ctype) >= sizeof ctype)
        abort();
    if (head > 0 && chunked) {
        long n = mhttp_dechunk(buf + head, size - (size_t)head);
        if (n > (long)size - head)
            abort();
    }
    /* The decoder alone on the whole input, too. */
    memcpy(buf, data, size);
    long n = mhttp_dechunk(buf, size);
    if (n > (long)size)
        abort();
    free(buf);
    return 0;
}

/*
 * libFuzzer target: the http output's response reader, fed the input in
 * pieces whose sizes come from the first byte. No crash, no read past the
 * input, never more bytes taken than given, and a finished response stays
 * finished.
 */
#include <stdint.h>
#include <stdlib.h>

#include "../../modules/logs/logs_http_resp.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct logs_http_resp r;
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    logs_http_resp_init(&r);
    int rc = 0;
    while (n && rc == 0) {
        size_t piece = n < step ? n : step, used = 0;
        rc = logs_http_resp_feed(&r, p, piece, &used);
        if (used > piece || (rc == 0 && used != piece))
            abort();
        p += used;
        n -= used;
        if (rc == 1 && (r.status < 200 || r.status > 999))
            abort();
    }
    if (rc == 0)
        (void)logs_http_resp_eof(&r);
    return 0;
}

/*
 * libFuzzer target for otr_admin_parse, the admin endpoint's HTTP/1.1
 * request parser.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore/include -Icore \
 *       $(pkg-config --cflags --libs libuv jansson lua5.4) t/fuzz/admin_http_fuzz.c -o /tmp/f
 *   /tmp/f -max_total_time=60
 *
 * The first two input bytes pick the head and body limits, so the limit
 * paths are reached with short inputs. Beyond memory safety it checks what
 * the server relies on: a DONE request lies within the input, parsing just
 * its bytes gives the same request, and no shorter prefix was DONE with a
 * request that would run past that prefix.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/admin_http.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_head = 16 + (size_t)data[0] * 4;
    size_t max_body = (size_t)data[1] * 2;
    data += 2;
    size -= 2;
    /* A heap copy of exactly size bytes, so ASan sees any read past it. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);

    struct otr_admin_request req, again;
    enum otr_admin_parse rc = otr_admin_parse(buf, size, max_head, max_body, &req);
    if (rc == OTR_ADMIN_PARSE_DONE) {
        if (req.consumed == 0 || req.consumed > size || req.path[0] != '/' || !req.method[0] ||
            req.content_length > max_body || req.consumed - req.content_length > max_head)
            abort();
        if (otr_admin_parse(buf, req.consumed, max_head, max_body, &again) != OTR_ADMIN_PARSE_DONE ||
            memcmp(&req, &again, sizeof req) != 0)
            abort();
    }
    if (rc == OTR_ADMIN_PARSE_MORE && req.consumed && req.consumed <= size)
        abort(); /* says it needs bytes it already has */
    if (size > 0) {
        enum otr_admin_parse shorter = otr_admin_parse(buf, size - 1, max_head, max_body, &again);
        if (shorter == OTR_ADMIN_PARSE_DONE && rc != OTR_ADMIN_PARSE_DONE)
            abort(); /* one more byte cannot undo a complete request */
    }
    free(buf);
    return 0;
}

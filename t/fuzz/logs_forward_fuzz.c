/*
 * libFuzzer target: the forward input's frame parser ("OTRF <seq> <len>\n"
 * + payload), fed in pieces of varying size, with each payload's lines
 * checked by the JSON validator as the receiver does. No crash, no read
 * past the input, memory bounded by max_frame.
 */
#include <stdint.h>
#include <stdlib.h>

#include "../../modules/logs/logs_encode.c"
#include "../../modules/logs/logs_json.c"
#include "../../modules/logs/logs_time.c"

/* Only the parser is used: the socket side stays out of the fuzzer. */
#include <uv.h>
#include "../../modules/logs/logs_queue.c"
#include "../../modules/logs/logs_spool.c"
#include "../../modules/logs/logs_forward_in.c"

static int on_frame(void *arg, uint64_t seq, const char *payload, size_t n)
{
    size_t *frames = arg;
    (*frames)++;
    const char *p = payload, *end = payload + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        (void)logs_json_is_object(p, p + len);
        p += len + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = 1 + data[0] % 64, frames = 0;
    struct logs_fwd_parse p = {0};
    for (size_t off = 1; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        if (logs_fwd_parse_feed(&p, (const char *)data + off, n, 4096, on_frame, &frames))
            break;
        if (p.in.n > 4096 + 64 + step)
            abort(); /* buffered more than one frame and a header */
    }
    logs_buf_free(&p.in);
    return 0;
}

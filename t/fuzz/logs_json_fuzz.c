/*
 * libFuzzer target: docker json-file and JSON-lines parsing, the JSON
 * validator and string decoder, and the encoder: any input yields records
 * whose encoding is valid JSON, and no crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>

#include "../../modules/logs/logs_cri.c"
#include "../../modules/logs/logs_docker.c"
#include "../../modules/logs/logs_encode.c"
#include "../../modules/logs/logs_json.c"
#include "../../modules/logs/logs_parser.c"
#include "../../modules/logs/logs_time.c"

static struct logs_buf enc;

static void on_rec(void *arg, const struct logs_rec *r)
{
    enc.n = 0;
    if (logs_encode_json(&enc, r, ",\"k\":\"v\"", 8))
        abort();
    if (!logs_json_is_object(enc.p, enc.p + enc.n - 1))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct logs_parser_conf c = {.format = (data[0] & 1) ? LOGS_FORMAT_DOCKER : LOGS_FORMAT_JSON,
                                 .max_size = 64 + (data[0] >> 1) * 4};
    struct logs_parser p;
    char err[128];
    if (logs_parser_init(&p, &c, on_rec, NULL, err, sizeof err))
        abort();
    const char *text = (const char *)data + 1;
    size_t n = size - 1, off = 0;
    while (off < n) {
        const char *nl = memchr(text + off, '\n', n - off);
        size_t len = nl ? (size_t)(nl - text - off) : n - off;
        logs_parser_line(&p, text + off, len, off, off + len + 1, 1);
        off += len + 1;
    }
    logs_parser_flush(&p, true);
    logs_parser_fini(&p);
    return 0;
}

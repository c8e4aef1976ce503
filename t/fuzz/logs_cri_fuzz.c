/*
 * libFuzzer target: the CRI parser with partial reassembly and multiline
 * joining, fed arbitrary bytes split at newlines. Checks that every byte of
 * every well-formed message comes out (no loss) and that records never
 * exceed max_size.
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Icore/include t/fuzz/logs_cri_fuzz.c
 */
#include <stdint.h>
#include <stdlib.h>

#include "../../modules/logs/logs_cri.c"
#include "../../modules/logs/logs_docker.c"
#include "../../modules/logs/logs_encode.c"
#include "../../modules/logs/logs_json.c"
#include "../../modules/logs/logs_parser.c"
#include "../../modules/logs/logs_time.c"

struct sink {
    size_t max, bytes;
    struct logs_buf enc;
};

static void on_rec(void *arg, const struct logs_rec *r)
{
    struct sink *s = arg;
    if (r->len > s->max)
        abort();
    s->bytes += r->len;
    s->enc.n = 0;
    if (logs_encode_json(&s->enc, r, "", 0))
        abort();
    /* Whatever came in, the encoded line is one valid JSON object. */
    if (!logs_json_is_object(s->enc.p, s->enc.p + s->enc.n - 1))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* The first byte picks the limit and whether multiline is on. */
    struct sink s = {.max = 16 + (data[0] & 0x3f) * 8};
    struct logs_parser_conf c = {.format = LOGS_FORMAT_CRI, .max_size = s.max,
                                 .multiline_start = (data[0] & 0x40) ? "^[A-Z]" : NULL};
    struct logs_parser p;
    char err[128];
    if (logs_parser_init(&p, &c, on_rec, &s, err, sizeof err))
        abort();
    const char *text = (const char *)data + 1;
    size_t n = size - 1, off = 0;
    /* With the top bit set, a line without newline is a piece of a line
     * the source cut (no newline counted in its end offset). */
    bool cut = data[0] & 0x80;
    while (off < n) {
        const char *nl = memchr(text + off, '\n', n - off);
        size_t len = nl ? (size_t)(nl - text - off) : n - off;
        if (cut && len > 8 && (text[off] & 1)) {
            logs_parser_line(&p, text + off, len / 2, off, off + len / 2, 1);
            logs_parser_line(&p, text + off + len / 2, len - len / 2, off + len / 2, off + len + 1, 1);
            off += len + 1;
            continue;
        }
        logs_parser_line(&p, text + off, len, off, off + len + 1, 1);
        if (logs_parser_resume(&p) > off + len + 1)
            abort();
        off += len + 1;
    }
    logs_parser_flush(&p, true);
    if (logs_parser_holding(&p))
        abort();
    logs_parser_fini(&p);
    logs_buf_free(&s.enc);
    return 0;
}

/*
 * libFuzzer target for the HTTP/1.1 parser and chunked decoder.
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       t/fuzz/proxy_h1_fuzz.c -o build/fuzz/proxy_h1_fuzz
 *   build/fuzz/proxy_h1_fuzz -max_total_time=60 -dict=t/fuzz/proxy_h1_fuzz.dict t/fuzz/corpus/proxy_h1_fuzz  (or: t/fuzz/run 60)
 *
 * The first input byte picks request or response and a split point; the
 * rest is the message. Besides memory safety it checks the parser's own
 * promises: the result does not depend on the split, every span lies inside
 * the head, and the chunked decoder never reports payload outside its input
 * nor stalls.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../../modules/proxy/proxy_h1_parse.c"

static void check_span(struct proxy_h1_span s, uint32_t head_len)
{
    assert(s.off <= head_len && s.len <= head_len - s.off);
}

static int parse_in_two(enum proxy_h1_kind kind, enum proxy_h1_method m, const uint8_t *data, size_t len, size_t cut,
                        struct proxy_h1_parser *p)
{
    /* Each delivery gets a buffer of exactly its size so ASan sees
     * reads past what was delivered. */
    proxy_h1_parser_init(p, kind, NULL, m);
    char *a = malloc(cut ? cut : 1);
    memcpy(a, data, cut);
    int r = proxy_h1_head_parse(p, a, cut);
    free(a);
    if (r != 0)
        return r;
    char *b = malloc(len ? len : 1);
    memcpy(b, data, len);
    r = proxy_h1_head_parse(p, b, len);
    free(b);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum proxy_h1_kind kind = (data[0] & 1) ? PROXY_H1_RESPONSE : PROXY_H1_REQUEST;
    enum proxy_h1_method m = (data[0] & 2) ? PROXY_H1_M_HEAD : PROXY_H1_M_GET;
    const uint8_t *msg = data + 1;
    size_t len = size - 1, cut = (size_t)(data[0] >> 2) * len / 64;

    static struct proxy_h1_parser whole, split;
    proxy_h1_parser_init(&whole, kind, NULL, m);
    int r = proxy_h1_head_parse(&whole, (const char *)msg, len);
    int r2 = parse_in_two(kind, m, msg, len, cut, &split);
    /* The outcome never depends on how the bytes were split. */
    assert(r == r2);
    if (r <= 0)
        return 0;
    const struct proxy_h1_head *h = &whole.head;
    assert((size_t)r <= len && h->head_len == (uint32_t)r);
    check_span(h->method, h->head_len);
    check_span(h->target, h->head_len);
    check_span(h->authority, h->head_len);
    check_span(h->path, h->head_len);
    check_span(h->reason, h->head_len);
    assert(h->n_fields <= PROXY_H1_FIELDS_CAP);
    for (uint32_t i = 0; i < h->n_fields; i++) {
        check_span((struct proxy_h1_span){ h->fields[i].name_off, h->fields[i].name_len }, h->head_len);
        check_span((struct proxy_h1_span){ h->fields[i].value_off, h->fields[i].value_len }, h->head_len);
    }
    if (h->framing != PROXY_H1_BODY_CHUNKED)
        return 0;
    struct proxy_h1_chunked c;
    proxy_h1_chunked_init(&c, NULL);
    const char *body = (const char *)msg + r;
    size_t left = len - (size_t)r;
    while (left) {
        struct proxy_h1_piece piece;
        ssize_t k = proxy_h1_chunked_decode(&c, body, left, &piece);
        if (k < 0)
            break;
        assert((size_t)k <= left && (k > 0 || piece.done));
        if (piece.data)
            assert(piece.data >= body && piece.data + piece.len <= body + k);
        if (piece.trailer)
            assert(piece.trailer >= body && piece.trailer + piece.trailer_len <= body + k);
        body += k;
        left -= (size_t)k;
        if (piece.done)
            break;
    }
    return 0;
}

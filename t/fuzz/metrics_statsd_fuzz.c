/* libFuzzer target: the statsd datagram parser must accept any bytes
 * without crashing, reading out of bounds or looping. Every parsed line's
 * spans must lie inside the input. */
#include <stdint.h>
#include <stdlib.h>

#include "../../modules/metrics/metrics_number.c"
#include "../../modules/metrics/metrics_statsd.c"

struct bounds {
    const char *lo, *hi;
};

static void check_span(const struct bounds *b, struct statsd_span s)
{
    if (s.n && (s.p < b->lo || s.p + s.n > b->hi))
        abort();
}

static void fuzz_on_line(void *arg, const struct statsd_line *l)
{
    const struct bounds *b = arg;
    check_span(b, l->name);
    check_span(b, l->member);
    if (l->n_values == 0 || l->n_values > STATSD_MAX_VALUES || l->n_tags > STATSD_MAX_TAGS)
        abort();
    for (uint32_t i = 0; i < l->n_tags; i++) {
        check_span(b, l->tags[i].key);
        check_span(b, l->tags[i].value);
    }
    if (!(l->rate > 0 && l->rate <= 1))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy, so ASan sees reads past the end of the datagram. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    static struct statsd_line scratch;
    struct bounds b = {buf, buf + size};
    struct statsd_counts c = {0};
    statsd_parse_datagram(buf, size, &scratch, fuzz_on_line, &b, &c);
    if (c.malformed > c.lines)
        abort();
    free(buf);
    return 0;
}

/* libFuzzer target: the Prometheus text parser must accept any bytes (in
 * both text and OpenMetrics modes) without crashing, reading or writing out
 * of bounds; every string it reports lies inside the buffer, and label
 * values and HELP text it accepts are valid UTF-8 with valid names. */
#include <stdint.h>
#include <stdlib.h>

#include "../../modules/metrics/metrics_number.c"
#include "../../modules/metrics/metrics_promtext.c"

struct bounds {
    const char *lo, *hi;
};

static void check_str(const struct bounds *b, struct prom_str s)
{
    if (s.n && (s.p < b->lo || s.p + s.n > b->hi))
        abort();
}

static int fuzz_on_sample(void *arg, const struct prom_sample *s)
{
    const struct bounds *b = arg;
    check_str(b, s->family);
    check_str(b, s->name);
    check_str(b, s->help);
    if (!prom_valid_metric_name(s->name.p, s->name.n) || !prom_valid_utf8(s->help.p, s->help.n))
        abort();
    if (s->n_labels > PROM_MAX_LABELS)
        abort();
    for (size_t i = 0; i < s->n_labels; i++) {
        check_str(b, s->labels[i].name);
        check_str(b, s->labels[i].value);
        if (!prom_valid_label_name(s->labels[i].name.p, s->labels[i].name.n) ||
            !prom_valid_utf8(s->labels[i].value.p, s->labels[i].value.n))
            abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* The first byte picks the mode; the parser writes in place, so each
     * run gets its own exact-size copy. */
    unsigned flags = data[0] & 1 ? PROM_OPENMETRICS : 0;
    char *buf = malloc(size - 1 ? size - 1 : 1);
    memcpy(buf, data + 1, size - 1);
    struct bounds b = {buf, buf + size - 1};
    struct prom_error err;
    int rc = prom_parse(buf, size - 1, flags, fuzz_on_sample, &b, &err);
    if (rc != 0 && rc != -1)
        abort();
    if (rc == -1 && (err.line == 0 || err.col == 0))
        abort();
    free(buf);
    return 0;
}

/*
 * registry_render: how long rendering 100,000 series in 1,000 families
 * takes, and how many bytes of heap one series costs.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Icore/include -Icore bench/registry_render.c \
 *      $(pkg-config --cflags --libs libuv) -lpthread -lm -o build/bench/registry_render
 *   build/bench/registry_render [families] [series_per_family] [shards]
 *
 * Series carry two labels ("instance", "code") and get a value in every
 * shard (the worst case for merging). Memory is the heap growth reported
 * by mallinfo2 while declaring and filling the registry.
 */
#include <malloc.h>
#include <time.h>

#include "../core/admin_http.c"
#include "../core/metrics_registry.c"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int n_fam = argc > 1 ? atoi(argv[1]) : 1000;
    int per_fam = argc > 2 ? atoi(argv[2]) : 100;
    unsigned shards = argc > 3 ? (unsigned)atoi(argv[3]) : 1;
    static const char *const labels[] = {"instance", "code", NULL};

    size_t heap0 = mallinfo2().uordblks;
    struct otr_registry *r = otr_registry_new(shards);
    char err[256];
    for (int f = 0; f < n_fam; f++) {
        char name[64], inst[32], code[8];
        snprintf(name, sizeof name, "bench_family_%04d_requests_total", f);
        otr_metric *m = otr_registry_metric(
            r, &(struct otr_metric_desc){.name = name, .help = "Requests served.", .type = OTR_METRIC_COUNTER,
                                         .label_names = labels},
            err, sizeof err);
        if (!m) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        for (int i = 0; i < per_fam; i++) {
            snprintf(inst, sizeof inst, "10.0.%d.%d:8080", i / 256, i % 256);
            snprintf(code, sizeof code, "%d", 200 + i % 5);
            const char *const v[] = {inst, code};
            for (unsigned s = 0; s < shards; s++)
                otr_series_counter_add(otr_registry_series(m, s, v), (double)(f * per_fam + i));
        }
    }
    size_t heap1 = mallinfo2().uordblks;
    size_t n_series = (size_t)n_fam * (size_t)per_fam;

    struct otr_buf out = {0};
    enum { RUNS = 21 };
    double t[RUNS];
    for (int fmt = 0; fmt < 2; fmt++) {
        for (int run = 0; run < RUNS; run++) {
            out.len = 0;
            double t0 = now_ms();
            otr_registry_render(r, (enum otr_metrics_format)fmt, otr_buf_emit, &out);
            t[run] = now_ms() - t0;
        }
        qsort(t, RUNS, sizeof t[0], cmp_double);
        printf("%s: %zu series in %d families, %u shard(s): render median %.2f ms, min %.2f ms, max %.2f ms, "
               "%zu bytes of text\n",
               fmt ? "openmetrics" : "prometheus", n_series, n_fam, shards, t[RUNS / 2], t[0], t[RUNS - 1],
               out.len);
    }
    printf("heap: %zu bytes for %zu series = %.1f bytes/series (labels \"10.0.x.y:8080\", \"20x\")\n",
           heap1 - heap0, n_series, (double)(heap1 - heap0) / (double)n_series);
    otr_buf_fini(&out);
    otr_registry_free(r);
    return 0;
}

/*
 * bench/logs/parse_bench: CPU per line of the CRI parser alone, and of
 * parse + JSON encoding, on a file loaded in memory (no I/O).
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Icore/include -o build/bench/logs_parse bench/logs/parse_bench.c
 *   build/bench/logs_parse /tmp/outrider-bench-logs/bench-268435456.log
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../../modules/logs/logs_cri.c"
#include "../../modules/logs/logs_docker.c"
#include "../../modules/logs/logs_encode.c"
#include "../../modules/logs/logs_json.c"
#include "../../modules/logs/logs_parser.c"
#include "../../modules/logs/logs_time.c"

static struct logs_buf out;
static uint64_t records;
static bool encode;

static void on_rec(void *arg, const struct logs_rec *r)
{
    records++;
    if (encode) {
        if (out.n > (1 << 20))
            out.n = 0;
        logs_encode_json(&out, r, ",\"namespace\":\"shop\",\"pod\":\"cart-1\",\"container\":\"app\"", 52);
    }
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f)
        return perror(argv[1]), 1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)size);
    if (fread(data, 1, (size_t)size, f) != (size_t)size)
        return 1;
    fclose(f);
    /* Pass 0 warms caches and the allocator and is not printed. */
    for (int pass = 0; pass < 3; pass++) {
        encode = pass == 2;
        struct logs_parser p;
        char err[64];
        struct logs_parser_conf c = {.format = LOGS_FORMAT_CRI, .max_size = 1 << 20};
        logs_parser_init(&p, &c, on_rec, NULL, err, sizeof err);
        records = 0;
        uint64_t lines = 0;
        double t0 = cpu_now();
        for (const char *s = data, *e = data + size; s < e;) {
            const char *nl = memchr(s, '\n', (size_t)(e - s));
            size_t n = nl ? (size_t)(nl - s) : (size_t)(e - s);
            logs_parser_line(&p, s, n, (uint64_t)(s - data), (uint64_t)(s - data) + n + 1, 1);
            lines++;
            s += n + 1;
        }
        double dt = cpu_now() - t0;
        if (pass)
            printf("%-18s %llu lines %llu records %.3f CPU-s %.1f ns/line %.0f lines/CPU-s\n",
               encode ? "parse+encode" : "parse", (unsigned long long)lines, (unsigned long long)records, dt,
               dt * 1e9 / lines, lines / dt);
        logs_parser_fini(&p);
    }
    free(data);
    logs_buf_free(&out);
    return 0;
}

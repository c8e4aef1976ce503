/*
 * Nanoseconds per head for the HTTP/1.1 parser, on a typical browser-ish
 * request (~500 bytes, 10 fields), a curl-sized request and a typical
 * response head; and nanoseconds per chunked body for the chunked decoder
 * (small chunks, with extensions and a trailer: the per-byte paths).
 * Single thread, CLOCK_MONOTONIC, best of 5 runs.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Imodules/proxy bench/proxy/h1_parse_bench.c -o build/h1_parse_bench
 *   taskset -c 1 build/h1_parse_bench
 *
 * On a busy machine, compare instruction counts instead (deterministic):
 *   cc ... -DBENCH_ITERS=20000 ...; valgrind --tool=callgrind build/h1_parse_bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../modules/proxy/proxy_h1_parse.c"

/* Iterations per round; fewer (-DBENCH_ITERS=20000) to count instructions
 * under valgrind --tool=callgrind, which a loaded machine does not skew. */
#ifndef BENCH_ITERS
#define BENCH_ITERS 2000000
#endif

static const char browser_req[] =
    "GET /api/v1/orders/12345?expand=items&currency=EUR HTTP/1.1\r\n"
    "Host: orders.shop.svc.cluster.local:8080\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"
    "Accept: application/json, text/plain, */*\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijk\r\n"
    "X-Request-Id: 6f1c1c1e-8d2b-4d8e-9f3a-0c4e8b1a2d3f\r\n"
    "Cookie: session=abcdef0123456789; theme=dark\r\n"
    "Connection: keep-alive\r\n"
    "Referer: https://shop.example.com/cart\r\n"
    "\r\n";

static const char curl_req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1:4140\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

static const char resp[] = "HTTP/1.1 200 OK\r\n"
                           "Server: backend\r\n"
                           "Date: Wed, 25 Nov 2026 19:00:00 GMT\r\n"
                           "Content-Type: application/json\r\n"
                           "Content-Length: 1234\r\n"
                           "Cache-Control: no-cache\r\n"
                           "\r\n";

static const char chunked_body[] = "5\r\nhello\r\n"
                                   "a;name=value\r\n0123456789\r\n"
                                   "10 ; ext ; q=\"quoted \\\" value\"\r\n0123456789abcdef\r\n"
                                   "1;a;b=c;d=\"e\"\r\nx\r\n"
                                   "0\r\nX-Checksum: abc\r\n\r\n";

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* A message to time. */
struct bench_case {
    const char *name, *msg;
    size_t len;
    enum proxy_h1_kind kind;
};

/* One head parsed; returns something to sink. */
static long parse_head_once(const struct bench_case *bc)
{
    static struct proxy_h1_parser p;
    proxy_h1_parser_init(&p, bc->kind, NULL, PROXY_H1_M_GET);
    int r = proxy_h1_head_parse(&p, bc->msg, bc->len);
    if (r <= 0) {
        fprintf(stderr, "%s: parse failed: %s\n", bc->name, proxy_h1_error_str(r));
        exit(1);
    }
    return r + (long)p.head.n_fields;
}

/* One chunked body decoded to its end, fed as one buffer. */
static long decode_chunked_once(const struct bench_case *bc)
{
    static struct proxy_h1_chunked c;
    proxy_h1_chunked_init(&c, NULL);
    size_t off = 0;
    long sink = 0;
    struct proxy_h1_piece piece;
    do {
        ssize_t r = proxy_h1_chunked_decode(&c, bc->msg + off, bc->len - off, &piece);
        if (r < 0) {
            fprintf(stderr, "%s: decode failed: %s\n", bc->name, proxy_h1_error_str((int)r));
            exit(1);
        }
        off += (size_t)r;
        sink += (long)piece.len;
    } while (!piece.done && off < bc->len);
    return sink;
}

/* Best of 5 rounds of 2M iterations, in ns per iteration. */
static void run(const struct bench_case *bc, long (*once)(const struct bench_case *), const char *unit)
{
    const long iters = BENCH_ITERS;
    double best = 1e30;
    long sink = 0;
    for (int round = 0; round < 5; round++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++)
            sink += once(bc);
        double dt = (now_ns() - t0) / iters;
        if (dt < best)
            best = dt;
    }
    printf("%-16s %4zu bytes %6.1f ns/%s %6.2f ns/byte (sink %ld)\n", bc->name, bc->len, best, unit, best / bc->len,
           sink & 1);
}

int main(void)
{
    run(&(struct bench_case){"browser request", browser_req, sizeof browser_req - 1, PROXY_H1_REQUEST},
        parse_head_once, "head");
    run(&(struct bench_case){"curl request", curl_req, sizeof curl_req - 1, PROXY_H1_REQUEST}, parse_head_once,
        "head");
    run(&(struct bench_case){"response", resp, sizeof resp - 1, PROXY_H1_RESPONSE}, parse_head_once, "head");
    run(&(struct bench_case){"chunked body", chunked_body, sizeof chunked_body - 1, PROXY_H1_REQUEST},
        decode_chunked_once, "body");
    return 0;
}

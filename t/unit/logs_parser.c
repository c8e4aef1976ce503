/*
 * logs_parser: CRI, docker json-file, JSON lines and raw lines; partial
 * reassembly, multiline joining, malformed and oversized input, resume
 * offsets, and the JSON-lines encoding of records.
 */
#include "tap.h"

#include "../../modules/logs/logs_cri.c"
#include "../../modules/logs/logs_docker.c"
#include "../../modules/logs/logs_encode.c"
#include "../../modules/logs/logs_json.c"
#include "../../modules/logs/logs_parser.c"
#include "../../modules/logs/logs_time.c"

#define MAXREC 64
struct got {
    int n;
    char msg[MAXREC][512];
    size_t len[MAXREC];
    uint64_t time[MAXREC], resume[MAXREC];
    int stream[MAXREC], flags[MAXREC];
};

static void collect(void *arg, const struct logs_rec *r)
{
    struct got *g = arg;
    if (g->n >= MAXREC)
        return;
    size_t n = r->len < 511 ? r->len : 511;
    memcpy(g->msg[g->n], r->msg, n);
    g->msg[g->n][n] = 0;
    g->len[g->n] = r->len;
    g->time[g->n] = r->time_ns;
    g->resume[g->n] = r->resume_off;
    g->stream[g->n] = r->stream;
    g->flags[g->n] = r->flags;
    g->n++;
}

/* Feeds a text of newline-terminated lines with their real offsets. */
static void feed(struct logs_parser *p, const char *text)
{
    size_t off = 0, n = strlen(text);
    while (off < n) {
        const char *nl = memchr(text + off, '\n', n - off);
        size_t len = nl ? (size_t)(nl - text - off) : n - off;
        logs_parser_line(p, text + off, len, off, off + len + 1, 42);
        off += len + 1;
    }
}

static void setup(struct logs_parser *p, struct got *g, enum logs_format f, size_t max, const char *ml)
{
    memset(g, 0, sizeof *g);
    char err[256];
    struct logs_parser_conf c = {.format = f, .max_size = max, .multiline_start = ml};
    if (logs_parser_init(p, &c, collect, g, err, sizeof err))
        diag("init: %s", err);
}

static void test_time(void)
{
    uint64_t ns = 0;
    is_int(logs_time_parse("2016-10-06T00:17:09.669794202Z", 30, &ns), 0, "RFC3339Nano parses");
    is_int(ns, 1475713029669794202ull, "to the right nanosecond");
    is_int(logs_time_parse("2016-10-06T02:17:09.5+02:00", 27, &ns), 0, "offset parses");
    is_int(ns, 1475713029500000000ull, "offset applied, fraction scaled");
    is_int(logs_time_parse("1970-01-01T00:00:00Z", 20, &ns), 0, "epoch");
    is_int(ns, 0, "epoch is 0");
    ok(logs_time_parse("2016-13-06T00:17:09Z", 20, &ns) < 0, "month 13 refused");
    ok(logs_time_parse("2016-10-06T00:17:09.Z", 21, &ns) < 0, "empty fraction refused");
    ok(logs_time_parse("2016-10-06T00:17:09", 19, &ns) < 0, "missing zone refused");
    ok(logs_time_parse("2016-10-06X00:17:09Z", 20, &ns) < 0, "bad separator refused");
    char out[LOGS_TIME_LEN + 1] = {0};
    logs_time_format(1475713029669794202ull, out);
    is_str(out, "2016-10-06T00:17:09.669794202Z", "format round-trips");
    logs_time_format(951782400000000001ull, out);
    is_str(out, "2000-02-29T00:00:00.000000001Z", "leap day formats");
}

static void test_cri(void)
{
    struct logs_parser p;
    struct got g;
    setup(&p, &g, LOGS_FORMAT_CRI, 1024, NULL);
    const char *text = "2016-10-06T00:17:09.669794202Z stdout F hello world\n"   /* 0..52 */
                       "2016-10-06T00:17:10.000000000Z stderr P part one \n"     /* 52..102 */
                       "2016-10-06T00:17:10.100000000Z stdout F interleaved\n"   /* 102..154 */
                       "2016-10-06T00:17:10.200000000Z stderr P two \n"          /* 154..199 */
                       "2016-10-06T00:17:10.300000000Z stderr F three\n"         /* 199..245 */
                       "2016-10-06T00:17:11Z stdout F:x:y tagged\n"
                       "2016-10-06T00:17:12Z stdout F\n"
                       "not a cri line\n"
                       "2016-10-06T00:17:12Z stdin F nope\n";
    feed(&p, text);
    is_int(g.n, 7, "7 records");
    is_str(g.msg[0], "hello world", "full line message");
    is_int(g.stream[0], LOGS_STREAM_STDOUT, "stdout");
    is_int(g.time[0], 1475713029669794202ull, "time from the line");
    is_int(g.resume[0], 52, "resume after the first line");
    is_str(g.msg[1], "interleaved", "stdout line passes while stderr is partial");
    is_int(g.resume[1], 52, "resume held at the start of the pending partial");
    is_str(g.msg[2], "part one two three", "P P F reassembled");
    is_int(g.stream[2], LOGS_STREAM_STDERR, "stderr");
    is_int(g.time[2], 1475713030000000000ull, "reassembled record has the first part's time");
    is_int(g.resume[2], 245, "resume after the F line");
    is_str(g.msg[3], "tagged", "extra tags skipped");
    is_str(g.msg[4], "", "empty message");
    is_str(g.msg[5], "not a cri line", "malformed passed raw");
    is_int(g.flags[5], LOGS_REC_MALFORMED, "flagged malformed");
    is_int(g.time[5], 42, "malformed gets the read time");
    is_str(g.msg[6], "2016-10-06T00:17:12Z stdin F nope", "bad stream is malformed");
    is_int(p.malformed, 2, "2 malformed counted");
    is_int(p.lines, 9, "9 lines counted");
    logs_parser_fini(&p);
}

static void test_cri_limits(void)
{
    struct logs_parser p;
    struct got g;
    setup(&p, &g, LOGS_FORMAT_CRI, 16, NULL);
    feed(&p, "2016-10-06T00:17:09Z stdout P 0123456789\n"
             "2016-10-06T00:17:09Z stdout P abcdefghij\n"
             "2016-10-06T00:17:09Z stdout F XYZ\n"
             "2016-10-06T00:17:09Z stdout F 0123456789abcdefghijklmnopqrstuvwxyz\n");
    is_int(g.n, 5, "oversized partial and line are cut");
    is_str(g.msg[0], "0123456789abcdef", "first piece is max_size");
    ok(g.flags[0] & LOGS_REC_SPLIT, "flagged split");
    is_int(g.resume[0], 41, "resume at the line holding the rest");
    is_str(g.msg[1], "ghijXYZ", "rest of the partial with its final part");
    ok(g.flags[1] & LOGS_REC_SPLIT, "rest flagged split too");
    is_str(g.msg[2], "0123456789abcdef", "long full line: piece 1");
    is_str(g.msg[3], "ghijklmnopqrstuv", "piece 2");
    is_str(g.msg[4], "wxyz", "piece 3");
    size_t total = 0;
    for (int i = 2; i < 5; i++)
        total += g.len[i];
    is_int(total, 36, "no byte lost in the cut");
    is_int(p.split, 5, "split pieces counted");
    logs_parser_fini(&p);

    setup(&p, &g, LOGS_FORMAT_CRI, 1024, NULL);
    feed(&p, "2016-10-06T00:17:09Z stdout P unfinished\n");
    is_int(g.n, 0, "a partial alone is held");
    ok(logs_parser_holding(&p), "parser says it holds");
    is_int(logs_parser_resume(&p), 0, "resume stays at its start");
    logs_parser_flush(&p, true);
    is_int(g.n, 1, "flush at end of source emits it");
    is_str(g.msg[0], "unfinished", "with its text");
    logs_parser_fini(&p);
}

/* Lines the source cut (no newline: end == start + n) until the last. */
static void test_cut_lines(void)
{
    struct logs_parser p;
    struct got g;
    setup(&p, &g, LOGS_FORMAT_CRI, 16, NULL);
    const char *a = "2016-10-06T00:17:09Z stderr F 0123456789", *b = "abcdefghij", *c = "XYZ";
    size_t la = strlen(a);
    logs_parser_line(&p, a, la, 0, la, 42);
    logs_parser_line(&p, b, 10, la, la + 10, 42);
    logs_parser_line(&p, c, 3, la + 10, la + 14, 42);
    logs_parser_line(&p, "2016-10-06T00:17:09Z stdout F next", 34, la + 14, la + 49, 42);
    is_int(g.n, 3, "a cut line is one record, cut again at max_size, then the next line");
    is_str(g.msg[0], "0123456789abcdef", "first piece");
    is_str(g.msg[1], "ghijXYZ", "rest");
    ok((g.flags[0] & LOGS_REC_SPLIT) && (g.flags[1] & LOGS_REC_SPLIT), "flagged split");
    is_int(g.stream[1], LOGS_STREAM_STDERR, "the line's stream on every piece");
    is_int(g.resume[1], la + 14, "resume after the whole line");
    is_str(g.msg[2], "next", "next line intact");
    is_int(p.malformed, 0, "pieces are not malformed");
    logs_parser_fini(&p);

    setup(&p, &g, LOGS_FORMAT_DOCKER, 1024, NULL);
    logs_parser_line(&p, "{\"log\":\"abc", 11, 0, 11, 42);
    logs_parser_line(&p, "def\\n\"}", 8, 11, 20, 42);
    is_int(g.n, 1, "docker: a cut line is one raw record");
    is_str(g.msg[0], "{\"log\":\"abcdef\\n\"}", "with every byte");
    is_int(g.flags[0], LOGS_REC_MALFORMED | LOGS_REC_SPLIT, "flagged malformed and split");
    logs_parser_fini(&p);
}

static void test_docker(void)
{
    struct logs_parser p;
    struct got g;
    setup(&p, &g, LOGS_FORMAT_DOCKER, 1024, NULL);
    feed(&p, "{\"log\":\"hello \\\"q\\\" \\u00e9\\ud83d\\ude00\\n\",\"stream\":\"stdout\",\"time\":\"2019-01-01T00:00:00.000000001Z\"}\n"
             "{\"stream\":\"stderr\",\"log\":\"part \",\"time\":\"2019-01-01T00:00:01Z\"}\n"
             "{\"log\":\"end\\n\",\"stream\":\"stderr\",\"attrs\":{\"a\":[1,2]},\"time\":\"2019-01-01T00:00:02Z\"}\n"
             "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"yesterday\"}\n"
             "{\"log\":\"unterminated\n"
             "{\"stream\":\"stdout\"}\n");
    is_int(g.n, 5, "5 records");
    is_str(g.msg[0], "hello \"q\" \xc3\xa9\xf0\x9f\x98\x80", "escapes and surrogate pair decoded, newline dropped");
    is_int(g.time[0], 1546300800000000001ull, "docker time");
    is_str(g.msg[1], "part end", "partial reassembled");
    is_int(g.stream[1], LOGS_STREAM_STDERR, "stream");
    ok(g.flags[2] & LOGS_REC_MALFORMED, "bad time is malformed");
    ok(g.flags[3] & LOGS_REC_MALFORMED, "broken JSON is malformed");
    ok(g.flags[4] & LOGS_REC_MALFORMED, "missing log is malformed");
    is_int(p.malformed, 3, "3 malformed");
    logs_parser_fini(&p);
}

static void test_json_raw(void)
{
    struct logs_parser p;
    struct got g;
    setup(&p, &g, LOGS_FORMAT_JSON, 1024, NULL);
    feed(&p, "{\"level\":\"info\",\"n\":1.5e3,\"ok\":true,\"x\":null,\"a\":[{}]}\n"
             "{\"level\":\"info\"\n"
             "[1,2]\n"
             "{\"bad\":\"\xff\"}\n");
    is_int(g.n, 4, "4 records");
    is_int(g.flags[0], LOGS_REC_JSON, "object accepted");
    is_int(g.flags[1], LOGS_REC_MALFORMED, "truncated object malformed");
    is_int(g.flags[2], LOGS_REC_MALFORMED, "array is not an object");
    is_int(g.flags[3], LOGS_REC_MALFORMED, "invalid UTF-8 refused");
    logs_parser_fini(&p);

    setup(&p, &g, LOGS_FORMAT_RAW, 1024, NULL);
    feed(&p, "plain text\n\nsecond\n");
    is_int(g.n, 3, "raw: every line, empty ones too");
    is_str(g.msg[2], "second", "raw message");
    is_int(g.resume[2], 19, "raw resume at end");
    logs_parser_fini(&p);
}

static void test_multiline(void)
{
    struct logs_parser p;
    struct got g;
    setup(&p, &g, LOGS_FORMAT_CRI, 1024, "^[0-9]{4}-");
    feed(&p, "2020-01-01T00:00:00Z stdout F 2020-01-01 ERROR boom\n"
             "2020-01-01T00:00:00Z stdout F java.lang.RuntimeException: x\n"
             "2020-01-01T00:00:00Z stdout F \tat a.b(C.java:1)\n"
             "2020-01-01T00:00:01Z stdout F 2020-01-01 INFO next\n");
    is_int(g.n, 1, "group emitted when the next start arrives");
    is_str(g.msg[0], "2020-01-01 ERROR boom\njava.lang.RuntimeException: x\n\tat a.b(C.java:1)", "stack trace joined");
    is_int(g.resume[0], 160, "resume at the start of the held next line");
    logs_parser_flush(&p, false);
    is_int(g.n, 2, "flush emits the pending group");
    is_str(g.msg[1], "2020-01-01 INFO next", "last group");
    is_int(g.resume[1], 211, "resume at end once nothing is held");
    logs_parser_fini(&p);

    char err[256] = "";
    struct logs_parser_conf c = {.format = LOGS_FORMAT_RAW, .max_size = 64, .multiline_start = "(["};
    ok(logs_parser_init(&p, &c, collect, &g, err, sizeof err) < 0, "bad regex refused");
    ok(strstr(err, "(["), "error names the expression: %s", err);
}

static void test_encode(void)
{
    struct logs_buf out = {0}, meta = {0};
    logs_meta_add(&meta, "namespace", "shop");
    logs_meta_add(&meta, "pod", "cart\"1");
    struct logs_rec r = {.time_ns = 1475713029669794202ull, .msg = "a\tb\x01\xff\xc3\xa9\"", .len = 8,
                         .stream = LOGS_STREAM_STDERR};
    logs_encode_json(&out, &r, meta.p, meta.n);
    logs_buf_append(&out, "", 1);
    is_str(out.p,
           "{\"time\":\"2016-10-06T00:17:09.669794202Z\",\"stream\":\"stderr\",\"namespace\":\"shop\",\"pod\":\"cart\\\"1\","
           "\"message\":\"a\\tb\\u0001\xef\xbf\xbd\xc3\xa9\\\"\"}\n",
           "escaped, invalid UTF-8 replaced");
    ok(logs_json_is_object(out.p, out.p + out.n - 2), "output is valid JSON");
    out.n = 0;
    struct logs_rec j = {.time_ns = 0, .msg = " {\"k\":1} ", .len = 9, .flags = LOGS_REC_JSON};
    logs_encode_json(&out, &j, "", 0);
    logs_buf_append(&out, "", 1);
    is_str(out.p, "{\"time\":\"1970-01-01T00:00:00.000000000Z\",\"k\":1}\n", "JSON members spliced");
    out.n = 0;
    struct logs_rec e = {.time_ns = 0, .msg = "{}", .len = 2, .flags = LOGS_REC_JSON};
    logs_encode_json(&out, &e, "", 0);
    logs_buf_append(&out, "", 1);
    is_str(out.p, "{\"time\":\"1970-01-01T00:00:00.000000000Z\"}\n", "empty object spliced");
    logs_buf_free(&out);
    logs_buf_free(&meta);
}

int main(void)
{
    test_time();
    test_cri();
    test_cri_limits();
    test_cut_lines();
    test_docker();
    test_json_raw();
    test_multiline();
    test_encode();
    return done_testing();
}

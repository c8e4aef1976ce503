/* Unit tests of the metrics module's Prometheus text format parser. */
#include <math.h>

#include "tap.h"

#include "../../modules/metrics/metrics_number.c"
#include "../../modules/metrics/metrics_promtext.c"

/* Each sample rendered as "family|type|name|l1=v1,l2=v2|value|ts|help" so
 * one string comparison checks everything the parser reported. */
struct out {
    int n;
    char rows[32][256];
};

static int out_on_sample(void *arg, const struct prom_sample *s)
{
    struct out *o = arg;
    if (o->n == 32)
        return 7;
    char *r = o->rows[o->n++];
    size_t len = 0, cap = sizeof o->rows[0];
    len += (size_t)snprintf(r + len, cap - len, "%.*s|%s|%.*s|", (int)s->family.n, s->family.p,
                            type_names[s->type], (int)s->name.n, s->name.p);
    for (size_t i = 0; i < s->n_labels; i++)
        len += (size_t)snprintf(r + len, cap - len, "%s%.*s=%.*s", i ? "," : "", (int)s->labels[i].name.n,
                                s->labels[i].name.p, (int)s->labels[i].value.n, s->labels[i].value.p);
    char v[METRICS_NUM_MAX];
    metrics_format_double(v, s->value);
    len += (size_t)snprintf(r + len, cap - len, "|%s|", v);
    if (s->has_ts)
        len += (size_t)snprintf(r + len, cap - len, "%lld", (long long)s->ts_ms);
    snprintf(r + len, cap - len, "|%.*s", (int)s->help.n, s->help.p);
    return 0;
}

static struct out O;
static struct prom_error E;

static int parse_flags(const char *text, unsigned flags)
{
    static char buf[8192];
    size_t n = strlen(text);
    memcpy(buf, text, n);
    memset(&O, 0, sizeof O);
    memset(&E, 0, sizeof E);
    return prom_parse(buf, n, flags, out_on_sample, &O, &E);
}

static int parse(const char *text)
{
    return parse_flags(text, 0);
}

static void test_basic(void)
{
    is_int(parse("# HELP http_requests_total Requests served.\n"
                 "# TYPE http_requests_total counter\n"
                 "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
                 "http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n"),
           0, "counter family parses");
    is_int(O.n, 2, "two samples");
    is_str(O.rows[0], "http_requests_total|counter|http_requests_total|method=post,code=200|1027|1395066363000|Requests served.",
           "first sample");
    is_str(O.rows[1], "http_requests_total|counter|http_requests_total|method=post,code=400|3|1395066363000|Requests served.",
           "second sample");

    is_int(parse("metric_without_timestamp_and_labels 12.47\n"), 0, "untyped, no labels");
    is_str(O.rows[0], "metric_without_timestamp_and_labels|untyped|metric_without_timestamp_and_labels||12.47||",
           "implicit untyped family");

    is_int(parse("# TYPE g gauge\ng{a=\"1\"} -Inf\ng{a=\"2\"} NaN\ng{a=\"3\"} +Inf\ng{a=\"4\"} 1.5e-3\n"), 0,
           "gauge specials");
    is_str(O.rows[0], "g|gauge|g|a=1|-Inf||", "-Inf");
    is_str(O.rows[1], "g|gauge|g|a=2|NaN||", "NaN");
    is_str(O.rows[2], "g|gauge|g|a=3|+Inf||", "+Inf");
    is_str(O.rows[3], "g|gauge|g|a=4|0.0015||", "exponent");
}

static void test_histogram_summary(void)
{
    is_int(parse("# HELP lat Latency.\n# TYPE lat histogram\n"
                 "lat_bucket{le=\"0.05\"} 24054\nlat_bucket{le=\"+Inf\"} 144320\n"
                 "lat_sum 53423\nlat_count 144320\n"
                 "# TYPE rpc summary\nrpc{quantile=\"0.5\"} 4773\nrpc_sum 1.7e+07\nrpc_count 2693\n"
                 "after_summary 1\n"),
           0, "histogram and summary");
    is_int(O.n, 8, "eight samples");
    is_str(O.rows[0], "lat|histogram|lat_bucket|le=0.05|24054||Latency.", "bucket in family lat");
    is_str(O.rows[2], "lat|histogram|lat_sum||53423||Latency.", "sum in family lat");
    is_str(O.rows[3], "lat|histogram|lat_count||144320||Latency.", "count in family lat");
    is_str(O.rows[4], "rpc|summary|rpc|quantile=0.5|4773||", "quantile sample");
    is_str(O.rows[5], "rpc|summary|rpc_sum||17000000||", "summary sum");
    is_str(O.rows[7], "after_summary|untyped|after_summary||1||", "a new name starts a new family");
}

static void test_escapes(void)
{
    is_int(parse("# HELP esc A \\\\ backslash\\nand newline, \\t stays.\n"
                 "esc{path=\"C:\\\\dir\\\\f\",q=\"say \\\"hi\\\"\",nl=\"a\\nb\"} 1\n"),
           0, "escapes");
    is_str(O.rows[0], "esc|untyped|esc|path=C:\\dir\\f,q=say \"hi\",nl=a\nb|1||A \\ backslash\nand newline, \\t stays.",
           "label values and HELP unescaped");
    is_int(parse("u{v=\"h\xc3\xa9llo \xe2\x82\xac\"} 1\n"), 0, "UTF-8 label value");
    is_int(parse("x{ a = \"1\" , b=\"2\", } 3\n"), 0, "blanks inside braces and a trailing comma");
    is_str(O.rows[0], "x|untyped|x|a=1,b=2|3||", "labels");
    is_int(parse("x{} 3\n"), 0, "empty braces");
    is_int(parse("\n\n  # free comment\n\t\ny 1\r\n"), 0, "blank lines, comments, CRLF");
    is_str(O.rows[0], "y|untyped|y||1||", "sample after blank lines");
}

static void test_openmetrics(void)
{
    is_int(parse_flags("# TYPE foo counter\n# UNIT foo seconds\n# HELP foo Foo.\n"
                       "foo_total 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n"
                       "foo_created 1520430000.123\n"
                       "# TYPE st stateset\nst{st=\"a\"} 1\n"
                       "# TYPE bi info\nbi_info{version=\"1\"} 1\n"
                       "# TYPE gh gaugehistogram\ngh_bucket{le=\"+Inf\"} 3\ngh_gsum 2\ngh_gcount 3\n"
                       "# EOF\n"
                       "ignored after eof",
                       PROM_OPENMETRICS),
           0, "OpenMetrics body");
    is_int(O.n, 7, "seven samples before EOF");
    is_str(O.rows[0], "foo|counter|foo_total||17|1520879607789|Foo.", "exemplar skipped, float timestamp to ms");
    is_str(O.rows[1], "foo|counter|foo_created||1520430000.123||Foo.", "_created sample in counter family");
    is_str(O.rows[2], "st|stateset|st|st=a|1||", "stateset");
    is_str(O.rows[3], "bi|info|bi_info|version=1|1||", "info");
    is_str(O.rows[6], "gh|gaugehistogram|gh_gcount||3||", "gaugehistogram gcount");
    is_int(parse("# TYPE c counter\nc_total 1 # {a=\"b\"} 1\n"), 0, "exemplar without timestamp in text format");
}

static void test_errors(void)
{
    struct {
        const char *text;
        unsigned line, col;
        const char *msg;
    } cases[] = {
        {"a 1\nb{x=\"1} 2\n", 2, 5, "unterminated label value"},
        {"a{x=\"\\q\"} 1\n", 1, 6, "invalid escape sequence '\\q' in label value"},
        {"a{x=\"1\",x=\"2\"} 1\n", 1, 9, "duplicate label name \"x\""},
        {"a{1x=\"1\"} 1\n", 1, 3, "invalid label name"},
        {"a{x \"1\"} 1\n", 1, 5, "expected '=' after label name"},
        {"a{x=1} 1\n", 1, 5, "expected '\"' to start the label value"},
        {"a{x=\"1\" y=\"2\"} 1\n", 1, 9, "expected ',' or '}' after label value"},
        {"a{x=\"1\"\n", 1, 8, "unterminated label set"},
        {"a\n", 1, 2, "expected a space before the value"},
        {"a abc\n", 1, 3, "invalid value \"abc\""},
        {"a 1 12.5\n", 1, 5, "invalid timestamp"},
        {"a 1 2 3\n", 1, 7, "unexpected text after the sample"},
        {"9a 1\n", 1, 1, "expected a metric name"},
        {"  {x=\"1\"} 1\n", 1, 3, "expected a metric name"},
        {"# TYPE a counter\n# TYPE a gauge\n", 2, 3, "second TYPE line for a"},
        {"# HELP a x\n# HELP a y\n", 2, 3, "second HELP line for a"},
        {"a 1\n# TYPE a gauge\n", 2, 3, "TYPE line for a after its samples"},
        {"# TYPE a cointer\n", 1, 10, "unknown metric type \"cointer\""},
        {"# TYPE a gauge extra\n", 1, 10, "unknown metric type \"gauge\""},
        {"# HELP 1a x\n", 1, 8, "invalid metric name in HELP line"},
        {"a{x=\"\xff\"} 1\n", 1, 6, "label value is not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = parse(cases[i].text);
        ok(rc == -1 && E.line == cases[i].line && E.col == cases[i].col && strcmp(E.msg, cases[i].msg) == 0,
           "error %zu: %u:%u %s (got %d %u:%u %s)", i, cases[i].line, cases[i].col, cases[i].msg, rc, E.line, E.col,
           E.msg);
    }
}

static void test_stop_and_limits(void)
{
    char big[8192] = "m{";
    for (int i = 0; i < PROM_MAX_LABELS + 1; i++)
        sprintf(big + strlen(big), "l%d=\"v\",", i);
    strcat(big, "} 1\n");
    is_int(parse(big), -1, "too many labels is an error");
    ok(strstr(E.msg, "more than 64 labels") != NULL, "names the limit");
    char many[4096] = "";
    for (int i = 0; i < 40; i++)
        sprintf(many + strlen(many), "m%d 1\n", i);
    is_int(parse(many), 7, "callback's stop code returned");
    is_int(O.n, 32, "stopped after 32");
    ok(prom_valid_metric_name("a:b_c", 5) && !prom_valid_metric_name("a-b", 3), "metric name check");
    ok(prom_valid_label_name("_a1", 3) && !prom_valid_label_name("a:b", 3), "label name check");
    is_str(prom_type_name(PROM_GAUGEHISTOGRAM), "histogram", "gaugehistogram renders as histogram");
}

int main(void)
{
    test_basic();
    test_histogram_summary();
    test_escapes();
    test_openmetrics();
    test_errors();
    test_stop_and_limits();
    return done_testing();
}

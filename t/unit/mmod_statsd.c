/* Unit tests of the metrics module's statsd parser and number helpers. */
#include <math.h>

#include "tap.h"

#include "../../modules/metrics/metrics_number.c"
#include "../../modules/metrics/metrics_statsd.c"

static struct statsd_line L;

static enum statsd_error parse(const char *s)
{
    return statsd_parse_line(s, strlen(s), &L);
}

static int span_is(struct statsd_span sp, const char *want)
{
    return sp.n == strlen(want) && memcmp(sp.p, want, sp.n) == 0;
}

static void test_numbers(void)
{
    double v;
    ok(metrics_parse_double("42", 2, &v) && v == 42, "integer");
    ok(metrics_parse_double("-0.25", 5, &v) && v == -0.25, "negative decimal");
    ok(metrics_parse_double("0.1", 3, &v) && v == 0.1, "0.1 is the correctly rounded double");
    ok(metrics_parse_double("1e3", 3, &v) && v == 1000, "exponent via the slow path");
    ok(metrics_parse_double("123456789012345678", 18, &v) && v == 123456789012345678.0, "long mantissa");
    ok(!metrics_parse_double("", 0, &v), "empty is not a number");
    ok(!metrics_parse_double("1x", 2, &v), "trailing garbage rejected");
    ok(!metrics_parse_double("nan", 3, &v), "nan rejected for statsd");
    ok(!metrics_parse_double("0x10", 4, &v), "hex rejected");
    ok(!metrics_parse_double(" 1", 2, &v), "leading space rejected");
    ok(!metrics_parse_double("1e999", 5, &v), "overflow rejected");
    ok(!metrics_parse_double(".", 1, &v), "lone dot rejected");
    ok(metrics_parse_prom_value("+Inf", 4, &v) && isinf(v) && v > 0, "+Inf");
    ok(metrics_parse_prom_value("-Inf", 4, &v) && isinf(v) && v < 0, "-Inf");
    ok(metrics_parse_prom_value("NaN", 3, &v) && isnan(v), "NaN");
    int64_t i;
    ok(metrics_parse_int64("-1520879607789", 14, &i) && i == -1520879607789LL, "int64");
    ok(!metrics_parse_int64("99999999999999999999", 20, &i), "int64 overflow rejected");
    ok(metrics_parse_int64("-9223372036854775808", 20, &i) && i == INT64_MIN, "INT64_MIN");

    char buf[METRICS_NUM_MAX];
    metrics_format_double(buf, 42);
    is_str(buf, "42", "format integer");
    metrics_format_double(buf, 0.1);
    is_str(buf, "0.1", "format 0.1 shortest");
    metrics_format_double(buf, 1.0 / 3);
    ok(strtod(buf, NULL) == 1.0 / 3, "format 1/3 round-trips (%s)", buf);
    metrics_format_double(buf, NAN);
    is_str(buf, "NaN", "format NaN");
    metrics_format_double(buf, -INFINITY);
    is_str(buf, "-Inf", "format -Inf");
    metrics_format_double(buf, 1e300);
    ok(strtod(buf, NULL) == 1e300, "format 1e300 (%s)", buf);
    metrics_format_double(buf, -17);
    is_str(buf, "-17", "format negative integer");
}

static void test_types(void)
{
    is_int(parse("hits:1|c"), STATSD_OK, "counter");
    ok(span_is(L.name, "hits") && L.type == STATSD_COUNTER && L.n_values == 1 && L.values[0] == 1 && L.rate == 1,
       "counter fields");
    is_int(parse("hits:3|c|@0.1"), STATSD_OK, "counter with rate");
    ok(L.rate == 0.1 && L.values[0] == 3, "rate parsed");
    is_int(parse("temp:21.5|g"), STATSD_OK, "gauge");
    ok(L.type == STATSD_GAUGE && !L.delta && L.values[0] == 21.5, "absolute gauge");
    is_int(parse("temp:+3|g"), STATSD_OK, "gauge increment");
    ok(L.delta && L.values[0] == 3, "gauge +3 is a delta");
    is_int(parse("temp:-4|g"), STATSD_OK, "gauge decrement");
    ok(L.delta && L.values[0] == -4, "gauge -4 is a delta");
    is_int(parse("req.time:320|ms"), STATSD_OK, "timer");
    ok(L.type == STATSD_TIMER && L.values[0] == 320, "timer value");
    is_int(parse("size:12|h"), STATSD_OK, "histogram");
    ok(L.type == STATSD_HISTOGRAM, "h type");
    is_int(parse("lat:1:2:3.5|d"), STATSD_OK, "distribution with several values");
    ok(L.type == STATSD_DISTRIBUTION && L.n_values == 3 && L.values[2] == 3.5, "three values");
    is_int(parse("users:alice|s"), STATSD_OK, "set");
    ok(L.type == STATSD_SET && span_is(L.member, "alice"), "set member");
    is_int(parse("users:a:b|s"), STATSD_OK, "set member may contain ':'");
    ok(span_is(L.member, "a:b"), "member a:b");
    is_int(parse("hits:1|c\r"), STATSD_OK, "trailing CR ignored");
}

static void test_tags(void)
{
    is_int(parse("hits:1|c|#env:prod,region:eu-west,flag"), STATSD_OK, "tags");
    is_int(L.n_tags, 3, "three tags");
    ok(span_is(L.tags[0].key, "env") && span_is(L.tags[0].value, "prod"), "env:prod");
    ok(span_is(L.tags[1].key, "region") && span_is(L.tags[1].value, "eu-west"), "region:eu-west");
    ok(span_is(L.tags[2].key, "flag") && L.tags[2].value.n == 0, "flag without value");
    is_int(parse("hits:2|c|@0.5|#a:b"), STATSD_OK, "rate then tags");
    ok(L.rate == 0.5 && L.n_tags == 1, "both parsed");
    is_int(parse("hits:2|c|#a:b|@0.5"), STATSD_OK, "tags then rate");
    ok(L.rate == 0.5 && L.n_tags == 1, "both parsed, any order");
    is_int(parse("hits:2|c|#url:http://x"), STATSD_OK, "tag value with ':' keeps the rest");
    ok(span_is(L.tags[0].value, "http://x"), "value after the first ':'");
    is_int(parse("hits:2|c|#a:b|c:abc123|T1656581400"), STATSD_OK, "container id and timestamp ignored");
    is_int(parse("hits:2|c|#,,a:b,"), STATSD_OK, "empty tag items skipped");
    is_int(L.n_tags, 1, "one tag");
    char big[2048] = "hits:1|c|#";
    for (int i = 0; i < STATSD_MAX_TAGS + 1; i++)
        sprintf(big + strlen(big), "k%d:v,", i);
    is_int(parse(big), STATSD_E_TAGS, "too many tags rejected");
    is_int(parse("hits:1|c|#:v"), STATSD_E_TAGS, "tag without key rejected");
}

static void test_malformed(void)
{
    is_int(parse(":1|c"), STATSD_E_NAME, "empty name");
    is_int(parse("hits"), STATSD_E_NAME, "no colon");
    is_int(parse("hits|c:1"), STATSD_E_NAME, "bar before colon");
    is_int(parse("hits:1"), STATSD_E_TYPE, "no type");
    is_int(parse("hits:1|x"), STATSD_E_TYPE, "unknown type");
    is_int(parse("hits:1|"), STATSD_E_TYPE, "empty type");
    is_int(parse("hits:abc|c"), STATSD_E_VALUE, "non-numeric counter");
    is_int(parse("hits:|c"), STATSD_E_VALUE, "empty value");
    is_int(parse("hits:-1|c"), STATSD_E_VALUE, "negative counter");
    is_int(parse("hits:nan|g"), STATSD_E_VALUE, "nan gauge");
    is_int(parse("users:|s"), STATSD_E_VALUE, "empty set member");
    is_int(parse("temp:1:+2|g"), STATSD_E_VALUE, "mixed absolute and delta gauge");
    is_int(parse("hits:1|c|@0"), STATSD_E_RATE, "rate 0");
    is_int(parse("hits:1|c|@1.5"), STATSD_E_RATE, "rate > 1");
    is_int(parse("hits:1|c|@"), STATSD_E_RATE, "empty rate");
    is_int(parse("hits:1|c|x"), STATSD_E_FIELD, "unknown field");
    is_int(parse("hits:1|c||"), STATSD_E_FIELD, "empty field");
    is_int(parse("hits:1|c|T12a"), STATSD_E_FIELD, "bad timestamp");
    char many[1024] = "d:1";
    for (int i = 0; i < STATSD_MAX_VALUES; i++)
        strcat(many, ":1");
    strcat(many, "|d");
    is_int(parse(many), STATSD_E_TOO_MANY_VALUES, "too many values");
    ok(strcmp(statsd_strerror(STATSD_E_RATE), "sample rate outside (0, 1]") == 0, "strerror");
}

struct collect {
    int n;
    char names[8][32];
};

static void collect_on_line(void *arg, const struct statsd_line *line)
{
    struct collect *c = arg;
    if (c->n < 8)
        snprintf(c->names[c->n], sizeof c->names[0], "%.*s", (int)line->name.n, line->name.p);
    c->n++;
}

static void test_datagram(void)
{
    const char dg[] = "a:1|c\nb:2|g\n\nbad\r\nc:3|ms\r\n\nd:1|x\ne:5|h";
    struct collect c = {0};
    struct statsd_counts counts = {0};
    statsd_parse_datagram(dg, sizeof dg - 1, &L, collect_on_line, &c, &counts);
    is_int(c.n, 4, "four valid lines");
    ok(strcmp(c.names[0], "a") == 0 && strcmp(c.names[1], "b") == 0 && strcmp(c.names[2], "c") == 0 &&
           strcmp(c.names[3], "e") == 0,
       "in order");
    is_int(counts.lines, 6, "six non-empty lines");
    is_int(counts.malformed, 2, "two malformed");
    struct collect c2 = {0};
    struct statsd_counts counts2 = {0};
    statsd_parse_datagram("x:1|c\n", 6, &L, collect_on_line, &c2, &counts2);
    is_int(c2.n, 1, "trailing newline");
    is_int(counts2.lines, 1, "one line");
}

int main(void)
{
    test_numbers();
    test_types();
    test_tags();
    test_malformed();
    test_datagram();
    return done_testing();
}

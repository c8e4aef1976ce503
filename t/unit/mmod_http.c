/* Unit tests of the metrics module's HTTP pieces: the endpoint's request
 * head parser, the client's response head parser and chunked decoder,
 * and URL parsing. */
#include "tap.h"

#include "../../modules/metrics/metrics_buf.c"
#include "../../modules/metrics/metrics_http_client.c"
#include "../../modules/metrics/metrics_http_request.c"
#include "../../modules/metrics/metrics_number.c"

static int req(const char *s, struct mreq *r)
{
    return mreq_parse(s, strlen(s), r);
}

static void test_request(void)
{
    struct mreq r;
    is_int(req("GET /metrics?a=b HTTP/1.1\r\nHost: x\r\nACCEPT:  application/openmetrics-text \r\n\r\nnext", &r), 1,
           "complete head");
    ok(r.get && !r.head && r.keep_alive && !r.has_body, "GET, keep-alive by default in 1.1");
    ok(r.path_len == 8 && memcmp(r.path, "/metrics", 8) == 0, "path without the query");
    ok(r.has_accept && strcmp(r.accept, "application/openmetrics-text") == 0, "Accept, case-insensitive, trimmed");
    is_int(r.head_len, strlen("GET /metrics?a=b HTTP/1.1\r\nHost: x\r\nACCEPT:  application/openmetrics-text \r\n\r\n"),
           "head length stops before the next request");
    is_int(req("GET /metrics HTTP/1.0\r\n\r\n", &r), 1, "HTTP/1.0");
    ok(!r.keep_alive, "1.0 closes by default");
    is_int(req("GET /metrics HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r), 1, "1.0 keep-alive");
    ok(r.keep_alive, "kept alive when asked");
    is_int(req("HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n", &r), 1, "HEAD");
    ok(r.head && !r.keep_alive, "HEAD, Connection: close");
    is_int(req("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", &r), 1, "POST with a body");
    ok(!r.get && r.has_body, "body noticed");
    is_int(req("GET /metrics HTTP/1.1\r\nHost: x\r\n", &r), 0, "incomplete head");
    is_int(req("GET /metrics\r\n\r\n", &r), -1, "HTTP/0.9 style rejected");
    is_int(req("GET /metrics HTTP/2.0\r\n\r\n", &r), -1, "HTTP/2.0 rejected");
    is_int(req("GET /a b HTTP/1.1\r\n\r\n", &r), -1, "space in the target rejected");
    is_int(req("\r\n\r\n", &r), -1, "empty request line rejected");
}

static void test_response(void)
{
    int status, chunked;
    long long clen;
    char ctype[64];
    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0\r\n"
                    "Content-Length: 12\r\n\r\nbody";
    long n = mhttp_parse_head(h, strlen(h), &status, &clen, &chunked, ctype, sizeof ctype);
    is_int(n, strlen(h) - 4, "head length");
    ok(status == 200 && clen == 12 && !chunked, "status and length");
    is_str(ctype, "application/openmetrics-text; version=1.0.0", "content type");
    h = "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n";
    n = mhttp_parse_head(h, strlen(h), &status, &clen, &chunked, ctype, sizeof ctype);
    ok(n > 0 && status == 404 && chunked && clen == -1, "chunked, no length");
    is_int(mhttp_parse_head("HTTP/1.1 200 OK\r\n", 17, &status, &clen, &chunked, ctype, sizeof ctype), 0, "incomplete");
    is_int(mhttp_parse_head("SSH-2.0-x\r\n\r\n", 13, &status, &clen, &chunked, ctype, sizeof ctype), -1, "not HTTP");
    h = "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n";
    is_int(mhttp_parse_head(h, strlen(h), &status, &clen, &chunked, ctype, sizeof ctype), -1, "bad length rejected");
    h = "HTTP/1.1 2x0 OK\r\n\r\n";
    is_int(mhttp_parse_head(h, strlen(h), &status, &clen, &chunked, ctype, sizeof ctype), -1, "bad status rejected");

    char c1[] = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
    n = mhttp_dechunk(c1, strlen(c1));
    ok(n == 11 && memcmp(c1, "hello world", 11) == 0, "chunks joined, extension and trailer ignored");
    char c2[] = "5\r\nhel";
    is_int(mhttp_dechunk(c2, strlen(c2)), -1, "truncated chunk");
    char c3[] = "zz\r\n";
    is_int(mhttp_dechunk(c3, strlen(c3)), -1, "bad size");
    char c4[] = "5\r\nhelloXX0\r\n\r\n";
    is_int(mhttp_dechunk(c4, strlen(c4)), -1, "missing CRLF after a chunk");
    char c5[] = "fffffffffffffffff\r\n";
    is_int(mhttp_dechunk(c5, strlen(c5)), -1, "huge size rejected");
}

static void test_url(void)
{
    struct metrics_url u;
    char err[160];
    is_int(metrics_url_parse("http://10.0.0.5:9102/metrics", &u, err, sizeof err), 0, "IPv4 URL");
    ok(strcmp(u.host, "10.0.0.5") == 0 && u.port == 9102 && strcmp(u.path, "/metrics") == 0, "parts");
    is_str(u.hostport, "10.0.0.5:9102", "host:port");
    is_int(metrics_url_parse("http://[::1]:80", &u, err, sizeof err), 0, "IPv6 URL without a path");
    ok(strcmp(u.host, "::1") == 0 && strcmp(u.path, "/") == 0, "IPv6 parts");
    is_str(u.hostport, "[::1]:80", "bracketed");
    is_int(metrics_url_parse("http://localhost/x", &u, err, sizeof err), 0, "localhost, default port");
    is_int(u.port, 80, "port 80");
    is_int(metrics_url_parse("https://1.2.3.4/", &u, err, sizeof err), -1, "https refused");
    is_str(err, "expected an http:// URL, got \"https://1.2.3.4/\"", "says why");
    is_int(metrics_url_parse("http://example.com:9100/m", &u, err, sizeof err), 0, "a DNS name");
    is_str(u.hostport, "example.com:9100", "name:port");
    is_int(metrics_url_parse("http://bad..name/", &u, err, sizeof err), -1, "an empty label is no name");
    is_str(err, "host \"bad..name\" is neither an IP address nor a DNS name", "says so");
    is_int(metrics_url_parse("http://sp ace/", &u, err, sizeof err), -1, "a space is no name");
    is_int(metrics_url_parse("http://1.2.3.4:99999/", &u, err, sizeof err), -1, "bad port");
    is_int(metrics_url_parse("http://1.2.3.4:80x", &u, err, sizeof err), -1, "garbage after the port");
}

int main(void)
{
    test_request();
    test_response();
    test_url();
    return done_testing();
}

#!/usr/bin/env perl
# The proxy's metrics in the registry, as the admin endpoint exposes them:
# requests by cluster and status class, latency histogram, connection
# gauges, malformed requests; and the exposition passes promtool.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use Outrider;
use ProxyTest qw(proxy_agent backend_start backend_stop raw_http curl);

my $be = backend_start('b1');
my $a = proxy_agent(proxy => {
    outbound => { address => '127.0.0.1:0', default_cluster => 'b' },
    clusters => [ { name => 'b', endpoints => ["127.0.0.1:$be->{port}"] } ],
});
my $addr = $a->addr('proxy.outbound');
curl('-H', 'Host: x', "http://$addr/id") for 1 .. 7;
curl('-H', 'Host: x', "http://$addr/status?code=503") for 1 .. 2;
raw_http($addr, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");

my ($code, $m) = $a->http('GET', 'admin', '/metrics');
is($code, 200, '/metrics answers');
like($m, qr/^outrider_proxy_requests_total\{cluster="b",code_class="2xx"\} 7$/m, '7 requests counted as 2xx');
like($m, qr/^outrider_proxy_requests_total\{cluster="b",code_class="5xx"\} 2$/m, '2 upstream 503s counted as 5xx');
like($m, qr/^outrider_proxy_request_duration_seconds_count\{cluster="b"\} 9$/m, 'latency histogram has 9 samples');
like($m, qr/^outrider_proxy_client_errors_total\{reason="malformed"(?:,worker="\d+")?\} 1$/m,
     'the malformed request is counted');
like($m, qr/^outrider_proxy_upstream_connections\{cluster="b"\} 1$/m, 'one pooled upstream connection open');
Outrider::promtool_ok($m, 'promtool check metrics accepts the exposition');

backend_stop($be);
$a->finish_ok;
done_testing;

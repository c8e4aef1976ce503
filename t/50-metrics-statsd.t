#!/usr/bin/env perl
# metrics module, statsd input end to end: every type over UDP and a unix
# datagram socket, sample rates, DogStatsD tags, malformed lines counted,
# the series cap, and the /metrics endpoint (text and OpenMetrics by
# Accept, checked by the real promtool).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Socket qw(SOCK_DGRAM);
use IO::Socket::UNIX;
use File::Temp qw(tempdir);
use Outrider;

my $dir = tempdir('outrider-mstatsd-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $unix = "$dir/statsd.sock";
my $a = Outrider->start(
    role => 'sidecar',
    conf => {
        modules => ['metrics'],
        workers => 2,
        metrics => {
            listen => '127.0.0.1:0',
            statsd => { udp => '127.0.0.1:0', unix => $unix, max_series => 12,
                        timer_buckets => [0.1, 0.5, 1], histogram_buckets => [10, 100], set_max_members => 100 },
        },
    });

my $udp = IO::Socket::INET->new(PeerAddr => $a->addr('metrics.statsd'), Proto => 'udp') or die "udp: $!";
sub send_udp { $udp->send($_[0]) or die "send: $!" }

send_udp("api.hits:1|c\napi.hits:2|c|\@0.5\n");
send_udp("temp:10|g\ntemp:+5|g\ntemp:-3|g");
send_udp("req.time:320|ms|#route:/a,method:GET");
send_udp("req.time:50|ms|#method:GET,route:/a");
send_udp("size:50|h\nsize:5:500|d");
send_udp("users:alice|s\nusers:bob|s\nusers:alice|s");
send_udp("bad line\nnocolon|c\nx:abc|c\ny:1|q\nz:-1|c");
my $us = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Peer => $unix) or die "unix: $!";
$us->send("via.unix:7|c|#k:v") or die "unix send: $!";

# Wait until everything arrived: the counters in the registry say so (18
# lines in all, the unix datagram's last: fewer can be counted before it).
my ($code, $body) = $a->get_until('metrics.http', '/metrics',
                                   sub { $_[0] =~ /^outrider_metrics_statsd_lines_total (\d+)/m && $1 >= 18 });
is($code, 200, 'GET /metrics answers 200');
like($body, qr/^outrider_metrics_statsd_lines_total 18$/m, 'all 18 lines counted');
like($body, qr/^# TYPE api_hits_total counter\napi_hits_total 5$/m, 'counter with a 0.5 sample rate counts 1 + 2/0.5');
like($body, qr/^temp 12$/m, 'gauge set then +5 then -3');
like($body, qr/^req_time_bucket\{method="GET",route="\/a",le="0.1"\} 1$/m, 'timer in seconds, tags in any order one series');
like($body, qr/^req_time_bucket\{method="GET",route="\/a",le="0.5"\} 2$/m, 'timer bucket 0.5');
like($body, qr/^req_time_sum\{method="GET",route="\/a"\} 0.37$/m, 'timer sum in seconds');
like($body, qr/^size_count 3$/m, 'histogram and distribution values');
like($body, qr/^size_bucket\{le="10"\} 1$/m, 'histogram bucket');
like($body, qr/^users 2$/m, 'set counts distinct members');
like($body, qr/^via_unix_total\{k="v"\} 7$/m, 'unix datagram socket');
like($body, qr/^outrider_metrics_statsd_malformed_lines_total 5$/m, 'five malformed lines counted');
like($body, qr/^outrider_metrics_statsd_packets_total 8$/m, 'eight datagrams counted');

# promtool accepts the whole exposition.
Outrider::promtool_ok($body, 'promtool check metrics passes');

# OpenMetrics by content negotiation, as Prometheus asks.
my ($c2, $om) = $a->http('GET', 'metrics.http', '/metrics',
    headers => ['Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5']);
is($c2, 200, 'OpenMetrics request');
like($om, qr/^# TYPE api_hits counter\napi_hits_total 5$/m, 'OpenMetrics counter family');
like($om, qr/# EOF\n\z/, 'OpenMetrics ends with # EOF');
my $ct = `curl -s -o /dev/null -w '%{content_type}' -H 'Accept: application/openmetrics-text' http://@{[$a->addr('metrics.http')]}/metrics`;
like($ct, qr{^application/openmetrics-text; version=1.0.0}, 'OpenMetrics content type');

# The series cap: 12 in all, 6 used above (api_hits, temp, req_time, size,
# users, via_unix). Flood new names: 6 more fit, the rest are refused and
# counted, while existing series keep counting.
send_udp(join("\n", map { "flood.$_:1|c" } 1 .. 50));
send_udp("api.hits:1|c");
($code, $body) = $a->get_until('metrics.http', '/metrics', sub { $_[0] =~ /^api_hits_total 6$/m }, 10);
my @flood = $body =~ /^flood_\d+_total /mg;
is(scalar(@flood), 12 - 6, 'new series stop at statsd.max_series');
like($body, qr/^outrider_metrics_statsd_refused_lines_total\{reason="series_limit"\} 44$/m, 'refused lines counted by reason');
like($body, qr/^api_hits_total 6$/m, 'existing series still count at the cap');

my ($c404) = $a->http('GET', 'metrics.http', '/nope');
is($c404, 404, 'other paths: 404');
my ($c405) = $a->http('POST', 'metrics.http', '/metrics', body => 'x');
is($c405, 405, 'POST: 405');

$a->finish_ok;
done_testing;

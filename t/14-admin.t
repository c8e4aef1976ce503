#!/usr/bin/env perl
# The admin endpoint through curl and promtool.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempfile);
use IO::Socket::INET;
use Outrider;

my $a = Outrider->start(conf => { modules => ['echo'] }, modules_dir => Outrider::test_modules_dir(),
                        env => { POD_NAME => 'web-1', POD_NAMESPACE => 'shop', NODE_NAME => 'n1' });
my ($code, $body) = $a->http('GET', 'admin', '/healthz');
is($code, 200, '/healthz 200');
($code, $body) = $a->http('GET', 'admin', '/ready');
is($code, 200, '/ready 200 once started');

($code, $body) = $a->http('GET', 'admin', '/metrics');
is($code, 200, '/metrics 200');
like($body, qr/^# TYPE outrider_build_info gauge$/m, 'build info');
like($body, qr/^outrider_build_info\{version="[\d.]+",role="sidecar"\} 1$/m, 'with version and role');
like($body, qr/^outrider_uptime_seconds \d/m, 'uptime');
like($body, qr/^process_resident_memory_bytes \d+/m, 'RSS');
like($body, qr/^outrider_reloads_total\{result="ok"\} 0$/m, 'reload counters');
like($body, qr/^outrider_worker_loop_lag_seconds\{worker="0"\} /m, 'worker loop lag');
Outrider::promtool_ok($body, 'promtool check metrics passes');

($code, $body) = $a->http('GET', 'admin', '/metrics', headers => ['Accept: application/openmetrics-text; version=1.0.0']);
like($body, qr/# EOF\n\z/, 'OpenMetrics when asked for it');

($code, $body) = $a->http('GET', 'admin', '/status');
is($code, 200, '/status 200');
my $st = JSON::PP::decode_json($body);
is($st->{role}, 'sidecar', 'status: role');
is($st->{identity}{pod}, 'web-1', 'status: identity from the downward API');
is($st->{identity}{namespace}, 'shop', 'status: namespace');
is($st->{generation}, 1, 'status: generation');
ok($st->{ready}, 'status: ready');

($code, $body) = $a->http('GET', 'admin', '/');
like($body, qr/<html.*outrider.*echo/s, '/ is an HTML page listing modules');
($code, $body) = $a->http('GET', 'admin', '/nope');
is($code, 404, 'unknown path 404');
($code, $body) = $a->http('DELETE', 'admin', '/healthz');
is($code, 405, 'wrong method 405');

# A slow, silent client does not block anyone else.
my ($h, $p) = $a->addr('admin') =~ /^(.*):(\d+)$/;
my $slow = IO::Socket::INET->new(PeerAddr => $h, PeerPort => $p) or die $!;
print $slow "GET /healthz HTTP/1.1\r\nHost: x\r\n";
($code, $body) = $a->http('GET', 'admin', '/healthz', timeout => 3);
is($code, 200, 'served while another client stalls mid-request');
# Malformed and oversized requests get 400 / 431 and a closed connection.
my $bad = IO::Socket::INET->new(PeerAddr => $h, PeerPort => $p) or die $!;
print $bad "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n";
my $resp = <$bad> // '';
like($resp, qr{^HTTP/1\.1 400}, 'malformed header: 400');
my $big = IO::Socket::INET->new(PeerAddr => $h, PeerPort => $p) or die $!;
print $big "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " . ('a' x 20000) . "\r\n\r\n";
$resp = <$big> // '';
like($resp, qr{^HTTP/1\.1 431}, 'oversized head: 431');
close $_ for $slow, $bad, $big;
$a->finish_ok;
done_testing;

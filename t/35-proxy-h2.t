#!/usr/bin/env perl
# HTTP/2 cleartext with prior knowledge through the proxy to an HTTP/2
# backend (nghttpd): curl --http2-prior-knowledge, nghttp with several
# concurrent streams, h2load multiplexing (all requests succeed), a 5 MB
# download through both flow-controlled legs, and a request body upload.
# Then HTTP/2 clients translated to an HTTP/1.1 backend (Python): headers,
# request bodies, chunked and close-delimited responses, trailers, h2load.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep);
use Outrider;
use ProxyTest qw(proxy_agent curl backend_start backend_stop);

my $docroot = tempdir('outrider-h2-XXXXXX', TMPDIR => 1, CLEANUP => 1);
sub put { my ($name, $data) = @_; open my $fh, '>', "$docroot/$name" or die; print $fh $data; close $fh }
put('hello.txt', "hello over h2\n");
put('hello2.txt', "second file\n");
my $big = join('', map { pack('N', $_) } 1 .. 1_310_720); # 5 MiB
put('big.bin', $big);

# nghttpd cannot listen on port 0: it is handed a free port.
my ($npid, $bport) = Outrider::spawn_on_free_ports(1, sub {
    my ($port) = @_;
    my $pid = fork // die;
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec 'nghttpd', '--no-tls', '-a', '127.0.0.1', '-d', $docroot, $port or exit 127;
    }
    return $pid;
});

my $h1 = backend_start('py1');
my $a = proxy_agent(proxy => {
    outbound => { address => '127.0.0.1:0', default_cluster => 'h2' },
    via => JSON::PP::true,
    clusters => [ { name => 'h2', protocol => 'h2', endpoints => ["127.0.0.1:$bport"] },
                  { name => 'h1', endpoints => ["127.0.0.1:$h1->{port}"] } ],
    routes => [ { authority => 'h1.test', cluster => 'h1', add_headers => { 'x-route' => 'h1' } } ],
});
my $addr = $a->addr('proxy.outbound');

my ($rc, $out) = curl('--http2-prior-knowledge', '-D', '-', "http://$addr/hello.txt");
is($rc, 0, 'curl --http2-prior-knowledge through the proxy');
like($out, qr{^HTTP/2 200 ?\r\n}, "HTTP/2 response");
like($out, qr/\r\n\r\nhello over h2\n\z/, 'body relayed');
($rc, $out) = curl('--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}', "http://$addr/missing");
is($out, '404', 'upstream 404 relayed');

($rc, $out) = curl('--http2-prior-knowledge', "http://$addr/big.bin");
ok(length($out) == length($big) && sha256_hex($out) eq sha256_hex($big), '5 MiB download intact over two flow-controlled legs');

my $up = join('', map { chr($_ % 251) } 1 .. 300_000);
my $tmp = "$docroot/up.bin";
put('up.bin', $up);
($rc, $out) = curl('--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}', '--data-binary', "\@$tmp",
                   "http://$addr/hello.txt");
like($out, qr/^\d{3}$/, "300 KB request body streamed upstream (nghttpd answered $out)");

# nghttp: several streams on one connection.
open(my $nh, '-|', 'nghttp', '-n', '-s', "http://$addr/hello.txt", "http://$addr/big.bin", "http://$addr/hello2.txt")
    or die;
my $stats = do { local $/; <$nh> };
close $nh;
is($?, 0, 'nghttp fetched three streams on one connection');
my @codes = $stats =~ /^\s*\d+\s+\+\S+\s+\+\S+\s+\S+\s+(\d{3})\s/mg;
is_deeply(\@codes, [ 200, 200, 200 ], 'three 200s') or diag($stats);

# h2load: 2,000 requests, 10 connections, 10 streams each.
open(my $hl, '-|', 'h2load', '-n', '2000', '-c', '10', '-m', '10', "http://$addr/hello.txt") or die;
my $h2 = do { local $/; <$hl> };
close $hl;
like($h2, qr/requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored/,
     'h2load: 2000 multiplexed requests, all succeeded') or diag($h2);
like($h2, qr/status codes: 2000 2xx/, 'h2load: all 2xx');

# --- HTTP/2 client, HTTP/1.1 upstream
($rc, $out) = curl('--http2-prior-knowledge', '-D', '-', '-H', 'Host: h1.test', '-H', 'X-Mine: 1', "http://$addr/echo?x=1");
like($out, qr{^HTTP/2 200 ?\r\n}, 'h2 client to HTTP/1.1 backend: HTTP/2 response');
my ($json) = $out =~ /\r\n\r\n(.*)\z/s;
my $echo = eval { decode_json($json) } || {};
is($echo->{path}, '/echo?x=1', 'h2->h1: path forwarded');
is($echo->{version}, 'HTTP/1.1', 'h2->h1: upstream request is HTTP/1.1');
my %h = map { lc($_->[0]) => $_->[1] } @{ $echo->{headers} || [] };
is($h{host}, 'h1.test', 'h2->h1: :authority becomes Host');
is($h{'x-mine'}, '1', 'h2->h1: client header forwarded');
is($h{'x-route'}, 'h1', 'h2->h1: route header added');
is($h{via}, '2 outrider', 'h2->h1: Via names HTTP/2');
my $upbody = join('', map { chr(65 + $_ % 26) } 1 .. 200_000);
put('up2.bin', $upbody);
($rc, $out) = curl('--http2-prior-knowledge', '-H', 'Host: h1.test', '--data-binary', "\@$docroot/up2.bin", "http://$addr/echo");
$echo = eval { decode_json($out) } || {};
is($echo->{body_sha256}, sha256_hex($upbody), 'h2->h1: 200 KB request body arrives intact') or diag("curl rc $rc: $out");
# Guards a fixed bug: a first read that filled the connection buffer (the
# preface plus 32 KB of DATA) stopped reading for good, stalling uploads.
my $stalls = 0;
for (1 .. 5) {
    open(my $up, '-|', 'timeout', '10', 'nghttp', '-d', "$docroot/up2.bin", '-H', ':authority: h1.test', "http://$addr/echo")
        or die;
    my $r = do { local $/; <$up> };
    close $up;
    $stalls++ unless (eval { decode_json($r)->{body_sha256} } // '') eq sha256_hex($upbody);
}
is($stalls, 0, 'h2->h1: five nghttp uploads whose first flight fills the buffer, none stalls');
($rc, $out) = curl('--http2-prior-knowledge', '-H', 'Host: h1.test', "http://$addr/chunked?n=4");
is($out, join('', map { "chunk-$_\n" } 0 .. 3), 'h2->h1: chunked response relayed as HTTP/2 data');
($rc, $out) = curl('--http2-prior-knowledge', '-H', 'Host: h1.test', "http://$addr/close?n=100000");
is(length $out, 100000, 'h2->h1: close-delimited response relayed whole');
($rc, $out) = curl('--http2-prior-knowledge', '-H', 'Host: h1.test', "http://$addr/big?n=3000000");
is(length $out, 3000000, 'h2->h1: 3 MB response streamed');
open($nh, '-|', 'nghttp', '-v', '-H', ':authority: h1.test', "http://$addr/chunked?n=2") or die;
$stats = do { local $/; <$nh> };
close $nh;
like($stats, qr/recv \(stream_id=\d+\) x-sum: done/, 'h2->h1: chunked trailer becomes an HTTP/2 trailer');
open($hl, '-|', 'h2load', '-n', '1000', '-c', '4', '-m', '10', '-H', ':authority: h1.test', "http://$addr/id") or die;
$h2 = do { local $/; <$hl> };
close $hl;
like($h2, qr/1000 succeeded, 0 failed, 0 errored/, 'h2->h1: h2load 1000 requests over pooled HTTP/1.1 connections')
    or diag($h2);
backend_stop($h1);

# --- HTTP/1.1 client, HTTP/2 upstream
($rc, $out) = curl('-D', '-', "http://$addr/hello.txt");
like($out, qr{^HTTP/1\.1 200 OK\r\n.*content-length: 14\r\n.*\r\n\r\nhello over h2\n\z}si,
     'h1 client to h2 backend: HTTP/1.1 response with the length');
($rc, $out) = curl("http://$addr/big.bin");
ok(length($out) == length($big) && sha256_hex($out) eq sha256_hex($big), 'h1->h2: 5 MiB download intact');
($rc, $out) = curl('-o', '/dev/null', '-w', '%{http_code}', '--data-binary', "\@$tmp", "http://$addr/hello.txt");
like($out, qr/^\d{3}$/, "h1->h2: 300 KB request body streamed (nghttpd answered $out)");
($rc, $out) = curl('-H', 'Transfer-Encoding: chunked', '-o', '/dev/null', '-w', '%{http_code}', '--data-binary', "\@$tmp",
                   "http://$addr/hello.txt");
like($out, qr/^\d{3}$/, "h1->h2: chunked request body streamed (nghttpd answered $out)");
($rc, $out) = curl("http://$addr/hello.txt", "http://$addr/hello2.txt", "http://$addr/hello.txt");
is($out, "hello over h2\nsecond file\nhello over h2\n", 'h1->h2: three requests on one keep-alive connection');
open($hl, '-|', 'h2load', '--h1', '-n', '1000', '-c', '10', "http://$addr/hello.txt") or die;
$h2 = do { local $/; <$hl> };
close $hl;
like($h2, qr/1000 succeeded, 0 failed, 0 errored/, 'h1->h2: h2load --h1 1000 requests multiplexed upstream') or diag($h2);

kill 'TERM', $npid;
waitpid($npid, 0);
$a->finish_ok;
done_testing;

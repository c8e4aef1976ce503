#!/usr/bin/env perl
# HTTP/1.1 proxying through the outbound listener to a Python backend on
# loopback: routing by Host, keep-alive and pooling, pipelining, chunked
# bodies both ways, close-delimited responses, 100-continue, hop-by-hop
# fields, X-Forwarded-For and Via, large bodies, error statuses.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use JSON::PP;
use Digest::SHA qw(sha256_hex);
use Outrider;
use ProxyTest qw(proxy_agent backend_start backend_stop raw_http curl refused_port);

my $be = backend_start('b1');
my $a = proxy_agent(proxy => {
    via => JSON::PP::true,
    clusters => [ { name => 'b', endpoints => ["127.0.0.1:$be->{port}"], lb => 'round_robin' } ],
    routes => [
        { authority => 'svc.test', path_prefix => '/', cluster => 'b',
          add_headers => { 'x-route' => 'r1' }, remove_headers => ['x-secret'] },
    ],
});
my $addr = $a->addr('proxy.outbound');
like($addr, qr/^127\.0\.0\.1:\d+$/, "outbound listener bound: $addr");

# --- a plain GET, routed by Host, headers rewritten
my ($rc, $out) = curl('-H', 'Host: svc.test', '-H', 'X-Secret: s', '-H', 'Connection: keep-alive, X-Hop',
                      '-H', 'X-Hop: 1', '-H', 'X-Forwarded-For: 10.9.9.9', "http://$addr/echo?q=1");
is($rc, 0, 'curl GET through the proxy');
my $echo = eval { decode_json($out) } || {};
is($echo->{path}, '/echo?q=1', 'path and query forwarded');
my %h = map { lc($_->[0]) => $_->[1] } @{ $echo->{headers} || [] };
is($h{host}, 'svc.test', 'Host forwarded');
is($h{'x-route'}, 'r1', 'route add_headers applied');
ok(!exists $h{'x-secret'}, 'route remove_headers applied');
ok(!exists $h{'x-hop'}, 'field named by Connection dropped (hop-by-hop)');
ok(!exists $h{connection} || $h{connection} !~ /x-hop/i, 'Connection not forwarded');
is($h{'x-forwarded-for'}, '10.9.9.9, 127.0.0.1', 'X-Forwarded-For appended');
is($h{via}, '1.1 outrider', 'Via added');

# --- no route
($rc, $out) = curl('-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: nowhere.test', "http://$addr/");
is($out, '404', 'unknown authority answered 404');

# --- request bodies: Content-Length and chunked, large
my $body = join('', map { chr(32 + $_ % 90) } 0 .. 300_000);
my $tmp = $a->dir . '/body.bin';
open my $fh, '>', $tmp or die; print $fh $body; close $fh;
($rc, $out) = curl('-H', 'Host: svc.test', '--data-binary', "\@$tmp", "http://$addr/echo");
$echo = eval { decode_json($out) } || {};
is($echo->{body_len}, length $body, 'Content-Length body of 300 KB arrives whole');
is($echo->{body_sha256}, sha256_hex($body), '... and intact');
($rc, $out) = curl('-H', 'Host: svc.test', '-H', 'Transfer-Encoding: chunked', '--data-binary', "\@$tmp",
                   "http://$addr/echo");
$echo = eval { decode_json($out) } || {};
is($echo->{body_sha256}, sha256_hex($body), 'chunked request body re-framed and intact');
%h = map { lc($_->[0]) => $_->[1] } @{ $echo->{headers} || [] };
is(lc($h{'transfer-encoding'} // ''), 'chunked', 'upstream request is chunked');

# --- 100-continue
($rc, $out) = curl('-H', 'Host: svc.test', '-H', 'Expect: 100-continue', '--data-binary', "\@$tmp", '-v',
                   "http://$addr/echo");
$echo = eval { decode_json($out) } || {};
is($echo->{body_sha256}, sha256_hex($body), 'body sent after 100 Continue arrives intact');
my $raw = raw_http($addr, "POST /echo HTTP/1.1\r\nHost: svc.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
                   until => qr/100 Continue\r\n(?:[^\r\n]+\r\n)*\r\n/); # its head may carry fields (Via)
like($raw, qr{^HTTP/1\.1 100 Continue\r\n}, 'the upstream 100 Continue is relayed before the body is sent');

# --- responses: chunked with trailer, close-delimited, big
($rc, $out) = curl('-H', 'Host: svc.test', "http://$addr/chunked?n=5");
is($out, join('', map { "chunk-$_\n" } 0 .. 4), 'chunked response relayed');
$raw = raw_http($addr, "GET /chunked?n=2 HTTP/1.1\r\nHost: svc.test\r\nConnection: close\r\n\r\n");
like($raw, qr/\r\n0\r\nX-Sum: done\r\n\r\n\z/, 'chunked response trailer relayed');
($rc, $out) = curl('-H', 'Host: svc.test', "http://$addr/close?n=70000");
is(length $out, 70000, 'close-delimited response relayed whole');
$raw = raw_http($addr, "GET /close?n=10 HTTP/1.1\r\nHost: svc.test\r\n\r\n", until => qr/0\r\n\r\n/);
like($raw, qr/Transfer-Encoding: chunked\r\n(?:.*\r\n)?\r\na\r\ncccccccccc\r\n0\r\n\r\n\z/s,
     'close-delimited response re-framed as chunked for an HTTP/1.1 client');
$raw = raw_http($addr, "GET /close?n=10 HTTP/1.0\r\nHost: svc.test\r\n\r\n");
like($raw, qr/\r\n\r\ncccccccccc\z/, '... and delimited by close for an HTTP/1.0 client');
($rc, $out) = curl('-H', 'Host: svc.test', "http://$addr/big?n=5000000");
is(length $out, 5000000, '5 MB response streamed whole');

# --- HEAD and 204 / 304 have no body
$raw = raw_http($addr, "HEAD /big?n=1234 HTTP/1.1\r\nHost: svc.test\r\n\r\nGET /id HTTP/1.1\r\nHost: svc.test\r\nConnection: close\r\n\r\n");
like($raw, qr{^HTTP/1\.1 200 OK\r\n.*Content-Length: 1234\r\n.*\r\n\r\nHTTP/1\.1 200 OK\r\n.*\r\n\r\nb1\z}s,
     'HEAD response has no body, the next response follows it');
($rc, $out) = curl('-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: svc.test', "http://$addr/status?code=503");
is($out, '503', 'upstream status relayed');

# --- keep-alive and pipelining on one client connection
$raw = raw_http($addr, join('', map { "GET /echo?n=$_ HTTP/1.1\r\nHost: svc.test\r\n\r\n" } 1 .. 3)
                     . "GET /id HTTP/1.1\r\nHost: svc.test\r\nConnection: close\r\n\r\n");
my @paths = $raw =~ m{"path": "(/echo\?n=\d)"}g;
is_deeply(\@paths, ['/echo?n=1', '/echo?n=2', '/echo?n=3'], 'pipelined requests answered in order');
like($raw, qr/b1\z/, 'last pipelined request answered, then closed');
($rc, $out) = curl('-H', 'Host: svc.test', "http://$addr/id", "http://$addr/id", "http://$addr/id",
                   '-H', 'Host: svc.test');
is($out, 'b1b1b1', 'curl reuses its connection for three requests');

# --- upstream down: 503; slow upstream: 504 by the route timeout
backend_stop($be);
refused_port($be->{port}); # its port refuses from now on: no parallel test's server takes it
($rc, $out) = curl('-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: svc.test', "http://$addr/id");
is($out, '503', 'unreachable upstream answered 503');

$a->finish_ok;
done_testing;

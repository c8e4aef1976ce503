#!/usr/bin/env perl
# Request smuggling and malformed requests sent raw to the running agent:
# each is answered with its status and the connection closed, and nothing
# of it reaches the backend (which would answer /id with its name).
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use Outrider;
use ProxyTest qw(proxy_agent backend_start backend_stop raw_http);

my $be = backend_start('smuggled');
my $a = proxy_agent(proxy => {
    outbound => { address => '127.0.0.1:0', default_cluster => 'b' },
    max_request_line => 1024, max_header_size => 4096, max_headers => 20,
    clusters => [ { name => 'b', endpoints => ["127.0.0.1:$be->{port}"] } ],
});
my $addr = $a->addr('proxy.outbound');
my $smuggle = "GET /id HTTP/1.1\r\nHost: a\r\n\r\n";

my @cases = (
    [ 'CL and TE', "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$smuggle", 400 ],
    [ 'TE and CL', "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n$smuggle", 400 ],
    [ 'two different CL', "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 31\r\n\r\n$smuggle", 400 ],
    [ 'two equal CL', "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 31\r\nContent-Length: 31\r\n\r\n$smuggle", 400 ],
    [ 'CL with sign', "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +31\r\n\r\n$smuggle", 400 ],
    [ 'CL list', "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 31, 31\r\n\r\n$smuggle", 400 ],
    [ 'TE chunked not last', "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n$smuggle", 400 ],
    [ 'TE unknown coding', "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n$smuggle", 501 ],
    [ 'TE with space before colon', "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n$smuggle", 400 ],
    [ 'TE hidden in obs-fold', "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n$smuggle", 400 ],
    [ 'TE in HTTP/1.0', "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$smuggle", 400 ],
    [ 'bare LF line ends', "POST /echo HTTP/1.1\nHost: a\nContent-Length: 0\n\n$smuggle", 400 ],
    [ 'bare CR in a field', "GET /echo HTTP/1.1\r\nHost: a\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n$smuggle", 400 ],
    [ 'NUL in a field', "GET /echo HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n$smuggle", 400 ],
    [ 'two Hosts', "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n$smuggle", 400 ],
    [ 'no Host in HTTP/1.1', "GET /echo HTTP/1.1\r\nX: y\r\n\r\n$smuggle", 400 ],
    [ 'bad chunk size', "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n$smuggle", 400 ],
    [ 'chunk size overflow', "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nx\r\n0\r\n\r\n$smuggle", 400 ],
    [ 'chunk ext with bare LF', "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a\nx\r\n0\r\n\r\n$smuggle", 400 ],
    [ 'chunk data without CRLF', "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxx0\r\n\r\n$smuggle", 400 ],
    [ 'request line too long', "GET /" . ('a' x 2000) . " HTTP/1.1\r\nHost: a\r\n\r\n", 414 ],
    [ 'header section too large', "GET / HTTP/1.1\r\nHost: a\r\n" . ("X-Pad: " . ('p' x 500) . "\r\n") x 10 . "\r\n", 431 ],
    [ 'too many fields', "GET / HTTP/1.1\r\nHost: a\r\n" . join('', map { "X-$_: v\r\n" } 1 .. 25) . "\r\n", 431 ],
    [ 'HTTP/2.0 request line', "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505 ],
    [ 'unknown expectation', "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n", 417 ],
    [ 'fragment in target', "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400 ],
);
for my $c (@cases) {
    my ($name, $req, $status) = @$c;
    my $out = raw_http($addr, $req);
    my @statuses = $out =~ m{^HTTP/1\.1 (\d{3}) }mg;
    is("@statuses", $status, "$name: answered $status alone");
    like($out, qr/\r\nConnection: close\r\n/, "$name: connection closed");
    unlike($out, qr/smuggled/, "$name: nothing reached the backend");
}

# The same bytes one at a time give the same answer.
my $out = raw_http($addr, [ split //, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" ]);
like($out, qr{^HTTP/1\.1 400 }, 'CL and TE delivered byte by byte: 400');

# A valid request still works on the same agent.
$out = raw_http($addr, "GET /id HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
like($out, qr{^HTTP/1\.1 200 .*\r\n\r\nsmuggled\z}s, 'a valid request is proxied');

backend_stop($be);
$a->finish_ok;
done_testing;

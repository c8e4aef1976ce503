#!/usr/bin/env perl
# How the proxy has nghttp2 encode forwarded header fields (HPACK, RFC 7541):
# a field the sender sent as a literal never indexed goes on never indexed,
# both ways (RFC 7541 7.1.3: an intermediary must keep that representation);
# request and trace ids (x-request-id, traceparent, ...) and grpc-timeout (a
# new value on every request) are sent never indexed, so they do not flood
# the HPACK tables;
# every other field keeps its indexing, and every value arrives intact.
# python3-h2 on both ends tells the representations apart. Also: both
# sessions declare SETTINGS_NO_RFC7540_PRIORITIES (RFC 9218 2.1): nghttp2
# then keeps no closed stream for a priority tree.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use JSON::PP;
use Outrider;
use ProxyTest qw(proxy_agent curl);

my $root = Outrider::root();
my $bpid = open(my $bfh, '-|', '/usr/bin/python3', "$root/t/proxy/h2_backend.py") or die "backend: $!";
my $bport = <$bfh>;
chomp $bport;
like($bport, qr/^\d+$/, 'HTTP/2 backend started');

my $a = proxy_agent(
    conf => { workers => 1 },
    proxy => {
        clusters => [ { name => 'h2', protocol => 'h2', endpoints => ["127.0.0.1:$bport"] } ],
        routes => [ { authority => 'h2.test', cluster => 'h2' } ],
    });
my $addr = $a->addr('proxy.outbound');

# HTTP/2 client: three requests on one connection, so the tables hold the
# fields of the first ones when the later ones are encoded.
open(my $cfh, '-|', '/usr/bin/python3', "$root/t/proxy/h2_hpack_client.py", $addr, 'h2.test', 3) or die;
my $out = do { local $/; <$cfh> };
close $cfh;
my $res = eval { decode_json($out) } // {};
my $rs = $res->{responses} // [];
is(scalar @$rs, 3, 'three answers') or diag $out;
is($res->{settings}{9}, 1, 'client session: the proxy sent SETTINGS_NO_RFC7540_PRIORITIES = 1');
is((eval { decode_json($rs->[0]{body}) } // {})->{settings}{9}, 1,
    'upstream session: the proxy sent SETTINGS_NO_RFC7540_PRIORITIES = 1');
for my $i (0 .. $#$rs) {
    my $r = $rs->[$i];
    my $seen = eval { decode_json($r->{body}) } // {};
    is($r->{status}, 200, "request $i: 200");
    is_deeply($seen->{never_indexed}, [ 'x-forwarded-for', 'x-request-id', 'x-secret-token' ],
        "request $i: upstream got x-secret-token, x-forwarded-for (sent never indexed, appended to) and x-request-id never indexed, x-plain not");
    is($seen->{fields}{'x-forwarded-for'}, '203.0.113.7, 127.0.0.1', "request $i: x-forwarded-for appended to");
    is($seen->{fields}{'x-request-id'}, $r->{sent_id}, "request $i: x-request-id value intact");
    is($seen->{fields}{'x-secret-token'}, 't0ken', "request $i: never-indexed value intact");
    is($seen->{fields}{'x-plain'}, 'same', "request $i: x-plain intact");
    is_deeply($r->{never_indexed}, [ 'x-request-id', 'x-resp-secret' ],
        "request $i: client got x-resp-secret (sent never indexed) and x-request-id never indexed, x-resp-plain not");
    is($r->{fields}{'x-resp-secret'}, 's3cret', "request $i: response never-indexed value intact");
    is($r->{fields}{'x-request-id'}, $r->{sent_id}, "request $i: response x-request-id intact");
    is($r->{fields}{'x-resp-plain'}, 'same', "request $i: x-resp-plain intact");
}

# HTTP/1.1 client to the h2 cluster: the ids it sends go on never indexed.
my ($rc, $body) = curl('-H', 'Host: h2.test', '-H', 'X-Request-Id: 1234-abcd', '-H',
    'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', '-H', 'grpc-timeout: 99999871u',
    '-H', 'X-Other: kept',
    "http://$addr/hpack");
my $seen = eval { decode_json($body) } // {};
is_deeply($seen->{never_indexed}, [ 'grpc-timeout', 'traceparent', 'x-request-id' ],
    'HTTP/1.1 client: x-request-id, traceparent and grpc-timeout go upstream never indexed, x-other not') or diag $body;
is($seen->{fields}{'grpc-timeout'}, '99999871u', 'HTTP/1.1 client: grpc-timeout intact');
is($seen->{fields}{'x-request-id'}, '1234-abcd', 'HTTP/1.1 client: x-request-id intact');
is($seen->{fields}{'x-other'}, 'kept', 'HTTP/1.1 client: x-other intact');

kill 'TERM', $bpid;
waitpid($bpid, 0);
$a->finish_ok;
done_testing;

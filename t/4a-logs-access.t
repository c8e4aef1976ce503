#!/usr/bin/env perl
# logs + proxy: the proxy's access records (bus stream "access") shipped by
# the logs module, one per request, with the proxy's fields.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(sleep time);
use Outrider;
use ProxyTest qw(backend_start backend_stop curl);

my $dir = tempdir('logs-access-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $out = "$dir/access.json";
my $be = backend_start('b1');
my $a = Outrider->start(role => 'sidecar', conf => {
    modules => ['proxy', 'logs'],
    proxy => {
        outbound => { address => '127.0.0.1:0' },
        inbound => { enabled => JSON::PP::false },
        clusters => [{ name => 'b', endpoints => ["127.0.0.1:$be->{port}"] }],
        routes => [{ authority => 'svc.test', path_prefix => '/', cluster => 'b' }],
    },
    logs => { bus_streams => ['access'], buffer => { flush_interval => '20ms' },
              outputs => [{ type => 'file', path => $out }] },
});
my $addr = $a->addr('proxy.outbound');
for my $i (1 .. 20) {
    my ($rc) = curl('-o', '/dev/null', '-H', 'Host: svc.test', "http://$addr/echo?i=$i");
}
curl('-o', '/dev/null', '-H', 'Host: nowhere.test', "http://$addr/none");
my @r;
my $until = time + 10;
while (time < $until) {
    @r = Outrider::json_lines($out);
    last if @r >= 21;
    sleep 0.05;
}
is(scalar @r, 21, '21 access records shipped');
is($r[0]{source}, 'access', 'source access');
is($r[0]{status}, 200, 'status as a number');
is($r[0]{protocol}, 'HTTP/1.1', 'protocol');
is($r[0]{cluster}, 'b', 'cluster');
like($r[0]{upstream}, qr/^127\.0\.0\.1:\d+$/, 'upstream');
ok($r[0]{bytes_out} > 0, 'bytes_out as a number');
is($r[0]{grpc_status}, -1, 'grpc_status -1');
ok(exists $r[0]{duration_ms}, 'duration_ms');
is_deeply([sort keys %{ $r[0] }], [sort qw(time source protocol method authority path status grpc_status bytes_in
    bytes_out duration_ms upstream retries cluster caller_namespace caller_pod reason role)], 'every field of the record');
is($r[-1]{status}, 404, 'the unrouted request too');
$a->finish_ok;
backend_stop($be);
done_testing;

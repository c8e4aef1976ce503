#!/usr/bin/env perl
# Node role runs one loop per worker; listeners are shared with
# SO_REUSEPORT, so every worker serves connections.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Outrider;

my $a = Outrider->start(conf => { modules => ['echo'], workers => 2 }, role => 'node',
                        modules_dir => Outrider::test_modules_dir());
my ($code, $body) = $a->http('GET', 'admin', '/status');
my $st = JSON::PP::decode_json($body);
is(scalar @{ $st->{workers} }, 2, 'two workers');
ok($st->{workers}[0]{alive} && $st->{workers}[1]{alive}, 'both loops beat');
my ($host, $port) = $a->addr('echo.listen') =~ /^(.*):(\d+)$/;
for my $i (1 .. 64) {
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 5) or die $!;
    print $s "x\n";
    <$s>;
    close $s;
}
($code, $body) = $a->http('GET', 'admin', '/metrics');
my %per = $body =~ /^outrider_echo_lines_total\{worker="(\d)"\} (\d+)$/mg;
is(($per{0} // 0) + ($per{1} // 0), 64, 'every line counted once across shards');
ok(($per{0} // 0) > 0 && ($per{1} // 0) > 0, 'both workers accepted connections') or diag(explain \%per);
$a->finish_ok;

$a = Outrider->start(conf => { modules => ['echo'] }, role => 'sidecar', modules_dir => Outrider::test_modules_dir());
($code, $body) = $a->http('GET', 'admin', '/status');
is(scalar @{ JSON::PP::decode_json($body)->{workers} }, 1, 'sidecar role defaults to one worker');
$a->finish_ok;
done_testing;

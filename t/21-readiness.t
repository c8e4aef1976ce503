#!/usr/bin/env perl
# /ready follows the data path: a worker whose loop is stuck makes the agent
# not ready until it runs again. Also: JSON log lines.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(sleep time);
use JSON::PP;
use Outrider;

my $a = Outrider->start(conf => { modules => ['echo'], log => { format => 'json' } },
                        modules_dir => Outrider::test_modules_dir());
my ($code) = $a->http('GET', 'admin', '/ready');
is($code, 200, 'ready');
my ($host, $port) = $a->addr('echo.listen') =~ /^(.*):(\d+)$/;
my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port) or die $!;
print $s "STALL\n";
my $seen503 = 0;
# Polled while the worker is stuck: until its answer comes (the stall is
# over), not for a fixed time that a late start of the stall would outlast.
my $stuck = IO::Select->new($s);
my $until = time + 20;
while (time < $until) {
    ($code) = $a->http('GET', 'admin', '/ready', timeout => 2);
    if ($code == 503) { $seen503 = 1; last }
    last if $stuck->can_read(0.2);
}
ok($seen503, '/ready turns 503 while a worker loop is stuck');
($code, my $body) = $a->http('GET', 'admin', '/healthz');
is($code, 200, '/healthz still answers (the admin runs on its own loop)');
my $r = <$s>;
is($r, "stalled\n", 'the stuck worker finishes its work');
my $ready = 0;
for (1 .. 40) { ($code) = $a->http('GET', 'admin', '/ready'); if ($code == 200) { $ready = 1; last } sleep 0.1 }
ok($ready, 'and the agent is ready again');
close $s;
$a->finish_ok;
my @lines = grep { /\S/ } split /\n/, $a->log;
my @bad = grep { !eval { decode_json($_); 1 } } @lines;
ok(@lines && !@bad, 'log.format json: every log line is a JSON object') or diag(join "\n", @bad);
my $first = decode_json($lines[0]);
ok($first->{time} && $first->{level} && $first->{source} && $first->{msg}, 'with time, level, source and msg');
done_testing;

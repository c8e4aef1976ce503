#!/usr/bin/env perl
# metrics module under a statsd flood: unique names, long tags and garbage
# for a bounded time. Memory stays bounded (the series cap holds, refusals
# are counted), /metrics keeps answering, and the agent exits cleanly.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use JSON::PP;
use Outrider;

sub rss_kib {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

my $a = Outrider->start(
    role => 'sidecar',
    # Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
    # default) and shows as RSS: keep it small so growth means growth.
    env => { ASAN_OPTIONS => 'detect_leaks=1:abort_on_error=0:exitcode=99:quarantine_size_mb=1' },
    conf => {
        modules => ['metrics'],
        workers => 2,
        metrics => { listen => '127.0.0.1:0', statsd => { udp => '127.0.0.1:0', max_series => 2000, set_max_members => 1000 } },
    });
my $udp = IO::Socket::INET->new(PeerAddr => $a->addr('metrics.statsd'), Proto => 'udp') or die;
# Warm up: a first exposition allocates what every later one reuses.
$a->http('GET', 'metrics.http', '/metrics');
my $rss0 = rss_kib($a->pid);

my ($sent, $i) = (0, 0);
my $tag = 'x' x 200;
my $until = time + 3;
my $answered = 0;
my $next_query = time + 0.5;
while (time < $until) {
    my @lines;
    for (1 .. 10) {
        $i++;
        push @lines, "flood.$i.name:1|c|#id:$i,long:$tag", "members:$i|s", "garbage $i ||| \x00\xff";
    }
    $udp->send(join("\n", @lines)) and $sent++;
    if (time >= $next_query) { # by time, not count: the machine may be slow
        my ($code) = $a->http('GET', 'metrics.http', '/metrics', timeout => 5);
        $answered++ if $code == 200;
        $next_query = time + 0.5;
    }
}
ok($answered >= 1, "/metrics answered during the flood ($answered times)");
diag("sent $sent datagrams, $i distinct names");

my ($code, $body) = (0, '');
for (1 .. 50) {
    ($code, $body) = $a->http('GET', 'metrics.http', '/metrics');
    my ($pk) = $body =~ /^outrider_metrics_statsd_packets_total (\d+)/m;
    last if $pk && $pk >= $sent * 0.5; # UDP on loopback may drop under a flood
    sleep 0.1;
}
is($code, 200, '/metrics after the flood');
my @flood = $body =~ /^flood_\d+_name_total/mg;
cmp_ok(scalar(@flood), '<=', 2000 - 1, 'series stop at statsd.max_series (one kept for the set)');
cmp_ok(scalar(@flood), '>=', 1000, 'series filled up to the cap');
like($body, qr/^outrider_metrics_statsd_refused_lines_total\{reason="series_limit"\} [1-9]\d*$/m, 'refusals counted');
like($body, qr/^outrider_metrics_statsd_malformed_lines_total [1-9]\d*$/m, 'garbage counted as malformed');
like($body, qr/^outrider_metrics_statsd_set_overflow_total [1-9]\d*$/m, 'set members beyond the cap counted');
like($body, qr/^members 1000$/m, 'set capped at set_max_members');
my $rss1 = rss_kib($a->pid);
# A second flood as long as the first must not grow memory further: what
# the first one allocated is the high-water mark of bounded structures.
$until = time + 3;
while (time < $until) {
    $i++;
    $udp->send(join("\n", map { "again.$i.$_:1|c|#long:$tag" } 1 .. 10));
    $a->http('GET', 'metrics.http', '/metrics') if $i % 2000 == 0;
}
sleep 0.5;
my $rss2 = rss_kib($a->pid);
diag(sprintf('RSS %.1f MiB -> %.1f MiB after one flood -> %.1f MiB after two', $rss0 / 1024, $rss1 / 1024, $rss2 / 1024));
cmp_ok(($rss1 - $rss0) / 1024, '<', 64, 'memory growth bounded (MiB)');
cmp_ok(($rss2 - $rss1) / 1024, '<', 8, 'a second flood does not grow memory (MiB)');
$a->finish_ok;
done_testing;

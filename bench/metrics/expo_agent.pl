#!/usr/bin/env perl
# Exposition time of the real agent holding 100,000 statsd series: fills
# the store over UDP, then times GET /metrics with curl on a kept-alive
# connection (as Prometheus scrapes), and reports the agent's RSS growth
# per series.
#   bench/metrics/expo_agent.pl [SERIES]
use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(sleep time);
use Cwd qw(abs_path);
use File::Basename qw(dirname);

my $root = abs_path(dirname(__FILE__) . '/../..');
my $build = $ENV{OUTRIDER_BUILD} || "$root/build";
my $n = shift || 100000;
my $dir = tempdir('outrider-bexpo-XXXXXX', TMPDIR => 1, CLEANUP => 1);
use POSIX qw(sysconf _SC_CLK_TCK);
my $tick = sysconf(_SC_CLK_TCK);
# CPU seconds of the agent: robust to a machine shared with other loads.
sub cpu { open my $f, '<', "/proc/$_[0]/stat" or die; my @f = split ' ', (split /\) /, <$f>)[1]; return ($f[11] + $f[12]) / $tick }
sub rss_kib { open my $f, '<', "/proc/$_[0]/status" or return 0; while (<$f>) { return $1 if /^VmRSS:\s+(\d+)/ } 0 }
open my $c, '>', "$dir/agent.conf" or die;
print $c encode_json({ modules => ['metrics'], workers => 1, admin => { address => '127.0.0.1:0' },
    metrics => { listen => '127.0.0.1:0', statsd => { udp => '127.0.0.1:0', max_series => $n + 10, coalesce => '0ms' } } });
close $c;
my $pid = fork // die;
if (!$pid) { open STDOUT, '>', "$dir/log"; open STDERR, '>&', \*STDOUT;
    exec "$build/outrider", '-c', "$dir/agent.conf", '--role', 'sidecar', '--state-file', "$dir/state.json", '--modules-dir', "$build/modules" or die }
my $st;
for (1 .. 100) { last if -s "$dir/state.json" && ($st = eval { local $/; open my $f, '<', "$dir/state.json"; decode_json(<$f>) }); sleep 0.1 }
die "no agent\n" unless $st;
my $http = $st->{listeners}{'metrics.http'};
my $u = IO::Socket::INET->new(PeerAddr => $st->{listeners}{'metrics.statsd'}, Proto => 'udp') or die;
`curl -s http://$http/metrics > /dev/null`;
my $rss0 = rss_kib($pid);
for (my $i = 0; $i < $n; $i += 20) {
    $u->send(join "\n", map { "app.requests.$_:1|c|#route:/api/v1/r" . ($_ % 100) . ",code:200" } $i .. $i + 19);
    sleep 0.001 if $i % 2000 == 0; # let a small receive buffer keep up
}
my $body = '';
for (1 .. 100) { $body = `curl -s http://$http/metrics`; last if ($body =~ /^outrider_metrics_statsd_lines_total (\d+)/m)[0] // 0 >= $n; sleep 0.2 }
my ($lines) = $body =~ /^outrider_metrics_statsd_lines_total (\d+)/m;
my @series = $body =~ /^app_requests_\d+_total/mg;
my $rss1 = rss_kib($pid);
# Five scrapes on one kept-alive connection.
my $url = "http://$http/metrics";
my $cpu0 = cpu($pid);
my $times = `curl -s -o /dev/null -w '%{time_total}\\n' $url -o /dev/null $url -o /dev/null $url -o /dev/null $url -o /dev/null $url`;
my $cpu_ms = (cpu($pid) - $cpu0) * 1000 / 5;
my @t = map { $_ * 1000 } split ' ', $times;
printf "series=%d lines_received=%d bytes_out=%d\n", scalar(@series), $lines // 0, length $body;
printf "exposition_ms (curl time_total, keep-alive): %s\n", join(' ', map { sprintf '%.1f', $_ } @t);
printf "agent CPU per exposition: %.1f ms (average of 5)\n", $cpu_ms;
printf "rss_growth_per_series=%.0f bytes (RSS %.1f -> %.1f MiB; includes the kept output buffer)\n",
    ($rss1 - $rss0) * 1024 / (@series || 1), $rss0 / 1024, $rss1 / 1024;
kill 'TERM', $pid;
waitpid($pid, 0);

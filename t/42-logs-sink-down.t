#!/usr/bin/env perl
# logs: the TCP sink is down while the application keeps logging, then
# comes back. Nothing may be lost, and the agent's memory stays bounded
# meanwhile: the buffer fills, the tailer pauses, and the file itself holds
# the backlog.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Handle;
use Socket;
use POSIX qw(_exit);
use Time::HiRes qw(sleep time);
use Outrider;

my $dir = tempdir('logs-sink-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $log = "$dir/app.log";
my $got = "$dir/sink.out";

# The sink's port is bound now (connections are refused) and listened on
# later, by a child that saves what it receives.
socket(my $srv, PF_INET, SOCK_STREAM, 0) or die;
setsockopt($srv, SOL_SOCKET, SO_REUSEADDR, 1);
bind($srv, sockaddr_in(0, inet_aton('127.0.0.1'))) or die "bind: $!";
my ($port) = sockaddr_in(getsockname($srv));

open my $w, '>>', $log or die;
$w->autoflush(1);
my $a = Outrider->start(role => 'sidecar', conf => {
    modules => ['logs'], state_dir => "$dir/state",
    logs => {
        files => { paths => [$log], format => 'raw' },
        buffer => { memory_limit => '2MiB', chunk_size => '64KiB' },
        outputs => [{ type => 'tcp', address => "127.0.0.1:$port", retry_min => '50ms', retry_max => '500ms' }],
    },
});

sub rss_kib {
    open my $fh, '<', "/proc/$_[0]/status" or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

# About 60 MB of log while the sink is down.
my $total = 0;
my $pad = 'x' x 180;
my $peak = 0;
my $t0 = time;
for my $burst (1 .. 60) {
    print $w "line " . ++$total . " $pad\n" for 1 .. 5000;
    my $r = rss_kib($a->pid);
    $peak = $r if $r > $peak;
    sleep 0.02;
}
sleep 1;
for (1 .. 10) { my $r = rss_kib($a->pid); $peak = $r if $r > $peak; sleep 0.05 }
my ($code, $body) = $a->http('GET', 'admin', '/metrics');
my ($retries) = $body =~ /^outrider_logs_output_retries_total\{[^}]*\} (\d+)/m;
ok(($retries // 0) > 0, "sink down: output retried ($retries)");
my ($lag) = $body =~ /^outrider_logs_lag_bytes(?:\{[^}]*\})? (\d+)/m;
ok(($lag // 0) > 10_000_000, "the backlog stays in the file (lag $lag bytes)");
ok($peak > 0 && $peak < 48 * 1024, "peak RSS while down: $peak KiB (< 48 MiB with a 2 MiB buffer and 60 MB backlog)");

# The sink comes up.
my $pid = fork // die;
if (!$pid) {
    listen($srv, 16) or _exit(1);
    open my $o, '>', $got or _exit(1);
    while (accept(my $c, $srv)) {
        my $buf;
        while (sysread($c, $buf, 65536)) { syswrite($o, $buf) }
    }
    _exit(0);
}
close $srv;
sub received {
    open my $fh, '<', $got or return (0, 0);
    my %seen;
    my $dups = 0;
    while (<$fh>) { $dups++ if /"message":"line (\d+) / && $seen{$1}++ }
    return (scalar(keys %seen), $dups);
}
my $until = time + 60;
my ($n, $dups) = (0, 0);
while (time < $until) { ($n, $dups) = received(); last if $n >= $total; sleep 0.2 }
is($n, $total, "sink up: all $total lines arrived");
is($dups, 0, 'none twice (the connection was never cut mid-batch)');
$a->finish_ok;
kill 'TERM', $pid;
waitpid $pid, 0;
done_testing;

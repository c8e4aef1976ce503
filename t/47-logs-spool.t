#!/usr/bin/env perl
# logs: records that cannot wait (bus records, here from the echo test
# module) while the TCP sink is down go to the disk spool once the memory
# buffer is full; when the sink is back, every one arrives, in order, and
# the spool empties. Nothing is dropped while the spool has room.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Socket;
use POSIX qw(_exit);
use Outrider;

my $dir = tempdir('logs-spool-XXXXXX', TMPDIR => 1, CLEANUP => 1);
mkdir "$dir/mods";
symlink(Outrider::modules_dir() . '/logs.so', "$dir/mods/logs.so") or die;
symlink(Outrider::test_modules_dir() . '/echo.so', "$dir/mods/echo.so") or die;
socket(my $srv, PF_INET, SOCK_STREAM, 0) or die;
setsockopt($srv, SOL_SOCKET, SO_REUSEADDR, 1);
bind($srv, sockaddr_in(0, inet_aton('127.0.0.1'))) or die;
my ($port) = sockaddr_in(getsockname($srv));
my $got = "$dir/sink.out";

my $a = Outrider->start(role => 'sidecar', modules_dir => "$dir/mods", conf => {
    modules => ['echo', 'logs'], state_dir => "$dir/state",
    echo => { listen => '127.0.0.1:0' },
    logs => { bus_streams => ['echo.lines'],
              buffer => { memory_limit => '64KiB', chunk_size => '8KiB', flush_interval => '20ms',
                          spool => { enabled => JSON::PP::true, max_size => '64MiB', segment_size => '256KiB' } },
              outputs => [{ type => 'tcp', address => "127.0.0.1:$port", retry_min => '50ms', retry_max => '300ms' }] },
});
my $total = 20000;
my $s = IO::Socket::INET->new(PeerAddr => $a->addr('echo.listen'), Timeout => 5) or die;
my $pad = 'p' x 100;
for my $i (1 .. $total) { print $s "rec $i $pad\n"; my $e = <$s> }
close $s;
sub metric {
    my ($body, $name) = @_;
    my $v = 0;
    $v += $_ for $body =~ /^$name(?:\{[^}]*\})? (\d+)/mg;
    return $v;
}
# Every record taken in (lines read from the bus), the spool holding them
# (/metrics is published on the flush timer: polled).
my (undef, $body) = $a->get_until('admin', '/metrics', sub { metric($_[0], 'outrider_logs_lines_read_total') >= $total
                                                            && metric($_[0], 'outrider_logs_spool_bytes') > 1_000_000 });
ok(metric($body, 'outrider_logs_spool_bytes') > 1_000_000, 'sink down: records went to the spool (' .
   metric($body, 'outrider_logs_spool_bytes') . ' bytes)');
ok(metric($body, 'outrider_logs_buffer_bytes') <= 200_000, 'memory buffer bounded (' .
   metric($body, 'outrider_logs_buffer_bytes') . ' bytes)');
is(metric($body, 'outrider_logs_dropped_records_total'), 0, 'nothing dropped');
my @segs = glob("$dir/state/logs/spool-0/spool-*.seg");
ok(@segs > 2, scalar(@segs) . ' segment files');

my $pid = fork // die;
if (!$pid) {
    listen($srv, 16) or _exit(1);
    open my $o, '>', $got or _exit(1);
    while (accept(my $c, $srv)) { my $buf; while (sysread($c, $buf, 65536)) { syswrite($o, $buf) } }
    _exit(0);
}
close $srv;
my @n;
Outrider::poll(30, sub {
    @n = ();
    if (open my $fh, '<', $got) { while (<$fh>) { push @n, $1 if /"line":"rec (\d+) / } }
    @n >= $total;
});
is(scalar @n, $total, "sink up: all $total records arrived");
my $order = 0;
$order += $n[$_] != $_ + 1 for 0 .. $#n;
is($order, 0, 'each once, in order');
(undef, $body) = $a->get_until('admin', '/metrics', sub { metric($_[0], 'outrider_logs_spool_bytes') == 0 });
is(metric($body, 'outrider_logs_spool_bytes'), 0, 'spool empty again');
my @left;
Outrider::poll(15, sub { (@left = glob("$dir/state/logs/spool-0/spool-*.seg")) <= 1 });
ok(@left <= 1, "delivered segments deleted (" . scalar(@left) . " left: the open one)");
$a->finish_ok;
kill 'TERM', $pid;
waitpid $pid, 0;
done_testing;

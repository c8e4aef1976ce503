#!/usr/bin/env perl
# statsd ingest, outrider (metrics module, one worker) against collectd's
# statsd plugin, in one run, with the same sender and the same packets:
# for 1 and 10 lines per datagram, a ladder of packet rates, each for a
# few seconds. For each: lines received (loss) and CPU seconds of the
# receiving process, hence lines per CPU-second.
#
#   bench/metrics/statsd_vs_collectd.pl [SECONDS_PER_STEP]
use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(sysconf _SC_CLK_TCK);
use Time::HiRes qw(sleep time);
use Cwd qw(abs_path);
use File::Basename qw(dirname);

my $root = abs_path(dirname(__FILE__) . '/../..');
my $build = $ENV{OUTRIDER_BUILD} || "$root/build";
my $secs = shift || 3;
my $tick = sysconf(_SC_CLK_TCK);
my $dir = tempdir('outrider-bench-XXXXXX', TMPDIR => 1, CLEANUP => 1);
system("cc -O2 -o $dir/blast $root/bench/metrics/statsd_blast.c") == 0 or die "build blast\n";

sub free_port { my $s = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1:0') or die; my $p = $s->sockport; close $s; $p }
sub cpu { open my $f, '<', "/proc/$_[0]/stat" or die; my @f = split ' ', (split /\) /, <$f>)[1]; return ($f[11] + $f[12]) / $tick }
sub rss_kib { open my $f, '<', "/proc/$_[0]/status" or return 0; while (<$f>) { return $1 if /^VmRSS:\s+(\d+)/ } 0 }

# --- outrider -------------------------------------------------------------
open my $c, '>', "$dir/agent.conf" or die;
print $c encode_json({ modules => ['metrics'], workers => 1, admin => { address => '127.0.0.1:0' },
                       metrics => { listen => '127.0.0.1:0', statsd => { udp => '127.0.0.1:0', rcvbuf => '4MiB' } } });
close $c;
my $opid = fork // die;
if (!$opid) {
    open STDOUT, '>', "$dir/agent.log"; open STDERR, '>&', \*STDOUT;
    exec "$build/outrider", '-c', "$dir/agent.conf", '--role', 'sidecar', '--state-file', "$dir/state.json",
        '--modules-dir', "$build/modules" or die;
}
my $state;
for (1 .. 100) { last if -s "$dir/state.json" && ($state = eval { local $/; open my $f, '<', "$dir/state.json"; decode_json(<$f>) }); sleep 0.1 }
die "outrider did not start\n" unless $state;
my ($o_port) = $state->{listeners}{'metrics.statsd'} =~ /:(\d+)$/;
my $o_http = $state->{listeners}{'metrics.http'};
sub outrider_lines {
    my $body = `curl -s http://$o_http/metrics`;
    my $n = 0;
    $n += $1 while $body =~ /^bench_c\d_total (\d+)$/mg;
    return $n;
}

# --- collectd ---------------------------------------------------------------
my $c_port = free_port();
open my $cc, '>', "$dir/collectd.conf" or die;
print $cc <<"CONF";
Hostname "bench"
FQDNLookup false
Interval 1
ReadThreads 1
WriteThreads 1
LoadPlugin statsd
LoadPlugin csv
<Plugin statsd>
  Host "127.0.0.1"
  Port "$c_port"
</Plugin>
<Plugin csv>
  DataDir "$dir/csv"
  StoreRates false
</Plugin>
CONF
close $cc;
my $cpid = fork // die;
if (!$cpid) { open STDOUT, '>', "$dir/collectd.log"; open STDERR, '>&', \*STDOUT; exec '/usr/sbin/collectd', '-f', '-C', "$dir/collectd.conf" or die }
sleep 1;
# collectd asks for no particular receive buffer: give both the same.
sub collectd_lines {
    my $n = 0;
    for my $f (glob "$dir/csv/bench/statsd/derive-bench.c*") {
        open my $fh, '<', $f or next;
        my $last;
        $last = $_ while <$fh>;
        $n += (split /,/, $last)[1] if $last && $last =~ /,\d/;
    }
    return $n;
}

printf "idle RSS: outrider %.1f MiB, collectd %.1f MiB\n", rss_kib($opid) / 1024, rss_kib($cpid) / 1024;
printf "%-9s %5s %9s %9s %11s %11s %7s %8s %14s\n", 'peer', 'lines', 'pps_asked', 'pps_sent', 'lines_sent', 'lines_recv', 'loss%', 'cpu_s', 'lines/cpu_s';
my %best;
for my $lines (1, 10) {
    for my $pps ($lines == 1 ? (50000, 100000, 200000, 400000) : (20000, 50000, 100000, 200000)) {
        my %row;
        for my $peer (['outrider', $opid, $o_port, \&outrider_lines], ['collectd', $cpid, $c_port, \&collectd_lines]) {
            my ($name, $pid, $port, $count) = @$peer;
            my $before = $count->();
            my $cpu0 = cpu($pid);
            my $out = `$dir/blast 127.0.0.1 $port $lines $pps $secs`;
            my ($sent) = $out =~ /lines=(\d+)/;
            sleep($name eq 'collectd' ? 2.5 : 0.5); # collectd writes once per Interval
            my $cpu = cpu($pid) - $cpu0;
            my $recv = $count->() - $before;
            my $loss = $sent ? 100 * ($sent - $recv) / $sent : 0;
            my $per_cpu = $cpu > 0 ? $recv / $cpu : 0;
            # The sender may fall short of the asked rate on a busy machine.
            my $achieved = $sent / $lines / $secs;
            printf "%-9s %5d %9d %9.0f %11d %11d %7.2f %8.2f %14.0f\n", $name, $lines, $pps, $achieved, $sent, $recv, $loss,
                $cpu, $per_cpu;
            $row{$name} = $per_cpu;
            $best{"$name/$lines"}{lossless} = $achieved
                if $loss <= 0.0 && $achieved > ($best{"$name/$lines"}{lossless} || 0);
            $best{"$name/$lines"}{per_cpu} = $per_cpu if $per_cpu > ($best{"$name/$lines"}{per_cpu} || 0) && $loss < 1;
        }
        # Same packets, same rate: the ratio that the target is about.
        printf "ratio     %5d %9d lines per CPU-second outrider/collectd: %.2f\n", $lines, $pps,
            $row{collectd} ? $row{outrider} / $row{collectd} : 0;
    }
}
for my $k (sort keys %best) {
    printf "%-12s highest lossless rate sent: %s pps; best lines per CPU-second (loss < 1%%): %.0f\n", $k,
        $best{$k}{lossless} ? sprintf('%.0f', $best{$k}{lossless}) : 'none', $best{$k}{per_cpu} || 0;
}
if (open my $la, "<", "/proc/loadavg") { printf "load average at the end: %s", scalar <$la> }
kill 'TERM', $opid, $cpid;
waitpid($_, 0) for $opid, $cpid;

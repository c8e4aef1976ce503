#!/usr/bin/env perl
# HTTP/2 through reloads and hot upgrades: h2load (h2c, multiplexed) runs
# through the proxy to an h2 cluster (nginx) while wrk runs HTTP/1.1, and
# the agent reloads twice (SIGHUP, POST /reload), upgrades twice and
# reloads once more. No request may fail and no stream may be reset.
#
# h2load never opens a new connection after a GOAWAY: it stops that
# client and prints "Process Request Failure" for the request it could
# not start (nothing was sent; it is not in the summary's failed count).
# So h2load runs in overlapping short instances, each with its own
# connections: every reload or upgrade meets some instances mid-run
# (their streams in flight must complete) and later instances connect to
# the new generation or process.
#
# nginx closes its HTTP/2 sessions with GOAWAY every 100 requests
# (keepalive_requests): the proxy must carry on over a fresh upstream
# session without failing a request.
#
# Last, SIGTERM with a slow HTTP/2 request in flight: it completes; an idle
# HTTP/2 connection gets the graceful two-step GOAWAY (a first one with the
# largest stream id, a PING, then the final one naming the last stream).
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use IO::Socket::INET;
use IO::Select;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use JSON::PP;
use POSIX ();
use Outrider;
use Lifecycle;
use ProxyTest qw(backend_start backend_stop);

plan skip_all => 'wrk, h2load, nghttp and nginx are needed'
    unless -x '/usr/bin/wrk' && -x '/usr/bin/h2load' && -x '/usr/bin/nghttp' && -x '/usr/sbin/nginx';
my $be = backend_start('b1');
my $dir = tempdir('outrider-life-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{KEEP});
diag("files in $dir") if $ENV{KEEP};

# nginx as the fast backend (HTTP/1.1 and h2c), and the agent (t/lib/Lifecycle.pm).
my $ngx = Lifecycle::nginx_start($dir, h2_keepalive_requests => 100);
my ($a, $out_addr) = Lifecycle::agent_start($dir, $ngx, $be);

# wrk (HTTP/1.1 keep-alive) for 8 seconds.
my $wrk = fork // die;
if (!$wrk) {
    open STDOUT, '>', "$dir/wrk.txt" or die;
    exec 'wrk', '-t1', '-c4', '-d8s', '-H', 'Host: svc.test', "http://$out_addr/id";
    exit 127;
}
# h2load: a new 1.5-second instance (2 connections, 4 streams each) every
# 0.5 seconds for 8 seconds.
my $h2_runs = 16;
my $h2 = fork // die;
if (!$h2) {
    my @kids;
    for my $i (1 .. $h2_runs) {
        my $k = fork // die;
        if (!$k) {
            open STDOUT, '>', "$dir/h2load-$i.txt" or die;
            open STDERR, '>&', \*STDOUT or die;
            exec 'h2load', '-c2', '-m4', '-D', '1500ms', '-H', ':authority: h2.test', "http://$out_addr/";
            exit 127;
        }
        push @kids, $k;
        sleep 0.5;
    }
    waitpid($_, 0) for @kids;
    POSIX::_exit(0);
}

my $p3 = Lifecycle::reload_and_upgrade($a, $dir);
waitpid($wrk, 0);
waitpid($h2, 0);

my ($ok, $failed, $errored, $stopped, $ran) = (0, 0, 0, 0, 0);
for my $i (1 .. $h2_runs) {
    open my $fh, '<', "$dir/h2load-$i.txt" or die;
    my $r = do { local $/; <$fh> };
    my ($t, $s, $f, $e) = $r =~ /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/
        or do { diag("h2load run $i: no summary\n$r"); next };
    $ran++;
    $ok += $s;
    $failed += $f;
    $errored += $e;
    $stopped += () = $r =~ /^Process Request Failure/mg;
    diag("h2load run $i:\n$r") if $f || $e || !$s;
}
is($ran, $h2_runs, 'every h2load run finished with a summary');
cmp_ok($ok, '>', 500, "h2load made HTTP/2 requests throughout ($ok, $stopped clients stopped by a GOAWAY)");
is($failed, 0, 'no failed HTTP/2 request during reloads and upgrades');
is($errored, 0, 'no HTTP/2 stream reset or refused');
open my $fh, '<', "$dir/wrk.txt" or die;
my $report = do { local $/; <$fh> };
my ($requests) = $report =~ /(\d+) requests in/;
my ($non2xx) = $report =~ /Non-2xx or 3xx responses: (\d+)/;
my ($sockerr) = $report =~ /Socket errors: (.*)/;
cmp_ok($requests // 0, '>', 1000, "wrk made requests throughout (${\($requests // 0)})");
is($non2xx // 0, 0, 'no non-2xx HTTP/1.1 response');
is($sockerr, undef, 'no socket error (connect, read, write, timeout)') or diag($report);
is($a->wait_exit(20), 0, 'the first process exited 0');

# SIGTERM with a slow HTTP/2 request in flight (nghttp) and an HTTP/2
# connection idle for over a second (raw frames: preface and SETTINGS).
sub h2_frame {
    my ($type, $flags, $sid, $payload) = @_;
    return substr(pack('N', length $payload), 1) . pack('CCN', $type, $flags, $sid) . $payload;
}
my $idle = IO::Socket::INET->new(PeerAddr => $out_addr) or die "connect: $!";
binmode $idle;
$idle->autoflush(1);
print $idle "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", h2_frame(4, 0, 0, '');
sleep 1.2; # idle for longer than the drain grace (1 s)
my $ng = fork // die;
if (!$ng) {
    open STDOUT, '>', "$dir/nghttp.txt" or die;
    open STDERR, '>&', \*STDOUT or die;
    exec 'nghttp', '-v', '-H', ':authority: slow.test', "http://$out_addr/sleep?ms=1500&mark=$dir/arrived";
    exit 127;
}
ok(Outrider::poll(15, sub { -e "$dir/arrived" }), 'the slow HTTP/2 request is in flight (it reached the backend)');
kill 'TERM', $p3;
# The idle connection: answer SETTINGS and PING as a client must, note the
# GOAWAY frames until the agent closes the connection.
my (@goaways, $buf);
$buf = '';
my $sel = IO::Select->new($idle);
my $until = time + 8;
READ: while (time < $until && $sel->can_read($until - time)) {
    last unless sysread($idle, my $chunk, 65536);
    $buf .= $chunk;
    while (length $buf >= 9) {
        my ($l1, $l2, $type, $flags) = unpack('CnCC', $buf);
        my $len = ($l1 << 16) | $l2;
        last if length $buf < 9 + $len;
        my $payload = substr($buf, 9, $len);
        $buf = substr($buf, 9 + $len);
        print $idle h2_frame(4, 1, 0, '') if $type == 4 && !($flags & 1);
        print $idle h2_frame(6, 1, 0, $payload) if $type == 6 && !($flags & 1);
        push @goaways, unpack('N', $payload) & 0x7fffffff if $type == 7;
    }
}
is_deeply(\@goaways, [2147483647, 0],
          'idle connection: two-step GOAWAY (shutdown notice, PING, final GOAWAY), then closed');
waitpid($ng, 0);
is($? >> 8, 0, 'nghttp exited 0');
open $fh, '<', "$dir/nghttp.txt" or die;
my $ngout = do { local $/; <$fh> };
like($ngout, qr/recv \(stream_id=\d+\) :status: 200/, 'the in-flight slow HTTP/2 request completed with 200')
    or diag($ngout);
for (1 .. 200) { last unless kill 0, $p3; sleep 0.05 }
ok(!kill(0, $p3), 'the agent exited after draining');
my $log = $a->log;
if ($ENV{KEEP}) { open my $lf, '>', "$dir/agent.log" or die; print $lf $log; close $lf }
ok(!defined Outrider::sanitizer_report($log), 'no sanitizer report in any process');
my @errors = grep { / error \[/ } split /\n/, $log;
ok(!@errors, 'no error lines') or diag(join "\n", @errors);
unlike($log, qr/drain deadline/, 'every drain finished before its deadline');
backend_stop($be);
Lifecycle::nginx_stop($ngx);
done_testing;

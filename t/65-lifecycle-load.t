#!/usr/bin/env perl
# Reload and hot upgrade under load: wrk (HTTP/1.1 keep-alive) runs through
# the proxy while the agent reloads by SIGHUP and POST /reload and upgrades
# its binary twice; wrk must see no failed request. Then SIGTERM with a
# slow request in flight: it completes, and new connections are refused.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use IO::Socket::INET;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep);
use JSON::PP;
use Outrider;
use Lifecycle;
use ProxyTest qw(backend_start backend_stop curl);

plan skip_all => 'wrk and nginx are needed' unless -x '/usr/bin/wrk' && -x '/usr/sbin/nginx';
my $be = backend_start('b1');
my $dir = tempdir('outrider-life-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# nginx as the fast backend (HTTP/1.1 and h2c), and the agent (t/lib/Lifecycle.pm).
my $ngx = Lifecycle::nginx_start($dir);
my ($a, $out_addr) = Lifecycle::agent_start($dir, $ngx, $be);

# wrk (HTTP/1.1 keep-alive) in the background for 8 seconds.
my $wrk_out = "$dir/wrk.txt";
my $wrk = fork // die;
if (!$wrk) {
    open STDOUT, '>', $wrk_out or die;
    exec 'wrk', '-t1', '-c8', '-d8s', '-H', 'Host: svc.test', "http://$out_addr/id";
    exit 127;
}

my $p3 = Lifecycle::reload_and_upgrade($a, $dir);
waitpid($wrk, 0);
open my $fh, '<', $wrk_out or die;
my $report = do { local $/; <$fh> };
my ($requests) = $report =~ /(\d+) requests in/;
my ($non2xx) = $report =~ /Non-2xx or 3xx responses: (\d+)/;
my ($sockerr) = $report =~ /Socket errors: (.*)/;
cmp_ok($requests // 0, '>', 1000, "wrk made requests throughout (${\($requests // 0)})");
is($non2xx // 0, 0, 'no non-2xx response during reloads and upgrades');
is($sockerr, undef, 'no socket error (connect, read, write, timeout)') or diag($report);
is($a->wait_exit(20), 0, 'the first process exited 0');

# SIGTERM with a slow request in flight: it completes; new connections
# are refused once the agent stopped accepting.
my ($host, $port) = $out_addr =~ /^(.*):(\d+)$/;
my $slow = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port) or die $!;
print $slow "GET /sleep?ms=1500&mark=$dir/arrived HTTP/1.1\r\nHost: slow.test\r\n\r\n";
ok(Outrider::poll(15, sub { -e "$dir/arrived" }), 'the slow request is in flight (it reached the backend)');
kill 'TERM', $p3;
# The listener closes when the agent handles the signal: poll for it.
ok(Outrider::poll(10, sub { !IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 2) }),
   'new connections are refused after SIGTERM (drain.delay 0)');
my $status = <$slow> // '';
like($status, qr{^HTTP/1\.1 200}, 'the in-flight slow request completed');
for (1 .. 200) { last unless kill 0, $p3; sleep 0.05 }
ok(!kill(0, $p3), 'the agent exited after draining');
my $log = $a->log;
ok(!defined Outrider::sanitizer_report($log), 'no sanitizer report in any process');
my @errors = grep { / error \[/ } split /\n/, $log;
ok(!@errors, 'no error lines') or diag(join "\n", @errors);
backend_stop($be);
Lifecycle::nginx_stop($ngx);
done_testing;

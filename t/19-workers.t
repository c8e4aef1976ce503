#!/usr/bin/env perl
# Node role runs one loop per worker; listeners are shared with
# SO_REUSEPORT, so every worker serves connections.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use IO::Select;
use File::Temp ();
use Time::HiRes qw(sleep);
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

# A hot upgrade to a config with fewer workers: each socket handed over is
# served by a worker of its own, or the connections the kernel queues on an
# orphan socket would wait forever.
my $dir = File::Temp::tempdir('outrider-w-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my %conf = (modules => ['echo'], workers => 2, control_socket => "$dir/control.sock");
$a = Outrider->start(conf => \%conf, role => 'node', modules_dir => Outrider::test_modules_dir());
($host, $port) = $a->addr('echo.listen') =~ /^(.*):(\d+)$/;
$a->rewrite_conf({ %conf, workers => 1 });
my ($ucode, $uout) = Outrider::run_cmd(Outrider::bin(), 'upgrade', '--control', "$dir/control.sock");
is($ucode, 0, 'upgrade to a config with one worker') or diag($uout . $a->log);
my $answered = 0;
for my $i (1 .. 64) {
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 5) or die $!;
    print $s "x\n";
    $answered++ if IO::Select->new($s)->can_read(5) && defined <$s>;
    close $s;
}
is($answered, 64, 'every connection after the upgrade is answered');
($code, $body) = $a->http('GET', 'admin', '/status');
is(scalar @{ JSON::PP::decode_json($body)->{workers} }, 2, 'the new process keeps a worker per handed-over socket');
like($a->log, qr/workers: 1 configured, but 2 sockets per listener were handed over: running 2/, 'and says why');
# The process the upgrade started is not the one the harness started: stop
# it here, or it outlives the test.
my ($new_pid) = $uout =~ /new process (\d+)/;
is($a->wait_exit(20), 0, 'the old process drained and exited 0');
kill 'TERM', $new_pid if $new_pid;
for (1 .. 200) { last unless $new_pid && kill(0, $new_pid); sleep 0.05 }
ok($new_pid && !kill(0, $new_pid), 'the new process stops on SIGTERM');
ok(!defined Outrider::sanitizer_report($a->log), 'no sanitizer report in either process');

$a = Outrider->start(conf => { modules => ['echo'] }, role => 'sidecar', modules_dir => Outrider::test_modules_dir());
($code, $body) = $a->http('GET', 'admin', '/status');
is(scalar @{ JSON::PP::decode_json($body)->{workers} }, 1, 'sidecar role defaults to one worker');
$a->finish_ok;
done_testing;

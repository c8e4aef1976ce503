#!/usr/bin/env perl
# Hot binary upgrade: the running agent starts its binary anew, hands over
# its listening sockets, waits until the new process serves, then drains
# and exits. No connection is refused throughout; a failing new process
# leaves the old one serving and says why.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use POSIX ();
use File::Temp ();
use Outrider;

my $bin = Outrider::bin();
my $mods = Outrider::test_modules_dir();

sub conf {
    my ($dir, %extra) = @_;
    return { modules => ['echo'], control_socket => "$dir/control.sock", echo => { greeting => 'hi', %extra } };
}
my $dir = File::Temp::tempdir('outrider-up-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $a = Outrider->start(conf => conf($dir), modules_dir => $mods);
my $old_pid = $a->pid;
my $echo = $a->addr('echo.listen');
my ($host, $port) = $echo =~ /^(.*):(\d+)$/;
my $admin = $a->addr('admin');

sub greet {
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 5) or return 'refused';
    my $g = <$s>;
    close $s;
    return defined $g ? 'ok' : 'closed';
}

# Connections keep flowing in a child while the upgrade happens.
pipe(my $r, my $w) or die;
my $loader = fork // die;
if (!$loader) {
    close $r;
    my %n;
    my $until = time + 4;
    $n{ greet() }++ while time < $until;
    print $w join(',', map { "$_=$n{$_}" } sort keys %n), "\n";
    exit 0;
}
close $w;
sleep 0.5;
my ($code, $out) = Outrider::run_cmd($bin, 'upgrade', '-c', $a->conf_path);
is($code, 0, '`outrider upgrade` exits 0') or diag($out . $a->log);
like($out, qr/^ok new process (\d+) is serving$/m, 'and says which process serves now');
my ($new_pid) = $out =~ /new process (\d+)/;
is($a->wait_exit(20), 0, 'the old process drained and exited 0');
my $counts = <$r>;
waitpid($loader, 0);
chomp $counts;
like($counts, qr/^ok=\d+$/, "every connection during the upgrade was served ($counts)");

my $st = $a->state;
is($st->{pid}, $new_pid, 'the state file names the new process');
is($st->{listeners}{'echo.listen'}, $echo, 'same listener address');
is($st->{listeners}{admin}, $admin, 'same admin address');
is(greet(), 'ok', 'the new process serves');
ok(kill(0, $new_pid), 'the new process runs');

# A failing new process: the old one keeps serving and says why.
$a->rewrite_conf(conf($dir, max_line => 1));
($code, $out) = Outrider::run_cmd($bin, 'upgrade', '--control', "$dir/control.sock");
is($code, 1, 'a failed upgrade exits 1');
like($out, qr/failed: the new process exited with status 1 before it was ready/, 'and says why');
ok(kill(0, $new_pid), 'the serving process is untouched');
is(greet(), 'ok', 'and still serves');

# SIGUSR2 does the same as the subcommand.
$a->rewrite_conf(conf($dir));
kill 'USR2', $new_pid;
my $third;
for (1 .. 200) {
    my $s = $a->state;
    if ($s->{pid} != $new_pid) { $third = $s->{pid}; last }
    sleep 0.05;
}
ok($third, 'SIGUSR2 upgrades too');
for (1 .. 200) { last unless kill(0, $new_pid) && !zombie($new_pid); sleep 0.05 }
ok(!kill(0, $new_pid) || zombie($new_pid), 'the previous process exited');
is(greet(), 'ok', 'the third process serves');

($code, $out) = Outrider::run_cmd($bin, 'reload', '--control', "$dir/control.sock");
is($code, 0, '`outrider reload` through the control socket') or diag($out);
like($out, qr/^ok reload accepted/, 'answers ok');
($code, $out) = Outrider::run_cmd($bin, 'upgrade', '--control', "$dir/nope.sock");
is($code, 3, 'no agent at the control socket: exit 3');
like($out, qr/cannot reach the agent at .*nope\.sock/, 'and says so');

kill 'TERM', $third;
for (1 .. 400) { last unless kill(0, $third) && !zombie($third); sleep 0.05 }
ok(!kill(0, $third) || zombie($third), 'the last process stops on SIGTERM');
my $log = $a->log;
ok(!defined Outrider::sanitizer_report($log), 'no sanitizer report in any process') or diag($log);
my @errors = grep { / error \[/ && !/upgrade failed|max_line/ } split /\n/, $log;
ok(!@errors, 'no unexpected error lines') or diag(join "\n", @errors);

sub zombie {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    my $stat = <$fh>;
    return $stat =~ /^\d+ \(.*\) Z/;
}
done_testing;

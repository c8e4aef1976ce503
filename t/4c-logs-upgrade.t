#!/usr/bin/env perl
# logs across hot upgrades (`outrider upgrade`): the application logs
# without pause while the agent is replaced twice by a new process. The new
# process tails only once the old one drained and saved its positions (a
# flock on <state_dir>/logs/tailer.lock hands the files over): every line
# arrives exactly once, in order.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Handle;
use Time::HiRes qw(sleep time);
use Outrider;

sub gone {
    my ($pid) = @_;
    return 1 unless kill 0, $pid;
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    return (split ' ', <$fh>)[2] eq 'Z';
}

my $dir = tempdir('logs-upgrade-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $log = "$dir/app.log";
my $out = "$dir/out.json";
open my $w, '>>', $log or die;
$w->autoflush(1);
my $a = Outrider->start(role => 'sidecar', conf => {
    modules => ['logs'], state_dir => "$dir/state", control_socket => "$dir/control.sock",
    logs => { files => { paths => [$log], poll_interval => '20ms' }, buffer => { flush_interval => '20ms' },
              outputs => [{ type => 'file', path => $out }] },
});
my $n = 0;
my $pid = $a->pid;
for my $up (1 .. 2) {
    for my $burst (1 .. 10) { print $w "line " . ++$n . "\n" for 1 .. 100; sleep 0.01 }
    my $pw = fork // die;
    if (!$pw) {
        # Keep logging while the upgrade runs.
        my $m = $n;
        for my $burst (1 .. 30) { print $w "line " . ++$m . "\n" for 1 .. 100; sleep 0.01 }
        exit 0;
    }
    my ($code, $msg) = Outrider::run_cmd(Outrider::bin(), 'upgrade', '--control', "$dir/control.sock");
    waitpid $pw, 0;
    $n += 3000;
    # The state file names the serving process. (The command's own answer
    # is core's business: t/20-upgrade.t; it is only shown here.)
    my $new;
    for (1 .. 400) { my $st = $a->state; if ($st->{pid} != $pid) { $new = $st->{pid}; last } sleep 0.05 }
    ok($new, "upgrade $up: process $new serves") or diag("exit $code: $msg");
    diag("upgrade $up: exit $code: $msg") if $code;
    if ($up == 1) {
        is($a->wait_exit(30), 0, "the first process drained and exited 0");
    } else {
        for (1 .. 400) { last if gone($pid); sleep 0.05 }
        ok(gone($pid), "old process $pid exited");
    }
    $pid = $new;
}
print $w "line " . ++$n . "\n" for 1 .. 500;
close $w;
sub shipped { open my $fh, '<', $out or return (); my @l; while (<$fh>) { push @l, $1 if /"message":"line (\d+)"/ } return @l }
my @got;
my $until = time + 20;
while (time < $until) { @got = shipped(); last if @got >= $n; sleep 0.05 }
sleep 0.5;
@got = shipped();
is(scalar @got, $n, "$n lines shipped across 2 upgrades");
my ($dups, $order, %seen) = (0, 0);
for my $i (0 .. $#got) { $dups++ if $seen{ $got[$i] }++; $order++ if $i && $got[$i] != $got[$i - 1] + 1 }
is($dups, 0, "none twice") or diag($a->log);
is($order, 0, 'in order');
kill 'TERM', $pid;
for (1 .. 400) { last if gone($pid); sleep 0.05 }
ok(gone($pid), 'the last process stops on SIGTERM');
my $l = $a->log;
ok(!defined Outrider::sanitizer_report($l), 'no sanitizer report');
my @errors = grep { / error \[/ } split /\n/, $l;
ok(!@errors, 'no error lines') or diag(join "\n", @errors);
done_testing;

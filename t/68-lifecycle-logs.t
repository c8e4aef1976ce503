#!/usr/bin/env perl
# logs through five hot upgrades: a writer appends numbered lines to a
# file without pause (100 lines every 10 ms) while the agent is replaced
# five times (`outrider upgrade`). Only one process tails the file at a
# time: the new one starts from the old one's final checkpoint (the logs
# module's flock on its state_dir). Every line arrives exactly once, in
# order, and every old process exits 0.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Handle;
use POSIX ();
use Time::HiRes qw(sleep time);
use Outrider;

my $dir = tempdir('outrider-life-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $log = "$dir/app.log";
my $out = "$dir/out.json";
my $bin = Outrider::bin();
my $a = Outrider->start(role => 'sidecar', conf => {
    modules => ['logs'], state_dir => "$dir/state", control_socket => "$dir/control.sock",
    drain => { delay => '0s', timeout => '10s' },
    logs => { files => { paths => [$log], poll_interval => '20ms' }, buffer => { flush_interval => '20ms' },
              outputs => [{ type => 'file', path => $out }] },
});

# The writer: bursts of 100 lines every 10 ms until told to stop (SIGTERM),
# then it prints how many lines it wrote.
pipe(my $count_r, my $count_w) or die;
my $writer = fork // die;
if (!$writer) {
    close $count_r;
    open my $w, '>>', $log or die;
    $w->autoflush(1);
    my ($n, $stop) = (0, 0);
    local $SIG{TERM} = sub { $stop = 1 };
    until ($stop) { print $w "line " . ++$n . "\n" for 1 .. 100; sleep 0.01 }
    close $w;
    print $count_w "$n\n";
    close $count_w;
    POSIX::_exit(0);
}
close $count_w;

my @old = ($a->pid);
for my $up (1 .. 5) {
    sleep 0.7;
    my ($rc, $msg) = Outrider::run_cmd($bin, 'upgrade', '--control', "$dir/control.sock");
    is($rc, 0, "upgrade $up while the application logs") or diag($msg);
    push @old, $1 if $msg =~ /new process (\d+)/;
}
sleep 0.7;
kill 'TERM', $writer;
my $n = <$count_r>;
chomp $n;
waitpid($writer, 0);
my $last = pop @old;

sub shipped { open my $fh, '<', $out or return (); my @l; while (<$fh>) { push @l, $1 if /"message":"line (\d+)"/ } return @l }
my @got;
my $until = time + 30;
while (time < $until) { @got = shipped(); last if @got >= $n; sleep 0.05 }
sleep 0.5;
@got = shipped();
cmp_ok($n, '>', 5000, "the writer wrote $n lines");
is(scalar @got, $n, "$n lines shipped across 5 upgrades");
my ($dups, $order, %seen) = (0, 0);
for my $i (0 .. $#got) { $dups++ if $seen{ $got[$i] }++; $order++ if $i && $got[$i] != $got[$i - 1] + 1 }
is($dups, 0, 'no line twice');
is(scalar(grep { !$seen{$_} } 1 .. $n), 0, 'no line lost');
is($order, 0, 'in order');
is($a->wait_exit(20), 0, 'the first process exited 0');
for my $p (@old[1 .. $#old]) {
    for (1 .. 200) { last unless kill 0, $p; sleep 0.05 }
    ok(!kill(0, $p), "old process $p exited");
}
kill 'TERM', $last;
for (1 .. 200) { last unless kill 0, $last; sleep 0.05 }
ok(!kill(0, $last), 'the last process stops on SIGTERM');
my $l = $a->log;
ok(!defined Outrider::sanitizer_report($l), 'no sanitizer report in any process');
my @errors = grep { / error \[/ } split /\n/, $l;
ok(!@errors, 'no error lines') or diag(join "\n", @errors);
done_testing;

#!/usr/bin/env perl
# logs: the agent is killed with SIGKILL in the middle of shipping a large
# file, then started again on the same state dir. No line may be lost, and
# with checkpoint_interval 0 (positions saved after every acknowledged
# batch) at most one batch may be delivered twice.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use Outrider;

my $dir = tempdir('logs-crash-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $log = "$dir/app.log";
my $out = "$dir/out.json";
my $total = 400000;
my $batch = 65536;

open my $w, '>', $log or die;
print $w "2026-01-01T00:00:00.000000000Z stdout F line $_ of the crash test\n" for 1 .. $total;
close $w;

my $conf = {
    modules => ['logs'], state_dir => "$dir/state",
    logs => {
        files => { paths => [$log], format => 'cri', checkpoint_interval => '0s' },
        buffer => { chunk_size => '16KiB', memory_limit => '1MiB' },
        outputs => [{ type => 'file', path => $out, batch_size => $batch }],
    },
};

sub count_lines { open my $fh, '<', $out or return 0; my $n = 0; $n++ while <$fh>; return $n }

my $a = Outrider->start(role => 'sidecar', conf => $conf);
my $until = time + 30;
sleep 0.002 while count_lines() < $total / 4 && time < $until;
kill 'KILL', $a->pid;
$a->wait_exit(10);
my $at_kill = count_lines();
ok($at_kill > 0 && $at_kill < $total, "killed mid-shipping ($at_kill of $total lines out)");

my $b = Outrider->start(role => 'sidecar', conf => $conf);
$until = time + 60;
sleep 0.05 while count_lines() < $total && time < $until;
sleep 0.5;    # anything beyond would be a duplicate: let it show
$b->finish_ok;

my (%seen, $dups, $order, $min_len);
my $prev = 0;
open my $fh, '<', $out or die;
while (my $l = <$fh>) {
    $min_len = length $l if !$min_len || length $l < $min_len;
    my ($n) = $l =~ /"message":"line (\d+) of/ or next;
    $dups++ if $seen{$n}++;
}
close $fh;
my $missing = grep { !$seen{$_} } 1 .. $total;
is($missing, 0, 'no line lost');
my $one_batch = int($batch / $min_len) + 1;
ok(($dups // 0) <= $one_batch, "duplicates (" . ($dups // 0) . ") at most one batch ($one_batch lines)");
done_testing;

#!/usr/bin/env perl
# logs: configuration reloads (SIGHUP) while an application logs without
# pause. The old generation drains and saves its positions before the new
# one starts tailing from them: every line arrives exactly once, in order.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Handle;
use Time::HiRes qw(sleep time);
use Outrider;

my $dir = tempdir('logs-reload-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $log = "$dir/app.log";
my $out = "$dir/out.json";
open my $w, '>>', $log or die;
$w->autoflush(1);
my $a = Outrider->start(role => 'sidecar', conf => {
    modules => ['logs'], state_dir => "$dir/state",
    logs => { files => { paths => [$log], poll_interval => '20ms' }, buffer => { flush_interval => '20ms' },
              outputs => [{ type => 'file', path => $out }] },
});
my $n = 0;
for my $reload (1 .. 5) {
    for (1 .. 20) { print $w "line " . ++$n . "\n" for 1 .. 100; sleep 0.005 }
    $a->signal('HUP');
    $a->wait_ready(10, $reload + 1) or diag("no generation " . ($reload + 1));
}
print $w "line " . ++$n . "\n" for 1 .. 1000;
close $w;
sub shipped { open my $fh, '<', $out or return (); my @l; while (<$fh>) { push @l, $1 if /"message":"line (\d+)"/ } return @l }
my @got;
my $until = time + 20;
while (time < $until) { @got = shipped(); last if @got >= $n; sleep 0.05 }
sleep 0.5;
@got = shipped();
is($a->state->{generation}, 6, '5 reloads applied');
is(scalar @got, $n, "$n lines shipped across the reloads");
my ($dups, $order, %seen) = (0, 0);
for my $i (0 .. $#got) { $dups++ if $seen{ $got[$i] }++; $order++ if $i && $got[$i] != $got[$i - 1] + 1 }
is($dups, 0, 'none twice');
is($order, 0, 'in order');
$a->finish_ok;
done_testing;

#!/usr/bin/env perl
# logs: a writer appends numbered CRI lines without pause while its file is
# rotated many times, alternately by rename-and-create (the writer keeps
# writing to the renamed file for a moment, as an app does until it
# reopens) and by copytruncate. Every line must reach the output exactly
# once, in order.
#
# copytruncate loses, by its nature, lines written between the reader's
# last read and the truncation (they exist only in the copy); the writer
# therefore truncates only once the agent has shipped what was written, as
# logrotate's users must arrange. Everything else runs concurrently.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use IO::Handle;
use Time::HiRes qw(sleep time);
use Outrider;

my $dir = tempdir('logs-rotate-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $log = "$dir/app.log";
my $out = "$dir/out.json";
my $total = 30000;
my $every = 1500;

sub shipped {
    open my $fh, '<', $out or return ();
    my @n;
    while (<$fh>) { push @n, $1 if /"message":"line (\d+)"/ }
    return @n;
}
sub shipped_max { my @n = shipped(); return @n ? $n[-1] : 0 }

open my $w, '>>', $log or die;
$w->autoflush(1);
my $a = Outrider->start(role => 'sidecar', conf => {
    modules => ['logs'], state_dir => "$dir/state",
    logs => {
        files => { paths => [$log], format => 'cri', poll_interval => '20ms', rescan_interval => '50ms',
                   rotate_wait => '300ms' },
        buffer => { flush_interval => '20ms' },
        outputs => [{ type => 'file', path => $out }],
    },
});

my ($renames, $truncates, $n, $k) = (0, 0, 0, 0);
my $t0 = time;
sub line { print $w "2026-01-01T00:00:00.000000000Z stdout F line $_[0]\n" }
while ($n < $total) {
    line(++$n);
    sleep 0.001 if $n % 100 == 0;
    next unless $n % $every == 0;
    $k++;
    if ($k % 2) {
        rename $log, "$log.$k" or die "rename: $!";
        # The app writes on to the renamed file until it reopens.
        line(++$n) for 1 .. 10;
        close $w;
        open $w, '>>', $log or die;
        $w->autoflush(1);
        $renames++;
    } else {
        my $until = time + 20;
        sleep 0.01 while shipped_max() < $n && time < $until;
        copy($log, "$log.$k") or die "copy: $!";
        truncate $w, 0 or die "truncate: $!";
        $truncates++;
    }
}
close $w;
my $until = time + 30;
sleep 0.05 while shipped_max() < $n && time < $until;
my @got = shipped();
ok($renames >= 9 && $truncates >= 9, "rotated $renames times by rename, $truncates by copytruncate");
is(scalar @got, $n, "$n lines shipped");
my ($dups, $order, %seen) = (0, 0);
for my $i (0 .. $#got) {
    $dups++ if $seen{ $got[$i] }++;
    $order++ if $i && $got[$i] != $got[$i - 1] + 1;
}
is($dups, 0, 'no line twice');
is($order, 0, 'in order');
is(scalar(keys %seen), $n, 'every line present');

my ($code, $body) = $a->http('GET', 'admin', '/metrics');
my ($read) = $body =~ /^outrider_logs_lines_read_total\{source="files"[^}]*\} (\d+)/m;
is($read, $n, 'lines_read metric counts every line once');
$a->finish_ok;
done_testing;

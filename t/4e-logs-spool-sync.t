#!/usr/bin/env perl
# logs: buffer.spool.sync. With "batch" (the default), the spool frames that
# only the spool keeps (bus records; here the test module echo's stream) are
# fdatasync'ed as they are written, once per chunk and not per record, and
# the spool directory is fsynced for each new segment; with "none" there is
# no fdatasync at all. Observed with strace attached to the running agent.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use Outrider;

plan skip_all => 'needs strace' unless -x '/usr/bin/strace';
my $N = 200;

sub slurp { my ($f) = @_; open my $fh, '<', $f or return ''; local $/; return <$fh> }

# Runs an agent with the given sync mode, sends N bus records while strace
# watches; returns the strace output.
sub run {
    my ($sync) = @_;
    my $dir = tempdir("logs-spool-sync-$sync-XXXXXX", TMPDIR => 1, CLEANUP => 1);
    mkdir "$dir/mods";
    mkdir "$dir/state";
    symlink(Outrider::modules_dir() . '/logs.so', "$dir/mods/logs.so") or die;
    symlink(Outrider::test_modules_dir() . '/echo.so', "$dir/mods/echo.so") or die;
    my $out = "$dir/out.json";
    my $a = Outrider->start(role => 'sidecar', modules_dir => "$dir/mods", conf => {
        modules => ['echo', 'logs'], state_dir => "$dir/state", workers => 1,
        echo => { listen => '127.0.0.1:0' },
        logs => { bus_streams => ['echo.lines'],
                  buffer => { flush_interval => '100ms', spool => { enabled => JSON::PP::true, sync => $sync } },
                  outputs => [{ type => 'file', path => $out }] },
    });
    my $st = fork // die;
    if (!$st) {
        open STDERR, '>', "$dir/strace.err" or die;
        exec '/usr/bin/strace', '-f', '-y', '-e', 'trace=fdatasync,fsync', '-o', "$dir/strace.out", '-p', $a->pid
            or exit 127;
    }
    # strace -f -p attaches to every thread, then says so ("attached with N threads").
    ok(Outrider::poll(20, sub { slurp("$dir/strace.err") =~ /attached/ }), "$sync: strace attached")
        or diag(slurp("$dir/strace.err"));
    my $s = IO::Socket::INET->new(PeerAddr => $a->addr('echo.listen'), Timeout => 5) or die "connect: $!";
    for my $i (1 .. $N) { print $s "record $i\n"; my $echo = <$s> }
    close $s;
    ok(Outrider::poll(20, sub { my @l = split /\n/, slurp($out); @l >= $N }), "$sync: $N bus records delivered");
    # The chunks were synced when sealed, before the file output wrote them.
    kill 'INT', $st;
    waitpid $st, 0;
    $a->finish_ok;
    return slurp("$dir/strace.out");
}

my $t = run('batch');
my @data = $t =~ /fdatasync\(\d+<[^>]*\/spool-0\/spool-\d+\.seg>\) = 0/g;
my @chunks = $t =~ /fdatasync\(/g;
cmp_ok(scalar @data, '>=', 1, 'batch: spool segment fdatasync\'ed (' . scalar(@data) . ' calls)');
cmp_ok(scalar @chunks, '<', $N / 4, "batch: once per chunk, far fewer calls than the $N records");
like($t, qr/fsync\(\d+<[^>]*\/spool-0>\) = 0/, 'batch: the spool directory fsynced for the new segment');

$t = run('none');
unlike($t, qr/fdatasync\(/, 'none: no fdatasync');
unlike($t, qr/fsync\(\d+<[^>]*\/spool-0>\)/, 'none: no directory fsync');
done_testing;

#!/usr/bin/env perl
# bench/patterns in quick mode with N=2: the three layouts run, the report and its plot are
# written with every table, the traffic really flowed (every request answered by the pod it
# was meant for, every log line in its file), the agents started and stopped cleanly, and
# nothing the run created (namespaces, links, processes) is left. Then a run interrupted
# with SIGINT in the middle must clean up just the same.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use File::Spec;
use Outrider;

plan skip_all => 'needs root for network namespaces' if $> != 0;
plan skip_all => '`ip netns` is unavailable' if system('ip netns list >/dev/null 2>&1') != 0;
plan skip_all => 'gnuplot is not installed' if system('command -v gnuplot >/dev/null 2>&1') != 0;
plan skip_all => 'build/outrider is not built' unless -x Outrider::bin();

my $run = Outrider::root() . '/bench/patterns/run';
my $out = tempdir('outrider-patterns-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# Starts the bench in the background; returns its PID (which names everything it creates).
sub start_bench {
    my (@args) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>>', "$out/bench.log" or die;
        open STDERR, '>>', "$out/bench.log" or die;
        exec $run, '--build', Outrider::build_dir(), '--out-dir', $out, @args or die "exec: $!";
    }
    return $pid;
}

sub wait_exit {
    my ($pid, $timeout) = @_;
    my $until = time + $timeout;
    while (time < $until) {
        return $? >> 8 if waitpid($pid, WNOHANG) == $pid;
        sleep 0.1;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    return 'timeout';
}

# Namespaces, links and processes carrying the run's prefix.
sub leftovers {
    my ($pid) = @_;
    my $prefix = "otrp$pid";
    my @left = grep { /^\Q$prefix\E/ } map { (split ' ')[0] } `ip netns list`;
    push @left, grep { /^\Q$prefix\E/ } map { /^\d+:\s*([^:@]+)/ ? $1 : () } `ip -o link show`;
    for my $cmdline (glob '/proc/[0-9]*/cmdline') {
        open my $fh, '<', $cmdline or next;
        local $/;
        my $c = <$fh> // '';
        push @left, "process: $c" if $c =~ /\Q$prefix\E-/;
    }
    return @left;
}

sub bench_log { open my $fh, '<', "$out/bench.log" or return ''; local $/; return scalar <$fh> }

# --- a complete quick run -------------------------------------------------------------
my $pid = start_bench('--quick', '--n', '2', '--duration', '2', '--name', 'smoke');
my $code = wait_exit($pid, 50);
is($code, 0, 'quick run with N=2 exits 0') or diag(bench_log());
my @left = leftovers($pid);
is_deeply(\@left, [], 'no namespace, link or process of the run is left') or diag(join "\n", @left);

my $md = do { local $/; open my $fh, '<', "$out/smoke.md" or die "no report: $!\n" . bench_log(); <$fh> };
for my $h ('Resources', 'Latency', 'Grouping', 'Logs', 'Lifecycle', 'Checks') {
    like($md, qr/^## \Q$h\E\n(?:.*\n)*?\| layout \| N \|/m, "report has the $h table");
}
for my $l ('(a) no agent', '(b) sidecar per pod', '(c) node agent') {
    like($md, qr/^\| \Q$l\E \| 2 \|/m, "report has rows for $l at N=2");
}
my %mods;   # the modules the run loaded, from its JSON below

open my $png, '<:raw', "$out/smoke.png" or die "no plot: $!";
read $png, my $magic, 8;
is($magic, "\x89PNG\r\n\x1a\n", 'the plot is a PNG');
ok(-s "$out/smoke.png" > 10_000, 'and not an empty one');

my $res = decode_json(do { local $/; open my $fh, '<', "$out/smoke.json" or die; <$fh> });
%mods = map { ($_ => 1) } @{ $res->{meta}{modules} };
if (!$mods{proxy} || !$mods{logs}) {
    like($md, qr/not measured yet/, 'what is not measured (no proxy or logs module) says so');
}
my %by = map { ($_->{layout} => $_) } grep { !$_->{lifecycle} } @{ $res->{results} };
my %up = map { ($_->{layout} => $_) } grep { $_->{lifecycle} } @{ $res->{results} };
is_deeply([sort keys %by], ['a', 'b', 'c'], 'results for the three layouts');
for my $l (sort keys %by) {
    my $r = $by{$l};
    my $q = $r->{requests};
    ok($q->{sent} >= 0.8 * 2 * 20 * 2, "$l: the clients sent at their rate ($q->{sent})");
    is($q->{ok}, $q->{sent}, "$l: every request answered 200 by the pod it was meant for");
    is($q->{measured}, $q->{sent}, "$l: every answer's latency recorded");
    ok($q->{p50_ms} > 0 && $q->{p50_ms} <= $q->{p99_ms}, "$l: p50 $q->{p50_ms} <= p99 $q->{p99_ms}");
    ok($r->{logs}{files}{ok}, "$l: every CRI log line is in its file, numbered 1..n")
        or diag(join "\n", @{ $r->{logs}{files}{problems} });
    ok($r->{logs}{written} >= 0.8 * 2 * 20 * 2, "$l: log lines written at their rate ($r->{logs}{written})");
    if ($l eq 'a' || !$mods{metrics}) {
        is($r->{statsd}{sink}{lines} + 0, $r->{statsd}{sent} + 0, "$l: every statsd line reached the runner's sink");
    } else {
        is($r->{scrape}{grouping}{statsd_lines} // -1, $r->{statsd}{sent}, "$l: the agents counted every statsd line");
    }
    if ($l ne 'a' && $mods{logs}) {
        my $s = $r->{logs}{sink};
        is($s->{lost}, 0, "$l: no log line lost between the files and the sink");
        is($s->{duplicated}, 0, "$l: none duplicated (no restart in a steady run)");
        is($s->{unparsed}, 0, "$l: every record at the sink carries its line's seq and pod");
    }
}
if ($mods{proxy}) {
    is($by{b}{app_mode}, 'sidecar', 'b: the apps call through their sidecar');
    is($by{c}{app_mode}, 'node', 'c: the apps call through the node agent (absolute-form)');
    is($by{b}{scrape}{grouping}{proxy_requests}, 2 * $by{b}{requests}{sent},
       'b: every request crossed two sidecars (outbound and inbound)');
    is($by{c}{scrape}{grouping}{proxy_requests}, $by{c}{requests}{sent}, 'c: every request crossed the node agent once');
}
is($by{a}{agents}{processes}, 0, 'a: no agent');
is($by{b}{agents}{processes}, 2, 'b: one sidecar per pod');
is($by{c}{agents}{processes}, 1, 'c: one node agent');
is($by{b}{containers}, 4, 'b: the seed formula, N x (app + agent)');
is($by{c}{containers}, 3, 'c: the seed formula, N apps + 1 agent');
for my $l ('b', 'c') {
    my $ag = $by{$l}{agents};
    is($ag->{alive_during_load}, $ag->{processes}, "$l: every agent alive under load");
    is_deeply([grep { $_ != 0 } @{ $ag->{exit_codes} }], [], "$l: every agent exited 0 on SIGTERM");
    ok($ag->{rss_kib} > 0 && $ag->{pss_kib} > 0 && $ag->{pss_kib} <= $ag->{rss_kib},
       "$l: agent RSS $ag->{rss_kib} KiB and PSS $ag->{pss_kib} KiB sampled");
    is($ag->{error_lines}, 0, "$l: no error in the agents' logs");
    is($by{$l}{scrape}{scrape_targets}, $ag->{processes}, "$l: each agent's /metrics scraped");
}

# the hot-upgrade-under-load runs
is_deeply([sort keys %up], ['b', 'c'], 'an upgrade run for b and c');
for my $l ('b', 'c') {
    my @u = @{ $up{$l}{upgrades} };
    is(scalar @u, $l eq 'b' ? 2 : 1, "$l: every agent upgraded in turn");
    is_deeply([grep { $_->{old_exit} != 0 } @u], [], "$l: every old process drained and exited 0");
    ok(!grep({ !($_->{serving_ms} > 0 && $_->{serving_ms} <= $_->{old_exited_ms}) } @u),
       "$l: the new process served before the old one was gone");
    is_deeply([grep { $_ != 0 } @{ $up{$l}{agents}{exit_codes} }], [], "$l: the new processes exited 0 on SIGTERM");
    is($up{$l}{agents}{alive_during_load}, scalar @u, "$l: the new processes run");
    is($up{$l}{requests}{ok}, $up{$l}{requests}{sent}, "$l: no request failed across the upgrade");
    is($up{$l}{logs}{sink}{lost}, 0, "$l: no log line lost across the upgrade") if $mods{logs};
}
like($md, qr/^\| \(b\) sidecar per pod \| 2 \| 2 \| \d+ \/ \d+ \|/m, 'the lifecycle table has the upgrade figures');

# --- interrupted in the middle ----------------------------------------------------------
$pid = start_bench('--quick', '--n', '2', '--duration', '5', '--layouts', 'b', '--name', 'interrupted');
# Interrupted once its agents and apps run: both apps ready (their ready
# files, in the run's temporary directory), the load starting.
my $ready = sub { my @r = glob(File::Spec->tmpdir . "/otrp$pid-*/b-n2/results/*.json.ready"); return scalar @r };
ok(Outrider::poll(60, sub { $ready->() >= 2 }), 'the run to interrupt is under way (both apps ready)') or diag(bench_log());
kill 'INT', $pid;
$code = wait_exit($pid, 30);
is($code, 1, 'an interrupted run exits 1') or diag(bench_log());
like(bench_log(), qr/aborted: stopped by SIGINT/, 'and says why');
@left = leftovers($pid);
is_deeply(\@left, [], 'and leaves nothing behind') or diag(join "\n", @left);
done_testing;

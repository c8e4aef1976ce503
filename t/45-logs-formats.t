#!/usr/bin/env perl
# logs, end to end through the agent: CRI partial lines reassembled,
# docker json-file, multiline stack traces joined, malformed lines passed
# raw and counted, a huge line cut without loss, and the shipped Lua
# filters (scripts/logs_redact.lua, scripts/logs_drop_health.lua) with
# their effect counted.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use Outrider;

my $dir = tempdir('logs-formats-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub run_agent {
    my ($name, $files, $extra, $want) = @_;
    my $out = "$dir/$name.json";
    my $a = Outrider->start(role => 'sidecar', conf => {
        modules => ['logs'],
        logs => { files => { paths => ["$dir/$name.log"], %$files }, %$extra,
                  buffer => { flush_interval => '20ms' }, outputs => [{ type => 'file', path => $out }] },
    });
    my $until = time + 15;
    my @recs;
    while (time < $until) {
        @recs = Outrider::json_lines($out);
        last if @recs >= $want;
        sleep 0.05;
    }
    my ($code, $metrics) = $a->http('GET', 'admin', '/metrics');
    $a->finish_ok;
    return (\@recs, $metrics);
}
sub write_file { my ($n, $t) = @_; open my $f, '>', "$dir/$n.log" or die; print $f $t; close $f }
sub metric { my ($m, $re) = @_; my $s = 0; $s += $_ for $m =~ /^$re(?:\{[^}]*\})? (\d+)/mg; return $s }

# CRI: partials, malformed, a huge line.
my $huge = 'h' x 300_000;
write_file('cri', join '', "2026-01-01T00:00:00.5Z stdout P first \n", "2026-01-01T00:00:00.6Z stderr F err line\n",
    "2026-01-01T00:00:00.7Z stdout P second \n", "2026-01-01T00:00:00.8Z stdout F third\n", "not cri at all\n",
    "2026-01-01T00:00:01Z stdout F $huge\n", "2026-01-01T00:00:02Z stdout F last\n");
my ($r, $m) = run_agent('cri', { format => 'cri', max_line_size => '64KiB', max_record_size => '128KiB' }, {}, 8);
is($r->[0]{message}, 'err line', 'stderr line passes while stdout is partial');
is($r->[1]{message}, 'first second third', 'P P F reassembled');
is($r->[1]{time}, '2026-01-01T00:00:00.500000000Z', 'with the first part\'s time');
ok($r->[2]{malformed} && $r->[2]{message} eq 'not cri at all', 'malformed passed raw, flagged');
my $len = 0;
$len += length($_->{message}) for @$r[3 .. $#$r - 1];
my @pieces = @$r[3 .. $#$r - 1];
is($len, 300_000, "huge line delivered whole, in " . @pieces . " records of at most 128 KiB");
is((grep { $_->{split} && ($_->{stream} // '') eq 'stdout' && $_->{time} eq '2026-01-01T00:00:01.000000000Z' } @pieces),
   scalar @pieces, 'each piece flagged split, with the line\'s stream and time');
is($r->[-1]{message}, 'last', 'next line after the huge one intact');
is(metric($m, 'outrider_logs_malformed_lines_total'), 1, 'the malformed line counted (the cut line is not)');

# docker json-file with a partial.
write_file('docker', join '', '{"log":"hello \u00e9\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}' . "\n",
    '{"log":"part-","stream":"stderr","time":"2026-01-01T00:00:01Z"}' . "\n",
    '{"log":"end\n","stream":"stderr","time":"2026-01-01T00:00:02Z"}' . "\n");
($r) = run_agent('docker', { format => 'docker' }, {}, 2);
is($r->[0]{message}, "hello \x{e9}", 'docker: decoded');
is($r->[1]{message}, 'part-end', 'docker: partial reassembled');
is($r->[1]{stream}, 'stderr', 'docker: stream');

# multiline.
write_file('ml', "2026-01-01 ERROR boom\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:10)\n2026-01-01 INFO ok\n");
($r) = run_agent('ml', { format => 'raw', multiline_start => '^[0-9]{4}-', multiline_timeout => '100ms' }, {}, 2);
is($r->[0]{message}, "2026-01-01 ERROR boom\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:10)",
   'stack trace joined');
is($r->[1]{message}, '2026-01-01 INFO ok', 'last group emitted after the timeout');

# Lua filters.
write_file('redact', "login password=hunter2\nAuthorization: Bearer abc.def\nplain\n");
($r, $m) = run_agent('redact', { format => 'raw' }, { filter => { script => 'logs_redact.lua' } }, 3);
is($r->[0]{message}, 'login password=[REDACTED]', 'redact: password');
is($r->[1]{message}, 'Authorization: Bearer [REDACTED]', 'redact: bearer');
is($r->[2]{message}, 'plain', 'redact: untouched');
write_file('health', "10.0.0.1 \"GET /healthz HTTP/1.1\" 200 kube-probe/1.29\nERROR: real problem\nGET /readyz 200\nINFO: ok\n");
($r, $m) = run_agent('health', { format => 'raw' }, { filter => { script => 'logs_drop_health.lua' } }, 2);
is(scalar @$r, 2, 'health checks dropped');
is($r->[0]{level}, 'error', 'kept lines tagged with their level');
is(metric($m, 'outrider_logs_dropped_records_total'), 2, 'drops counted') or diag($m);

# An output that cannot open: the agent says which and where, stops
# cleanly (every handle closed), exits non-zero.
my $bad = Outrider->start(role => 'sidecar', no_wait => 1, conf => {
    modules => ['logs'], logs => { outputs => [{ type => 'file', path => "$dir/missing/dir/out.json" }] } });
my $code = $bad->wait_exit(20);
ok(defined $code && $code != 0, 'start failure: non-zero exit (' . ($code // 'none') . ')');
like($bad->log, qr{output file0: cannot open \Q$dir\E/missing/dir/out\.json: No such file}, 'error names the output and path');
ok(!defined Outrider::sanitizer_report($bad->log), 'no sanitizer report');
done_testing;

#!/usr/bin/env perl
# logs: records published on the bus by another module are a source like
# any other (the proxy's "access" stream in production; here the test
# module echo's "echo.lines", one record per line it echoes), shipped with
# their fields, the node and the role.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Outrider;

my $dir = tempdir('logs-bus-XXXXXX', TMPDIR => 1, CLEANUP => 1);
mkdir "$dir/mods";
symlink(Outrider::modules_dir() . '/logs.so', "$dir/mods/logs.so") or die;
symlink(Outrider::test_modules_dir() . '/echo.so', "$dir/mods/echo.so") or die;
my $out = "$dir/out.json";
my $a = Outrider->start(role => 'sidecar', modules_dir => "$dir/mods", env => { NODE_NAME => 'n9' }, conf => {
    modules => ['echo', 'logs'],
    echo => { listen => '127.0.0.1:0' },
    logs => { bus_streams => ['echo.lines'], buffer => { flush_interval => '20ms' },
              outputs => [{ type => 'file', path => $out }] },
});
my $s = IO::Socket::INET->new(PeerAddr => $a->addr('echo.listen'), Timeout => 5) or die "connect: $!";
for my $i (1 .. 100) { print $s "hello \"$i\"\n"; my $echo = <$s> }
close $s;
my @r;
my $until = time + 10;
while (time < $until) {
    @r = Outrider::json_lines($out);
    last if @r >= 100;
    sleep 0.05;
}
is(scalar @r, 100, '100 bus records shipped');
is($r[0]{source}, 'echo.lines', 'source is the stream');
is($r[0]{line}, 'hello "1"', 'the record\'s field, escaped and decoded back');
is($r[99]{line}, 'hello "100"', 'in order');
is($r[0]{node}, 'n9', 'node');
is($r[0]{role}, 'sidecar', 'role');
like($r[0]{time}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/, 'time in RFC 3339 with ns');
my ($code, $body) = $a->http('GET', 'admin', '/metrics');
my $n = 0;
$n += $_ for $body =~ /^outrider_logs_lines_read_total\{[^}]*source="bus"[^}]*\} (\d+)/mg;
is($n, 100, 'counted as source "bus"');
$a->finish_ok;

# The Lua filter sees bus records too: fields, source, node and role.
open my $lua, '>', "$dir/bus.lua" or die;
print $lua <<'LUA';
function filter(r)
  if string.find(r.line, "secret", 1, true) then return nil end
  r.seen_by = "lua:" .. r.source .. ":" .. r.role
  return r
end
LUA
close $lua;
$out = "$dir/out2.json";
$a = Outrider->start(role => 'sidecar', modules_dir => "$dir/mods", conf => {
    modules => ['echo', 'logs'],
    echo => { listen => '127.0.0.1:0' },
    logs => { bus_streams => ['echo.lines'], filter => { script => "$dir/bus.lua" },
              buffer => { flush_interval => '20ms' }, outputs => [{ type => 'file', path => $out }] },
});
$s = IO::Socket::INET->new(PeerAddr => $a->addr('echo.listen'), Timeout => 5) or die "connect: $!";
for my $l ('keep 1', 'a secret', 'keep 2') { print $s "$l\n"; my $echo = <$s> }
close $s;
@r = ();
$until = time + 10;
while (time < $until) {
    @r = Outrider::json_lines($out);
    last if @r >= 2;
    sleep 0.05;
}
sleep 0.2;
@r = Outrider::json_lines($out);
is_deeply([map { $_->{line} } @r], ['keep 1', 'keep 2'], 'filter dropped the secret line');
is($r[0]{seen_by}, 'lua:echo.lines:sidecar', 'filter saw source and role, and added a field');
$a->finish_ok;
done_testing;

#!/usr/bin/env perl
# The Lua host through a real module: dangerous libraries are absent, a
# runaway loop, a pcall-wrapped loop, a pathological pattern and a memory
# bomb are cut off and answered by the hook's fallback, counted, and the
# agent keeps serving.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Outrider;

my $a = Outrider->start(
    conf => { modules => ['echo'], scripts_dir => Outrider::root() . '/t/scripts',
              lua => { memory_limit => '8MiB', instruction_limit => 200000 },
              echo => { script => 'runaway.lua' } },
    modules_dir => Outrider::test_modules_dir());
my ($host, $port) = $a->addr('echo.listen') =~ /^(.*):(\d+)$/;
my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 10) or die $!;
sub ask { print $s "$_[0]\n"; my $r = <$s>; chomp $r if defined $r; return $r }

is(ask('env'), 'io=nil os.execute=nil debug=nil require=nil dofile=nil', 'io, os.execute, debug, require, dofile are absent');
is(ask('loop'), 'loop', 'an infinite loop is cut off: fallback (the line itself)');
is(ask('pcall-loop'), 'pcall-loop', 'a loop that pcalls the budget error away is cut off too');
is(ask('pattern'), 'pattern', 'a pathological pattern (matched in C) is cut off by the budget too');
is(ask('bomb'), 'bomb', 'a memory bomb is cut off');
is(ask('error'), 'error', 'a runtime error falls back');
is(ask('fine'), 'ok:fine', 'the VM keeps working afterwards');

my ($code, $body) = $a->http('GET', 'admin', '/metrics');
like($body, qr/^outrider_lua_errors_total\{module="echo",hook="transform",reason="budget"\} 3$/m, 'budget cut-offs counted');
like($body, qr/^outrider_lua_errors_total\{module="echo",hook="transform",reason="memory"\} 1$/m, 'memory cut-off counted');
like($body, qr/^outrider_lua_errors_total\{module="echo",hook="transform",reason="error"\} 1$/m, 'errors counted');
close $s;
$a->finish_ok;

# A script that does not parse is a configuration error found by -t.
my ($dir, $path) = Outrider::write_conf({ modules => ['echo'], scripts_dir => Outrider::root() . '/t/scripts',
                                          echo => { script => 'broken.lua' } });
my ($rc, $out) = Outrider::run_cmd(Outrider::bin(), '-t', '-c', $path, '--modules-dir', Outrider::test_modules_dir());
is($rc, 1, 'a script syntax error fails -t');
like($out, qr/echo\.script: .*broken\.lua:\d+:/, 'naming the config path, the script and the line');
($dir, $path) = Outrider::write_conf({ modules => ['echo'], scripts_dir => Outrider::root() . '/t/scripts',
                                       echo => { script => 'nofunc.lua' } });
($rc, $out) = Outrider::run_cmd(Outrider::bin(), '-t', '-c', $path, '--modules-dir', Outrider::test_modules_dir());
like($out, qr/echo\.script: nofunc\.lua does not define a function "transform"/, 'a missing hook function is reported');
done_testing;

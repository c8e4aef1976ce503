#!/usr/bin/env perl
# The command line: -V, --describe, -t, roles and exit codes.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Outrider;

my $bin = Outrider::bin();
my $tmods = Outrider::test_modules_dir();
my ($dir, $conf) = Outrider::write_conf({ admin => { address => '127.0.0.1:0' } });

my ($code, $out) = Outrider::run_cmd($bin, '-V', '--modules-dir', $tmods);
is($code, 0, '-V exits 0');
like($out, qr/^outrider \d+\.\d+\.\d+$/m, '-V prints the version');
like($out, qr/^module ABI 1\.0 /m, '-V prints the module ABI');
like($out, qr/^\s+echo\s+1\.0\.0\s+Test module/m, '-V lists a module with its version');
like($out, qr/badabi\.so\s+ERROR\s+was built for module ABI 2\.0, this agent has 1\.0: rebuild the module/,
     '-V flags a module of another ABI');

($code, $out) = Outrider::run_cmd($bin, '--describe', '--modules-dir', $tmods);
is($code, 0, '--describe exits 0');
like($out, qr/\badmin\.address\b.*127\.0\.0\.1:9901/, 'core reference lists admin.address with its default');
like($out, qr/## echo 1\.0\.0/, 'module sections follow');
like($out, qr/\becho\.max_line\b/, 'module keys have their full path');

($code, $out) = Outrider::run_cmd($bin, '--describe', 'echo', '--modules-dir', $tmods);
is($code, 0, '--describe MODULE exits 0');
unlike($out, qr/admin\.address/, '--describe MODULE prints only that module');
like($out, qr/echo\.mode.*plain.*upper/s, 'role-specific defaults are shown');

($code, $out) = Outrider::run_cmd($bin, '--describe', 'nope', '--modules-dir', $tmods);
is($code, 2, '--describe of an unknown module exits 2');
like($out, qr/no module "nope"/, 'and says so');

($code, $out) = Outrider::run_cmd($bin, '-t', '-c', $conf, '--role', 'captain');
is($code, 2, 'unknown --role exits 2');
like($out, qr/--role: unknown role "captain": expected "sidecar" or "node"/, 'with a clear message');

{
    local $ENV{OUTRIDER_ROLE} = 'boat';
    ($code, $out) = Outrider::run_cmd($bin, '-t', '-c', $conf);
    is($code, 2, 'unknown OUTRIDER_ROLE exits 2');
    like($out, qr/OUTRIDER_ROLE: unknown role "boat"/, 'naming the variable');
    ($code, $out) = Outrider::run_cmd($bin, '-t', '-c', $conf, '--role', 'node');
    is($code, 0, '--role beats OUTRIDER_ROLE');
    like($out, qr/configuration ok \(role node\)/, 'and the role is node');
}
{
    local $ENV{OUTRIDER_ROLE} = 'node';
    my ($d2, $c2) = Outrider::write_conf({ role => 'sidecar' });
    ($code, $out) = Outrider::run_cmd($bin, '-t', '-c', $c2);
    like($out, qr/\(role node\)/, 'OUTRIDER_ROLE beats the config role');
    delete local $ENV{OUTRIDER_ROLE};
    ($code, $out) = Outrider::run_cmd($bin, '-t', '-c', $c2);
    like($out, qr/\(role sidecar\)/, 'the config role applies last');
}

($code, $out) = Outrider::run_cmd($bin, '-t', '-c', $conf);
is($code, 0, '-t on a valid config exits 0');
like($out, qr/configuration ok/, 'and prints "configuration ok"');

($code, $out) = Outrider::run_cmd($bin, '--bogus');
is($code, 2, 'unknown option exits 2');
($code, $out) = Outrider::run_cmd($bin, '-t', '-c', $conf, 'extra');
is($code, 2, 'stray argument exits 2');
($code, $out) = Outrider::run_cmd($bin, '-t', '-c', $conf, '--log-level', 'loud');
is($code, 2, 'bad --log-level exits 2');
like($out, qr/expected error, warn, info or debug/, 'naming the choices');
($code, $out) = Outrider::run_cmd($bin, '-t', '-c', "$dir/missing.conf");
is($code, 1, 'a missing config file exits 1');
like($out, qr/missing\.conf/, 'naming the file');

for my $role (qw(sidecar node)) {
    ($code, $out) = Outrider::run_cmd($bin, '-t', '--role', $role, '-c', Outrider::root() . '/agent.conf.example');
    is($code, 0, "agent.conf.example passes -t as $role") or diag($out);
}
done_testing;

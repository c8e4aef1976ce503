#!/usr/bin/env perl
# Configuration errors: file:line:column, JSON paths, all errors at once,
# did-you-mean, environment expansion and role overrides.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Outrider;

my $bin = Outrider::bin();
my $tmods = Outrider::test_modules_dir();

sub check {
    my ($text, %o) = @_;
    my ($dir, $path) = Outrider::write_conf($text);
    local %ENV = (%ENV, %{ $o{env} || {} });
    my ($code, $out) = Outrider::run_cmd($bin, '-t', '-c', $path, '--modules-dir', $tmods,
                                         $o{role} ? ('--role', $o{role}) : ());
    return ($code, $out, $path);
}

my ($code, $out, $path) = check(qq({\n  "workers": 1,\n  "log": {"level": "info",}\n}\n));
is($code, 1, 'syntax error exits 1');
like($out, qr/\Q$path\E:3:\d+: /, 'syntax error names file:line:column');

($code, $out) = check('{"workers": 1, "workers": 2}');
is($code, 1, 'duplicate key is an error');
like($out, qr/workers/, 'naming the key');

($code, $out, $path) = check('{"workers": "many", "admin": {"adress": "127.0.0.1:1"}, "log": {"level": "loud"},
  "drain": {"timeout": 3}, "lua": {"memory_limit": "lots"}}');
is($code, 1, 'semantic errors exit 1');
like($out, qr/\Q$path\E: workers: expected an integer 0\.\.256, got "many"/, 'wrong type names path and expectation');
like($out, qr/admin\.adress: unknown key \(did you mean "address"\?\)/, 'unknown key with a suggestion');
like($out, qr/log\.level: expected one of "error", "warn", "info", "debug", got "loud"/, 'enum choices');
like($out, qr/lua\.memory_limit: expected a size/, 'size');
my @lines = grep { /\S/ } split /\n/, $out;
cmp_ok(scalar @lines, '>=', 4, 'every error is reported, not just the first');

($code, $out) = check('{"modules": ["echo"], "echo": {"max_line": 10, "mode": "loud", "greeting": "a\nb", "listen": "127.0.0.1:80a"}}');
is($code, 1, 'module section errors exit 1');
like($out, qr/echo\.max_line: expected an integer 16\.\.65536, got 10/, 'module bounds');
like($out, qr/echo\.mode: expected one of "plain", "upper"/, 'module enum');
like($out, qr/echo\.listen: /, 'module address');

($code, $out) = check('{"modules": ["echo"], "echo": {"greeting": "a\nb"}}');
like($out, qr/echo\.greeting: must not contain a newline/, 'module check() errors read like core ones');

($code, $out) = check('{"modules": ["echo"], "ecoh": {}}');
like($out, qr/ecoh: unknown key \(did you mean "echo"\?\)/, 'a misspelt module section is caught');

($code, $out) = check('{"admin": {"address": "${OTR_T_HOST}:${OTR_T_PORT:-9901}"}}', env => { OTR_T_HOST => '127.0.0.1' });
is($code, 0, '${VAR} and ${VAR:-default} expand') or diag($out);
($code, $out) = check('{"admin": {"address": "${OTR_T_UNSET_VAR}:1"}}');
is($code, 1, 'an unset variable without default is an error');
like($out, qr/admin\.address: .*OTR_T_UNSET_VAR/, 'naming the path and the variable');
($code, $out) = check('{"workers": "${OTR_T_W}"}', env => { OTR_T_W => '3' });
is($code, 0, 'numbers may come from the environment') or diag($out);

($code, $out) = check('{"roles": {"nodes": {}}}');
is($code, 1, 'unknown role under roles is an error');
like($out, qr/roles\.nodes: .*did you mean "node"/, 'with a suggestion');
($code, $out) = check('{"workers": 1, "roles": {"node": {"workers": "x"}}}', role => 'node');
like($out, qr/workers: expected an integer/, 'role overrides are validated for the active role');
($code, $out) = check('{"workers": 1, "roles": {"node": {"workers": "x"}}}', role => 'sidecar');
is($code, 0, 'another role\'s overrides do not apply') or diag($out);

# Role overrides and role defaults seen at run time: the echo module
# upper-cases in node role by default, and the override changes the greeting.
my $conf = { modules => ['echo'], echo => { greeting => 'base' },
             roles => { node => { echo => { greeting => 'node' } } } };
for my $case (['sidecar', 'base', 'hello'], ['node', 'node', 'HELLO']) {
    my ($role, $greet, $echo) = @$case;
    my $a = Outrider->start(conf => $conf, role => $role, modules_dir => $tmods);
    my ($host, $port) = $a->addr('echo.listen') =~ /^(.*):(\d+)$/;
    require IO::Socket::INET;
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port) or die $!;
    my $g = <$s>;
    print $s "hello\n";
    my $r = <$s>;
    close $s;
    is($g, "$greet\n", "$role: greeting from the merged config");
    is($r, "$echo\n", "$role: role default of the module applies");
    $a->finish_ok;
}
done_testing;

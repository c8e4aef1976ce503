#!/usr/bin/env perl
# A module using the host table end to end: listener, bus, metrics, Lua,
# status. The echo test module (t/modules/echo.c) exercises each.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Outrider;

my $a = Outrider->start(
    conf => { modules => ['echo'], scripts_dir => Outrider::root() . '/t/scripts',
              echo => { script => 'transform.lua' } },
    modules_dir => Outrider::test_modules_dir());
my ($host, $port) = $a->addr('echo.listen') =~ /^(.*):(\d+)$/;
ok($port > 0, 'the module\'s listener is announced with its bound port');

my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port) or die $!;
for my $i (1 .. 5) {
    print $s "line $i\n";
    my $r = <$s>;
    is($r, "<line $i>\n", "Lua transform applied to line $i");
}
close $s;

my ($code, $body) = $a->http('GET', 'admin', '/metrics');
is($code, 200, '/metrics answers');
like($body, qr/^outrider_echo_lines_total\{worker="0"\} 5$/m, 'module counter in the registry');
like($body, qr/^outrider_echo_bus_records_total\{worker="0"\} 5$/m, 'bus delivered every published record');
like($body, qr/^outrider_module_info\{module="echo",version="1\.0\.0"\} 1$/m, 'module info metric');

($code, $body) = $a->http('GET', 'admin', '/status');
my $st = JSON::PP::decode_json($body);
is($st->{modules}[0]{name}, 'echo', '/status lists the module');
is($st->{modules}[0]{status}{listen}, $a->addr('echo.listen'), 'with its own status fields');
$a->finish_ok;
done_testing;

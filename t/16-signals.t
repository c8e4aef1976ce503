#!/usr/bin/env perl
# SIGTERM and SIGINT: /ready turns 503 first, the agent keeps serving for
# the drain delay, then drains and exits 0.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use Outrider;

my $a = Outrider->start(conf => { modules => ['echo'], drain => { delay => '1500ms', timeout => '2s' } },
                        modules_dir => Outrider::test_modules_dir());
my ($code) = $a->http('GET', 'admin', '/ready');
is($code, 200, 'ready before the signal');
my $t0 = time;
$a->signal('TERM');
# Polled: the signal is handled on the agent's loop, not at once.
Outrider::poll(10, sub { ($code) = $a->http('GET', 'admin', '/ready'); $code != 200 });
is($code, 503, '/ready is 503 right after SIGTERM');
($code) = $a->http('GET', 'admin', '/healthz');
is($code, 200, '/healthz still answers during the drain delay');
my $exit = $a->wait_exit(15);
is($exit, 0, 'exit 0 after draining');
cmp_ok(time - $t0, '>=', 1.4, 'it kept serving for the drain delay');
ok(!defined Outrider::sanitizer_report($a->log), 'no sanitizer report');
like($a->log, qr/stopped/, 'logs that it stopped');

$a = Outrider->start(conf => { modules => ['echo'] }, modules_dir => Outrider::test_modules_dir());
$a->signal('INT');
is($a->wait_exit(15), 0, 'SIGINT: exit 0');
done_testing;

#!/usr/bin/env perl
# Reload by SIGHUP and POST /reload: a good config swaps generations with
# no refused connection; a bad one keeps the old generation serving.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Outrider;

my $mods = Outrider::test_modules_dir();
my $a = Outrider->start(conf => { modules => ['echo'], echo => { greeting => 'gen1', listen => '127.0.0.1:0' } },
                        modules_dir => $mods);
my $echo = $a->addr('echo.listen');
my ($host, $port) = $echo =~ /^(.*):(\d+)$/;
sub greeting {
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 5) or return "refused: $!";
    my $g = <$s>;
    close $s;
    chomp $g if defined $g;
    return $g // 'closed';
}
is(greeting(), 'gen1', 'generation 1 serves');

# Good reload by SIGHUP: keep the same listener address (port 0 resolved).
$a->rewrite_conf({ modules => ['echo'], echo => { greeting => 'gen2', listen => $echo } });
$a->signal('HUP');
ok($a->wait_ready(10, 2), 'state file shows generation 2');
is($a->addr('echo.listen'), $echo, 'the listener kept its address');
is(greeting(), 'gen2', 'generation 2 serves new connections');

# Connections keep being accepted throughout a reload.
my ($ok, $fail) = (0, 0);
$a->rewrite_conf({ modules => ['echo'], echo => { greeting => 'gen3', listen => $echo } });
$a->signal('HUP');
for (1 .. 200) { my $g = greeting(); ($g =~ /^gen[23]$/) ? $ok++ : $fail++ }
is($fail, 0, 'no connection refused or dropped during a reload');
ok($a->wait_ready(10, 3), 'generation 3');

# Bad reload: keeps serving generation 3, counts the failure, logs why.
$a->rewrite_conf({ modules => ['echo'], echo => { greeting => 'gen4', listen => $echo, max_line => 1 } });
$a->signal('HUP');
ok($a->wait_log(qr/reload failed; still serving generation 3/, 10), 'bad reload logged');
is(greeting(), 'gen3', 'the old generation still serves');
my ($code, $body) = $a->http('GET', 'admin', '/metrics');
like($body, qr/^outrider_reloads_total\{result="failed"\} 1$/m, 'failed reload counted');
like($body, qr/^outrider_reloads_total\{result="ok"\} 2$/m, 'good reloads counted');

# POST /reload reports errors to the caller.
($code, $body) = $a->http('POST', 'admin', '/reload');
is($code, 500, 'POST /reload with a bad config: 500');
like($body, qr/echo\.max_line: expected an integer 16\.\.65536, got 1/, 'with the error');
$a->rewrite_conf({ modules => ['echo'], echo => { greeting => 'gen5', listen => $echo } });
($code, $body) = $a->http('POST', 'admin', '/reload');
is($code, 200, 'POST /reload with a good config: 200') or diag($body);
ok($a->wait_ready(10, 4), 'generation 4 (failed builds use no generation of their own)') or diag($a->log);
is(greeting(), 'gen5', 'and it serves');

# A reload that moves the admin endpoint: the new address serves, the old
# one is closed.
my $old_admin = $a->addr('admin');
my $conf = { modules => ['echo'], echo => { greeting => 'gen6', listen => $echo } };
$a->rewrite_conf({ %$conf, admin => { address => '127.0.0.2:0' } });
$a->signal('HUP');
ok($a->wait_ready(10, 5), 'generation 5');
my $new_admin = $a->addr('admin');
like($new_admin, qr/^127\.0\.0\.2:\d+$/, "the admin endpoint moved to $new_admin") or diag($a->log);
($code) = $a->http('GET', 'admin', '/healthz');
is($code, 200, 'and answers there');
my ($oh, $op) = $old_admin =~ /^(.*):(\d+)$/;
ok(!IO::Socket::INET->new(PeerAddr => $oh, PeerPort => $op, Timeout => 2), 'the old admin address is closed');
$a->finish_ok(allow_errors => qr/reload|max_line/);
done_testing;

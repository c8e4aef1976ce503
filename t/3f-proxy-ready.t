#!/usr/bin/env perl
# proxy: /ready reflects whether the proxy can take connections. The
# agent's descriptor limit is lowered (prlimit on the running process) so
# that client connections fill it: the listener's accept fails (libuv then
# closes the pending connections itself), and /ready turns 503 while fewer
# than 16 descriptors are free, naming why in the log; it is 200 again once
# the connections are closed and the proxy accepts again.
# A stuck worker loop is covered by core's heartbeat check: t/21-readiness.t.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use Outrider;
use ProxyTest qw(proxy_agent);

plan skip_all => 'needs prlimit' unless -x '/usr/bin/prlimit';
my $a = proxy_agent(conf => { workers => 1 },
                    proxy => { clusters => [ { name => 'b', endpoints => ['127.0.0.1:9'] } ],
                               routes => [ { path_prefix => '/', cluster => 'b' } ] });
my $pid = $a->pid;
my ($code) = $a->http('GET', 'admin', '/ready');
is($code, 200, 'ready at start');

sub open_fds { my @f = glob("/proc/$pid/fd/*"); return scalar @f }
sub ready_code { my ($c) = $a->http('GET', 'admin', '/ready', timeout => 3); return $c }

# Room for 24 more descriptors: above the reserve, so still ready. (The
# soft limit only: it can be raised back without privileges.)
my ($soft) = `prlimit --pid $pid --nofile --noheadings --raw -o SOFT` =~ /(\d+)/ or BAIL_OUT('prlimit cannot read');
my $limit = open_fds() + 24;
system('prlimit', '--pid', $pid, "--nofile=$limit:") == 0 or BAIL_OUT('prlimit failed');
ok(Outrider::poll(15, sub { ready_code() == 200 }), "limit $limit: 24 descriptors free, still ready");

# Fill the table with client connections the proxy holds open.
my @held;
for (1 .. 40) {
    my $s = IO::Socket::INET->new(PeerAddr => $a->addr('proxy.outbound'), Timeout => 3) or last;
    push @held, $s;
}
ok(Outrider::poll(15, sub { open_fds() >= $limit }), 'the agent reached its descriptor limit');
# Connections it could not accept were closed by the accept loop: they read EOF.
my $refused = 0;
Outrider::poll(15, sub {
    $refused = 0;
    for my $s (@held) {
        next unless IO::Select->new($s)->can_read(0);
        my $n = sysread($s, my $buf, 1);
        $refused++ if defined $n && $n == 0 || !defined $n;
    }
    return $refused > 0;
});
cmp_ok($refused, '>', 0, "accept failed: $refused connection(s) closed unaccepted");

# Give the admin listener a few descriptors back (fewer than the reserve).
my @open = grep { my $n = IO::Select->new($_)->can_read(0) ? sysread($_, my $b, 1) : 1; defined $n && $n } @held;
close $_ for splice(@open, 0, 4);
ok(Outrider::poll(15, sub { open_fds() < $limit }), 'descriptors free again');
ok(Outrider::poll(15, sub { ready_code() == 503 }), '/ready is 503 while descriptors are short');
like($a->log, qr/\[proxy\] not ready: \d+ file descriptors free in the process/, 'the reason is logged');
($code, my $status) = $a->http('GET', 'admin', '/status');
my ($mod) = grep { $_->{name} eq 'proxy' } @{ (eval { decode_json($status) } || {})->{modules} || [] };
is($mod && $mod->{state}, 'not ready', '/status shows the proxy module not ready');

close $_ for @open, @held;
ok(Outrider::poll(15, sub { ready_code() == 200 }), '/ready is 200 again once the connections are closed');
my $s = IO::Socket::INET->new(PeerAddr => $a->addr('proxy.outbound'), Timeout => 3);
print $s "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
my $resp = do { local $/; <$s> } // '';
like($resp, qr{^HTTP/1\.1 5\d\d }, 'and the proxy accepts and answers again (502/503: no backend)');
like($a->log, qr/\[proxy\] ready again/, 'the recovery is logged');
system('prlimit', '--pid', $pid, "--nofile=$soft:");
$a->finish_ok;
done_testing;

#!/usr/bin/env perl
# Load balancing (round robin spread, least request avoiding a busy
# endpoint, P2C avoiding a slow one), weighted splits, header routes,
# request timeouts, connection limits.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use Time::HiRes qw(time sleep);
use Outrider;
use ProxyTest qw(proxy_agent backend_start backend_stop raw_http curl wait_metric);

my @be = map { backend_start("b$_") } 1 .. 3;
my $slow = backend_start('slow', 60);
my @eps = map { "127.0.0.1:$_->{port}" } @be;
my $a = proxy_agent(proxy => {
    clusters => [
        { name => 'rr', endpoints => \@eps, lb => 'round_robin' },
        { name => 'lr', endpoints => [ @eps[0, 1] ], lb => 'least_request' },
        { name => 'p2c', endpoints => [ $eps[0], "127.0.0.1:$slow->{port}" ], lb => 'p2c' },
        { name => 'one', endpoints => [ $eps[0] ] },
        { name => 'two', endpoints => [ $eps[1] ] },
        { name => 'limited', endpoints => [ $eps[2] ], max_connections => 1, max_pending => 0 },
    ],
    routes => [
        { authority => 'rr.test', cluster => 'rr' },
        { authority => 'lr.test', cluster => 'lr' },
        { authority => 'p2c.test', cluster => 'p2c' },
        { authority => 'split.test', headers => { 'x-canary' => '1' }, cluster => 'two' },
        { authority => 'split.test', split => [ { cluster => 'one', weight => 1 }, { cluster => 'two', weight => 1 } ] },
        { authority => 'zero.test', split => [ { cluster => 'one', weight => 0 }, { cluster => 'two', weight => 5 } ] },
        { authority => 'timeout.test', cluster => 'one', timeout => '300ms' },
        { authority => 'limited.test', cluster => 'limited' },
    ],
});
my $addr = $a->addr('proxy.outbound');

sub ids {
    my ($host, $n, @extra) = @_;
    my %seen;
    for (1 .. $n) {
        my ($rc, $out) = curl('-H', "Host: $host", @extra, "http://$addr/id");
        $seen{$out}++;
    }
    return \%seen;
}

is_deeply(ids('rr.test', 30), { b1 => 10, b2 => 10, b3 => 10 }, 'round robin: 30 requests spread 10/10/10');

# least_request: while one endpoint holds a long request, the other takes all.
my $bg = open(my $bgfh, '-|', 'curl', '-s', '-m', '20', '-H', 'Host: lr.test', "http://$addr/sleep?ms=5000") or die;
ok(wait_metric($a, qr/^outrider_proxy_upstream_connections\{cluster="lr"\} 1$/m, 15), 'the long request reached an endpoint');
my $seen = ids('lr.test', 6);
my @busy = grep { !$seen->{$_} } qw(b1 b2);
is(scalar(keys %$seen), 1, 'least request: all requests avoid the busy endpoint') or diag(explain $seen);
my $long = do { local $/; <$bgfh> };
close $bgfh;
is($long, $busy[0] // '', 'the long request was on the endpoint the others avoided');

# p2c over EWMA latency: the endpoint that answers in 60 ms gets few requests.
$seen = ids('p2c.test', 40);
cmp_ok($seen->{slow} // 0, '<=', 5, "p2c: slow endpoint got @{[ $seen->{slow} // 0 ]} of 40");
is(($seen->{b1} // 0) + ($seen->{slow} // 0), 40, 'p2c: every request answered');

# One slow answer makes the fast endpoint look slow; its estimate decays
# while it gets no traffic, so it is tried again instead of avoided for good.
my $stalled;
for (1 .. 20) {
    my ($rc, $out) = curl('-H', 'Host: p2c.test', "http://$addr/sleep?ms=400");
    if ($out eq 'b1') { $stalled = 1; last }
}
ok($stalled, 'p2c: one 400 ms answer from the fast endpoint');
my ($back, $until) = (0, time + 15);
while (!$back && time < $until) {
    $back = ids('p2c.test', 5)->{b1};
}
ok($back, 'p2c: the fast endpoint gets traffic again after its slow answer');

# Weighted split and header match.
$seen = ids('split.test', 40);
ok($seen->{b1} && $seen->{b2} && $seen->{b1} + $seen->{b2} == 40, 'split 1:1 reaches both clusters')
    or diag(explain $seen);
is_deeply(ids('split.test', 10, '-H', 'x-canary: 1'), { b2 => 10 }, 'header route wins over the split');
is_deeply(ids('zero.test', 10), { b2 => 10 }, 'weight 0 gets nothing');

# Request timeout: 504 after the route's 300 ms, not the backend's 2 s.
my $t0 = time;
my ($rc, $code) = curl('-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: timeout.test', "http://$addr/sleep?ms=2000");
my $dt = time - $t0;
is($code, '504', 'slow upstream answered 504');
cmp_ok($dt, '<', 1.5, sprintf('... after the route timeout (%.2fs)', $dt));

# max_connections 1, max_pending 0: a second concurrent request gets 503.
open(my $h1, '-|', 'curl', '-s', '-m', '10', '-H', 'Host: limited.test', "http://$addr/sleep?ms=1500") or die;
ok(wait_metric($a, qr/^outrider_proxy_upstream_connections\{cluster="limited"\} 1$/m), 'the first request holds the connection');
($rc, $code) = curl('-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: limited.test', "http://$addr/id");
is($code, '503', 'over max_connections with no pending room: 503');
is(do { local $/; <$h1> }, 'b3', 'the request holding the connection completes');
close $h1;
($rc, $code) = curl('-H', 'Host: limited.test', "http://$addr/id");
is($code, 'b3', 'the pooled connection serves the next request');

backend_stop($_) for @be, $slow;
$a->finish_ok;
done_testing;

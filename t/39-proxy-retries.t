#!/usr/bin/env perl
# Retries: an idempotent request without a body whose endpoint refuses the
# connection (or drops it before answering) is sent to another endpoint;
# requests with a body are not; the retry budget and the attempt limit cap
# them (a budget of 0 still allows a burst of 10 per 10 s); retries are
# counted.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use IO::Socket::INET;
use Outrider;
use ProxyTest qw(proxy_agent backend_start backend_stop curl refused_port);

my $be = backend_start('live');
my $dead_port = refused_port();
# A server that accepts and closes at once, answering nothing.
my $rude = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 64, ReuseAddr => 1) or die;
my $rude_port = $rude->sockport;
my $rpid = fork // die;
if (!$rpid) { while (my $s = $rude->accept) { close $s } exit 0 }
close $rude;

my $a = proxy_agent(proxy => {
    clusters => [
        # Round robin over a dead and a live endpoint: every first
        # attempt hits the dead one, so every request needs a retry.
        { name => 'half', lb => 'round_robin', retry_budget => 1,
          endpoints => ["127.0.0.1:$dead_port", "127.0.0.1:$be->{port}"] },
        { name => 'rude', lb => 'round_robin', retry_budget => 1,
          endpoints => ["127.0.0.1:$rude_port", "127.0.0.1:$be->{port}"] },
        { name => 'budget', lb => 'round_robin', retry_budget => 0,
          endpoints => ["127.0.0.1:$dead_port", "127.0.0.1:$be->{port}"] },
        { name => 'noretry', lb => 'round_robin', retries => 0,
          endpoints => ["127.0.0.1:$dead_port", "127.0.0.1:$be->{port}"] },
        { name => 'allbad', retries => 2, endpoints => ["127.0.0.1:$dead_port"] },
    ],
    routes => [
        { authority => 'half.test', cluster => 'half' },
        { authority => 'rude.test', cluster => 'rude' },
        { authority => 'noretry.test', cluster => 'noretry' },
        { authority => 'allbad.test', cluster => 'allbad' },
        { authority => 'budget.test', cluster => 'budget' },
    ],
});
my $addr = $a->addr('proxy.outbound');
sub codes {
    my ($host, $n, @extra) = @_;
    my %c;
    for (1 .. $n) {
        my ($rc, $out) = curl('-o', '/dev/null', '-w', '%{http_code}', '-H', "Host: $host", @extra, "http://$addr/id");
        $c{$out}++;
    }
    return \%c;
}
is_deeply(codes('half.test', 20), { 200 => 20 }, 'GET: refused connections retried on the live endpoint, 20/20 ok');
is_deeply(codes('rude.test', 10), { 200 => 10 }, 'GET: connections closed before a response retried, 10/10 ok');
# The first 10 requests are retried (the burst); then round robin
# alternates: a failure on the dead endpoint (not retried), a success.
is_deeply(codes('budget.test', 16), { 200 => 13, 503 => 3 },
          'retry budget 0: only the burst of 10 retries per 10 s window, then failures reach the client');
my $post = codes('half.test', 10, '--data-binary', 'x');
ok($post->{503} && $post->{503} >= 4, "POST with a body is not retried ($post->{503} of 10 got 503)");
my $nr = codes('noretry.test', 10);
ok($nr->{503} && $nr->{503} >= 4, "retries 0: failures reach the client ($nr->{503} of 10)");
is_deeply(codes('allbad.test', 3), { 503 => 3 }, 'every endpoint down: 503 after the attempts');
my ($code, $m) = $a->http('GET', 'admin', '/metrics');
my ($half) = $m =~ /^outrider_proxy_retries_total\{cluster="half"\} (\d+)$/m;
cmp_ok($half // 0, '>=', 10, "retries counted (half: @{[ $half // 0 ]})");
my ($allbad) = $m =~ /^outrider_proxy_retries_total\{cluster="allbad"\} (\d+)$/m;
is($allbad, 6, 'two attempts more per request, no more');

kill 'TERM', $rpid;
waitpid($rpid, 0);
backend_stop($be);
$a->finish_ok;
done_testing;

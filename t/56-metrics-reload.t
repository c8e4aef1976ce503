#!/usr/bin/env perl
# metrics module across reloads (SIGHUP): the listeners keep their
# addresses, the new generation serves /metrics and receives statsd, the
# old one drains without errors or leaks. statsd aggregates outlive the
# generation (a counter only resets when the process restarts); a changed
# bucket list restarts only the histograms of that kind.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Outrider;

my %statsd = (udp => '127.0.0.1:0');
my %conf = (modules => ['metrics'], workers => 2, metrics => { listen => '127.0.0.1:0', statsd => \%statsd });
my $a = Outrider->start(role => 'sidecar', conf => \%conf);
my $addr = $a->addr('metrics.http');
my $statsd = $a->addr('metrics.statsd');
# Several sending sockets, so both workers' SO_REUSEPORT shares get some.
my @u = map { IO::Socket::INET->new(PeerAddr => $statsd, Proto => 'udp') or die } 1 .. 8;

sub scrape_until {
    my ($re) = @_;
    my (undef, $body) = $a->get_until('metrics.http', '/metrics', sub { $_[0] =~ $re });
    return $body;
}

sub value { my ($body, $series) = @_; return $body =~ /^\Q$series\E (\S+)$/m ? $1 : undef }

$_->send("before:1|c") for @u;
$_->send("kept:1|c\nlat:100|ms\nhist:3|h") for @u;
$u[0]->send("temp:7|g\nusers:alice|s");
$u[1]->send("users:bob|s");
my $body = scrape_until(qr/^kept_total 8$/m);
is(value($body, 'before_total'), 8, 'generation 1 counts');
is(value($body, 'kept_total'), 8, 'generation 1: every datagram counted (both workers)');
is(value($body, 'lat_count'), 8, 'generation 1: timer observed');

$a->signal('HUP');
ok($a->wait_log(qr/generation 2 serving/, 10), 'reloaded');
is($a->addr('metrics.http'), $addr, 'the endpoint keeps its address');
is($a->addr('metrics.statsd'), $statsd, 'the statsd socket keeps its address');
$_->send("after:1|c\nkept:1|c") for @u;
$body = scrape_until(qr/^kept_total 16$/m);
is(value($body, 'after_total'), 8, 'generation 2 receives statsd and serves /metrics');
is(value($body, 'kept_total'), 16, 'a counter keeps its sum across the reload');
is(value($body, 'before_total'), 8, 'a counter not sent since the reload is still exposed');
is(value($body, 'temp'), 7, 'a gauge keeps its value');
is(value($body, 'users'), 2, 'a set keeps its members');
is(value($body, 'lat_count'), 8, 'a timer histogram keeps its counts');
is(value($body, 'lat_bucket{le="0.1"}'), 8, 'in its buckets');

# Timer buckets change: timers restart on the new buckets, the rest stays.
$statsd{timer_buckets} = [0.05, 0.2];
$a->rewrite_conf(\%conf);
$a->signal('HUP');
ok($a->wait_log(qr/generation 3 serving/, 10), 'reloaded with other timer buckets');
$body = scrape_until(qr/^kept_total 16$/m);
is(value($body, 'kept_total'), 16, 'counters survive a bucket change');
is(value($body, 'hist_count'), 8, 'histograms with unchanged buckets keep their counts');
is(value($body, 'lat_count'), undef, 'timers with changed buckets restart');
$_->send("lat:100|ms\nkept:1|c") for @u;
$body = scrape_until(qr/^kept_total 24$/m);
is(value($body, 'lat_count'), 8, 'timers count again after the change');
is(value($body, 'lat_bucket{le="0.2"}'), 8, 'on the new buckets');
is(value($body, 'lat_bucket{le="0.1"}'), undef, 'and not on the old ones');
is(value($body, 'kept_total'), 24, 'counters go on adding');
$a->finish_ok;
done_testing;

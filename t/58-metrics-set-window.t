#!/usr/bin/env perl
# metrics module, statsd sets count per window (statsd.set_window), as
# statsd counts per flush: repeated members count once; a window without members brings the gauge to
# 0; a set_window below 100ms is a config error naming the key. Waits are
# bounded polls for a condition: nothing here depends on speed.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Outrider;

my $a = Outrider->start(
    role => 'sidecar',
    conf => { modules => ['metrics'], workers => 2,
              metrics => { listen => '127.0.0.1:0', statsd => { udp => '127.0.0.1:0', set_window => '1s' } } });
my $udp = IO::Socket::INET->new(PeerAddr => $a->addr('metrics.statsd'), Proto => 'udp') or die "udp: $!";

# Polls /metrics until the gauge "visitors" has the value wanted.
sub wait_value {
    my ($want, $secs) = @_;
    my $v = 'absent';
    for (my $until = time + $secs; time < $until; sleep 0.1) {
        my (undef, $body) = $a->http('GET', 'metrics.http', '/metrics');
        $v = $body =~ /^visitors (\d+)$/m ? $1 : 'absent';
        return $v if $v eq $want;
    }
    return $v;
}

# One datagram, so that all members fall in one window (the merge of
# workers' windows is unit-tested in mmod_store).
$udp->send(join "\n", map { "visitors:$_|s" } qw(ann bob ann cid bob)) or die;
is(wait_value(3, 10), 3, 'three distinct members (repeats counted once)');
is(wait_value(0, 10), 0, 'windows without members: the gauge falls to 0');
$udp->send("visitors:dan|s") or die;
is(wait_value(1, 10), 1, 'a new member counts again');
my (undef, $body) = $a->http('GET', 'metrics.http', '/metrics');
like($body, qr/^# HELP visitors statsd set: distinct members per statsd.set_window$/m, 'help says what is counted');
$a->finish_ok;

my (undef, $path) = Outrider::write_conf(
    { modules => ['metrics'], metrics => { listen => '127.0.0.1:0', statsd => { set_window => '50ms' } } });
my ($code, $out) = Outrider::run_cmd(Outrider::bin(), '-t', '-c', $path, '--modules-dir', Outrider::modules_dir());
is($code, 1, 'a 50ms set_window is refused by the config check');
like($out, qr/metrics\.statsd\.set_window: must be 0 \(off\) or at least 100ms, got 50ms/, 'naming the key') or diag($out);
done_testing();

#!/usr/bin/env perl
# Upstream HTTP/2 sessions per endpoint: a backend allowing 2 concurrent
# streams (SETTINGS_MAX_CONCURRENT_STREAMS) and counting its connections
# (t/proxy/h2_pool_backend.py). Concurrent requests spread over new
# sessions instead of waiting inside one; max_connections caps them (the
# rest queue and still succeed); extra sessions close after idle_timeout
# while one stays; a session that received GOAWAY takes no new stream; an
# endpoint removed by discovery has all its sessions closed, the busy ones
# after their last stream.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use File::Temp qw(tempdir);
use POSIX qw(ceil);
use Time::HiRes qw(sleep time);
use Outrider;
use ProxyTest qw(curl wait_metric);

my $LIMIT = 2;
my $MAXC = 4;
my $root = Outrider::root();
my $dir = tempdir('outrider-h2pool-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# Starts a backend; returns { pid, port, ctl }.
sub backend {
    my $pid = open(my $fh, '-|', '/usr/bin/python3', "$root/t/proxy/h2_pool_backend.py", $LIMIT) or die "backend: $!";
    my ($port, $ctl) = split ' ', (<$fh> // '');
    die 'backend did not start' unless $ctl;
    return { pid => $pid, port => $port, ctl => $ctl, fh => $fh };
}
my $b1 = backend();
my $b2 = backend();

# A backend's counters (see h2_pool_backend.py); the first one's by default.
sub stats {
    my ($b) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . ($b || $b1)->{ctl}, Timeout => 5) or die "control: $!";
    my $line = <$s> // '';
    return { $line =~ /(\w+)=(\d+)/g };
}
sub wait_stats {
    my ($cond, $secs, $b) = @_;
    my $until = time + $secs;
    while (time < $until) {
        return 1 if $cond->(stats($b));
        sleep 0.05;
    }
    return 0;
}
sub write_eps {
    my ($port) = @_;
    open my $fh, '>', "$dir/eps.json.tmp" or die;
    print $fh encode_json({ endpoints => ["127.0.0.1:$port"] });
    close $fh;
    rename "$dir/eps.json.tmp", "$dir/eps.json" or die;
}
write_eps($b1->{port});

my $a = Outrider->start(
    role => 'sidecar',
    conf => {
        workers => 1, # one set of sessions, so the backend's counts are the proxy's
        modules => ['proxy'],
        proxy => {
            outbound => { address => '127.0.0.1:0', default_cluster => 'pool' },
            inbound => { enabled => JSON::PP::false },
            clusters => [ { name => 'pool', protocol => 'h2', endpoints => ["127.0.0.1:$b1->{port}"],
                            max_connections => $MAXC, idle_timeout => '1s', request_timeout => '30s' },
                          { name => 'moving', protocol => 'h2', endpoints_file => "$dir/eps.json",
                            request_timeout => '30s' } ],
            routes => [ { authority => 'moving.test', cluster => 'moving' } ],
        },
    });
my $addr = $a->addr('proxy.outbound');

# h2load through the proxy: n requests, all of them in flight at once on
# one client connection. Returns its output.
sub burst_start {
    my ($n, $path, @h) = @_;
    open(my $hl, '-|', 'timeout', '30', 'h2load', '-n', $n, '-c', '1', '-m', $n, @h, "http://$addr$path") or die;
    return $hl;
}
sub burst_end {
    my ($hl) = @_;
    my $out = do { local $/; <$hl> };
    close $hl;
    return $out;
}
sub burst { return burst_end(burst_start(@_)) }

# The first session learns the server's limit from its SETTINGS; the
# sessions opened next assume it until theirs arrive.
my ($rc, $out) = curl('--http2-prior-knowledge', "http://$addr/slow?ms=0");
like($out, qr/^conn=1 /, 'first request: the first upstream session');

my $n = 6;
$out = burst($n, '/slow?ms=1500');
like($out, qr/requests: $n total, $n started, $n done, $n succeeded, 0 failed/, "$n concurrent requests all succeed")
    or diag($out);
my $s = stats();
cmp_ok($s->{accepted}, '>=', ceil($n / $LIMIT), "the backend saw at least ceil($n/$LIMIT) connections ($s->{accepted})");
cmp_ok($s->{peak_open}, '<=', $MAXC, "no more than max_connections ($MAXC) open at once ($s->{peak_open})");
is($s->{refused}, 0, 'no stream beyond the server\'s limit was sent (none refused)');
is($s->{max_streams}, $LIMIT, "at most $LIMIT streams in flight per connection");

# More requests than the slots of max_connections sessions: the rest wait
# (inside the least loaded session) and still succeed.
$n = 3 * $MAXC * $LIMIT;
$out = burst($n, '/slow?ms=700');
like($out, qr/requests: $n total, $n started, $n done, $n succeeded, 0 failed/,
     "$n requests beyond max_connections x limit all succeed") or diag($out);
$s = stats();
cmp_ok($s->{peak_open}, '<=', $MAXC, "still no more than max_connections open at once ($s->{peak_open})");
cmp_ok($s->{peak_open}, '>', 1, "more than one connection was used ($s->{peak_open})");
is($s->{refused}, 0, 'none refused');
is($s->{max_streams}, $LIMIT, "at most $LIMIT streams in flight per connection");

# Idle: the extra sessions close after idle_timeout (1 s), one stays.
ok(wait_stats(sub { $_[0]{open} == 1 && $_[0]{inflight} == 0 }, 20), 'the extra connections closed once idle');
ok(wait_metric($a, qr/^outrider_proxy_upstream_connections\{cluster="pool"\} 1$/m, 10), 'the gauge shows one session');
my $before = stats()->{accepted};
sleep 2.5; # more than twice idle_timeout: the oldest session is kept regardless
is(stats()->{open}, 1, 'the last session stays open while idle');
($rc, $out) = curl('--http2-prior-knowledge', "http://$addr/slow?ms=0");
like($out, qr/^conn=\d+ /, 'a request after the idle period succeeds');
is(stats()->{accepted}, $before, '...on the session kept open');

# GOAWAY: a slow request in flight on the session, then /goaway on the same
# one (it has room for one more); the next request must go to a new
# session, while the slow one still completes on the old.
my $slow_pid = open(my $slow, '-|', 'curl', '-s', '-m', '20', '--http2-prior-knowledge', "http://$addr/slow?ms=2000") or die;
ok(wait_stats(sub { $_[0]{inflight} == 1 }, 10), 'the slow request is in flight');
($rc, $out) = curl('--http2-prior-knowledge', "http://$addr/goaway");
my ($gconn) = $out =~ /^conn=(\d+) /;
ok($gconn, "/goaway answered on connection $gconn");
($rc, $out) = curl('--http2-prior-knowledge', "http://$addr/slow?ms=0");
my ($nconn) = $out =~ /^conn=(\d+) /;
ok($nconn && $nconn != $gconn, "the request after GOAWAY went to another connection ($nconn)");
my $slow_out = do { local $/; <$slow> };
close $slow;
is($slow_out, "conn=$gconn stream=" . ($slow_out =~ /stream=(\d+)/)[0] . "\n",
   'the stream in flight at GOAWAY completed on its connection');
is(stats()->{after_goaway}, 0, 'no request reached a connection after its GOAWAY');
ok(wait_stats(sub { $_[0]{open} == 1 }, 10), 'the connection that said GOAWAY closed after its last stream');
ok(wait_metric($a, qr/^outrider_proxy_upstream_connections\{cluster="pool"\} 1$/m, 10), 'the gauge shows one session');

# Discovery removes an endpoint while its sessions carry streams: they
# finish there and every session to it closes; new requests go to the new
# endpoint.
($rc, $out) = curl('--http2-prior-knowledge', '-H', 'Host: moving.test', "http://$addr/slow?ms=0");
like($out, qr/^conn=\d+ /, 'the moving cluster reaches the first backend');
my $busy = 6;
my $hl = burst_start($busy, '/slow?ms=2500', '-H', ':authority: moving.test');
ok(wait_stats(sub { $_[0]{inflight} == $busy }, 15), "$busy requests in flight on the first backend");
my $open = stats()->{open};
cmp_ok($open, '>=', 1 + ceil($busy / $LIMIT), "over several sessions ($open open, with the pool cluster's)");
write_eps($b2->{port});
my $moved = 0;
for (1 .. 150) {
    curl('--http2-prior-knowledge', '-H', 'Host: moving.test', "http://$addr/slow?ms=0");
    last if ($moved = stats($b2)->{accepted});
    sleep 0.1;
}
ok($moved, 'after the endpoints file changed, requests reach the second backend');
$out = burst_end($hl);
like($out, qr/requests: $busy total, $busy started, $busy done, $busy succeeded, 0 failed/,
     'the requests in flight on the removed endpoint completed') or diag($out);
ok(wait_stats(sub { $_[0]{open} == 1 }, 15), 'every session of the moving cluster to the removed endpoint closed (the pool cluster\'s stays)');
ok(wait_metric($a, qr/^outrider_proxy_upstream_connections\{cluster="moving"\} 1$/m, 10), 'the moving cluster has one session left');

for my $b ($b1, $b2) {
    kill 'TERM', $b->{pid};
    waitpid($b->{pid}, 0);
}
$a->finish_ok;
done_testing;

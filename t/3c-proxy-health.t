#!/usr/bin/env perl
# Outlier ejection, active health checks and the max_requests circuit
# breaker, against backends that fail on purpose (t/proxy/health_backend.py:
# 503s, connections closed unanswered, hanging, stopped listening):
# traffic leaves an endpoint after N failures in a row and comes back after
# the ejection time; max_ejection_percent caps ejections; health checks
# really GET the configured path; an endpoint failing them gets no traffic
# and returns after healthy_threshold passes; max_requests answers 503 (with
# the reason in the access record) while the cluster is full. Every wait is
# a bounded poll on state, never a fixed sleep.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(sleep time);
use Outrider;
use ProxyTest qw(proxy_agent curl wait_metric refused_port);

my $root = Outrider::root();
my $dir = tempdir('proxy-health-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $access = "$dir/access.json";

sub hb_start {
    my ($name, $port) = @_;
    my $pid = open(my $fh, '-|', '/usr/bin/python3', "$root/t/proxy/health_backend.py", $name, $port // 0)
        or die "backend: $!";
    my $p = <$fh>;
    die "backend $name did not start" unless defined $p && $p =~ /^(\d+)/;
    return { pid => $pid, port => $1, fh => $fh, name => $name };
}
sub hb_stop { my ($b) = @_; kill 'TERM', $b->{pid}; waitpid($b->{pid}, 0); }
sub hb_ctl {
    my ($b, $query) = @_;
    my ($rc, $out) = curl("http://127.0.0.1:$b->{port}/_mode?$query");
    die "backend $b->{name}: control failed" unless $rc == 0 && $out eq "ok\n";
}
sub hb_stats {
    my ($b) = @_;
    my ($rc, $out) = curl("http://127.0.0.1:$b->{port}/_stats");
    return $rc == 0 ? decode_json($out) : undef;
}
sub hb_count { my ($b, $path) = @_; my $s = hb_stats($b); return $s ? ($s->{counts}{$path} // 0) : -1 }
# Bad settings are refused by `outrider -t`, each error naming its place.
sub conf_check {
    my (%cluster) = @_;
    my (undef, $path) = Outrider::write_conf({ modules => ['proxy'], proxy => { clusters => [
        { name => 'x', endpoints => ['127.0.0.1:1'], %cluster } ] } });
    return Outrider::run_cmd(Outrider::bin(), '-t', '-c', $path, '--modules-dir', Outrider::modules_dir());
}
{
    my ($code, $out) = conf_check(health_check => { path => 'healthz now', grpc => JSON::PP::true },
                                  outlier => { base_ejection_time => '10s', max_ejection_time => '1s' });
    isnt($code, 0, 'bad health and outlier settings: -t fails');
    like($out, qr/proxy\.clusters\[0\]\.health_check\.path: expected a path starting with "\/"/, '... naming health_check.path');
    like($out, qr/proxy\.clusters\[0\]\.health_check\.grpc: gRPC health checks need a cluster with protocol h2/,
         '... health_check.grpc on an HTTP/1.1 cluster');
    like($out, qr/proxy\.clusters\[0\]\.outlier\.max_ejection_time: must not be shorter than base_ejection_time/,
         '... max_ejection_time below base_ejection_time');
    ($code, $out) = conf_check(outlier => { max_ejection_percent => 101 }, max_requests => -1);
    like($out, qr/proxy\.clusters\[0\]\.outlier\.max_ejection_percent: expected an integer 0\.\.100, got 101/,
         '... outlier.max_ejection_percent out of bounds');
    like($out, qr/proxy\.clusters\[0\]\.max_requests: expected an integer/, '... max_requests below 0');
}

# Traffic backends.
my $good = hb_start('good');
my $bad = hb_start('bad');      # 503s
my $back = hb_start('back');    # 503s, then healthy again
my $rude = hb_start('rude');    # closes connections unanswered
my $hang = hb_start('hang');    # never answers
my $hgood = hb_start('hgood');  # health checks pass
my $hbad = hb_start('hbad');    # health checks fail, traffic would work
my $cb = hb_start('cb');
hb_ctl($bad, 'traffic=503');
hb_ctl($back, 'traffic=503');
hb_ctl($rude, 'traffic=close');
hb_ctl($hang, 'traffic=hang');
hb_ctl($hbad, 'health=503');
my @dead = map { refused_port() } 1 .. 3;
my $hb2 = hb_start('hb2');      # behind an HTTP/2 front: health checks fail
hb_ctl($hb2, 'health=503');
sub grpc_start {
    my ($name, $status) = @_;
    my $pid = open(my $fh, '-|', '/usr/bin/python3', "$root/t/proxy/grpc_health_server.py", $name, $status) or die;
    my $p = <$fh>;
    die "gRPC server $name did not start" unless defined $p && $p =~ /^(\d+)/;
    return { pid => $pid, port => $1, fh => $fh, name => $name };
}
my $gs = grpc_start('gs', 'SERVING');
my $gn = grpc_start('gn', 'NOT_SERVING');
# An HTTP/2 front for the h2 cluster's endpoints: a second agent whose two
# listeners lead to the good backend and to hb2.
my $front = proxy_agent(proxy => { outbound => { address => '127.0.0.1:0', default_cluster => 'g' },
                                   inbound => { address => '127.0.0.1:0', default_cluster => 'h' },
                                   clusters => [ { name => 'g', endpoints => ["127.0.0.1:$good->{port}"] },
                                                 { name => 'h', endpoints => ["127.0.0.1:$hb2->{port}"] } ] });
my @front = ($front->addr('proxy.outbound'), $front->addr('proxy.inbound'));

my %outlier = (consecutive_failures => 3, base_ejection_time => '60s', max_ejection_percent => 50);
my $a = proxy_agent(
    conf => {
        log => { level => 'debug' }, # shows when a generation has drained
        modules => ['proxy', 'logs'],
        logs => { bus_streams => ['access'], buffer => { flush_interval => '20ms' },
                  outputs => [{ type => 'file', path => $access }] },
    },
    proxy => {
        clusters => [
            { name => 'ej', lb => 'round_robin', retries => 0, outlier => \%outlier,
              endpoints => ["127.0.0.1:$good->{port}", "127.0.0.1:$bad->{port}"] },
            { name => 'back', lb => 'least_request', retries => 0,
              outlier => { %outlier, base_ejection_time => '300ms' },
              endpoints => ["127.0.0.1:$good->{port}", "127.0.0.1:$back->{port}"] },
            { name => 'rude', lb => 'p2c', retries => 0, outlier => \%outlier,
              endpoints => ["127.0.0.1:$good->{port}", "127.0.0.1:$rude->{port}"] },
            { name => 'hang', lb => 'round_robin', retries => 0, request_timeout => '300ms',
              outlier => \%outlier, endpoints => ["127.0.0.1:$good->{port}", "127.0.0.1:$hang->{port}"] },
            { name => 'pct', lb => 'round_robin', retries => 0,
              outlier => { %outlier, consecutive_failures => 2 },
              endpoints => [(map { "127.0.0.1:$_" } @dead), "127.0.0.1:$good->{port}"] },
            { name => 'hc', lb => 'round_robin', retries => 0,
              health_check => { path => '/healthz', interval => '100ms', timeout => '300ms',
                                unhealthy_threshold => 2, healthy_threshold => 2 },
              endpoints => ["127.0.0.1:$hgood->{port}", "127.0.0.1:$hbad->{port}"] },
            { name => 'cb', max_requests => 2, endpoints => ["127.0.0.1:$cb->{port}"] },
            { name => 'h2hc', protocol => 'h2', lb => 'round_robin', retries => 0,
              health_check => { path => '/healthz', interval => '100ms', timeout => '300ms',
                                unhealthy_threshold => 2, healthy_threshold => 2 },
              endpoints => \@front },
            { name => 'grpchc', protocol => 'h2', lb => 'round_robin',
              health_check => { grpc => JSON::PP::true, grpc_service => 'test.Echo', interval => '100ms',
                                timeout => '1s' },
              endpoints => ["127.0.0.1:$gs->{port}", "127.0.0.1:$gn->{port}"] },
        ],
        routes => [ map { { authority => "$_.test", cluster => $_ } } qw(ej back rude hang pct hc cb h2hc grpchc) ],
    });
my $addr = $a->addr('proxy.outbound');

# Sends n requests for host; returns the statuses and response bodies seen.
sub traffic {
    my ($host, $n, $path, @extra) = @_;
    my (%codes, %bodies);
    for (1 .. $n) {
        my ($rc, $out) = curl('-w', '\n%{http_code}', '-H', "Host: $host", @extra, "http://$addr" . ($path // '/x'));
        my ($body, $code) = $out =~ /\A(.*)\n(\d+)\z/s ? ($1, $2) : ('', 0);
        $codes{$code}++;
        $bodies{$body}++ if $code == 200;
    }
    return (\%codes, \%bodies);
}
sub metric {
    my ($name, $labels) = @_;
    my ($code, $m) = $a->http('GET', 'admin', '/metrics');
    return $m =~ /^\Q$name\E\{\Q$labels\E\} (\S+)$/m ? $1 + 0 : undef;
}

# --- passive ejection --------------------------------------------------------
{
    # Round robin: every second request reaches the failing endpoint until
    # its third 503 in a row ejects it; then only the good one answers.
    my ($codes) = traffic('ej.test', 6);
    is($codes->{503}, 3, 'ej: three 503s reach the client before the ejection');
    is(metric('outrider_proxy_ejections_total', 'cluster="ej"'), 1, 'ej: one ejection counted');
    is(metric('outrider_proxy_upstream_healthy', 'cluster="ej"'), 1, 'ej: one endpoint left healthy');
    my $before = hb_count($bad, '/x');
    my ($c2, $b2) = traffic('ej.test', 20);
    is_deeply($c2, { 200 => 20 }, 'ej: after the ejection every request succeeds');
    is_deeply($b2, { good => 20 }, 'ej: ... all on the good endpoint');
    is(hb_count($bad, '/x'), $before, 'ej: the ejected endpoint got no request');
    ok($a->wait_log(qr/cluster ej: endpoint 127\.0\.0\.1:$bad->{port} ejected for 60000 ms/, 5),
       'ej: the ejection is logged');
}
{
    # The ejection lasts 300 ms: the endpoint, healthy meanwhile, gets
    # traffic again once it is over.
    my ($codes) = traffic('back.test', 8);
    ok(Outrider::poll(5, sub { (metric('outrider_proxy_ejections_total', 'cluster="back"') // 0) >= 1 }),
       'back: the failing endpoint was ejected');
    hb_ctl($back, 'traffic=ok');
    my $returned = Outrider::poll(15, sub { my (undef, $b) = traffic('back.test', 2); $b->{back} });
    ok($returned, 'back: traffic reaches the endpoint again after the ejection time');
    ok($a->wait_log(qr/cluster back: endpoint \S+ back from ejection/, 5), 'back: the return is logged');
}
{
    my ($codes, $bodies) = traffic('rude.test', 12);
    ok(Outrider::poll(5, sub { metric('outrider_proxy_ejections_total', 'cluster="rude"') }),
       'rude: connections closed unanswered eject the endpoint');
    my $before = hb_count($rude, '/x');
    my ($c2) = traffic('rude.test', 10);
    is_deeply($c2, { 200 => 10 }, 'rude (p2c): afterwards every request succeeds');
    is(hb_count($rude, '/x'), $before, 'rude: no request reached the ejected endpoint');
}
{
    my ($codes) = traffic('hang.test', 6);
    is($codes->{504}, 3, 'hang: three request timeouts (504) before the ejection');
    my ($c2) = traffic('hang.test', 6);
    is_deeply($c2, { 200 => 6 }, 'hang: then every request succeeds');
}
{
    # Three of four endpoints refuse connections; at most 50% may be out.
    my ($codes) = traffic('pct.test', 40);
    is(metric('outrider_proxy_ejections_total', 'cluster="pct"'), 2, 'pct: two of four ejected (max_ejection_percent 50)');
    is(metric('outrider_proxy_upstream_healthy', 'cluster="pct"'), 2, 'pct: two endpoints still in');
    my ($c2) = traffic('pct.test', 10);
    is($c2->{503}, 5, 'pct: the third failing endpoint keeps its share (round robin over the two left)');
}

# --- active health checks ----------------------------------------------------
{
    ok(Outrider::poll(10, sub { hb_count($hgood, '/healthz') >= 3 && hb_count($hbad, '/healthz') >= 3 }),
       'hc: both endpoints receive GET /healthz repeatedly');
    my $h = hb_stats($hgood)->{last_health};
    is($h->{request_line}, 'GET /healthz HTTP/1.1', 'hc: a real HTTP/1.1 GET of the configured path');
    is($h->{host}, 'hc', 'hc: Host is the cluster name');
    ok(Outrider::poll(10, sub { (metric('outrider_proxy_upstream_healthy', 'cluster="hc"') // -1) == 1 }),
       'hc: one healthy endpoint');
    ok(metric('outrider_proxy_health_check_failures_total', 'cluster="hc"') >= 1, 'hc: failed checks counted');
    my ($codes, $bodies) = traffic('hc.test', 20);
    is_deeply($bodies, { hgood => 20 }, 'hc: the endpoint failing its checks receives no traffic');
    is(hb_count($hbad, '/x'), 0, 'hc: ... not a single request');
    ok($a->wait_log(qr/cluster hc: endpoint 127\.0\.0\.1:$hbad->{port} unhealthy: health check answered 503/, 5),
       'hc: the unhealthy endpoint is logged');

    hb_ctl($hbad, 'health=ok');
    ok(Outrider::poll(10, sub { (metric('outrider_proxy_upstream_healthy', 'cluster="hc"') // -1) == 2 }),
       'hc: passing its checks again, the endpoint is healthy');
    ok(Outrider::poll(10, sub { my (undef, $b) = traffic('hc.test', 2); $b->{hbad} }), 'hc: ... and receives traffic again');

    # The other endpoint stops listening: its checks fail and traffic moves.
    hb_stop($hgood);
    refused_port($hgood->{port}); # and refuses: no parallel test's server takes its port
    ok(Outrider::poll(10, sub { (metric('outrider_proxy_upstream_healthy', 'cluster="hc"') // -1) == 1 }),
       'hc: an endpoint that stopped listening turns unhealthy');
    my ($c2, $b2) = traffic('hc.test', 10);
    is_deeply($c2, { 200 => 10 }, 'hc: every request succeeds on the endpoint left');
    is_deeply($b2, { hbad => 10 }, 'hc: ... all on it');

    # A hanging health endpoint: checks time out.
    hb_ctl($hbad, 'health=hang');
    ok(Outrider::poll(10, sub { (metric('outrider_proxy_upstream_healthy', 'cluster="hc"') // -1) == 0 }),
       'hc: checks that time out make the endpoint unhealthy');
    # None healthy: panic, traffic still goes to every endpoint.
    my ($c3, $b3) = traffic('hc.test', 4);
    is($b3->{hbad}, 2, 'hc: with no healthy endpoint all are used (panic): the live one answers its share');
    hb_ctl($hbad, 'health=ok');
}

# --- HTTP/2 and gRPC health checks (h2 clusters) ----------------------------------
{
    ok(Outrider::poll(10, sub { (metric('outrider_proxy_upstream_healthy', 'cluster="h2hc"') // -1) == 1 }),
       'h2: one endpoint healthy by HTTP/2 GET /healthz');
    ok(hb_count($hb2, '/healthz') >= 1, 'h2: the checks reached the backend through the HTTP/2 front');
    my ($codes, $bodies) = traffic('h2hc.test', 10);
    is_deeply($bodies, { good => 10 }, 'h2: the endpoint failing its checks receives no traffic');
    is(hb_count($hb2, '/x'), 0, 'h2: ... not a single request');

    ok(Outrider::poll(10, sub { (metric('outrider_proxy_upstream_healthy', 'cluster="grpchc"') // -1) == 1 }),
       'gRPC: one endpoint SERVING by grpc.health.v1.Health/Check');
    ok($a->wait_log(qr/cluster grpchc: endpoint 127\.0\.0\.1:$gn->{port} unhealthy: gRPC health check: not SERVING/, 5),
       'gRPC: the NOT_SERVING endpoint is logged unhealthy');
    my %who;
    for (1 .. 6) {
        open(my $gc, '-|', '/usr/bin/python3', "$root/t/proxy/grpc_client.py", $addr, 'grpchc.test', 'unary', 'x') or die;
        my $out = do { local $/; <$gc> };
        close $gc;
        my $r = eval { decode_json($out) } || {};
        $who{ $r->{resp} // 'error' }++;
    }
    is_deeply(\%who, { gs => 6 }, 'gRPC: every call served by the SERVING endpoint');
}

# --- circuit breaking: max_requests ---------------------------------------------
{
    # Two slow requests fill the cluster (max_requests 2); while they run,
    # further requests are refused at once.
    my @slow;
    for (1 .. 2) {
        my $pid = fork // die;
        if (!$pid) {
            exec 'curl', '-s', '-m', '20', '-o', '/dev/null', '-H', 'Host: cb.test', "http://$addr/sleep?ms=4000";
            exit 127;
        }
        push @slow, $pid;
    }
    ok(Outrider::poll(10, sub { (hb_stats($cb) // {})->{in_progress} == 2 }), 'cb: two requests in flight');
    my ($codes) = traffic('cb.test', 3, '/x');
    is_deeply($codes, { 503 => 3 }, 'cb: max_requests reached: 503');
    my ($rc, $out) = curl('-H', 'Host: cb.test', "http://$addr/x");
    like($out, qr/max_requests/, 'cb: the answer says which limit');
    ($rc, $out) = curl('-o', '/dev/null', '-w', '%{http_code}', '--http2-prior-knowledge', '-H', 'Host: cb.test',
                       "http://$addr/x");
    is($out, '503', 'cb: HTTP/2 clients too');
    waitpid($_, 0) for @slow;
    my ($c2) = traffic('cb.test', 3, '/x');
    is_deeply($c2, { 200 => 3 }, 'cb: requests pass again once the slow ones finished');
    is(metric('outrider_proxy_circuit_breaker_rejections_total', 'cluster="cb",limit="max_requests"'), 5,
       'cb: rejections counted');
    my @r;
    Outrider::poll(10, sub {
        @r = grep { $_->{cluster} eq 'cb' && $_->{status} == 503 } Outrider::json_lines($access);
        @r >= 5;
    });
    is(scalar @r, 5, 'cb: five access records of refused requests');
    is($r[0]{reason}, 'upstream overflow (max_requests reached)', 'cb: the access record gives the reason');
}

# --- reload: the old generation's checks and timers close, the new one checks ---
{
    hb_ctl($hbad, 'health=hang');
    ok(Outrider::poll(15, sub { ((hb_stats($hbad) // {})->{in_progress} // 0) >= 1 }), 'reload: a check hangs in flight');
    my $n = hb_count($hbad, '/healthz');
    $a->signal('HUP');
    ok($a->wait_ready(10, 2), 'reload: generation 2 ready');
    ok($a->wait_log(qr/generation 1 drained/, 10), 'reload: generation 1 drained (its checks and timers closed)');
    ok(Outrider::poll(10, sub { hb_count($hbad, '/healthz') > $n + 2 }), 'reload: generation 2 checks the endpoints');
}

hb_stop($_) for $good, $bad, $back, $rude, $hang, $hbad, $cb, $hb2, $gs, $gn;
$a->finish_ok;
$front->finish_ok;
done_testing;

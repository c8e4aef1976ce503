#!/usr/bin/env perl
# Caller labels on request metrics (proxy_caller_metrics.c):
# outrider_proxy_caller_requests_total and
# outrider_proxy_caller_request_duration_seconds by the calling pod's
# namespace and workload. Node role: callers are the inventory's pods
# owning the source address (loopback aliases 127.0.0.2/.3 stand in for pod
# IPs), over HTTP/1.1 and HTTP/2; a source no pod owns is "unknown"; with
# max_callers 1 the second caller is "other". Sidecar role: the own pod.
# Disabled: no such family. The existing families stay as they were, and
# promtool accepts the exposition.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_LINGER);
use Outrider;
use ProxyTest qw(backend_start backend_stop curl wait_metric);

my $dir = tempdir('outrider-proxy-cm-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $inv = "$dir/pods.json";
open my $fh, '>', $inv or die;
print $fh encode_json({ pods => [
    # workload from a label (the first of workload_labels present)
    { namespace => 'shop', name => 'cart-7d9f8c6b5-x2k4q', uid => 'u1', ip => '127.0.0.2',
      labels => { app => 'not-this', 'app.kubernetes.io/name' => 'cart' } },
    # workload from the name: a Deployment's generated suffix removed
    { namespace => 'billing', name => 'ledger-6b54cc8d9f-q7w2z', uid => 'u2', ip => '127.0.0.3' },
] });
close $fh;

my $be = backend_start('b1');

sub node_agent {
    my (%cm) = @_;
    return Outrider->start(
        role => 'node',
        conf => {
            modules => ['proxy'],
            workers => 1,
            inventory => { file => $inv },
            proxy => {
                outbound => { address => '127.0.0.1:0', default_cluster => 'b' },
                inbound => { enabled => JSON::PP::false },
                clusters => [ { name => 'b', endpoints => ["127.0.0.1:$be->{port}"] } ],
                (%cm ? (caller_metrics => \%cm) : ()),
            },
        });
}

sub from {
    my ($a, $src, @extra) = @_;
    my (undef, $out) = curl('--interface', $src, '-w', ' %{http_code}', '-H', 'Host: svc.test', @extra,
                            'http://' . $a->addr('proxy.outbound') . '/id');
    return $out;
}

sub metrics {
    my ($a) = @_;
    my ($code, $m) = $a->http('GET', 'admin', '/metrics');
    return $m;
}

sub series {
    my ($ns, $wl, $cls) = @_;
    return qr/^outrider_proxy_caller_requests_total\{cluster="b",code_class="$cls",caller_namespace="$ns",caller_workload="$wl"\} (\d+)$/m;
}

# --- node role: two pods in two namespaces, and an unknown source -------------------

{
    my $a = node_agent();
    is(from($a, '127.0.0.2'), 'b1 200', 'shop pod (127.0.0.2) proxied') for 1 .. 3;
    is(from($a, '127.0.0.3', '--http2-prior-knowledge'), 'b1 200', 'billing pod (127.0.0.3) proxied over HTTP/2')
        for 1 .. 2;
    # one keep-alive connection carrying two requests: one lookup, two counts
    my (undef, $two) = curl('--interface', '127.0.0.3', '-H', 'Host: svc.test',
                            'http://' . $a->addr('proxy.outbound') . '/id', 'http://' . $a->addr('proxy.outbound') . '/id');
    is($two, 'b1b1', 'two requests on one connection from the billing pod');
    is(from($a, '127.0.0.4'), 'b1 200', 'a source no pod owns is proxied');
    ok(wait_metric($a, series('unknown', 'unknown', '2xx')), 'the unknown caller\'s series appears');
    my $m = metrics($a);
    my ($shop) = $m =~ series('shop', 'cart', '2xx');
    is($shop, 3, 'shop/cart (workload from app.kubernetes.io/name, before app): 3 requests');
    my ($billing) = $m =~ series('billing', 'ledger', '2xx');
    is($billing, 4, 'billing/ledger (workload from the pod name ledger-6b54cc8d9f-q7w2z): 4 requests');
    my ($unknown) = $m =~ series('unknown', 'unknown', '2xx');
    is($unknown, 1, 'unknown/unknown: 1 request');
    like($m, qr/^outrider_proxy_caller_request_duration_seconds_count\{cluster="b",caller_namespace="shop",caller_workload="cart"\} 3$/m,
         'the caller latency histogram has shop/cart\'s 3 samples');
    like($m, qr/^outrider_proxy_caller_request_duration_seconds_bucket\{cluster="b",caller_namespace="billing",caller_workload="ledger",le="0.0005"\} \d+$/m,
         '... with the buckets of outrider_proxy_request_duration_seconds');
    like($m, qr/^outrider_proxy_requests_total\{cluster="b",code_class="2xx"\} 8$/m,
         'outrider_proxy_requests_total keeps its labels and counts all 8');
    unlike($m, qr/caller_namespace="other"/, 'no caller over the cap');
    like($m, qr/^outrider_proxy_caller_metrics_overflow_total 0$/m, 'overflow counter at 0');
    Outrider::promtool_ok($m, 'promtool check metrics accepts the exposition (node role)');
    $a->finish_ok;
}

# --- a client that resets before its answer is still its pod's -------------------------
# The caller is known by the source address, which getpeername no longer
# gives once the client has reset: the address must be taken at accept.

{
    my $slow = backend_start('slow');
    my $a = Outrider->start(
        role => 'node',
        conf => {
            modules => ['proxy'], workers => 1, inventory => { file => $inv },
            proxy => {
                outbound => { address => '127.0.0.1:0', default_cluster => 'slow' },
                inbound => { enabled => JSON::PP::false },
                clusters => [ { name => 'slow', endpoints => ["127.0.0.1:$slow->{port}"] } ],
                # Nothing else asks for the address at accept (x-forwarded-for or the mesh would).
                xff => 'off', mesh => { enabled => JSON::PP::false },
            },
        });
    my $s = IO::Socket::INET->new(PeerAddr => $a->addr('proxy.outbound'), LocalAddr => '127.0.0.2',
                                  Proto => 'tcp', Timeout => 5) or die "connect: $!";
    # The reset must come once the proxy has the request (in flight
    # upstream), not before it read it: the backend marks its arrival.
    print $s "GET /sleep?ms=1500&mark=$dir/arrived HTTP/1.1\r\nHost: svc.test\r\n\r\n";
    ok(Outrider::poll(15, sub { -e "$dir/arrived" }), 'the request reached the backend');
    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)) or die "SO_LINGER: $!";
    close $s; # RST
    ok(wait_metric($a, qr/^outrider_proxy_caller_requests_total\{cluster="slow",code_class="4xx",caller_namespace="shop",caller_workload="cart"\} 1$/m, 15),
       'a request whose client reset (499) counts under the client\'s pod, not unknown')
        or diag(metrics($a));
    $a->finish_ok;
    backend_stop($slow);
}

# --- the cap: max_callers 1 ----------------------------------------------------------

{
    my $a = node_agent(max_callers => 1);
    is(from($a, '127.0.0.2'), 'b1 200', 'first caller (shop)');
    is(from($a, '127.0.0.3'), 'b1 200', 'second caller (billing), over the cap') for 1 .. 2;
    is(from($a, '127.0.0.4'), 'b1 200', 'unknown caller');
    ok(wait_metric($a, series('other', 'other', '2xx')), 'the other series appears');
    # A request is counted after its answer went out: wait for all four.
    ok(wait_metric($a, qr/^outrider_proxy_requests_total\{cluster="b",code_class="2xx"\} 4$/m), 'all 4 requests counted');
    my $m = metrics($a);
    my ($shop) = $m =~ series('shop', 'cart', '2xx');
    is($shop, 1, 'the first caller keeps its own series');
    my ($other) = $m =~ series('other', 'other', '2xx');
    is($other, 2, 'the second caller is counted as other/other');
    unlike($m, qr/caller_namespace="billing"/, 'no series for the caller over the cap');
    my ($unknown) = $m =~ series('unknown', 'unknown', '2xx');
    is($unknown, 1, 'unknown is not counted against the cap');
    like($m, qr/^outrider_proxy_caller_metrics_overflow_total 2$/m, 'overflow counter: 2 callers (one per connection)');
    my @lines = $a->log =~ /(caller metrics: worker 0 already counts proxy\.caller_metrics\.max_callers \(1\) callers; billing\/ledger)/g;
    is(scalar @lines, 1, 'the cap is logged once (rate-limited), naming the caller') or diag($a->log);
    Outrider::promtool_ok($m, 'promtool check metrics accepts the exposition (cap)');
    $a->finish_ok;
}

# --- sidecar role: the own pod; and off -----------------------------------------------

for my $enabled (1, 0) {
    my $a = Outrider->start(
        role => 'sidecar',
        env => { POD_NAME => 'web-0', POD_NAMESPACE => 'front' },
        conf => {
            modules => ['proxy'],
            workers => 1,
            identity => { labels => { 'app' => 'frontend' } },
            proxy => {
                outbound => { address => '127.0.0.1:0', default_cluster => 'b' },
                inbound => { enabled => JSON::PP::false },
                clusters => [ { name => 'b', endpoints => ["127.0.0.1:$be->{port}"] } ],
                caller_metrics => { enabled => $enabled ? JSON::PP::true : JSON::PP::false,
                                    workload_labels => ['team', 'app'] },
            },
        });
    my $out = 'http://' . $a->addr('proxy.outbound');
    my (undef, $body) = curl('-H', 'Host: x', "$out/id");
    is($body, 'b1', 'sidecar proxies');
    (undef, $body) = curl('-H', 'Host: x', '--http2-prior-knowledge', "$out/status?code=503");
    ok(wait_metric($a, qr/^outrider_proxy_requests_total\{cluster="b",code_class="5xx"\} 1$/m), 'both requests counted');
    my $m = metrics($a);
    if ($enabled) {
        my ($ok) = $m =~ series('front', 'frontend', '2xx');
        is($ok, 1, 'sidecar: the caller is the own pod, workload from its label app (team absent)');
        my ($bad) = $m =~ series('front', 'frontend', '5xx');
        is($bad, 1, '... the HTTP/2 request too, by status class');
        Outrider::promtool_ok($m, 'promtool check metrics accepts the exposition (sidecar)');
    } else {
        unlike($m, qr/outrider_proxy_caller_/, 'caller_metrics.enabled false: no caller families');
        like($m, qr/^outrider_proxy_requests_total\{cluster="b",code_class="2xx"\} 1$/m, '... the request metrics stay');
    }
    $a->finish_ok;
}

# --- config errors name their place, --describe documents the keys -------------------

{
    my ($d, $path) = Outrider::write_conf({
        modules => ['proxy'],
        proxy => { caller_metrics => { max_callers => 0, workload_labels => ['app', ''] } },
    });
    my ($rc, $out) = Outrider::run_cmd(Outrider::bin(), '-t', '-c', $path, '--modules-dir', Outrider::modules_dir());
    isnt($rc, 0, 'a bad caller_metrics config is refused');
    like($out, qr/proxy\.caller_metrics\.max_callers: /, 'max_callers named');
    like($out, qr/proxy\.caller_metrics\.workload_labels\[1\]: /, 'the empty label key named');
    ($rc, $out) = Outrider::run_cmd(Outrider::bin(), '--describe', 'proxy', '--modules-dir', Outrider::modules_dir());
    like($out, qr/caller_metrics\.max_callers.*100/, '--describe proxy shows max_callers and its default');
    like($out, qr/caller_metrics\.workload_labels/, '... and workload_labels');
}

backend_stop($be);
done_testing;

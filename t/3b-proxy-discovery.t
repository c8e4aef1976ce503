#!/usr/bin/env perl
# Endpoint discovery: a watched endpoints file (atomic and in-place
# rewrites move traffic, a broken file keeps the last good set and is
# reported with file:line:column, an empty list answers 503, a missing file
# is waited for), endpoints that stay keep their pooled connections, removed
# ones finish their requests and close; and DNS names resolved again while
# the agent runs: inside a mount namespace whose /etc/hosts we rewrite, a
# name moving to another address moves the traffic, both families of a
# dual-stack name get traffic, and a name that stops resolving keeps its
# last addresses.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use Outrider;
use ProxyTest qw(proxy_agent backend_start backend_stop curl wait_metric refused_port);

my $dir = tempdir('outrider-disc-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh or die "$path: $!";
}

# Replaced by rename, as config management tools and kubelet do.
sub write_atomic {
    my ($path, $text) = @_;
    write_file("$path.tmp", $text);
    rename "$path.tmp", $path or die "rename: $!";
}

sub eps_json { return encode_json({ endpoints => [@_] }) }

my ($agent, $addr);

# The value of the metric line re captures (0 if absent).
sub metric_value {
    my ($re) = @_;
    my ($code, $m) = $agent->http('GET', 'admin', '/metrics');
    return $m =~ $re ? $1 : 0;
}

sub get {
    my ($host, $path) = @_;
    my ($rc, $out) = curl('-w', '\n%{http_code}', '-H', "Host: $host", "http://$addr" . ($path // '/id'));
    my ($body, $code) = $out =~ /\A(.*)\n(\d{3})\z/s or return (0, '');
    return ($code, $body);
}

sub ids {
    my ($host, $n) = @_;
    my %seen;
    for (1 .. $n) {
        my ($code, $body) = get($host);
        $seen{ $code == 200 ? $body : "status $code" }++;
    }
    return \%seen;
}

# Polls until a request to host is answered by want (a name, or "status N").
sub wait_for {
    my ($host, $want, $timeout) = @_;
    return Outrider::poll($timeout || 15, sub {
        my ($code, $body) = get($host);
        return ($code == 200 ? $body : "status $code") eq $want;
    }) ? 1 : 0;
}

# --- the endpoints file --------------------------------------------------------------

my @be = map { backend_start("f$_") } 1 .. 2;
my $gpid = open(my $gfh, '-|', '/usr/bin/python3', Outrider::root() . '/t/proxy/grpc_server.py') or die;
my $gport = <$gfh>;
chomp $gport;
write_atomic("$dir/h2.json", eps_json("127.0.0.1:$gport"));
my @ep = map { "127.0.0.1:$_->{port}" } @be;
my $file = "$dir/eps.json";
my $late = "$dir/late/eps.json";
write_atomic($file, eps_json($ep[0]));
write_atomic("$dir/none.json", eps_json());
$agent = proxy_agent(
    conf => { workers => 1 }, # one pool, so that connection reuse is observable
    proxy => {
        clusters => [
            { name => 'filec', endpoints_file => $file, lb => 'round_robin' },
            { name => 'late', endpoints_file => $late },
            { name => 'grpc', endpoints_file => "$dir/none.json", protocol => 'h2' },
            { name => 'h2c', endpoints_file => "$dir/h2.json", protocol => 'h2' },
        ],
        routes => [
            { authority => 'file.test', cluster => 'filec' },
            { authority => 'late.test', cluster => 'late' },
            { authority => 'grpc.test', cluster => 'grpc' },
            { authority => 'h2c.test', cluster => 'h2c' },
        ],
    });
$addr = $agent->addr('proxy.outbound');

is_deeply(ids('file.test', 6), { f1 => 6 }, 'the file\'s one endpoint takes every request');
ok(wait_metric($agent, qr/^outrider_proxy_cluster_endpoints\{cluster="filec"\} 1$/m), 'endpoints gauge: 1');
my ($code, $peer) = get('file.test', '/peer');
my ($f1_port) = $peer =~ /^f1 (\d+)$/;
ok($f1_port, "f1 saw the proxy's connection from port $f1_port");

write_atomic($file, eps_json(@ep));
ok(wait_for('file.test', 'f2'), 'file replaced by rename: the new endpoint gets traffic');
my $seen = ids('file.test', 20);
ok(($seen->{f1} // 0) >= 5 && ($seen->{f2} // 0) >= 5 && $seen->{f1} + $seen->{f2} == 20, 'both endpoints share the load')
    or diag(explain $seen);
ok(wait_metric($agent, qr/^outrider_proxy_cluster_endpoints\{cluster="filec"\} 2$/m), 'endpoints gauge: 2');
my %f1_ports;
for (1 .. 4) {
    my ($c, $b) = get('file.test', '/peer');
    $f1_ports{$1}++ if $b =~ /^f1 (\d+)$/;
}
ok($f1_ports{$f1_port}, 'the endpoint that stayed kept its pooled connection') or diag(explain \%f1_ports);

# f1 removed by a rewrite in place while it carries a long request: that
# request completes, new ones go to f2 only, and f1's connection then closes.
# Round robin with one worker alternates: line the cursor up so that the
# long request lands on f1.
my ($c1, $who) = get('file.test');
get('file.test') if $who eq 'f1';
my $bg = open(my $bgfh, '-|', 'curl', '-s', '-m', '20', '-H', 'Host: file.test',
              "http://$addr/sleep?ms=2500&mark=$dir/arrived") or die;
my $until = time + 10;
sleep 0.02 until -e "$dir/arrived" || time > $until;
ok(-e "$dir/arrived", 'the long request reached its backend');
write_file($file, eps_json($ep[1]));
# Round robin answers f2 every other request whatever the set is, so only
# the gauge tells that the rewrite has been read.
ok(wait_metric($agent, qr/^outrider_proxy_cluster_endpoints\{cluster="filec"\} 1$/m, 15),
   'file rewritten in place: read (endpoints gauge: 1)');
ok(wait_for('file.test', 'f2'), 'file rewritten in place: traffic goes on');
is_deeply(ids('file.test', 10), { f2 => 10 }, 'the removed endpoint gets no new request');
my $long = do { local $/; <$bgfh> };
close $bgfh;
is($long, 'f1', 'the request in flight when its endpoint was removed completed');
ok(wait_metric($agent, qr/^outrider_proxy_upstream_connections\{cluster="filec"\} 1$/m, 15),
   'the removed endpoint\'s connections are closed, not pooled');

# A broken file keeps the last good set; the log names file:line:column.
my $failures_re = qr/^outrider_proxy_discovery_failures_total\{cluster="filec",source="file"\} (\d+)$/m;
my $failures = metric_value($failures_re);
write_file($file, "{\"endpoints\": [\"$ep[0]\",\n  ]}");
ok($agent->wait_log(qr/\Q$file\E:2:\d+: /), 'parse error logged with file:line:column');
my $until_count = time + 10;
sleep 0.05 while metric_value($failures_re) <= $failures && time < $until_count;
cmp_ok(metric_value($failures_re), '>', $failures, 'failure counted');
is_deeply(ids('file.test', 5), { f2 => 5 }, 'after a parse error the last good endpoints serve');
write_atomic($file, '{"endpoints": ["' . $ep[0] . '", 5]}');
ok($agent->wait_log(qr/\Q$file\E: \$\.endpoints\[1\]: expected a string/), 'wrong type logged with its JSON path');
is_deeply(ids('file.test', 5), { f2 => 5 }, 'after a type error the last good endpoints serve');

# An empty list: 503 with the reason.
write_atomic($file, eps_json());
ok(wait_for('file.test', 'status 503'), 'empty endpoint list: 503');
($code, my $body) = get('file.test');
like($body, qr/no endpoints in cluster filec \(endpoints file \Q$file\E lists no endpoints\)/, '503 says why');
ok(wait_metric($agent, qr/^outrider_proxy_cluster_endpoints\{cluster="filec"\} 0$/m), 'endpoints gauge: 0');
write_atomic($file, eps_json($ep[0]));
ok(wait_for('file.test', 'f1'), 'endpoints back: traffic flows again');

# gRPC to a cluster without endpoints: UNAVAILABLE.
my ($grc, $gout) = curl('-D', '-', '-o', '/dev/null', '--http2-prior-knowledge', '-H', 'Host: grpc.test',
                        '-H', 'content-type: application/grpc', '-H', 'te: trailers', '--data-binary', '',
                        "http://$addr/pkg.Svc/Call");
like($gout, qr/^grpc-status: 14\r?$/m, 'gRPC call to a cluster without endpoints: UNAVAILABLE') or diag($gout);
like($gout, qr/^grpc-message: no endpoints in cluster grpc/m, '... with the reason');

# An HTTP/2 endpoint removed: its idle session closes.
open(my $gc, '-|', '/usr/bin/python3', Outrider::root() . '/t/proxy/grpc_client.py', $addr, 'h2c.test', 'unary', 'hi')
    or die;
my $gres = do { local $/; <$gc> };
close $gc;
like($gres, qr/"resp": "hi"/, 'gRPC through an endpoints-file h2 cluster');
ok(wait_metric($agent, qr/^outrider_proxy_upstream_connections\{cluster="h2c"\} 1$/m), 'its HTTP/2 session stays open');
write_atomic("$dir/h2.json", eps_json());
ok(wait_metric($agent, qr/^outrider_proxy_upstream_connections\{cluster="h2c"\} 0$/m, 15),
   'endpoint removed: its idle HTTP/2 session is closed');

# A file (and directory) that does not exist yet is waited for.
($code, $body) = get('late.test');
is($code, 503, 'a cluster whose file does not exist yet answers 503');
like($body, qr/waiting for endpoints file \Q$late\E/, '... saying which file it waits for');
ok($agent->log =~ /cluster late: endpoints file \Q$late\E: No such file or directory/, 'the missing file is logged');
mkdir "$dir/late";
write_atomic($late, eps_json($ep[1]));
ok(wait_for('late.test', 'f2'), 'the file appeared: its endpoints serve');
$agent->finish_ok;
backend_stop($_) for @be;
kill 'TERM', $gpid;
waitpid($gpid, 0);

# Config errors name their place.
{
    my ($d, $path) = Outrider::write_conf({
        modules => ['proxy'],
        proxy => {
            clusters => [
                { name => 'a', endpoints_file => 'relative.json' },
                { name => 'b', endpoints => ['10.0.0.1:80'], endpoints_file => '/x.json' },
                { name => 'c' },
                { name => 'd', endpoints => ['10.0.0.1:80', '10.0.0.300:80'] },
            ],
        },
    });
    my ($rc, $out) = Outrider::run_cmd(Outrider::bin(), '-t', '-c', $path, '--modules-dir', Outrider::modules_dir());
    isnt($rc, 0, 'bad discovery config is refused');
    like($out, qr/proxy\.clusters\[0\]\.endpoints_file: must be an absolute path/, 'relative file named');
    like($out, qr/proxy\.clusters\[1\]\.endpoints_file: set either endpoints or endpoints_file/, 'both named');
    like($out, qr/proxy\.clusters\[2\]\.endpoints: a cluster needs endpoints/, 'neither named');
    like($out, qr/proxy\.clusters\[3\]\.endpoints\[1\]: expected an IP address or a DNS name/,
         'a mistyped IPv4 address is not taken for a DNS name');
}

# --- DNS names, in a mount namespace with our own /etc/hosts -----------------------------

SKIP: {
    my ($ok) = Outrider::run_cmd('unshare', '-m', 'true');
    skip 'cannot create a mount namespace here', 1 if $ok != 0;
    my $hosts = "$dir/hosts";
    my $resolv = "$dir/resolv.conf";
    # Names missing from hosts go to a DNS server that is not there: they
    # fail at once instead of waiting for a real one.
    write_file($resolv, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
    my $a1 = backend_start('d1', 0, '127.0.0.2:0');
    my $p = $a1->{port};
    my $a2 = backend_start('d2', 0, "127.0.0.3:$p");
    my $v4 = backend_start('v4', 0, '127.0.0.1:0');
    my $q = $v4->{port};
    my $v6 = backend_start('v6', 0, "::1:$q");
    write_file($hosts, "127.0.0.2 svc.test\n127.0.0.1 dual.test\n::1 dual.test\n");
    $agent = proxy_agent(
        wrap => [ 'unshare', '-m', 'sh', '-c',
                  "mount --bind $hosts /etc/hosts && mount --bind $resolv /etc/resolv.conf && exec \"\$@\"", 'sh' ],
        proxy => {
            clusters => [
                { name => 'dnsc', endpoints => ["svc.test:$p"], dns_refresh => '200ms', lb => 'round_robin' },
                { name => 'dual', endpoints => ["dual.test:$q"], lb => 'round_robin' },
                { name => 'v4only', endpoints => ["dual.test:$q"], dns_family => 'ipv4' },
            ],
            routes => [
                { authority => 'dns.test', cluster => 'dnsc' },
                { authority => 'dual.test', cluster => 'dual' },
                { authority => 'v4.test', cluster => 'v4only' },
            ],
        });
    $addr = $agent->addr('proxy.outbound');
    ok(wait_for('dns.test', 'd1'), 'a DNS name\'s address serves');
    is_deeply(ids('dns.test', 5), { d1 => 5 }, '... only it');
    # Each cluster's first resolution ends on its own (the agent is started
    # before they do): wait for theirs, not only dnsc's.
    ok(wait_metric($agent, qr/^outrider_proxy_cluster_endpoints\{cluster="dual"\} 2$/m), 'endpoints gauge: dual 2');
    ok(wait_metric($agent, qr/^outrider_proxy_cluster_endpoints\{cluster="v4only"\} 1$/m), 'endpoints gauge: v4only 1');
    $seen = ids('dual.test', 20);
    ok($seen->{v4} && $seen->{v6} && $seen->{v4} + $seen->{v6} == 20, 'a dual-stack name: IPv4 and IPv6 both get traffic')
        or diag(explain $seen);
    is_deeply(ids('v4.test', 6), { v4 => 6 }, 'dns_family ipv4: only the IPv4 address');

    # The bind mount pins the file: rewrite it in place.
    write_file($hosts, "127.0.0.3 svc.test\n127.0.0.1 dual.test\n::1 dual.test\n");
    ok(wait_for('dns.test', 'd2'), 'the name moved to another address: traffic follows');
    is_deeply(ids('dns.test', 6), { d2 => 6 }, '... and leaves the old address');
    write_file($hosts, "127.0.0.2 svc.test\n127.0.0.3 svc.test\n127.0.0.1 dual.test\n::1 dual.test\n");
    ok(wait_metric($agent, qr/^outrider_proxy_cluster_endpoints\{cluster="dnsc"\} 2$/m), 'two addresses: two endpoints');
    $seen = ids('dns.test', 10);
    is_deeply($seen, { d1 => 5, d2 => 5 }, 'both addresses get traffic') or diag(explain $seen);

    write_file($hosts, "127.0.0.1 dual.test\n::1 dual.test\n");
    ok($agent->wait_log(qr/cluster dnsc: cannot resolve svc\.test: .*keeping the last good endpoints \(2\)/),
       'a failed resolution is logged');
    ok(wait_metric($agent, qr/^outrider_proxy_discovery_failures_total\{cluster="dnsc",source="dns"\} [1-9]/m),
       'and counted');
    $seen = ids('dns.test', 10);
    is_deeply($seen, { d1 => 5, d2 => 5 }, 'the last good addresses keep serving') or diag(explain $seen);
    my @warns = $agent->log =~ /cannot resolve svc\.test/g;
    cmp_ok(scalar(@warns), '<=', 2, 'repeated failures are not logged every refresh');

    # A reload stops the old generation's resolutions and starts new ones.
    write_file($hosts, "127.0.0.3 svc.test\n127.0.0.1 dual.test\n::1 dual.test\n");
    $agent->signal('HUP');
    ok($agent->wait_ready(20, 2), 'reloaded');
    ok(wait_for('dns.test', 'd2'), 'after a reload the new generation resolves the name');
    is_deeply(ids('dns.test', 4), { d2 => 4 }, '... to its current address only (the old one stopped cleanly: see the exit checks)');
    $agent->finish_ok;
    backend_stop($_) for $a1, $a2, $v4, $v6;
}

# --- health checks follow the endpoint set -----------------------------------------
# An endpoint the file adds to a cluster with health checks is checked at
# once and unhealthy until a check passes: one nothing listens on never
# counts as usable nor takes traffic; one that answers joins.
{
    my @hb = map { backend_start("h$_") } 1 .. 2;
    my $dead = '127.0.0.1:' . refused_port();
    my $hfile = "$dir/hc.json";
    write_atomic($hfile, eps_json("127.0.0.1:$hb[0]{port}"));
    $agent = proxy_agent(
        conf => { workers => 1 },
        proxy => {
            clusters => [
                { name => 'hc', endpoints_file => $hfile, lb => 'round_robin', retries => 0,
                  health_check => { path => '/id', interval => '30s', timeout => '1s',
                                    unhealthy_threshold => 1, healthy_threshold => 1 } },
            ],
            routes => [ { authority => 'hc.test', cluster => 'hc' } ],
        });
    $addr = $agent->addr('proxy.outbound');
    ok(wait_metric($agent, qr/^outrider_proxy_upstream_healthy\{cluster="hc"\} 1$/m), 'hc: the first endpoint passed its check');
    write_atomic($hfile, eps_json("127.0.0.1:$hb[0]{port}", $dead));
    ok(wait_metric($agent, qr/^outrider_proxy_health_check_failures_total\{cluster="hc"\} [1-9]/m),
       'hc: the added endpoint is checked at once (not after the 30 s interval), and fails');
    ok(wait_metric($agent, qr/^outrider_proxy_cluster_endpoints\{cluster="hc"\} 2$/m), 'hc: two endpoints');
    ok(wait_metric($agent, qr/^outrider_proxy_upstream_healthy\{cluster="hc"\} 1$/m), 'hc: still one usable');
    is_deeply(ids('hc.test', 6), { h1 => 6 }, 'hc: the failing new endpoint takes no traffic');
    write_atomic($hfile, eps_json("127.0.0.1:$hb[0]{port}", $dead, "127.0.0.1:$hb[1]{port}"));
    ok(wait_metric($agent, qr/^outrider_proxy_upstream_healthy\{cluster="hc"\} 2$/m), 'hc: a passing new endpoint joins');
    is_deeply(ids('hc.test', 6), { h1 => 3, h2 => 3 }, 'hc: and shares the traffic');
    write_atomic($hfile, eps_json("127.0.0.1:$hb[1]{port}"));
    ok(wait_metric($agent, qr/^outrider_proxy_upstream_healthy\{cluster="hc"\} 1$/m), 'hc: removed endpoints leave the gauge');
    is_deeply(ids('hc.test', 4), { h2 => 4 }, 'hc: the kept endpoint stays healthy');
    $agent->finish_ok;
    backend_stop($_) for @hb;
}

done_testing;

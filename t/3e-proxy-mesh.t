#!/usr/bin/env perl
# The agent-to-agent mesh (proxy.mesh), with network namespaces as nodes
# and pods, each agent in its own namespace:
#
#   switch netns: bridge 10.77.0.254/24, an app without agent (ext :8080)
#   node A  10.77.0.1   node agent; the caller (curl) runs here, and in
#                       pods web-a 10.77.1.10 (namespace shop) and x-a
#                       10.77.1.11 (namespace untrusted), nested netns that
#                       A knows by source address from its inventory
#   node B  10.77.0.2   node agent; pod B 10.77.2.10 behind it (a nested
#                       netns, routed by B, which does not forward: pod B
#                       is reachable from A only through B's agent)
#   pod C   10.77.0.30  a pod with a sidecar agent (inbound :4143), app :8080
#
# A's outgoing calls for pod B go A-outgoing -> B-incoming -> pod B (the
# backend sees B as its peer, never the header); for pod C they go to C's
# sidecar (mixed mesh); ext, which has no agent, is called directly. B and
# C refuse destinations that are not theirs. C's own outgoing calls for
# pod B go through B (sidecar to node).
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use JSON::PP;
use POSIX ();
use Outrider;

plan skip_all => 'needs root for ip netns' unless $> == 0;
plan skip_all => 'ip netns unavailable' unless system('ip netns list >/dev/null 2>&1') == 0;

my $root = Outrider::root();

# Configuration errors name their place.
sub conf_check {
    my ($conf) = @_;
    my (undef, $path) = Outrider::write_conf({ modules => ['proxy'], proxy => $conf });
    return Outrider::run_cmd(Outrider::bin(), '-t', '-c', $path, '--modules-dir', Outrider::modules_dir(),
                             '--role', 'node');
}
my ($ccode, $cout) = conf_check({ mesh => { enabled => JSON::PP::true, agents => [
    { node => 'n1', address => '10.0.0.1:4141', pods => ['10.1.0.0/24', '10.1.0.5/24', 'pods'] },
    { address => 'agent-b:4141', pods => ['10.2.0.0/33'] } ] } });
is($ccode, 1, 'bad mesh config is refused');
like($cout, qr/proxy\.mesh\.agents\[0\]\.pods\[1\]: expected a CIDR like "10\.1\.0\.0\/24" \(no host bits\) or an address, got "10\.1\.0\.5\/24"/,
     'host bits in a CIDR: named with its path');
like($cout, qr/proxy\.mesh\.agents\[0\]\.pods\[2\]: expected a CIDR/, 'not a CIDR');
like($cout, qr/proxy\.mesh\.agents\[1\]\.address: expected an IP address with a port, got "agent-b:4141"/,
     'an agent address must be an IP');
like($cout, qr/proxy\.mesh\.agents\[1\]\.pods\[0\]: expected a CIDR/, 'prefix longer than 32');
(undef, $cout) = conf_check({ mesh => { enabled => JSON::PP::true, agents => [ { address => '10.0.0.3:4141', pods => [] } ] } });
like($cout, qr/proxy\.mesh\.agents\[0\]\.pods: expected an array of 1\.\.64 items/, 'an agent without pods');
($ccode, $cout) = conf_check({ mesh => { agents => [ { address => '10.0.0.1:4141', pods => ['10.1.0.0/24'] } ] } });
like($cout, qr/proxy\.mesh\.agents: agents are given but mesh\.enabled is false/, 'agents without enabled are an error');
($ccode, $cout) = conf_check({ mesh => { enabled => JSON::PP::true, agents => [
    { node => 'n1', address => '10.0.0.1:4141', pods => ['10.1.0.0/24', 'fd00:1::/64', '10.1.9.9'] } ] } });
is($ccode, 0, 'a good mesh config passes -t') or diag($cout);
my $dir = tempdir('outrider-pmesh-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my %ns = (sw => "pmesh-sw-$$", a => "pmesh-a-$$", b => "pmesh-b-$$", bp => "pmesh-bp-$$", c => "pmesh-c-$$",
          ap => "pmesh-ap-$$", aq => "pmesh-aq-$$");
my @pids; # backends we started
END {
    local $?; # keep the test's exit status
    for my $p (@pids) { kill 'TERM', $p; waitpid($p, 0) }
    system("ip netns del $_ 2>/dev/null") for values %ns;
}
sub sh { my $c = join ' ', @_; system($c) == 0 or die "failed: $c\n" }
sub nsx { my ($n, @cmd) = @_; sh('ip', 'netns', 'exec', $ns{$n}, @cmd) }

sh("ip netns add $_") for values %ns;
nsx($_, 'ip link set lo up') for keys %ns;
nsx('sw', 'ip link add br0 type bridge');
nsx('sw', 'ip addr add 10.77.0.254/24 dev br0');
nsx('sw', 'ip link set br0 up');
# A, B and pod C hang off the bridge; the veth names are per namespace, so
# short fixed names do not collide with other tests.
my %on_bridge = (a => '10.77.0.1', b => '10.77.0.2', c => '10.77.0.30');
for my $n (sort keys %on_bridge) {
    nsx('sw', "ip link add sw-$n type veth peer name eth0 netns $ns{$n}");
    nsx('sw', "ip link set sw-$n master br0");
    nsx('sw', "ip link set sw-$n up");
    nsx($n, "ip addr add $on_bridge{$n}/24 dev eth0");
    nsx($n, 'ip link set eth0 up');
}
nsx('b', "ip link add pod0 type veth peer name eth0 netns $ns{bp}");
nsx('b', 'ip addr add 10.77.2.1/24 dev pod0');
nsx('b', 'ip link set pod0 up');
nsx('b', 'sysctl -q -w net.ipv4.ip_forward=0');
nsx('bp', 'ip addr add 10.77.2.10/24 dev eth0');
nsx('bp', 'ip link set eth0 up');
nsx('bp', 'ip route add default via 10.77.2.1');
nsx($_, 'ip route add 10.77.2.0/24 via 10.77.0.2') for qw(a c sw);
# Two pods behind node A (routed /32s, as CNIs do), in different namespaces.
for my $p (['ap', 'ap0', '10.77.1.10'], ['aq', 'aq0', '10.77.1.11']) {
    my ($n, $if, $ip) = @$p;
    nsx('a', "ip link add $if type veth peer name eth0 netns $ns{$n}");
    nsx('a', "ip link set $if up");
    nsx('a', "ip route add $ip/32 dev $if");
    nsx($n, "ip addr add $ip/32 dev eth0");
    nsx($n, 'ip link set eth0 up');
    nsx($n, 'ip route add 10.77.0.1/32 dev eth0');
    nsx($n, 'ip route add default via 10.77.0.1');
}

# Backends: pod B (HTTP/1.1 and HTTP/2), pod C's app, ext (no agent).
sub backend {
    my ($n, @cmd) = @_;
    # A plain pipe, not a piped open: closing that one would wait for the
    # backend, which only END stops.
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $r;
        open STDOUT, '>&', $w or die;
        exec 'ip', 'netns', 'exec', $ns{$n}, '/usr/bin/python3', @cmd or POSIX::_exit(127);
    }
    close $w;
    push @pids, $pid;
    my $line = <$r>;
    die "backend @cmd did not start" unless defined $line && $line =~ /^(ready|\d+)/;
    return $r;
}
my $mb = "$root/t/proxy/mesh_backend.py";
my @fhs = (backend('bp', $mb, '10.77.2.10', 8080, 'pod-b'), backend('bp', $mb, '10.77.2.10', 8082, 'pod-b2'),
           backend('c', $mb, '10.77.0.30', 8080, 'pod-c'), backend('sw', $mb, '10.77.0.254', 8080, 'ext'),
           backend('bp', "$root/t/proxy/grpc_server.py", '10.77.2.10:50051'));
mkdir "$dir/docroot" or die;
open my $doc, '>', "$dir/docroot/id" or die; print $doc "pod-b-h2\n"; close $doc;
my $h2pid = fork // die;
if (!$h2pid) {
    open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null';
    exec 'ip', 'netns', 'exec', $ns{bp}, 'nghttpd', '--no-tls', '-a', '10.77.2.10', '-d', "$dir/docroot", '8081'
        or POSIX::_exit(127);
}
push @pids, $h2pid;

# Runs curl inside a namespace; returns (http code, body).
sub ns_curl {
    my ($n, @args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', '/dev/null';
        exec 'ip', 'netns', 'exec', $ns{$n}, 'curl', '-s', '-m', '5', '-o', '-', '-w', '\n%{http_code}', @args
            or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my ($body, $code) = $out =~ /\A(.*)\n(\d{3})\z/s or return (0, $out);
    return ($code, $body);
}
sub metrics {
    my ($n, $agent) = @_;
    my (undef, $m) = ns_curl($n, 'http://' . $agent->addr('admin') . '/metrics');
    return $m;
}
sub counter {
    my ($m, $re) = @_;
    return $m =~ /^$re (\S+)$/m ? $1 + 0 : 0;
}
# Waits until a backend answers inside its namespace (nghttpd has no ready line).
sub wait_up {
    my ($n, @args) = @_;
    my $until = time + 10;
    while (time < $until) {
        my ($code) = ns_curl($n, @args);
        return 1 if $code == 200;
        sleep 0.05;
    }
    return 0;
}
ok(wait_up('bp', '--http2-prior-knowledge', 'http://10.77.2.10:8081/id'), 'pod B HTTP/2 backend is up');

my $inv = "$dir/pods-b.json";
open my $ifh, '>', $inv or die;
print $ifh encode_json({ pods => [
    { namespace => 'shop', name => 'cart-1', uid => 'u1', node => 'node-b', ip => '10.77.2.10' },
    # Listed, but on another node: B must not deliver to it.
    { namespace => 'shop', name => 'web-1', uid => 'u2', node => 'node-c', ip => '10.77.0.30' },
    # A hostNetwork pod: its IP is node B's own.
    { namespace => 'kube-system', name => 'proxy-b', uid => 'u5', node => 'node-b', ip => '10.77.0.2' },
    # A pod of node A: B finds its labels by the name A's agent sends.
    { namespace => 'shop', name => 'web-a', uid => 'u3', node => 'node-a', ip => '10.77.1.10', labels => { app => 'web' } },
] });
close $ifh;
# B's route script runs on deliveries too: it tells pod B who called.
open $ifh, '>', "$dir/mesh_caller.lua" or die;
print $ifh <<'LUA';
function route(req)
  local c = req.caller
  local who = c.name ~= "" and (c.namespace .. "/" .. c.name) or "none"
  if c.labels.app then who = who .. " app=" .. c.labels.app end
  return { set_headers = { ["x-seen-caller"] = who } }
end
LUA
close $ifh;

my @all_agents = (
    { node => 'node-a', address => '10.77.0.1:4141', pods => ['10.77.1.0/24'] },
    { node => 'node-b', address => '10.77.0.2:4141', pods => ['10.77.2.0/24'] },
    { address => '10.77.0.30:4143', pods => ['10.77.0.30'] },
);
my @clusters = (
    { name => 'podb', endpoints => ['10.77.2.10:8080'] },
    { name => 'podb-h2', protocol => 'h2', endpoints => ['10.77.2.10:8081'] },
    { name => 'podb-grpc', protocol => 'h2', endpoints => ['10.77.2.10:50051'] },
    { name => 'podc', endpoints => ['10.77.0.30:8080'] },
    { name => 'ext', endpoints => ['10.77.0.254:8080'] },
);
my @routes = map { { authority => "$_.test", cluster => $_ } } qw(podb podb-h2 podb-grpc podc ext);
my $access = "$dir/access-b.json";

# B: the node agent of pod B; its local pods come from the inventory.
my $b = Outrider->start(
    role => 'node', netns => $ns{b}, env => { NODE_NAME => 'node-b' },
    conf => {
        modules => ['proxy', 'logs'],
        workers => 1,
        inventory => { file => $inv },
        scripts_dir => $dir,
        drain => { delay => '0s' },
        proxy => {
            outbound => { address => '10.77.0.2:4140' },
            inbound => { address => '10.77.0.2:4141' },
            script => 'mesh_caller.lua',
            # One slot per protocol: every other destination reuses it.
            mesh => { enabled => JSON::PP::true, local_slots => 1, agents => \@all_agents },
        },
        logs => { files => { paths => [] }, bus_streams => ['access'], buffer => { flush_interval => '20ms' },
                  outputs => [{ type => 'file', path => $access }] },
    });
# C: pod C's sidecar; its inbound is the incoming listener for pod C only.
my $c = Outrider->start(
    role => 'sidecar', netns => $ns{c},
    env => { POD_IP => '10.77.0.30', POD_NAME => 'web-1', POD_NAMESPACE => 'shop', NODE_NAME => 'node-c' },
    conf => {
        modules => ['proxy'],
        proxy => {
            outbound => { address => '127.0.0.1:4140' },
            mesh => { enabled => JSON::PP::true, agents => \@all_agents },
            clusters => \@clusters, routes => \@routes,
        },
    });
is($c->addr('proxy.inbound'), '10.77.0.30:4143', 'the sidecar\'s inbound listens on POD_IP:4143');
# A: the calling node's agent; its pods' identity (by source address) denies
# namespace "untrusted".
my $inv_a = "$dir/pods-a.json";
open $ifh, '>', $inv_a or die;
print $ifh encode_json({ pods => [
    { namespace => 'shop', name => 'web-a', uid => 'u3', node => 'node-a', ip => '10.77.1.10' },
    { namespace => 'untrusted', name => 'x-a', uid => 'u4', node => 'node-a', ip => '10.77.1.11' },
] });
close $ifh;
sub conf_a {
    my (@agents) = @_;
    return {
        modules => ['proxy'],
        workers => 2,
        drain => { delay => '0s' },
        inventory => { file => $inv_a, poll_interval => '200ms' },
        proxy => {
            script => 'proxy_deny_namespace.lua',
            outbound => { address => '10.77.0.1:4140' },
            inbound => { address => '10.77.0.1:4141' },
            mesh => { enabled => JSON::PP::true, agents => \@agents },
            clusters => \@clusters, routes => \@routes,
        },
    };
}
my $a = Outrider->start(role => 'node', netns => $ns{a}, env => { NODE_NAME => 'node-a' }, conf => conf_a(@all_agents));

my ($code, $body) = ns_curl('a', '-m', '1', 'http://10.77.2.10:8080/direct');
isnt($code, 200, 'control: pod B is not reachable from node A directly (B does not forward)');

# A -> B -> pod B, HTTP/1.1, a few times (both of A's workers, pooled connections).
my $ok = 0;
for my $i (1 .. 6) {
    ($code, $body) = ns_curl('a', '-H', 'Host: podb.test', "http://10.77.0.1:4140/r$i");
    my $j = $code == 200 ? eval { decode_json($body) } : undef;
    $ok++ if $j && $j->{name} eq 'pod-b' && $j->{peer} eq '10.77.2.1' && !defined $j->{dst} && $j->{host} eq 'podb.test';
}
is($ok, 6, 'A -> B-incoming -> pod B: answered by pod B, whose peer is node B (10.77.2.1), without x-outrider-dst')
    or diag("$code $body");

# A client's own x-outrider-dst is never passed on nor obeyed on the outgoing side.
($code, $body) = ns_curl('a', '-H', 'Host: podb.test', '-H', 'x-outrider-dst: 10.77.0.254:8080', 'http://10.77.0.1:4140/forged');
like($body, qr/"name": "pod-b".*"dst": null/, 'a forged x-outrider-dst from the app is dropped by the outgoing agent');

# HTTP/2 client, translated to HTTP/1.1 for the hop.
($code, $body) = ns_curl('a', '--http2-prior-knowledge', '-H', 'Host: podb.test', 'http://10.77.0.1:4140/h2');
like("$code $body", qr/^200 .*"name": "pod-b", "peer": "10\.77\.2\.1"/, 'HTTP/2 client -> A -> B -> pod B');

# An h2 cluster: the hop is an HTTP/2 session to B, delivered on an HTTP/2 session to pod B.
($code, $body) = ns_curl('a', '-H', 'Host: podb-h2.test', 'http://10.77.0.1:4140/id');
is("$code $body", "200 pod-b-h2\n", 'HTTP/1.1 client -> h2 cluster: A -> B (HTTP/2 hop) -> pod B (HTTP/2)');
($code, $body) = ns_curl('a', '--http2-prior-knowledge', '-H', 'Host: podb-h2.test', 'http://10.77.0.1:4140/id');
is("$code $body", "200 pod-b-h2\n", 'HTTP/2 client -> h2 cluster through B');

# gRPC through the mesh: messages, trailers and a failure status end to end.
sub grpc_call {
    my (@args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', '/dev/null';
        exec 'ip', 'netns', 'exec', $ns{a}, '/usr/bin/python3', "$root/t/proxy/grpc_client.py", '10.77.0.1:4140',
             'podb-grpc.test', @args or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return eval { decode_json($out) } || { raw => $out };
}
my $g = grpc_call('unary', 'through-b');
is(($g->{code} // '') . ' ' . ($g->{resp} // '') . ' ' . ($g->{trailers}{'x-trailer'} // ''), '0 through-b t1',
   'gRPC unary A -> B -> pod B, with its trailers');
$g = grpc_call('bidi');
is(join(',', @{ $g->{msgs} || [] }), 'echo:1,echo:2,echo:3', 'gRPC bidirectional stream through B');
$g = grpc_call('fail', '5:not here');
is(($g->{code} // '') . ' ' . ($g->{details} // ''), '5 not here', 'a gRPC status from pod B reaches the caller');

# No agent for ext: called directly, its peer is node A.
($code, $body) = ns_curl('a', '-H', 'Host: ext.test', 'http://10.77.0.1:4140/x');
like("$code $body", qr/^200 .*"name": "ext", "peer": "10\.77\.0\.1", "dst": null/, 'an endpoint without an agent is called directly');

# Mixed: node agent A -> sidecar C -> pod C's app (peer: the sidecar, on the pod's own IP).
($code, $body) = ns_curl('a', '-H', 'Host: podc.test', 'http://10.77.0.1:4140/c');
like("$code $body", qr/^200 .*"name": "pod-c", "peer": "10\.77\.0\.30", "dst": null/, 'node agent A -> sidecar C -> pod C');

# Sidecar to node: pod C's app calls pod B through its sidecar, then B.
($code, $body) = ns_curl('c', '-H', 'Host: podb.test', 'http://127.0.0.1:4140/from-c');
like("$code $body", qr/^200 .*"name": "pod-b", "peer": "10\.77\.2\.1".*"caller": "shop\/web-1", "fwd": null/,
     'sidecar C -> B-incoming -> pod B; B knows the caller by its address (pod web-1)');

# B's incoming refuses destinations that are not its node's pods.
($code, $body) = ns_curl('a', '-H', 'x-outrider-dst: 10.77.0.254:8080', 'http://10.77.0.2:4141/relay');
is($code, 403, 'B refuses a destination it does not know (no open relay)');
like($body, qr/not a pod of this node/, '... and says why');
($code, $body) = ns_curl('a', '-H', 'x-outrider-dst: 10.77.0.30:8080', 'http://10.77.0.2:4141/relay');
is($code, 403, 'B refuses a pod the inventory places on another node');
($code) = ns_curl('a', '-H', 'x-outrider-dst: 10.77.0.2:4141', 'http://10.77.0.2:4141/loop');
is($code, 403, 'B refuses its own listener as a destination (no loop)');
($code, $body) = ns_curl('a', '-H', 'x-outrider-dst: 10.77.0.2:22', 'http://10.77.0.2:4141/hostnet');
is("$code $body", "403 mesh: x-outrider-dst 10.77.0.2:22 is an address of this node, not a pod\n",
   'B refuses its own address, though a hostNetwork pod in the inventory has it (no relay into node services)');
($code) = ns_curl('a', '-H', 'x-outrider-dst: pod-b', 'http://10.77.0.2:4141/bad');
is($code, 400, 'B answers 400 to a malformed x-outrider-dst');
($code, $body) = ns_curl('a', '-H', 'x-outrider-dst: 10.77.2.10:8080', '-H', 'x-outrider-dst: 10.77.0.254:8080',
                         'http://10.77.0.2:4141/dup');
is($code, 400, 'B answers 400 to x-outrider-dst given twice');
($code) = ns_curl('a', '--http2-prior-knowledge', '-H', 'x-outrider-dst: 10.77.0.254:8080', 'http://10.77.0.2:4141/relay');
is($code, 403, '... also over HTTP/2');
ok($b->wait_log(qr/mesh: refused a request from 10\.77\.0\.1: mesh: x-outrider-dst 10\.77\.0\.254:8080 is not a pod of this node/),
   'B logs the refusal');
# A sidecar delivers only to its own pod.
($code, $body) = ns_curl('a', '-H', 'x-outrider-dst: 10.77.2.10:8080', 'http://10.77.0.30:4143/relay');
is($code, 403, 'sidecar C refuses a destination other than its pod');
($code) = ns_curl('a', '-H', 'x-outrider-dst: 127.0.0.1:8080', 'http://10.77.0.30:4143/loopback');
is($code, 403, 'sidecar C refuses loopback (where its admin endpoint listens)');
# B also delivers a direct mesh request for its pod (what A sends), header stripped.
($code, $body) = ns_curl('a', '-H', 'x-outrider-dst: 10.77.2.10:8080', 'http://10.77.0.2:4141/hop');
like("$code $body", qr/^200 .*"name": "pod-b".*"dst": null/, 'B delivers x-outrider-dst for its own pod');

# Node role identity by source address, with pods as network namespaces.
($code, $body) = ns_curl('ap', '-H', 'Host: podb.test', 'http://10.77.0.1:4140/from-pod-a');
like("$code $body", qr/^200 .*"name": "pod-b"/, 'pod web-a (namespace shop) behind node A reaches pod B through the mesh');
($code, $body) = ns_curl('aq', '-H', 'Host: podb.test', 'http://10.77.0.1:4140/from-pod-x');
is("$code $body", "403 namespace untrusted may not call podb.test\n",
   'pod x-a (namespace untrusted), known by its source address, is denied by the route script');
($code) = ns_curl('aq', '--http2-prior-knowledge', '-H', 'Host: podb.test', 'http://10.77.0.1:4140/from-pod-x');
is($code, 403, '... also over HTTP/2');

# Caller identity across the hop: A names the calling pod (x-outrider-caller),
# B believes it because A is a node agent of its agents list; B's route
# script sees pod web-a with its labels (from B's inventory, by name), and
# the header never reaches pod B. What the app sent in it is replaced.
my %seen;
sub seen {
    my ($n, @args) = @_;
    my ($code, $body) = ns_curl($n, @args);
    my $j = $code == 200 ? eval { decode_json($body) } : undef;
    return $j ? join('|', $j->{name}, $j->{caller} // 'null', $j->{fwd} // 'null') : "$code $body";
}
is(seen('ap', '-H', 'Host: podb.test', '-H', 'x-outrider-caller: kube-system/admin', 'http://10.77.0.1:4140/caller-h1'),
   'pod-b|shop/web-a app=web|null', 'pod web-a -> A -> B: B\'s script sees the calling pod (with labels); an app\'s forged header is replaced');
is(seen('ap', '--http2-prior-knowledge', '-H', 'Host: podb.test', 'http://10.77.0.1:4140/caller-h2c'),
   'pod-b|shop/web-a app=web|null', '... from an HTTP/2 client too');
($code, $body) = ns_curl('ap', '-H', 'Host: podb-h2.test', 'http://10.77.0.1:4140/id?caller-h2hop');
is("$code $body", "200 pod-b-h2\n", '... and over an HTTP/2 hop (access record checked below)');
# Not from an agent: the header is ignored, and stripped before the app.
is(seen('sw', '-H', 'x-outrider-dst: 10.77.2.10:8080', '-H', 'x-outrider-caller: shop/web-a', 'http://10.77.0.2:4141/forged-sw'),
   'pod-b|none|null', 'a forged x-outrider-caller from a non-agent address is ignored and never reaches the app');
# Pod C's app shares its sidecar's address (an agent of B's list), but a
# sidecar's word is not taken: B knows pod C by its address.
is(seen('c', '-H', 'x-outrider-dst: 10.77.2.10:8080', '-H', 'x-outrider-caller: shop/web-a', 'http://10.77.0.2:4141/forged-c'),
   'pod-b|shop/web-1|null', 'an app beside a sidecar forging x-outrider-caller gets its own identity');
# (HTTP/2 in, HTTP/2 delivered: pod B's nghttpd; the access record checks the caller.)
($code, $body) = ns_curl('c', '--http2-prior-knowledge', '-H', 'x-outrider-dst: 10.77.2.10:8081', '-H',
                         'x-outrider-caller: shop/web-a', 'http://10.77.0.2:4141/id?forged-c2');
is("$code $body", "200 pod-b-h2\n", '... also over HTTP/2 (access record checked below)');

# B's single HTTP/1.1 slot serves pod B's two ports in turn: its pooled
# connection to the previous one must not carry a request for the next.
my @seen;
for my $port (8082, 8080, 8082, 8080) {
    ($code, $body) = ns_curl('a', '-H', "x-outrider-dst: 10.77.2.10:$port", 'http://10.77.0.2:4141/slot');
    push @seen, $code == 200 && $body =~ /"name": "([\w-]+)"/ ? $1 : $code;
}
is("@seen", 'pod-b2 pod-b pod-b2 pod-b', 'a reused slot delivers each request to its own destination');

# Metrics: hops counted on both sides.
my $ma = metrics('a', $a);
my $metrics_b = metrics('b', $b);
my $mc = metrics('c', $c);
my $out_a = counter($ma, 'outrider_proxy_mesh_requests_total\{direction="outgoing"\}');
cmp_ok($out_a, '>=', 12, "A counted its outgoing hops ($out_a)");
is(counter($ma, 'outrider_proxy_mesh_requests_total\{direction="incoming"\}'), 0, 'A delivered nothing as incoming');
my $in_b = counter($metrics_b, 'outrider_proxy_mesh_requests_total\{direction="incoming"\}');
cmp_ok($in_b, '>=', 13, "B counted its incoming deliveries ($in_b)");
is(counter($metrics_b, 'outrider_proxy_mesh_requests_total\{direction="refused"\}'), 7, 'B counted its 7 refusals');
cmp_ok(counter($metrics_b, 'outrider_proxy_requests_total\{cluster="mesh-local",code_class="2xx"\}'), '>=', 13,
       'B: requests to local pods under cluster mesh-local');
is(counter($mc, 'outrider_proxy_mesh_requests_total\{direction="incoming"\}'), 1, 'C delivered the one call for its pod');
is(counter($mc, 'outrider_proxy_mesh_requests_total\{direction="outgoing"\}'), 1, 'C sent its one call for pod B through B');
# Caller metrics on both sides of the hop: the outgoing agent knows the pod
# by its address (A's inventory: web-a, no labels, so the name is the
# workload), the incoming one by the name A sent (B's inventory: app=web),
# under cluster mesh-local; A's own node has no pod: unknown at B.
my $cm = 'outrider_proxy_caller_requests_total';
cmp_ok(counter($ma, "$cm\\{cluster=\"podb\",code_class=\"2xx\",caller_namespace=\"shop\",caller_workload=\"web-a\"\\}"),
       '>=', 3, 'A: requests of pod web-a counted under its namespace and workload');
cmp_ok(counter($metrics_b, "$cm\\{cluster=\"mesh-local\",code_class=\"2xx\",caller_namespace=\"shop\",caller_workload=\"web\"\\}"),
       '>=', 4, 'B: deliveries for pod web-a under the workload its labels give (app=web), cluster mesh-local');
cmp_ok(counter($metrics_b, "$cm\\{cluster=\"mesh-local\",code_class=\"2xx\",caller_namespace=\"unknown\",caller_workload=\"unknown\"\\}"),
       '>=', 6, 'B: deliveries for callers A could not name (node A itself) are unknown');
is(counter($mc, "$cm\\{cluster=\"podb\",code_class=\"2xx\",caller_namespace=\"shop\",caller_workload=\"web\"\\}"), 1,
   'sidecar C: its outgoing call counted under its own pod (web-1: StatefulSet-like name, workload web)');
Outrider::promtool_ok($metrics_b, 'promtool check metrics accepts B\'s exposition');

# B's access records: the deliveries, to pod B's address.
my @r;
my $until = time + 10;
while (time < $until) {
    @r = Outrider::json_lines($access);
    last if (grep { ($_->{path} // '') eq '/r6' } @r) && (grep { ($_->{path} // '') eq '/id?forged-c2' } @r);
    sleep 0.05;
}
my ($r6) = grep { ($_->{path} // '') eq '/r6' } @r;
ok($r6, 'B wrote an access record for a delivered request');
is(join(' ', map { $r6->{$_} // '' } qw(cluster upstream status authority)), 'mesh-local 10.77.2.10:8080 200 podb.test',
   '... cluster mesh-local, upstream pod B, status 200, authority kept');
my %rec = map { (($_->{path} // ''), $_) } @r;
is(join(' ', map { my $x = $rec{$_}; $x ? "$x->{caller_namespace}/$x->{caller_pod}" : 'missing' }
                 qw(/caller-h1 /caller-h2c /id?caller-h2hop /forged-sw /forged-c /id?forged-c2 /from-c /r6)),
   'shop/web-a shop/web-a shop/web-a / shop/web-1 shop/web-1 shop/web-1 /',
   'B\'s access records name the calling pod across the hop (HTTP/1.1, HTTP/2 client, HTTP/2 hop), never a forged one');
my @refused = grep { ($_->{path} // '') eq '/relay' } @r;
is(join(',', map { $_->{status} } @refused), '403,403,403', 'the refusals are in the access records as 403');

# A reload that drops node B from the agents: pod B is then called directly,
# which B's node does not forward, so the call fails; pod C still goes
# through its sidecar.
$a->rewrite_conf(conf_a(grep { ($_->{node} // '') ne 'node-b' } @all_agents));
$a->signal('HUP');
ok($a->wait_ready(10, 2), 'A reloaded without node B in its agents');
($code) = ns_curl('a', '-H', 'Host: podb.test', 'http://10.77.0.1:4140/after-reload');
is($code, 503, '... pod B is now called directly and is unreachable (503)');
($code, $body) = ns_curl('a', '-H', 'Host: podc.test', 'http://10.77.0.1:4140/after-reload');
like("$code $body", qr/^200 .*"peer": "10\.77\.0\.30"/, '... pod C still goes through its sidecar');

# Sidecars announced by the inventory: without pod C's entry in A's agents,
# pod C is called directly; once A's inventory lists pod C with the
# annotation outrider.io/inbound-port, A goes through C's sidecar (no
# reload: the inventory change is noticed, A's pooled direct connection
# closed).
$a->rewrite_conf(conf_a(grep { ($_->{node} // '') ne 'node-b' && $_->{address} ne '10.77.0.30:4143' } @all_agents));
$a->signal('HUP');
ok($a->wait_ready(10, 3), 'A reloaded without pod C\'s sidecar in its agents');
($code, $body) = ns_curl('a', '-H', 'Host: podc.test', 'http://10.77.0.1:4140/no-sidecar');
like("$code $body", qr/^200 .*"name": "pod-c", "peer": "10\.77\.0\.1"/, '... pod C is called directly');
sub write_inv_a {
    my (@extra) = @_;
    open my $fh, '>', "$inv_a.tmp" or die;
    print $fh encode_json({ pods => [
        { namespace => 'shop', name => 'web-a', uid => 'u3', node => 'node-a', ip => '10.77.1.10' },
        { namespace => 'untrusted', name => 'x-a', uid => 'u4', node => 'node-a', ip => '10.77.1.11' }, @extra ] });
    close $fh;
    rename "$inv_a.tmp", $inv_a or die;
}
write_inv_a({ namespace => 'shop', name => 'web-1', uid => 'u6', node => 'node-c', ip => '10.77.0.30',
              annotations => { 'outrider.io/inbound-port' => '4143' } });
# The peer pod C's app sees for calls from A on path, polled (up to 10 s)
# until it is want: the inventory change takes a moment to be noticed.
sub podc_peer {
    my ($path, $want) = @_;
    my $via = '';
    my $end = time + 10;
    while (time < $end) {
        my ($c, $b) = ns_curl('a', '-H', 'Host: podc.test', "http://10.77.0.1:4140$path");
        $via = $b =~ /"peer": "([\d.]+)"/ ? $1 : "$c $b";
        last if $via eq $want;
        sleep 0.1;
    }
    return $via;
}
is(podc_peer('/annotated', '10.77.0.30'), '10.77.0.30', 'a pod announcing its sidecar by annotation is reached through that sidecar');
is(counter(metrics('c', $c), 'outrider_proxy_mesh_requests_total\{direction="incoming"\}'), 3,
   '... which delivered it (its third incoming request)');
($code, $body) = ns_curl('a', '-H', 'Host: podc.test', 'http://10.77.0.1:4140/annotated-again');
like("$code $body", qr/^200 .*"peer": "10\.77\.0\.30", "dst": null/, '... and keeps doing so, without x-outrider-dst reaching the app');
# The annotation gone, pod C is called directly again.
write_inv_a();
is(podc_peer('/unannotated', '10.77.0.1'), '10.77.0.1', 'the annotation removed from the inventory: pod C is called directly again');

# Callers first: B would otherwise keep their idle hop connections open for
# half its drain timeout, as it does for any keep-alive client.
$a->finish_ok;
$c->finish_ok;
$b->finish_ok;
done_testing;

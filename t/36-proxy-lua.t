#!/usr/bin/env perl
# The route(req) Lua hook with the shipped scripts: canary by header,
# deny by caller namespace (HTTP/1.1 and gRPC), tenant routing; and a
# failing script answered by its configured fallback.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use Outrider;
use ProxyTest qw(proxy_conf backend_start backend_stop curl);

my $root = Outrider::root();
my $b1 = backend_start('b1');
my $b2 = backend_start('b2');
sub conf {
    my (%o) = @_;
    return proxy_conf({
        outbound => { address => '127.0.0.1:0', default_cluster => 'stable' },
        script => $o{script},
        ($o{failure} ? (script_failure => $o{failure}) : ()),
        clusters => [
            { name => 'stable', endpoints => ["127.0.0.1:$b1->{port}"] },
            { name => 'canary', endpoints => ["127.0.0.1:$b2->{port}"] },
            { name => 'tenant-acme', endpoints => ["127.0.0.1:$b1->{port}"] },
            { name => 'tenant-globex', endpoints => ["127.0.0.1:$b2->{port}"] },
            @{ $o{clusters} || [] },
        ],
    }, ($o{scripts_dir} ? (scripts_dir => $o{scripts_dir}) : ()));
}
sub get {
    my ($addr, $path, @h) = @_;
    my ($rc, $out) = curl('-w', '\n%{http_code}', (map { ('-H', $_) } 'Host: svc.test', @h), "http://$addr$path");
    my ($body, $code) = $out =~ /\A(.*)\n(\d{3})\z/s;
    return ($code // 0, $body // '');
}
sub header_of {
    my ($body, $name) = @_;
    my $j = eval { decode_json($body) } or return undef;
    for (@{ $j->{headers} }) { return $_->[1] if lc $_->[0] eq $name }
    return undef;
}

# --- canary by header
my $a = Outrider->start(role => 'sidecar', conf => conf(script => 'proxy_canary.lua'));
my $addr = $a->addr('proxy.outbound');
my ($code, $body) = get($addr, '/id');
is("$code $body", '200 b1', 'canary script: plain request goes to stable');
($code, $body) = get($addr, '/echo', 'x-canary: 1');
is(eval { decode_json($body)->{backend} }, 'b2', 'canary script: x-canary: 1 goes to the canary cluster');
is(header_of($body, 'x-routed-by'), 'proxy_canary.lua', 'canary script: header set by the script');
$a->finish_ok;

# --- deny by caller namespace (the sidecar's own pod)
for my $ns (qw(untrusted shop)) {
    $a = Outrider->start(role => 'sidecar', conf => conf(script => 'proxy_deny_namespace.lua'),
                         env => { POD_NAMESPACE => $ns, POD_NAME => 'caller-1' });
    $addr = $a->addr('proxy.outbound');
    ($code, $body) = get($addr, '/id');
    if ($ns eq 'untrusted') {
        is($code, 403, 'deny script: caller in namespace untrusted gets 403');
        like($body, qr/namespace untrusted may not call svc\.test/, 'deny script: with its reason');
    } else {
        is("$code $body", '200 b1', 'deny script: caller in namespace shop passes');
    }
    $a->finish_ok;
}

# --- deny for gRPC callers: PERMISSION_DENIED
my $spid = open(my $sfh, '-|', '/usr/bin/python3', "$root/t/proxy/grpc_server.py") or die;
my $sport = <$sfh>;
chomp $sport;
$a = Outrider->start(role => 'sidecar',
                     conf => conf(script => 'proxy_deny_namespace.lua',
                                  clusters => [ { name => 'grpc', protocol => 'h2', endpoints => ["127.0.0.1:$sport"] } ]),
                     env => { POD_NAMESPACE => 'sandbox' });
$addr = $a->addr('proxy.outbound');
open(my $gc, '-|', '/usr/bin/python3', "$root/t/proxy/grpc_client.py", $addr, 'grpc.test', 'unary', 'x') or die;
my $g = eval { decode_json(do { local $/; <$gc> }) } || {};
close $gc;
is($g->{code}, 7, 'deny script: a gRPC caller gets PERMISSION_DENIED');
$a->finish_ok;
kill 'TERM', $spid;
waitpid($spid, 0);

# --- tenant routing
$a = Outrider->start(role => 'sidecar', conf => conf(script => 'proxy_tenant.lua'));
$addr = $a->addr('proxy.outbound');
($code, $body) = get($addr, '/t/acme/echo');
is(eval { decode_json($body)->{backend} }, 'b1', 'tenant script: /t/acme/ goes to tenant-acme');
is(header_of($body, 'x-tenant'), 'acme', 'tenant script: x-tenant set');
($code, $body) = get($addr, '/echo', 'X-Tenant: globex');
is(eval { decode_json($body)->{backend} }, 'b2', 'tenant script: x-tenant: globex goes to tenant-globex');
($code, $body) = get($addr, '/t/nope/x');
is($code, 404, 'tenant script: unknown tenant gets 404');
($code, $body) = get($addr, '/id');
is("$code $body", '200 b1', 'tenant script: no tenant routes as configured');
$a->finish_ok;

# --- a script that fails: fallback allow routes as configured, deny answers 503
my $dir = tempdir('outrider-lua-XXXXXX', TMPDIR => 1, CLEANUP => 1);
open my $fh, '>', "$dir/bad.lua" or die;
print $fh "function route(req)\n  if req.path == '/boom' then error('boom') end\n"
        . "  if req.path == '/badcluster' then return { cluster = 'nope' } end\n"
        . "  if req.path == '/badheader' then return { set_headers = { ['x-a'] = 'a\\r\\nb' } } end\n"
        . "  if req.path == '/spin' then while true do end end\nend\n";
close $fh;
for my $mode (qw(allow deny)) {
    $a = Outrider->start(role => 'sidecar', conf => conf(script => 'bad.lua', failure => $mode, scripts_dir => $dir));
    $addr = $a->addr('proxy.outbound');
    for my $p (qw(/boom /badcluster /badheader /spin)) {
        ($code, $body) = get($addr, $p);
        is($code, $mode eq 'allow' ? 404 : 503, "failing script ($p), fallback $mode: "
           . ($mode eq 'allow' ? 'routed as configured (backend 404)' : '503'));
    }
    ok($a->wait_log(qr/Lua hook route \((error|budget)\) failed/, 5), "failing script ($mode): logged");
    $a->finish_ok;
}

backend_stop($_) for $b1, $b2;
done_testing;

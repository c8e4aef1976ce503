#!/usr/bin/env perl
# Node role: the caller is the pod owning the connection's source address,
# from the node's pod inventory (loopback aliases 127.0.0.2/.3 stand in for
# pod IPs). Identity drives the Lua route script (deny by namespace) for
# HTTP/1.1 and HTTP/2 callers, and follows inventory changes.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use Outrider;
use ProxyTest qw(proxy_agent backend_start backend_stop curl);

my $dir = tempdir('outrider-proxy-inv-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $inv = "$dir/pods.json";
sub write_inv {
    my ($pods) = @_;
    open my $fh, '>', "$inv.tmp" or die;
    print $fh encode_json({ pods => $pods });
    close $fh;
    rename "$inv.tmp", $inv or die;
}
write_inv([ { namespace => 'shop', name => 'cart-1', uid => 'u1', ip => '127.0.0.2' },
            { namespace => 'untrusted', name => 'x-1', uid => 'u2', ip => '127.0.0.3' } ]);

my $be = backend_start('b1');
my $a = proxy_agent(
    role => 'node',
    conf => { workers => 1, inventory => { file => $inv, poll_interval => '200ms' } },
    proxy => {
        outbound => { address => '127.0.0.1:0', default_cluster => 'b' },
        script => 'proxy_deny_namespace.lua',
        clusters => [ { name => 'b', endpoints => ["127.0.0.1:$be->{port}"] } ],
    });
my $addr = $a->addr('proxy.outbound');
sub from {
    my ($src, @extra) = @_;
    my ($rc, $out) = curl('--interface', $src, '-w', ' %{http_code}', '-H', 'Host: svc.test', @extra, "http://$addr/id");
    return $out;
}
is(from('127.0.0.2'), 'b1 200', 'pod in namespace shop (127.0.0.2) is proxied');
like(from('127.0.0.3'), qr/namespace untrusted may not call svc\.test\n 403$/, 'pod in namespace untrusted (127.0.0.3) is denied');
like(from('127.0.0.3', '--http2-prior-knowledge'), qr/ 403$/, '... also over HTTP/2');
is(from('127.0.0.4'), 'b1 200', 'an address no pod owns is not denied');

# The inventory changes: 127.0.0.3 now belongs to a shop pod.
write_inv([ { namespace => 'shop', name => 'cart-2', uid => 'u3', ip => '127.0.0.3' } ]);
ok(Outrider::poll(15, sub { from('127.0.0.3') eq 'b1 200' }), 'after the inventory changed, 127.0.0.3 is a shop pod and is proxied');

backend_stop($be);
$a->finish_ok;
done_testing;

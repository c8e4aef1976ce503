#!/usr/bin/env perl
# Caller identity: in node role the pod owning a source address comes from
# the inventory file, which is watched for changes; in sidecar role it is
# the agent's own pod.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use File::Temp qw(tempdir);
use JSON::PP;
use Outrider;

my $dir = tempdir('outrider-inv-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $inv = "$dir/pods.json";
sub write_inv {
    my ($pods) = @_;
    open my $fh, '>', "$inv.tmp" or die;
    print $fh encode_json({ pods => $pods });
    close $fh;
    rename "$inv.tmp", $inv or die;
}
write_inv([{ namespace => 'shop', name => 'cart-1', uid => 'u1', ip => '127.0.0.2', labels => { app => 'cart' } },
           { namespace => 'ops', name => 'mon-1', ips => ['127.0.0.3'], labels => { app => 'mon' } }]);

my $a = Outrider->start(conf => { modules => ['echo'], inventory => { file => $inv, poll_interval => '200ms' } },
                        role => 'node', modules_dir => Outrider::test_modules_dir());
my ($host, $port) = $a->addr('echo.listen') =~ /^(.*):(\d+)$/;
sub who {
    my ($src) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, LocalAddr => $src, Timeout => 5)
        or return "connect: $!";
    print $s "WHO\n";
    my $r = <$s>;
    close $s;
    chomp $r if defined $r;
    return $r;
}
is(who('127.0.0.2'), 'shop/cart-1 app=cart', 'caller found by its primary IP');
is(who('127.0.0.3'), 'ops/mon-1 app=mon', 'caller found by one of its IPs');
is(who('127.0.0.4'), 'unknown', 'unknown address: no pod');

write_inv([{ namespace => 'shop', name => 'cart-2', ip => '127.0.0.4', labels => { app => 'cart' } }]);
my $seen;
Outrider::poll(15, sub { ($seen = who('127.0.0.4')) ne 'unknown' });
is($seen, 'shop/cart-2 app=cart', 'a changed inventory file is picked up');
is(who('127.0.0.2'), 'unknown', 'pods gone from the file are gone');

open my $fh, '>', $inv or die;
print $fh '{"pods": [ broken';
close $fh;
ok($a->wait_log(qr/inventory .*keeping the previous one/, 15), 'a broken inventory is reported');
is(who('127.0.0.4'), 'shop/cart-2 app=cart', 'and the previous one kept');
$a->finish_ok(allow_errors => qr/inventory/);

$a = Outrider->start(conf => { modules => ['echo'] }, role => 'sidecar', modules_dir => Outrider::test_modules_dir(),
                     env => { POD_NAME => 'web-7', POD_NAMESPACE => 'front' });
($host, $port) = $a->addr('echo.listen') =~ /^(.*):(\d+)$/;
is(who('127.0.0.1'), 'front/web-7 app=', 'sidecar: the caller on localhost is the own pod');
$a->finish_ok;
done_testing;

#!/usr/bin/env perl
# HTTP/2 cleartext with prior knowledge through the proxy to an HTTP/2
# backend (nghttpd): curl --http2-prior-knowledge, nghttp with several
# concurrent streams, h2load multiplexing (all requests succeed), a 5 MB
# download through both flow-controlled legs, and a request body upload.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep);
use Outrider;
use ProxyTest qw(curl);

my $docroot = tempdir('outrider-h2-XXXXXX', TMPDIR => 1, CLEANUP => 1);
sub put { my ($name, $data) = @_; open my $fh, '>', "$docroot/$name" or die; print $fh $data; close $fh }
put('hello.txt', "hello over h2\n");
put('hello2.txt', "second file\n");
my $big = join('', map { pack('N', $_) } 1 .. 1_310_720); # 5 MiB
put('big.bin', $big);

# nghttpd cannot listen on port 0: take a free port and hand it over.
my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1) or die;
my $bport = $probe->sockport;
close $probe;
my $npid = fork // die;
if (!$npid) {
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
    exec 'nghttpd', '--no-tls', '-a', '127.0.0.1', '-d', $docroot, $bport or exit 127;
}
for (1 .. 100) { last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$bport"); sleep 0.05 }

my $a = Outrider->start(
    role => 'sidecar',
    conf => {
        modules => ['proxy'],
        proxy => {
            outbound => { address => '127.0.0.1:0', default_cluster => 'h2' },
            inbound => { enabled => JSON::PP::false },
            via => JSON::PP::true,
            clusters => [ { name => 'h2', protocol => 'h2', endpoints => ["127.0.0.1:$bport"] } ],
        },
    });
my $addr = $a->addr('proxy.outbound');

my ($rc, $out) = curl('--http2-prior-knowledge', '-D', '-', "http://$addr/hello.txt");
is($rc, 0, 'curl --http2-prior-knowledge through the proxy');
like($out, qr{^HTTP/2 200 ?\r\n}, "HTTP/2 response");
like($out, qr/\r\n\r\nhello over h2\n\z/, 'body relayed');
($rc, $out) = curl('--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}', "http://$addr/missing");
is($out, '404', 'upstream 404 relayed');

($rc, $out) = curl('--http2-prior-knowledge', "http://$addr/big.bin");
ok(length($out) == length($big) && sha256_hex($out) eq sha256_hex($big), '5 MiB download intact over two flow-controlled legs');

my $up = join('', map { chr($_ % 251) } 1 .. 300_000);
my $tmp = "$docroot/up.bin";
put('up.bin', $up);
($rc, $out) = curl('--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}', '--data-binary', "\@$tmp",
                   "http://$addr/hello.txt");
like($out, qr/^\d{3}$/, "300 KB request body streamed upstream (nghttpd answered $out)");

# nghttp: several streams on one connection.
open(my $nh, '-|', 'nghttp', '-n', '-s', "http://$addr/hello.txt", "http://$addr/big.bin", "http://$addr/hello2.txt")
    or die;
my $stats = do { local $/; <$nh> };
close $nh;
is($?, 0, 'nghttp fetched three streams on one connection');
my @codes = $stats =~ /^\s*\d+\s+\+\S+\s+\+\S+\s+\S+\s+(\d{3})\s/mg;
is_deeply(\@codes, [ 200, 200, 200 ], 'three 200s') or diag($stats);

# h2load: 2,000 requests, 10 connections, 10 streams each.
open(my $hl, '-|', 'h2load', '-n', '2000', '-c', '10', '-m', '10', "http://$addr/hello.txt") or die;
my $h2 = do { local $/; <$hl> };
close $hl;
like($h2, qr/requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored/,
     'h2load: 2000 multiplexed requests, all succeeded') or diag($h2);
like($h2, qr/status codes: 2000 2xx/, 'h2load: all 2xx');

kill 'TERM', $npid;
waitpid($npid, 0);
$a->finish_ok;
done_testing;

#!/usr/bin/env perl
# gRPC end to end through the proxy (HTTP/2 both legs) with Python grpcio
# as client and server: unary with trailers, the three streaming kinds,
# error statuses passed through, a 4 MB message (flow control), 200
# concurrent calls multiplexed, route deadlines (alone and two of different
# lengths at once) answered as DEADLINE_EXCEEDED and an unreachable upstream
# as UNAVAILABLE.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use Outrider;
use IO::Socket::INET;
use lib 't/proxy';
use ProxyTest qw(proxy_agent refused_port);

my $root = Outrider::root();
my $spid = open(my $sfh, '-|', '/usr/bin/python3', "$root/t/proxy/grpc_server.py") or die "grpc server: $!";
my $sport = <$sfh>;
chomp $sport;
like($sport, qr/^\d+$/, 'gRPC server started');

# A port nothing listens on: bind, read the port, close.
my $dead_port = refused_port();

my $a = proxy_agent(proxy => {
    clusters => [
        { name => 'grpc', protocol => 'h2', endpoints => ["127.0.0.1:$sport"] },
        { name => 'dead', protocol => 'h2', endpoints => ["127.0.0.1:$dead_port"] },
    ],
    routes => [
        { authority => 'grpc.test', path_exact => '/test.Echo/Sleep', cluster => 'grpc', timeout => '300ms' },
        { authority => 'slow.test', path_exact => '/test.Echo/Sleep', cluster => 'grpc', timeout => '20s' },
        { authority => 'grpc.test', cluster => 'grpc' },
        { authority => 'dead.test', cluster => 'dead' },
    ],
});
my $addr = $a->addr('proxy.outbound');

sub call {
    my ($authority, @args) = @_;
    open(my $fh, '-|', '/usr/bin/python3', "$root/t/proxy/grpc_client.py", $addr, $authority, @args) or die;
    my $out = do { local $/; <$fh> };
    close $fh;
    return eval { decode_json($out) } || { error => $out };
}

my $r = call('grpc.test', 'unary', 'hello');
is($r->{resp}, 'hello', 'unary call answered');
is($r->{trailers}{'x-trailer'}, 't1', 'trailing metadata passed through');
is_deeply(call('grpc.test', 'server_stream', '4')->{msgs}, [ map { "msg-$_" } 0 .. 3 ], 'server streaming');
is(call('grpc.test', 'client_stream')->{resp}, 'a,b,c,d', 'client streaming');
is_deeply(call('grpc.test', 'bidi')->{msgs}, [ 'echo:1', 'echo:2', 'echo:3' ], 'bidirectional streaming');
$r = call('grpc.test', 'fail', '3:bad argument here');
is($r->{code}, 3, 'INVALID_ARGUMENT from the server reaches the client');
is($r->{details}, 'bad argument here', '... with its message');
$r = call('grpc.test', 'big', 4 * 1024 * 1024);
ok($r->{same} && $r->{len} == 4 * 1024 * 1024, '4 MB message both ways intact') or diag(explain $r);
is(call('grpc.test', 'many', 200)->{ok}, 200, '200 concurrent calls multiplexed, all answered');
$r = call('grpc.test', 'sleep', 3000);
is($r->{code}, 4, 'route deadline: DEADLINE_EXCEEDED');
is($r->{details}, 'deadline exceeded', '... answered by the proxy');
# Deadlines of different lengths at once (one timer per worker keeps them
# in order): a call due in 20 s is in flight when one due in 300 ms comes;
# the later one must not hold up the sooner, nor expire with it.
my $dir = tempdir('outrider-grpc-XXXXXX', TMPDIR => 1, CLEANUP => 1);
open(my $slow, '-|', '/usr/bin/python3', "$root/t/proxy/grpc_client.py", $addr, 'slow.test', 'sleep', "3000:$dir/arrived")
    or die;
ok(Outrider::poll(15, sub { -e "$dir/arrived" }), 'the 20 s call is in flight (it reached the server)');
$r = call('grpc.test', 'sleep', 3000);
is($r->{code}, 4, 'a 300 ms deadline behind a 20 s one: DEADLINE_EXCEEDED');
my $slow_out = do { local $/; <$slow> };
close $slow;
is((eval { decode_json($slow_out) } || {})->{code}, 0, '... and the 20 s call completes') or diag($slow_out);
$r = call('dead.test', 'unary', 'x');
is($r->{code}, 14, 'unreachable upstream: UNAVAILABLE, not an HTTP 502');
like($r->{details} // '', qr/refused|connect/i, "... saying why: @{[ $r->{details} // '' ]}");
$r = call('nowhere.test', 'unary', 'x');
is($r->{code}, 12, 'no route: UNIMPLEMENTED');

# An HTTP/1.1 client speaking the gRPC wire format: trailers come back as
# chunked trailers.
my $frame = "\0\0\0\0\x05hello";
my $raw = ProxyTest::raw_http($addr, "POST /test.Echo/Unary HTTP/1.1\r\nHost: grpc.test\r\nContent-Type: application/grpc\r\n"
    . "TE: trailers\r\nContent-Length: 10\r\nConnection: close\r\n\r\n$frame");
like($raw, qr{^HTTP/1\.1 200 OK\r\n}, "HTTP/1.1 client to the gRPC server: 200");
like($raw, qr/\r\n\r\na\r\n\0\0\0\0\x05hello\r\n0\r\n(?=.*grpc-status: 0\r\n)(?=.*x-trailer: t1\r\n).*\r\n\r\n\z/s,
     'message in a chunk, then grpc-status and metadata as chunked trailers');

kill 'TERM', $spid;
waitpid($spid, 0);
$a->finish_ok;
done_testing;

#!/usr/bin/env perl
# The proxy's access records, as the logs module ships them from the bus:
# method/path/authority of a request whose body was streamed (the head is
# kept while the body moves through the buffer), HTTP/2 and gRPC records
# with grpc_status, retries (HTTP/1.1 and HTTP/2), and the caller's identity.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Outrider;
use ProxyTest qw(proxy_agent backend_start backend_stop curl refused_port);

my $root = Outrider::root();
my $dir = tempdir('proxy-access-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $out = "$dir/access.json";
my $be = backend_start('b1');
my $spid = open(my $sfh, '-|', '/usr/bin/python3', "$root/t/proxy/grpc_server.py") or die;
my $sport = <$sfh>;
chomp $sport;
my $dead_port = refused_port();
my $a = proxy_agent(env => { POD_NAMESPACE => 'shop', POD_NAME => 'web-1' },
    conf => {
        modules => ['proxy', 'logs'],
        logs => { bus_streams => ['access'], buffer => { flush_interval => '20ms' },
                  outputs => [{ type => 'file', path => $out }] },
    },
    proxy => {
        clusters => [ { name => 'b', endpoints => ["127.0.0.1:$be->{port}"] },
                      { name => 'flaky', lb => 'round_robin', retry_budget => 1,
                        endpoints => ["127.0.0.1:$dead_port", "127.0.0.1:$be->{port}"] },
                      { name => 'grpc', protocol => 'h2', endpoints => ["127.0.0.1:$sport"] } ],
        routes => [ { authority => 'svc.test', cluster => 'b' }, { authority => 'flaky.test', cluster => 'flaky' },
                    { authority => 'grpc.test', cluster => 'grpc' } ],
    });
my $addr = $a->addr('proxy.outbound');
my $body = 'z' x 100_000;
open my $bf, '>', "$dir/body" or die; print $bf $body; close $bf;
curl('-o', '/dev/null', '-H', 'Host: svc.test', '--data-binary', "\@$dir/body", "http://$addr/echo?big=1");
curl('-o', '/dev/null', '--http2-prior-knowledge', '-H', 'Host: svc.test', "http://$addr/id");
curl('-o', '/dev/null', '-H', 'Host: flaky.test', "http://$addr/id");
open(my $gc, '-|', '/usr/bin/python3', "$root/t/proxy/grpc_client.py", $addr, 'grpc.test', 'fail', '5:not here') or die;
my $g = do { local $/; <$gc> };
close $gc;
curl('-o', '/dev/null', '--http2-prior-knowledge', '-H', 'Host: flaky.test', "http://$addr/id");

my @r;
my $until = time + 10;
while (time < $until) {
    @r = Outrider::json_lines($out);
    last if @r >= 5;
    sleep 0.05;
}
is(scalar @r, 5, 'five access records');
my ($post, $h2, $flaky, $grpc, $h2flaky) = @r;
is("$post->{method} $post->{authority} $post->{path}", 'POST svc.test /echo?big=1',
   'streamed POST: method, authority and path intact');
is($post->{status}, 200, 'POST status');
cmp_ok($post->{bytes_in}, '>=', 100_000, "POST bytes_in counts the body ($post->{bytes_in})");
is("$post->{caller_namespace}/$post->{caller_pod}", 'shop/web-1', 'caller identity (the sidecar\'s pod)');
is("$h2->{protocol} $h2->{status} $h2->{path}", 'HTTP/2 200 /id', 'HTTP/2 record');
is($flaky->{retries}, 1, 'retried request: retries 1');
is($flaky->{status}, 200, '... and it succeeded');
is("$grpc->{protocol} $grpc->{path}", 'gRPC /test.Echo/Fail', 'gRPC record');
is($grpc->{grpc_status}, 5, 'gRPC record: grpc_status from the trailers');
is($grpc->{status}, 200, 'gRPC record: HTTP status 200');
is("$h2flaky->{protocol} $h2flaky->{status} $h2flaky->{retries}", 'HTTP/2 200 1', 'retried HTTP/2 request: retries 1');
is($h2flaky->{upstream}, "127.0.0.1:$be->{port}", '... and its upstream is the endpoint that answered');

kill 'TERM', $spid;
waitpid($spid, 0);
backend_stop($be);
$a->finish_ok;
done_testing;

#!/usr/bin/env perl
# Backpressure: a client that stops reading a 300 MB download keeps the
# agent's memory bounded (the proxy stops reading the upstream while its
# write to the client is pending). Drain: SIGTERM lets an in-flight request
# finish before the agent exits.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use Outrider;
use ProxyTest qw(proxy_agent backend_start backend_stop raw_http curl wait_metric);

my $be = backend_start('b1');
my $a = proxy_agent(proxy => {
    outbound => { address => '127.0.0.1:0', default_cluster => 'b' },
    clusters => [ { name => 'b', endpoints => ["127.0.0.1:$be->{port}"] } ],
});
my $addr = $a->addr('proxy.outbound');

sub rss_kb {
    open my $fh, '<', "/proc/$_[0]/status" or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

my $before = rss_kb($a->pid);
my $s = IO::Socket::INET->new(PeerAddr => $addr, Proto => 'tcp') or die "connect: $!";
setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), 65536);
print $s "GET /big?n=300000000 HTTP/1.1\r\nHost: x\r\n\r\n";
my $got = 0;
while ($got < 1_000_000) {
    my $n = sysread($s, my $buf, 65536) or last;
    $got += $n;
}
ok($got >= 1_000_000, 'the download started');
sleep 2; # the client stops reading; the backend keeps trying to send
my $during = rss_kb($a->pid);
my $grew = $during - $before;
cmp_ok($grew, '<', 16 * 1024, "agent RSS grew by ${grew} KiB while a client stalled on a 300 MB body");
# Reading resumes and the stream continues where it stopped.
my $more = 0;
while ($more < 5_000_000) {
    my $n = sysread($s, my $buf, 65536) or last;
    $more += $n;
}
cmp_ok($more, '>=', 5_000_000, 'the stalled download resumes');
close $s;

# Drain: an in-flight request completes after SIGTERM.
ok(wait_metric($a, qr/^outrider_proxy_upstream_connections\{cluster="b"\} 0$/m), 'the download\'s upstream connection closed');
open(my $slow, '-|', 'curl', '-s', '-m', '10', '-w', ' %{http_code}', '-H', 'Host: x', "http://$addr/sleep?ms=1500") or die;
ok(wait_metric($a, qr/^outrider_proxy_upstream_connections\{cluster="b"\} 1$/m), 'the slow request reached the backend');
$a->signal('TERM');
my $resp = do { local $/; <$slow> };
close $slow;
is($resp, 'b1 200', 'the request in flight at SIGTERM completed');
is($a->wait_exit(10), 0, 'agent exited 0 after draining');
ok(!defined Outrider::sanitizer_report($a->log), 'no sanitizer report');
my @errors = grep { / error \[/ } split /\n/, $a->log;
ok(!@errors, 'no error lines') or diag(join "\n", @errors);

backend_stop($be);
done_testing;

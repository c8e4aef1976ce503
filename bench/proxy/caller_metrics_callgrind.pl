#!/usr/bin/env perl
# Instructions per keep-alive request through a sidecar (one worker) under
# callgrind, for the caller metrics' cost: run it for two request counts and
# take the difference, which cancels start-up and shutdown, e.g.
#   for n in 500 2500; do OUTRIDER_BUILD=build perl bench/proxy/caller_metrics_callgrind.pl $n /tmp/cg-$n.out h1; done
#   callgrind_annotate --inclusive=yes /tmp/cg-2500.out | grep conn_publish
# Arguments: requests, callgrind output file, h1|h2 (curl keep-alive or
# h2load -c1 -m1), and optionally on|off for proxy.caller_metrics.enabled
# (left out: the build's default, so that a build without the key runs).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../../t/lib", "$FindBin::Bin/../../t/proxy";
use JSON::PP;
use Outrider;
use ProxyTest qw(backend_start backend_stop curl);

my ($n, $out, $proto, $enabled) = @ARGV;
die "usage: $0 requests out.callgrind h1|h2 [on|off]\n" unless $n && $out && $proto;
my $be = backend_start('b1');
my $a = Outrider->start(
    role => 'sidecar', timeout => 120,
    env => { POD_NAME => 'web-7d9f8c6b5-x2k4q', POD_NAMESPACE => 'front' },
    wrap => ['valgrind', '--tool=callgrind', "--callgrind-out-file=$out"],
    conf => {
        modules => ['proxy'],
        workers => 1,
        proxy => {
            outbound => { address => '127.0.0.1:0', default_cluster => 'b' },
            inbound => { enabled => JSON::PP::false },
            clusters => [ { name => 'b', endpoints => ["127.0.0.1:$be->{port}"] } ],
            (defined $enabled ? (caller_metrics => { enabled => $enabled eq 'on' ? JSON::PP::true : JSON::PP::false }) : ()),
        },
    });
my $addr = $a->addr('proxy.outbound');
my $answered;
if ($proto eq 'h2') {
    my ($rc, $o) = Outrider::run_cmd('h2load', '-n', $n, '-c', '1', '-m', '1', "http://$addr/id");
    ($answered) = $o =~ /(\d+) succeeded/;
} else {
    # curl's URL globbing: all requests on one keep-alive connection.
    my (undef, $body) = curl('-m', '300', '-H', 'Host: x', "http://$addr/id?[1-$n]");
    $answered = () = $body =~ /b1/g;
}
print "requests answered: ", $answered // 0, "\n";
$a->stop(120);
backend_stop($be);

#!/usr/bin/env perl
# metrics module, node role: two pods, each in its own network namespace
# with its own IP, send statsd to the agent on the node; every sample is
# labelled with the pod that sent it (found by source address in the
# inventory), and a pod cannot pass itself off as another with a tag.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use JSON::PP;
use Outrider;

plan skip_all => 'needs root for ip netns' unless $> == 0;
my $dir = tempdir('outrider-mnetns-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my @ns = ("mtr-a-$$", "mtr-b-$$");
my @host_if = ("mva$$", "mvb$$");
my @pod_if = ("mpa$$", "mpb$$");
my @net = ('10.231.1', '10.231.2');
sub sh { my $c = join ' ', @_; system($c) == 0 or die "failed: $c\n" }
END {
    local $?; # keep the test's exit status
    for my $i (0, 1) {
        system("ip netns del $ns[$i] 2>/dev/null");
        system("ip link del $host_if[$i] 2>/dev/null");
    }
}
for my $i (0, 1) {
    sh("ip netns add $ns[$i]");
    sh("ip link add $host_if[$i] type veth peer name $pod_if[$i]");
    sh("ip link set $pod_if[$i] netns $ns[$i]");
    sh("ip addr add $net[$i].1/24 dev $host_if[$i]");
    sh("ip link set $host_if[$i] up");
    sh("ip netns exec $ns[$i] ip addr add $net[$i].2/24 dev $pod_if[$i]");
    sh("ip netns exec $ns[$i] ip link set $pod_if[$i] up");
    sh("ip netns exec $ns[$i] ip link set lo up");
}

my $inv = "$dir/pods.json";
open my $fh, '>', $inv or die;
print $fh encode_json({ pods => [
    { namespace => 'shop', name => 'cart-1', uid => 'u1', node => 'n1', ip => "$net[0].2" },
    { namespace => 'ops',  name => 'mon-1',  uid => 'u2', node => 'n1', ip => "$net[1].2" },
] });
close $fh;

my $a = Outrider->start(
    role => 'node',
    conf => {
        modules => ['metrics'],
        workers => 2,
        inventory => { file => $inv },
        metrics => { listen => '127.0.0.1:0', statsd => { udp => '0.0.0.0:0' },
                     scrape => { discover_pods => JSON::PP::false } },
    });
my ($port) = $a->addr('metrics.statsd') =~ /:(\d+)$/;

sub send_from {
    my ($i, $payload) = @_;
    my $target = "$net[$i].1";
    system('ip', 'netns', 'exec', $ns[$i], 'perl', '-MIO::Socket::INET', '-e',
           "my \$s = IO::Socket::INET->new(PeerAddr => '$target:$port', Proto => 'udp') or die \$!;"
           . " \$s->send(\$_) for \@ARGV", @$payload) == 0 or die "send from $ns[$i] failed";
}
# Several datagrams from different source ports: SO_REUSEPORT spreads them
# over both workers, whose stores are merged in the exposition.
send_from(0, ["jobs.done:1|c", "jobs.done:2|c", "jobs.done:3|c|#pod:mon-1", "cpu.temp:55|g"]) for 1 .. 3;
send_from(1, ["jobs.done:10|c", "cpu.temp:40|g"]);
send_from(0, ["users:a|s", "users:b|s"]);
send_from(1, ["users:a|s"]);

my $body = '';
my $until = time + 10;
while (time < $until) {
    (undef, $body) = $a->http('GET', 'metrics.http', '/metrics');
    last if $body =~ /^outrider_metrics_statsd_lines_total 17$/m;
    sleep 0.1;
}
like($body, qr/^jobs_done_total\{namespace="shop",pod="cart-1"\} 9$/m, 'pod in netns A: its counters, with its labels');
like($body, qr/^jobs_done_total\{exported_pod="mon-1",namespace="shop",pod="cart-1"\} 9$/m,
     'a pod tag cannot impersonate another pod: it becomes exported_pod');
like($body, qr/^jobs_done_total\{namespace="ops",pod="mon-1"\} 10$/m, 'pod in netns B: its own series');
like($body, qr/^cpu_temp\{namespace="shop",pod="cart-1"\} 55$/m, 'gauge of pod A');
like($body, qr/^cpu_temp\{namespace="ops",pod="mon-1"\} 40$/m, 'gauge of pod B');
like($body, qr/^users\{namespace="shop",pod="cart-1"\} 2$/m, 'set of pod A');
like($body, qr/^users\{namespace="ops",pod="mon-1"\} 1$/m, 'set of pod B');
$a->finish_ok;
done_testing;

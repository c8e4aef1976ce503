#!/usr/bin/env perl
# logs, node role: every container log under a pods directory laid out like
# /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log is tailed (CRI
# format by default), including pods that appear while running, and each
# record carries namespace, pod, pod uid and container from its path, the
# node name and the role.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use Outrider;

my $dir = tempdir('logs-node-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $pods = "$dir/pods";
sub pod_log {
    my ($ns, $pod, $uid, $c, $n, @msgs) = @_;
    make_path("$pods/${ns}_${pod}_$uid/$c");
    open my $f, '>>', "$pods/${ns}_${pod}_$uid/$c/$n.log" or die;
    print $f "2026-01-01T00:00:00Z stdout F $_\n" for @msgs;
    close $f;
}
pod_log('shop', 'cart-7d9f', 'a1b2', 'app', 0, 'cart one', 'cart two');
pod_log('kube-system', 'dns-x', 'c3d4', 'coredns', 3, 'dns one');
my $out = "$dir/out.json";
my $a = Outrider->start(role => 'node', env => { NODE_NAME => 'worker-3' }, conf => {
    modules => ['logs'], workers => 2, state_dir => "$dir/state", drain => { delay => '0s' },
    logs => { files => { paths => ["$pods/*/*/*.log"], rescan_interval => '100ms' },
              buffer => { flush_interval => '20ms' }, outputs => [{ type => 'file', path => $out }] },
});
my @r;
# Waits (up to 10 s) for n records in the output.
sub wait_records {
    my ($n) = @_;
    Outrider::poll(10, sub { (@r = Outrider::json_lines($out)) >= $n });
}
# The first scan found the two pods (their 3 lines shipped) before the
# third pod appears, so that one is found while running.
wait_records(3);
pod_log('shop', 'pay-1', 'e5f6', 'sidecar', 0, 'new pod line');
wait_records(4);
is(scalar @r, 4, '4 records from 3 pods (one appeared later)');
my %by = map { $_->{message} => $_ } @r;
is_deeply([@{ $by{'cart two'} }{qw(namespace pod pod_uid container node role)}],
          ['shop', 'cart-7d9f', 'a1b2', 'app', 'worker-3', 'node'], 'metadata from the path, node and role');
is_deeply([@{ $by{'dns one'} }{qw(namespace pod container)}], ['kube-system', 'dns-x', 'coredns'], 'second pod');
is_deeply([@{ $by{'new pod line'} }{qw(namespace pod container)}], ['shop', 'pay-1', 'sidecar'],
          'a pod that appeared while running');
is($by{'cart one'}{stream}, 'stdout', 'CRI parsed by default in the node role');
my ($code, $body) = $a->http('GET', 'admin', '/metrics');
my ($files) = $body =~ /^outrider_logs_files_watched(?:\{[^}]*\})? (\d+)/m;
is($files, 3, '3 files watched');
Outrider::promtool_ok($body, 'the logs metrics pass promtool check metrics');
$a->finish_ok;
done_testing;

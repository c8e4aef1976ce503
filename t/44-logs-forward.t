#!/usr/bin/env perl
# logs: a sidecar outrider tails its app's file and forwards to a node
# outrider (forward output -> forward_input), which writes the records to a
# file: every line exactly once, enriched by the sidecar, and the sidecar's
# checkpoint at the end once the node acknowledged. (That the sender gets
# no acknowledgement before the receiver's output delivered is checked in
# t/unit/logs_output.c.)
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Outrider;

my $dir = tempdir('logs-forward-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $out = "$dir/node-out.json";
my $node = Outrider->start(role => 'node', env => { NODE_NAME => 'n1' }, conf => {
    modules => ['logs'], workers => 2, drain => { delay => '0s' },
    logs => {
        files => { paths => [] },
        forward_input => { enabled => JSON::PP::true, address => '127.0.0.1:0' },
        buffer => { flush_interval => '20ms' },
        outputs => [{ type => 'file', path => $out }],
    },
});
my $fwd = $node->addr('logs.forward');
like($fwd, qr/^127\.0\.0\.1:\d+$/, "node listens for forwarded batches on $fwd");

my $log = "$dir/app.log";
open my $w, '>', $log or die;
print $w "plain line $_\n" for 1 .. 5000;
close $w;
my $side = Outrider->start(role => 'sidecar',
    env => { POD_NAME => 'cart-1', POD_NAMESPACE => 'shop', POD_IP => '10.0.0.5', NODE_NAME => 'n1' },
    conf => {
        modules => ['logs'], state_dir => "$dir/side-state",
        logs => {
            files => { paths => [$log], format => 'raw', checkpoint_interval => '0s' },
            buffer => { flush_interval => '20ms' },
            outputs => [{ type => 'forward', address => $fwd, retry_min => '20ms', retry_max => '200ms' }],
        },
    });
sub node_lines { return Outrider::complete_lines($out) }
Outrider::poll(20, sub { node_lines() >= 5000 });
my @l = node_lines();
is(scalar @l, 5000, 'the node wrote all 5000 lines');
my %seen;
$seen{$_}++ for grep { defined } map { /"message":"plain line (\d+)"/ ? $1 : undef } @l;
is(scalar(keys %seen), 5000, 'each once');
like($l[0], qr/"namespace":"shop","pod":"cart-1","node":"n1","role":"sidecar"/, 'enriched by the sidecar');
# The node's acknowledgement travels back after it wrote the lines: poll.
sub checkpoint_offset {
    open my $ck, '<', "$dir/side-state/logs/checkpoints" or return undef;
    my ($o) = join('', <$ck>) =~ /^\d+ \d+ \d+ \w+ (\d+) /m;
    return $o;
}
my $off;
Outrider::poll(15, sub { $off = checkpoint_offset(); ($off // -1) == -s $log });
is($off, -s $log, 'sidecar checkpoint at the end of the file once the node acknowledged');

my ($code, $body) = $node->http('GET', 'admin', '/metrics');
my $fl = 0;
$fl += $_ for $body =~ /^outrider_logs_lines_read_total\{[^}]*source="forward"[^}]*\} (\d+)/mg;
is($fl, 5000, 'node counts 5000 forwarded lines');
# Counters are published on the flush timer, after the acknowledgement.
sub shipped { return ($_[0] =~ /^outrider_logs_shipped_records_total\{[^}]*\} (\d+)/m)[0] }
($code, $body) = $side->get_until('admin', '/metrics', sub { (shipped($_[0]) // 0) >= 5000 });
my $shipped = shipped($body);
is($shipped, 5000, 'sidecar counts 5000 records acknowledged by the node');
$side->finish_ok;
$node->finish_ok;
done_testing;

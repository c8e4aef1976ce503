#!/usr/bin/env perl
# A long gRPC bidirectional stream through the proxy, open across a reload
# and a hot upgrade, while unary calls run on the same channel (grpcio).
# The route tags each request with the generation's x-gen header; the
# server echoes it. Expected:
#   - the stream opened on generation "one" stays there (first process)
#     and ends with status OK, every message echoed;
#   - no unary call fails; they move, as the drains send their graceful
#     GOAWAY (halfway to the 10 s deadline), to "two" (the reload) and then
#     "three" (the new process);
#   - a new connection after the upgrade is served by "three";
#   - the first process exits 0 once its stream ended.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IPC::Open2;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use IO::Select;
use JSON::PP;
use Outrider;

plan skip_all => 'python3 grpcio is needed' unless system('/usr/bin/python3', '-c', 'import grpc') == 0;
my $root = Outrider::root();
my $peer = "$root/t/lifecycle/grpc_peer.py";
my $dir = tempdir('outrider-life-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $bin = Outrider::bin();

my $spid = open(my $sfh, '-|', '/usr/bin/python3', $peer, 'server') or die "grpc server: $!";
my $sport = <$sfh>;
die "grpc server did not start" unless defined $sport && $sport =~ /^(\d+)/;
$sport = $1;

sub conf {
    my ($tag, $outbound) = @_;
    return { modules => ['proxy'], control_socket => "$dir/control.sock",
             drain => { delay => '0s', timeout => '10s' },
             proxy => { outbound => { address => $outbound // '127.0.0.1:0' },
                        inbound => { enabled => JSON::PP::false },
                        clusters => [ { name => 'grpc', protocol => 'h2', endpoints => ["127.0.0.1:$sport"] } ],
                        routes => [ { authority => 'grpc.test', cluster => 'grpc',
                                      add_headers => { 'x-gen' => $tag } } ] } };
}

my $a = Outrider->start(conf => conf('one'), role => 'sidecar');
my $addr = $a->addr('proxy.outbound');
my $p1 = $a->pid;
my $cpid = open2(my $cout, my $cin, '/usr/bin/python3', $peer, 'client', $addr, 'grpc.test') or die;
# The client's next line, or '' after $secs.
my $got = '';
sub client_line {
    my ($secs) = @_;
    my $sel = IO::Select->new($cout);
    my $until = time + $secs;
    while ($got !~ /\n/) {
        my $left = $until - time;
        return '' if $left <= 0 || !$sel->can_read($left);
        sysread($cout, $got, 4096, length $got) or return '';
    }
    $got =~ s/^(.*?\n)//;
    return $1;
}
is(client_line(30), "open\n", 'the bidirectional stream is open and answering');

$a->rewrite_conf(conf('two', $addr));
$a->signal('HUP');
# Gen "one" sends its GOAWAY 5 s into its drain: the unary calls move.
is(client_line(15), "gen two\n", 'unary calls moved to the reloaded generation');
$a->rewrite_conf(conf('three', $addr));
my ($rc, $out) = Outrider::run_cmd($bin, 'upgrade', '--control', "$dir/control.sock");
is($rc, 0, 'upgrade with the stream open') or diag($out);
sleep 1.0;
print $cin "\n";  # end the stream (on the first process, gen "one"), well before its 10 s deadline
# The first process's gen "two" sends its GOAWAY 5 s into its drain.
is(client_line(15), "gen three\n", 'then to the new process');
print $cin "\n";
my $line = client_line(30) || '{}';
waitpid($cpid, 0);
my $r = eval { decode_json($line) } // {};

is($r->{stream_code}, 0, 'the long stream ended with status OK') or diag($line);
cmp_ok($r->{sent}, '>', 30, "the stream carried messages throughout ($r->{sent})");
is(scalar @{ $r->{echoes} || [] }, $r->{sent}, 'every message was echoed');
is_deeply([ grep { !/^one:/ } @{ $r->{echoes} || [] } ], [], 'every echo came from generation "one" (the old process)');
is_deeply($r->{unary_failed}, [], "no unary call failed ($r->{unary_ok} made)");
is_deeply($r->{unary_gens}, [ 'one', 'two', 'three' ], 'unary calls moved to the reloaded generation, then the new process');
is($r->{fresh_gen}, 'three', 'a new connection is served by the new process');
is($a->wait_exit(15), 0, 'the first process exited 0');
ok(!kill(0, $p1), 'the first process is gone');

my $log = $a->log;
ok(!defined Outrider::sanitizer_report($log), 'no sanitizer report in any process');
my @errors = grep { / error \[/ } split /\n/, $log;
ok(!@errors, 'no error lines') or diag(join "\n", @errors);
unlike($log, qr/drain deadline/, 'every drain finished before its deadline');
my ($p2) = $out =~ /new process (\d+)/;
kill 'TERM', $p2 if $p2;
for (1 .. 100) { last unless $p2 && kill 0, $p2; sleep 0.05 }
kill 'TERM', $spid;
waitpid($spid, 0);
done_testing;

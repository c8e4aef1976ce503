#!/usr/bin/env perl
# logs: bus records (the proxy's access stream, requests made with curl)
# that sat in the disk spool while the TCP sink was down survive the end of
# the process that took them: (a) SIGTERM with the sink still down, then a
# restart with it up; (b) kill -9; (c) a hot upgrade (`outrider upgrade`),
# where the new process replays what the old one left once it let go of
# its spool. Every record arrives (at least once); without the replay, they
# would be lost. Lines of a tailed file that were in the spool too are not
# replayed: their checkpoint (not advanced, since nothing was delivered)
# has them read again, so each arrives once.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Socket;
use POSIX qw(_exit);
use Time::HiRes qw(sleep);
use Outrider;
use ProxyTest qw(backend_start backend_stop curl);

my $N = 40;
my $dir = tempdir('logs-spool-restart-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $got = "$dir/sink.out";
my $be = backend_start('b1');

# The sink's port, held bound but not listening while the sink is "down".
my ($port, $hold);
sub sink_reserve {
    socket($hold, PF_INET, SOCK_STREAM, 0) or die;
    setsockopt($hold, SOL_SOCKET, SO_REUSEADDR, 1);
    bind($hold, sockaddr_in($port // 0, inet_aton('127.0.0.1'))) or die "bind: $!";
    ($port) = sockaddr_in(getsockname($hold));
}
my $sink_pid;
sub sink_up {
    $sink_pid = fork // die;
    if (!$sink_pid) {
        listen($hold, 16) or _exit(1);
        open my $o, '>>', $got or _exit(1);
        while (accept(my $c, $hold)) { my $buf; while (sysread($c, $buf, 65536)) { syswrite($o, $buf) } }
        _exit(0);
    }
    close $hold;
}
sub sink_down {
    kill 'KILL', $sink_pid;
    waitpid $sink_pid, 0;
    sink_reserve();
}
sink_reserve();

my $conf = {
    modules => ['proxy', 'logs'], state_dir => "$dir/state", control_socket => "$dir/control.sock",
    drain => { timeout => '1s' },
    proxy => {
        outbound => { address => '127.0.0.1:0' },
        inbound => { enabled => JSON::PP::false },
        clusters => [{ name => 'b', endpoints => ["127.0.0.1:$be->{port}"] }],
        routes => [{ authority => 'svc.test', path_prefix => '/', cluster => 'b' }],
    },
    logs => { bus_streams => ['access'], files => { paths => ["$dir/app.log"], poll_interval => '20ms' },
              buffer => { flush_interval => '20ms', memory_limit => '64KiB', chunk_size => '8KiB',
                          spool => { enabled => JSON::PP::true } },
              outputs => [{ type => 'tcp', address => "127.0.0.1:$port", batch_size => '4KiB',
                            retry_min => '50ms', retry_max => '200ms' }] },
};

# Sends $N requests tagged $tag through the proxy: $N access records.
sub requests {
    my ($a, $tag) = @_;
    my $addr = $a->addr('proxy.outbound');
    my @urls = map { "http://$addr/echo?r=$tag-$_" } 1 .. $N;
    my ($rc) = curl('-o', '/dev/null', '-H', 'Host: svc.test', @urls);
    is($rc, 0, "$tag: $N requests through the proxy");
}
sub arrived {
    my ($tag) = @_;
    my %n;
    if (open my $fh, '<', $got) { while (<$fh>) { $n{$1}++ if /"path":"\/echo\?r=$tag-(\d+)"/ } }
    return \%n;
}
sub wait_arrived {
    my ($tag, $secs) = @_;
    my $n;
    Outrider::poll($secs, sub { $n = arrived($tag); keys %$n >= $N });
    return $n;
}
# Matches of $re in the spool's segments.
sub spool_count {
    my ($re) = @_;
    my $n = 0;
    for my $f (glob("$dir/state/logs/spool-*/spool-*.seg")) {
        open my $fh, '<', $f or next;
        local $/;
        my $t = <$fh> // '';
        $n += () = $t =~ /$re/g;
    }
    return $n;
}
# The sealed chunks are on disk: a spool segment holds the tag.
sub wait_spooled {
    my ($tag) = @_;
    return Outrider::poll(10, sub { my $n = spool_count(qr/r=$tag-\d+"/); $n >= $N ? $n : 0 });
}
sub gone {
    my ($pid) = @_;
    return 1 unless kill 0, $pid;
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    return (split ' ', <$fh>)[2] eq 'Z';
}

# (a) SIGTERM while the sink is down: the records stay in the spool.
my $FL = 3000;
open my $app, '>', "$dir/app.log" or die;
my $a = Outrider->start(role => 'sidecar', conf => $conf);
print $app "file line $_ " . ('x' x 80) . "\n" for 1 .. $FL;
close $app;
requests($a, 'a');
ok(wait_spooled('a') >= $N, 'a: the records are in the spool');
my $fl_spooled = 0;
for (1 .. 100) {
    $fl_spooled = 0;
    for my $f (glob("$dir/state/logs/spool-*/spool-*.seg")) {
        open my $fh, '<', $f or next; local $/; my $t = <$fh> // ''; $fl_spooled += () = $t =~ /file line \d+ /g;
    }
    last if $fl_spooled > 1000;
    sleep 0.05;
}
ok($fl_spooled > 1000, "a: file lines went to the spool too (memory full): $fl_spooled");
is($a->stop(20), 0, 'a: SIGTERM with the sink down: exit 0');
like($a->log, qr/batch failed/, 'a: the sink was down');
ok(wait_spooled('a') >= $N, 'a: the spool was kept at exit');
sink_up();
my $b = Outrider->start(role => 'sidecar', conf_path => $a->conf_path);
my $n = wait_arrived('a', 20);
is(scalar(keys %$n), $N, "a: after the restart all $N records arrived");
is(scalar(grep { $_ > 1 } values %$n), 0, 'a: none twice');
like($b->log, qr/spool replay: \d+ record/, 'a: the replay is logged');
my %fl;
Outrider::poll(20, sub {
    %fl = ();
    if (open my $fh, '<', $got) { while (<$fh>) { $fl{$1}++ if /"message":"file line (\d+) / } }
    keys %fl >= $FL;
});
is(scalar(keys %fl), $FL, "a: all $FL file lines arrived (from the checkpoint)");
is(scalar(grep { $_ > 1 } values %fl), 0, 'a: file lines in the spool are not replayed as well: each once');

# (b) kill -9 while the sink is down.
sink_down();
requests($b, 'b');
ok(wait_spooled('b') >= $N, 'b: the records are in the spool') or diag(join '', grep { /logs_(dropped|spool|buffer)/ } split /^/m, ($b->http('GET', 'admin', '/metrics'))[1]);
$b->kill_hard;
sink_up();
my $c = Outrider->start(role => 'sidecar', conf_path => $a->conf_path);
$n = wait_arrived('b', 20);
is(scalar(keys %$n), $N, "b: after kill -9 and a restart all $N records arrived");
my $dups = 0;
$dups += $_ - 1 for values %$n;
# A 4KiB batch holds fewer than 10 access records.
ok($dups <= 10, "b: duplicates at most one batch ($dups)");
my $adups = 0;
$adups += $_ - 1 for values %{ arrived('a') };
is($adups, 0, 'b: (a) delivered ones are not replayed again');

# (c) a hot upgrade while the sink is down: the new process replays the old
# one's spool once the old one drained and let go of it.
sink_down();
requests($c, 'c');
ok(wait_spooled('c') >= $N, 'c: the records are in the spool');
my $old = $c->pid;
my ($code, $msg) = Outrider::run_cmd(Outrider::bin(), 'upgrade', '--control', "$dir/control.sock");
my $new;
for (1 .. 400) { my $st = $c->state; if ($st->{pid} != $old) { $new = $st->{pid}; last } sleep 0.05 }
ok($new, "c: process $new serves after the upgrade") or diag("exit $code: $msg");
is($c->wait_exit(30), 0, 'c: the old process drained (sink down) and exited 0');
sink_up();
$n = wait_arrived('c', 20);
is(scalar(keys %$n), $N, "c: after the upgrade all $N records arrived");
is(scalar(grep { $_ > 1 } values %$n), 0, 'c: none twice');
# Frames are let go after delivery, which follows the sink's read: poll.
my $live;
Outrider::poll(15, sub { ($live = spool_count(qr/OTRSL/)) == 0 });
is($live, 0, 'c: no live frame left in the spool once delivered');
if ($new) {
    kill 'TERM', $new;
    for (1 .. 400) { last if gone($new); sleep 0.05 }
    ok(gone($new), 'the last process stops on SIGTERM');
}
for my $x ($a, $b, $c) {
    my $l = $x->log;
    ok(!defined Outrider::sanitizer_report($l), 'no sanitizer report') or diag($l);
    my @errors = grep { / error \[/ || /"level":"error"/ } split /\n/, $l;
    ok(!@errors, 'no error lines') or diag(join "\n", @errors);
}
kill 'KILL', $sink_pid;
waitpid $sink_pid, 0;
backend_stop($be);
done_testing;

#!/usr/bin/env perl
# The sd_notify protocol: READY=1 once serving, RELOADING=1 then READY=1 on a
# reload, MAINPID=<new pid> from the new process of a hot upgrade (so that
# systemd with NotifyAccess=all follows it; the old one says nothing more),
# STOPPING=1 on SIGTERM.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use IO::Select;
use Socket qw(SOCK_DGRAM);
use Outrider;

my $dir = tempdir('outrider-notify-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $sock = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => "$dir/notify.sock") or die $!;
my $sel = IO::Select->new($sock);
sub next_msg {
    return undef unless $sel->can_read(15);
    my $m;
    $sock->recv($m, 4096);
    return $m;
}

my $a = Outrider->start(conf => { modules => ['echo'], control_socket => "$dir/control.sock" },
                        modules_dir => Outrider::test_modules_dir(), env => { NOTIFY_SOCKET => "$dir/notify.sock" });
is(next_msg(), 'READY=1', 'READY=1 once serving');
$a->signal('HUP');
is(next_msg(), 'RELOADING=1', 'RELOADING=1 when a reload starts');
is(next_msg(), 'READY=1', 'READY=1 when it is done');

my ($rc, $out) = Outrider::run_cmd(Outrider::bin(), 'upgrade', '--control', "$dir/control.sock");
my ($new) = $out =~ /new process (\d+)/;
ok($new, 'upgraded') or diag($out);
is(next_msg(), "MAINPID=$new\nREADY=1", 'the new process announces itself as the main process');
is($a->wait_exit(20), 0, 'the old process exits');
ok(!$sel->can_read(0.5), 'and says nothing more (no STOPPING=1 for a handover)');
kill 'TERM', $new;
is(next_msg(), 'STOPPING=1', 'STOPPING=1 on SIGTERM');
for (1 .. 200) { last unless kill 0, $new; select(undef, undef, undef, 0.05) }
ok(!defined Outrider::sanitizer_report($a->log), 'no sanitizer report');
done_testing;

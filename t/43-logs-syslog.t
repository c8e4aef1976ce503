#!/usr/bin/env perl
# logs: the syslog output (RFC 5424, octet-counting framing over TCP)
# received by a real rsyslogd started by this test on loopback, with its
# own configuration in a temporary directory.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Outrider;

my $rsyslogd = -x '/usr/sbin/rsyslogd' ? '/usr/sbin/rsyslogd' : undef;
plan skip_all => 'rsyslogd not installed (deps/logs.txt lists rsyslog)' unless $rsyslogd;

my $dir = tempdir('logs-syslog-XXXXXX', TMPDIR => 1, CLEANUP => 1);
# rsyslogd cannot listen on port 0: it is handed a free port.
my ($rs, $port) = Outrider::spawn_on_free_ports(1, sub {
    my ($p) = @_;
    open my $c, '>', "$dir/rsyslog.conf" or die;
    print $c <<"CONF";
global(workDirectory="$dir")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="$p")
template(name="t" type="string" string="%pri% %timereported:::date-rfc3339% %hostname% %app-name% %msg%\\n")
*.* action(type="omfile" file="$dir/received.log" template="t")
CONF
    close $c;
    my $pid = fork // die;
    if (!$pid) {
        open STDOUT, '>', "$dir/rsyslogd.out";
        open STDERR, '>&', \*STDOUT;
        exec $rsyslogd, '-n', '-f', "$dir/rsyslog.conf", '-i', "$dir/rsyslogd.pid" or exit 127;
    }
    return $pid;
});
ok($port, "rsyslogd listens on 127.0.0.1:$port");

my $log = "$dir/app.log";
open my $w, '>', $log or die;
for my $i (1 .. 200) {
    my $stream = $i % 10 == 0 ? 'stderr' : 'stdout';
    print $w "2026-03-04T05:06:07.123456789Z $stream F message $i with \"quotes\" and ünïcode\n";
}
close $w;
my $a = Outrider->start(role => 'sidecar', env => { NODE_NAME => 'node-7' }, conf => {
    modules => ['logs'], state_dir => "$dir/state",
    logs => {
        files => { paths => [$log], format => 'cri' },
        outputs => [{ type => 'syslog', address => "127.0.0.1:$port", syslog_app => 'shop-app' }],
    },
});
sub received { return Outrider::complete_lines("$dir/received.log") }
my $until = time + 20;
sleep 0.1 while received() < 200 && time < $until;
my @lines = received();
is(scalar @lines, 200, 'rsyslog received 200 messages');
like($lines[0] // '', qr/^14 2026-03-04T05:06:07\.123456(?:Z|\+00:00) node-7 shop-app \{"time":"2026-03-04T05:06:07\.123456789Z","stream":"stdout"/,
     'user.info, RFC 5424 timestamp, HOSTNAME from NODE_NAME, APP-NAME, the JSON record as MSG') or diag($lines[0]);
like($lines[9] // '', qr/^11 .*"stream":"stderr".*"message":"message 10 with \\"quotes\\" and ünïcode"/,
     'stderr as user.err; quotes escaped, UTF-8 intact') or diag($lines[9]);
my %seen;
$seen{$_}++ for map { /"message":"message (\d+) / ? $1 : () } @lines;
is(scalar(keys %seen), 200, 'every message once');
$a->finish_ok;
kill 'TERM', $rs;
waitpid $rs, 0;
done_testing;

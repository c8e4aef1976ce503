#!/usr/bin/env perl
# Reload and hot upgrade under load: wrk (HTTP/1.1 keep-alive) runs through
# the proxy while the agent reloads by SIGHUP and POST /reload and upgrades
# its binary twice; wrk must see no failed request. Then SIGTERM with a
# slow request in flight: it completes, and new connections are refused.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use IO::Socket::INET;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use JSON::PP;
use Outrider;
use ProxyTest qw(backend_start backend_stop curl);

plan skip_all => 'wrk and nginx are needed' unless -x '/usr/bin/wrk' && -x '/usr/sbin/nginx';
my $bin = Outrider::bin();
my $be = backend_start('b1');
my $dir = tempdir('outrider-life-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# nginx as the fast backend (HTTP/1.1 and h2c), on ports the kernel picked.
sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, ReuseAddr => 1) or die $!;
    return $s->sockport;
}
my ($ngx_h1, $ngx_h2) = (free_port(), free_port());
open my $nc, '>', "$dir/nginx.conf" or die;
print $nc <<"NGINX";
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir;
  server { listen 127.0.0.1:$ngx_h1 backlog=4096; location / { return 200 "hello\n"; } }
  server { listen 127.0.0.1:$ngx_h2 http2 backlog=4096; location / { return 200 "hello\n"; } }
}
NGINX
close $nc;
my $nginx = fork // die;
if (!$nginx) { exec '/usr/sbin/nginx', '-c', "$dir/nginx.conf", '-e', "$dir/nginx-error.log"; exit 127 }
for (1 .. 100) { last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ngx_h2"); sleep 0.05 }

sub conf {
    my ($tag, $outbound) = @_;
    return { modules => ['proxy'], control_socket => "$dir/control.sock",
             drain => { delay => '0s', timeout => '10s' },
             proxy => { outbound => { address => $outbound // '127.0.0.1:0' },
                        inbound => { enabled => JSON::PP::false },
                        clusters => [ { name => 'b', endpoints => ["127.0.0.1:$ngx_h1"] },
                                      { name => 'h2', endpoints => ["127.0.0.1:$ngx_h2"], protocol => 'h2' },
                                      { name => 'slow', endpoints => ["127.0.0.1:$be->{port}"] } ],
                        routes => [ { authority => 'svc.test', cluster => 'b', add_headers => { 'x-gen' => $tag } },
                                    { authority => 'h2.test', cluster => 'h2', add_headers => { 'x-gen' => $tag } },
                                    { authority => 'slow.test', cluster => 'slow' } ] } };
}

my $a = Outrider->start(conf => conf('one'), role => 'sidecar', args => [$ENV{DEBUG} ? ('--log-level', 'debug') : ()]);
my $out_addr = $a->addr('proxy.outbound');
$a->rewrite_conf(conf('two', $out_addr));

# wrk (HTTP/1.1 keep-alive) in the background for 8 seconds.
my $wrk_out = "$dir/wrk.txt";
my $wrk = fork // die;
if (!$wrk) {
    open STDOUT, '>', $wrk_out or die;
    exec 'wrk', '-t1', '-c8', '-d8s', '-H', 'Host: svc.test', "http://$out_addr/id";
    exit 127;
}

my @pids = ($a->pid);
sleep 1.0;
$a->signal('HUP');
sleep 1.0;
my ($code) = $a->http('POST', 'admin', '/reload');
is($code, 200, 'POST /reload under load');
sleep 1.0;
my ($rc, $out) = Outrider::run_cmd($bin, 'upgrade', '--control', "$dir/control.sock");
is($rc, 0, 'upgrade under load') or diag($out);
my ($p2) = $out =~ /new process (\d+)/;
sleep 1.5;
($rc, $out) = Outrider::run_cmd($bin, 'upgrade', '--control', "$dir/control.sock");
is($rc, 0, 'second upgrade under load') or diag($out);
my ($p3) = $out =~ /new process (\d+)/;
sleep 1.0;
Outrider::run_cmd($bin, 'reload', '--control', "$dir/control.sock");
waitpid($wrk, 0);
open my $fh, '<', $wrk_out or die;
my $report = do { local $/; <$fh> };
my ($requests) = $report =~ /(\d+) requests in/;
my ($non2xx) = $report =~ /Non-2xx or 3xx responses: (\d+)/;
my ($sockerr) = $report =~ /Socket errors: (.*)/;
cmp_ok($requests // 0, '>', 1000, "wrk made requests throughout (${\($requests // 0)})");
is($non2xx // 0, 0, 'no non-2xx response during reloads and upgrades');
is($sockerr, undef, 'no socket error (connect, read, write, timeout)') or diag($report);
is($a->wait_exit(20), 0, 'the first process exited 0');

# SIGTERM with a slow request in flight: it completes; new connections
# are refused once the agent stopped accepting.
my ($host, $port) = $out_addr =~ /^(.*):(\d+)$/;
my $slow = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port) or die $!;
print $slow "GET /sleep?ms=1500 HTTP/1.1\r\nHost: slow.test\r\n\r\n";
sleep 0.3;
kill 'TERM', $p3;
sleep 0.3;
my $refused = !IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 2);
ok($refused, 'new connections are refused after SIGTERM (drain.delay 0)');
my $status = <$slow> // '';
like($status, qr{^HTTP/1\.1 200}, 'the in-flight slow request completed');
for (1 .. 200) { last unless kill 0, $p3; sleep 0.05 }
ok(!kill(0, $p3), 'the agent exited after draining');
my $log = $a->log;
ok(!defined Outrider::sanitizer_report($log), 'no sanitizer report in any process');
my @errors = grep { / error \[/ } split /\n/, $log;
ok(!@errors, 'no error lines') or diag(join "\n", @errors);
backend_stop($be);
kill 'TERM', $nginx;
waitpid($nginx, 0);
done_testing;

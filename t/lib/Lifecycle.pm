package Lifecycle;
# The set-up shared by the lifecycle-under-load tests (t/65-lifecycle-load.t,
# t/66-lifecycle-h2.t): nginx as the fast backend (an HTTP/1.1 and an h2c
# server on ports the kernel picked), and the agent proxying to it and to
# the Python backend (slow requests), with a control socket for upgrades
# and routes that tag each request with the generation's name.
#
#   my $ngx = Lifecycle::nginx_start($dir, h2_keepalive_requests => 100);
#   my ($a, $out_addr) = Lifecycle::agent_start($dir, $ngx, $be);
#   ... start the load ...
#   my $last_pid = Lifecycle::reload_and_upgrade($a, $dir);
#   ...
#   Lifecycle::nginx_stop($ngx);
use strict;
use warnings;
use JSON::PP;
use Time::HiRes qw(sleep);
use Outrider;

# Starts nginx with its files in $dir; h2_keepalive_requests makes it close
# its HTTP/2 sessions with GOAWAY after that many requests. Returns
# { pid, h1, h2 } (h1, h2: the ports), once it listens on both.
sub nginx_start {
    my ($dir, %o) = @_;
    my %n;
    (@n{qw(pid h1 h2)}) = Outrider::spawn_on_free_ports(2, sub { nginx_spawn($dir, \%o, @_) });
    return \%n;
}

# Writes nginx's config for ports $h1 (HTTP/1.1) and $h2 (h2c) and forks
# it; returns its pid.
sub nginx_spawn {
    my ($dir, $o, $h1, $h2) = @_;
    my %n = (h1 => $h1, h2 => $h2);
    my $ka = $o->{h2_keepalive_requests} ? " keepalive_requests $o->{h2_keepalive_requests};" : '';
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
  server { listen 127.0.0.1:$n{h1} backlog=4096; location / { return 200 "hello\\n"; } }
  server { listen 127.0.0.1:$n{h2} http2 backlog=4096;$ka
           location / { return 200 "hello\\n"; } }
}
NGINX
    close $nc;
    my $pid = fork // die;
    if (!$pid) { exec '/usr/sbin/nginx', '-c', "$dir/nginx.conf", '-e', "$dir/nginx-error.log"; exit 127 }
    return $pid;
}

sub nginx_stop {
    my ($n) = @_;
    kill 'TERM', $n->{pid};
    waitpid($n->{pid}, 0);
}

# The agent's config: clusters b (nginx HTTP/1.1), h2 (nginx h2c) and slow
# (the Python backend $be); routes by authority svc.test, h2.test and
# slow.test, the first two adding x-gen: $tag. $outbound keeps a bound
# address across reloads (default: a new port).
sub conf {
    my ($dir, $ngx, $be, $tag, $outbound) = @_;
    return { modules => ['proxy'], control_socket => "$dir/control.sock",
             drain => { delay => '0s', timeout => '10s' },
             proxy => { outbound => { address => $outbound // '127.0.0.1:0' },
                        inbound => { enabled => JSON::PP::false },
                        clusters => [ { name => 'b', endpoints => ["127.0.0.1:$ngx->{h1}"] },
                                      { name => 'h2', endpoints => ["127.0.0.1:$ngx->{h2}"], protocol => 'h2' },
                                      { name => 'slow', endpoints => ["127.0.0.1:$be->{port}"] } ],
                        routes => [ { authority => 'svc.test', cluster => 'b', add_headers => { 'x-gen' => $tag } },
                                    { authority => 'h2.test', cluster => 'h2', add_headers => { 'x-gen' => $tag } },
                                    { authority => 'slow.test', cluster => 'slow' } ] } };
}

# Starts the agent with generation "one" and writes generation "two" (same
# outbound address) for the first reload. Returns ($agent, $outbound).
sub agent_start {
    my ($dir, $ngx, $be) = @_;
    my $a = Outrider->start(conf => conf($dir, $ngx, $be, 'one'), role => 'sidecar',
                            args => [$ENV{DEBUG} ? ('--log-level', 'debug') : ()]);
    my $out_addr = $a->addr('proxy.outbound');
    $a->rewrite_conf(conf($dir, $ngx, $be, 'two', $out_addr));
    return ($a, $out_addr);
}

# Under the load the test runs: a reload by SIGHUP, one by POST /reload,
# two hot upgrades and a reload through the control socket, a second or so
# apart, each asserted. Returns the pid of the last process.
sub reload_and_upgrade {
    my ($a, $dir) = @_;
    my $bin = Outrider::bin();
    my @ctl = ('--control', "$dir/control.sock");
    sleep 1.0;
    $a->signal('HUP');
    sleep 1.0;
    my ($code) = $a->http('POST', 'admin', '/reload');
    Test::More::is($code, 200, 'POST /reload under load');
    sleep 1.0;
    my ($rc, $out) = Outrider::run_cmd($bin, 'upgrade', @ctl);
    Test::More::is($rc, 0, 'upgrade under load') or Test::More::diag($out);
    sleep 1.5;
    ($rc, $out) = Outrider::run_cmd($bin, 'upgrade', @ctl);
    Test::More::is($rc, 0, 'second upgrade under load') or Test::More::diag($out);
    my ($last) = $out =~ /new process (\d+)/;
    sleep 1.0;
    Outrider::run_cmd($bin, 'reload', @ctl);
    return $last;
}

1;

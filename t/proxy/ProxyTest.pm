package ProxyTest;
# Helpers for the proxy's integration tests: an agent running the proxy,
# test backends, raw HTTP over a socket, curl.
use strict;
use warnings;
use JSON::PP ();
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use Exporter 'import';
our @EXPORT_OK = qw(proxy_agent proxy_conf backend_start backend_stop raw_http curl wait_metric refused_port);

my $ROOT = Outrider::root();

# The config of an agent whose proxy takes outbound traffic on 127.0.0.1:0
# (tests read the bound port back with addr('proxy.outbound')) and has no
# inbound listener. The keys of %$proxy are laid over those two defaults
# (a given outbound or inbound replaces the default whole); %top adds
# top-level keys (workers, log, inventory, or modules to run more than the
# proxy).
sub proxy_conf {
    my ($proxy, %top) = @_;
    return {
        modules => ['proxy'],
        %top,
        proxy => { outbound => { address => '127.0.0.1:0' }, inbound => { enabled => JSON::PP::false }, %$proxy },
    };
}

# Starts an agent (a sidecar unless role says otherwise) with the config
# proxy_conf($o{proxy}, %{ $o{conf} }): conf holds the top-level keys besides
# proxy. The other options (role, env, wrap) go to Outrider->start as they
# are. Returns the started agent.
#   my $a = proxy_agent(conf => { workers => 1 }, proxy => { clusters => [...], routes => [...] });
sub proxy_agent {
    my (%o) = @_;
    my $proxy = delete $o{proxy} || {};
    my $top = delete $o{conf} || {};
    return Outrider->start(role => 'sidecar', %o, conf => proxy_conf($proxy, %$top));
}

# A loopback port that refuses connections for as long as the test runs:
# bound but not listening, so no other process (a parallel test's server)
# can take it and answer in its place, as it could a port merely closed.
# Given a port (a stopped backend's), holds that one.
my @HELD;
sub refused_port {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port // 0, Proto => 'tcp',
                                  ReuseAddr => defined $port) or die "bind: $!";
    push @HELD, $s;
    return $s->sockport;
}

# Starts t/proxy/backend.py (on 127.0.0.1:0, or $bind "host:port");
# returns { pid, port }.
sub backend_start {
    my ($name, $delay_ms, $bind) = @_;
    local $ENV{BACKEND_BIND} = $bind if $bind;
    my $pid = open(my $fh, '-|', '/usr/bin/python3', "$ROOT/t/proxy/backend.py", $name // 'b', $delay_ms // 0)
        or die "backend: $!";
    my $port = <$fh>;
    die "backend did not start" unless defined $port && $port =~ /^(\d+)/;
    return { pid => $pid, port => $1, fh => $fh };
}

sub backend_stop {
    my ($b) = @_;
    kill 'TERM', $b->{pid};
    waitpid($b->{pid}, 0);
}

# Sends bytes to addr "ip:port" and reads until the peer closes or
# timeout seconds pass. Returns what was read.
sub raw_http {
    my ($addr, $bytes, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $addr, Proto => 'tcp', Timeout => 5) or die "connect $addr: $!";
    $s->autoflush(1);
    for my $piece (ref $bytes ? @$bytes : ($bytes)) {
        print $s $piece;
        sleep($o{gap}) if $o{gap};
    }
    shutdown($s, 1) if $o{half_close};
    my $sel = IO::Select->new($s);
    my $out = '';
    my $until = time + ($o{timeout} || 10);
    while (time < $until) {
        last unless $sel->can_read($until - time);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $out .= $buf;
        last if $o{until} && $out =~ $o{until};
    }
    close $s;
    return $out;
}

# Polls the agent's /metrics until a line matches re (timeout seconds);
# returns whether it did. Tests wait on state, not on fixed sleeps.
sub wait_metric {
    my ($agent, $re, $timeout) = @_;
    return Outrider::poll($timeout || 10, sub {
        my ($code, $m) = $agent->http('GET', 'admin', '/metrics');
        return $code == 200 && $m =~ $re;
    }) ? 1 : 0;
}

# Runs curl with arguments; returns (exit code, stdout).
sub curl {
    my (@args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', '/dev/null';
        exec 'curl', '-s', '-m', '10', @args or exit 127;
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

1;

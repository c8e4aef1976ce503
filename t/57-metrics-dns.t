#!/usr/bin/env perl
# metrics module, scrape targets by DNS name: "localhost" and a name with
# two addresses (::1 and 127.0.0.1) where each target listens on one of
# them only, so whichever order the resolver gives, one of the two needs
# the next address; an unknown name is a failed scrape (up 0), logged.
# The agent and the targets run in a network namespace of their own,
# whose /etc/hosts (ip netns exec mounts /etc/netns/<ns>/hosts) holds
# the names. Two targets on one host:port collide: their identical
# series appear once, and the collisions are counted.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use JSON::PP;
use Outrider;

plan skip_all => 'needs root for ip netns' unless $> == 0;
my $dir = tempdir('outrider-mdns-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $ns = "mdns-$$";
my $etc = "/etc/netns/$ns";
# Globals, not file lexicals: those are freed (a piped open's close waits
# for the child) before END could stop the child.
our ($pypid, $pyout);
sub sh { my $c = join ' ', @_; system($c) == 0 or die "failed: $c\n" }
END {
    local $?;
    kill 'TERM', $pypid if $pypid;
    system("ip netns del $ns 2>/dev/null");
    unlink "$etc/hosts";
    rmdir $etc;
}
sh("ip netns add $ns");
sh("ip netns exec $ns ip link set lo up");
mkdir '/etc/netns';
mkdir $etc or die "$etc: $!";
open my $h, '>', "$etc/hosts" or die;
print $h "127.0.0.1 localhost\n::1 dual.test\n127.0.0.1 dual.test\n";
close $h;

# Two targets: one on 127.0.0.1 only, one on ::1 only.
open my $py, '>', "$dir/targets.py" or die;
print $py <<'PY';
import socket, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def do_GET(self):
        b = ('# TYPE where gauge\nwhere{family="%s"} 1\n' % self.server.tag).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain; version=0.0.4')
        self.send_header('Content-Length', str(len(b)))
        self.end_headers()
        self.wfile.write(b)
class V6(ThreadingHTTPServer):
    address_family = socket.AF_INET6
for cls, addr, tag in ((ThreadingHTTPServer, '127.0.0.1', 'v4'), (V6, '::1', 'v6')):
    s = cls((addr, 0), H)
    s.tag = tag
    print(tag, s.server_address[1], flush=True)
    threading.Thread(target=s.serve_forever, daemon=True).start()
while True: time.sleep(60)
PY
close $py;
$pypid = open($pyout, '-|', "exec ip netns exec $ns /usr/bin/python3 $dir/targets.py 2>/dev/null") or die "python: $!";
my %port;
for (1 .. 2) { my ($tag, $p) = split ' ', scalar <$pyout>; $port{$tag} = $p }
ok($port{v4} && $port{v6}, "targets on 127.0.0.1:$port{v4} and [::1]:$port{v6}");

my $a = Outrider->start(
    role => 'sidecar',
    netns => $ns,
    env => { POD_NAME => 'web-1', POD_NAMESPACE => 'shop', NODE_NAME => 'n1' },
    conf => {
        modules => ['metrics'],
        metrics => {
            listen => '127.0.0.1:0',
            statsd => { enabled => JSON::PP::false },
            scrape => { interval => '1s', timeout => '1s',
                        targets => ["http://localhost:$port{v4}/metrics", "http://localhost:$port{v4}/again",
                                    "http://dual.test:$port{v4}/metrics",
                                    "http://dual.test:$port{v6}/metrics", "http://no-such-name.invalid:$port{v4}/metrics"] },
        },
    });

sub scrape_body {
    my $url = 'http://' . $a->addr('metrics.http') . '/metrics';
    return scalar `ip netns exec $ns curl -s -m 5 $url`;
}
my $body = '';
for (my $until = time + 15; time < $until; sleep 0.2) {
    $body = scrape_body();
    last if (() = $body =~ /^up\{.*\} [01]$/mg) == 4;
}
my $t = 'namespace="shop",pod="web-1",node="n1",instance=';
like($body, qr/^where\{family="v4",\Q${t}"localhost:$port{v4}"\E\} 1$/m, 'localhost resolved and scraped; instance keeps the name');
like($body, qr/^where\{family="v4",\Q${t}"dual.test:$port{v4}"\E\} 1$/m, 'a two-address name reaches the IPv4-only target');
like($body, qr/^where\{family="v6",\Q${t}"dual.test:$port{v6}"\E\} 1$/m, 'and the IPv6-only one: the next address is tried');
like($body, qr/^up\{\Q${t}"no-such-name.invalid:$port{v4}"\E\} 0$/m, 'an unknown name: up 0') or diag($body);
# Two targets on one host:port have the same target labels: their series
# collide; the first target's are kept, the others counted.
my @same = $body =~ /^where\{family="v4",\Q${t}"localhost:$port{v4}"\E\} 1$/mg;
is(scalar(@same), 1, 'two targets on one host:port: an identical series appears once');
# Counted while an exposition is written, so seen in the next one.
my $dups = 0;
for (my $until = time + 10; time < $until && !$dups; sleep 0.2) {
    ($dups) = scrape_body() =~ /^outrider_metrics_exposition_duplicates_total (\d+)$/m;
}
ok($dups, 'the collisions are counted');
ok($a->wait_log(qr/scrape http:\/\/no-such-name\.invalid:\d+\/metrics failed: /, 10), 'the failure is logged')
    or diag($a->log);
$a->finish_ok;
kill 'TERM', $pypid;
waitpid($pypid, 0);
$pypid = undef;
done_testing();

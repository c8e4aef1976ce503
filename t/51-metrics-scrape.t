#!/usr/bin/env perl
# metrics module, scraping: real HTTP targets (a Python server) that are
# good, chunked, slow, down, garbage, huge, or over the sample limit; each
# target's up, scrape_duration_seconds and scrape_samples_scraped; target
# labels with honor_labels off (sidecar) and on; in node role, pods found
# by their prometheus.io annotations, and a vanished pod's series gone.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use JSON::PP;
use Outrider;

my $dir = tempdir('outrider-mscrape-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# The targets: one Python process, one path per behaviour.
open my $py, '>', "$dir/targets.py" or die;
print $py <<'PY';
import sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
GOOD = ('# HELP app_requests_total Requests.\n# TYPE app_requests_total counter\n'
        'app_requests_total{code="200",pod="spoof"} 42\napp_requests_total{code="500"} 3\n'
        '# HELP app_latency_seconds Latency.\n# TYPE app_latency_seconds histogram\n'
        'app_latency_seconds_bucket{le="0.1"} 5\napp_latency_seconds_bucket{le="+Inf"} 7\n'
        'app_latency_seconds_sum 1.5\napp_latency_seconds_count 7\n'
        '# HELP app_temp_celsius Temperature.\n# TYPE app_temp_celsius gauge\napp_temp_celsius{room="a \\"b\\""} 21.5\n'
        '# HELP go_goroutines Goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 12\n')
NAMES = {}
class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def send(self, body, chunked=False, ctype='text/plain; version=0.0.4'):
        b = body.encode()
        self.send_response(200)
        self.send_header('Content-Type', ctype)
        if chunked:
            self.send_header('Transfer-Encoding', 'chunked')
            self.end_headers()
            for i in range(0, len(b), 50):
                c = b[i:i + 50]
                self.wfile.write(b'%x\r\n' % len(c) + c + b'\r\n')
            self.wfile.write(b'0\r\n\r\n')
        else:
            self.send_header('Content-Length', str(len(b)))
            self.end_headers()
            self.wfile.write(b)
    def do_GET(self):
        p = self.path if self.path != '/metrics' else '/' + NAMES[self.server.server_address[1]]
        if p == '/good': self.send(GOOD)
        elif p == '/chunked': self.send(GOOD.replace('app_', 'chk_').replace('go_', 'chkgo_'), chunked=True)
        elif p == '/slow': time.sleep(5); self.send(GOOD)
        elif p == '/garbage': self.send('this { is not metrics\n')
        elif p == '/huge': self.send('# TYPE big gauge\n' + ''.join('big{i="%d"} 1\n' % i for i in range(200000)))
        elif p == '/many': self.send(''.join('many_%d 1\n' % i for i in range(200)))
        elif p == '/om': self.send('# HELP om_events Events.\n# TYPE om_events counter\nom_events_total 9 1700000000.5 # {trace_id="x"} 1\n# EOF\n',
                                   ctype='application/openmetrics-text; version=1.0.0')
        else:
            self.send_response(404); self.send_header('Content-Length', '0'); self.end_headers()
import threading
# One server per behaviour: a target is a host:port, as in Prometheus.
for name in sys.argv[1:]:
    s = ThreadingHTTPServer(('127.0.0.1', 0), H)
    NAMES[s.server_address[1]] = name
    print(name, s.server_address[1], flush=True)
    threading.Thread(target=s.serve_forever, daemon=True).start()
while True: time.sleep(60)
PY
close $py;
my @names = qw(good chunked slow garbage huge many om);
my $pypid = open(my $pyout, '-|', "exec /usr/bin/python3 $dir/targets.py @names 2>/dev/null") or die "python: $!";
my %port;
for (@names) { my ($n, $p) = split ' ', scalar <$pyout>; $port{$n} = $p }
ok($port{om}, "targets on ports @port{@names}");
my $port = $port{good};
my $base = "http://127.0.0.1:$port";
# A port nobody listens on: bound, not listening, and kept so for the whole
# test (closed, a parallel test's server could take it and answer).
require IO::Socket::INET;
my $down_sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp') or die "bind: $!";
my $down = $down_sock->sockport;

sub wait_body {
    my ($a, $re, $secs) = @_;
    my $body = '';
    my $until = time + ($secs || 10);
    while (time < $until) {
        (undef, $body) = $a->http('GET', 'metrics.http', '/metrics');
        return $body if $body =~ $re;
        sleep 0.2;
    }
    return $body;
}

# --- sidecar: static targets, honor_labels off ---------------------------
my $a = Outrider->start(
    role => 'sidecar',
    env => { POD_NAME => 'web-1', POD_NAMESPACE => 'shop', NODE_NAME => 'n1' },
    conf => {
        modules => ['metrics'],
        metrics => {
            listen => '127.0.0.1:0',
            statsd => { enabled => JSON::PP::false },
            scrape => { interval => '2s', timeout => '1500ms', max_body => '1MiB', sample_limit => 100,
                        targets => [(map { "http://127.0.0.1:$port{$_}/metrics" } @names),
                                    "http://127.0.0.1:$down/metrics"] },
        },
    });
my $body = wait_body($a, qr/^up\{.*\/metrics.*\n(?:.*\n)*up\{/m);
$body = wait_body($a, qr/(?:^up\{[^\n]*\n(?:[^\n]*\n)*?){8}/m);
my $t = 'namespace="shop",pod="web-1",node="n1",instance="127.0.0.1:';
like($body, qr/^app_requests_total\{code="200",exported_pod="spoof",\Q$t$port{good}"\E\} 42$/m,
     'scraped series carry target labels; a clashing label becomes exported_pod');
like($body, qr/^app_latency_seconds_bucket\{le="\+Inf",\Q$t$port{good}"\E\} 7$/m, 'histogram scraped');
like($body, qr/^app_temp_celsius\{room="a \\"b\\"",\Q$t$port{good}"\E\} 21.5$/m, 'escaped label value kept escaped');
like($body, qr/^chk_requests_total\{code="500",\Q$t$port{chunked}"\E\} 3$/m, 'chunked response scraped');
like($body, qr/^om_events_total\{\Q$t$port{om}"\E\} 9 1700000000500$/m, 'OpenMetrics body: exemplar skipped, timestamp in ms');
my @up = $body =~ /^up\{(.*)\} (\d)$/mg;
my %up = @up;
is(scalar(keys %up), 8, 'one up series per target') or diag($body);
my $upfor = sub { my ($path) = @_; my ($k) = grep { /\Q$path\E/ } keys %up; return $k ? $up{$k} : 'none' };
# Target labels do not name the URL; match on samples scraped instead.
my %samples = $body =~ /^scrape_samples_scraped\{(.*)\} (\d+)$/mg;
my @ok = grep { $up{$_} == 1 } keys %up;
is(scalar(@ok), 3, 'three targets up (good, chunked, om)');
is(scalar(grep { $up{$_} == 0 } keys %up), 5, 'five down: slow, garbage, huge, many, refused');
like($body, qr/^# TYPE scrape_duration_seconds gauge$/m, 'scrape_duration_seconds exposed');
ok(!grep({ /^big/ } split /\n/, $body), 'nothing of the huge body kept');
ok($body !~ /^many_/m, 'nothing of the target over sample_limit kept');
ok($a->wait_log(qr/scrape .*:$port{slow}\/metrics failed: connection timed out/, 15), 'slow target: timeout logged');
ok($a->wait_log(qr/scrape .*:$port{garbage}\/metrics failed: line 1:6: /, 15), 'garbage: parse error with line:col logged');
ok($a->wait_log(qr/scrape .*:$port{huge}\/metrics failed: body larger than scrape.max_body/, 15), 'huge body refused');
ok($a->wait_log(qr/scrape .*:$port{many}\/metrics failed: more than scrape.sample_limit \(100\) samples/, 15), 'sample limit');
ok($a->wait_log(qr/scrape .*:$down\/metrics failed: connection refused/, 15), 'down target');
like($body, qr/^outrider_metrics_scrapes_total\{result="failed"\} [1-9]/m, 'failed scrapes counted');
Outrider::promtool_ok($body, 'promtool check metrics passes on the merged output');
$a->finish_ok;

# --- node role: discovery by annotations, vanished pod, honor_labels ------
my $inv = "$dir/pods.json";
sub write_inv {
    my ($pods) = @_;
    open my $f, '>', "$inv.tmp" or die;
    print $f encode_json({ pods => $pods });
    close $f;
    rename "$inv.tmp", $inv or die;
}
my %ann = ('prometheus.io/scrape' => 'true');
write_inv([
    { namespace => 'shop', name => 'cart-1', uid => 'u1', node => 'n7', ip => '127.0.0.1',
      annotations => { %ann, 'prometheus.io/port' => $port{good}, 'prometheus.io/path' => '/good', 'outrider.io/container' => 'app' } },
    { namespace => 'shop', name => 'chk-1', uid => 'u2', node => 'n7', ip => '127.0.0.1',
      annotations => { %ann, 'prometheus.io/port' => $port{chunked} } },
    { namespace => 'ops', name => 'quiet-1', uid => 'u3', node => 'n7', ip => '127.0.0.1', annotations => {} },
]);
$a = Outrider->start(
    role => 'node',
    conf => {
        modules => ['metrics'],
        inventory => { file => $inv, poll_interval => '200ms' },
        metrics => {
            listen => '127.0.0.1:0',
            statsd => { enabled => JSON::PP::false },
            scrape => { interval => '500ms', timeout => '400ms', honor_labels => JSON::PP::true },
        },
    });
$body = wait_body($a, qr/^chk_requests_total.*\n(?:.*\n)*^app_requests_total|^app_requests_total.*\n(?:.*\n)*^chk_requests_total/m);
like($body, qr/^app_requests_total\{code="200",pod="spoof",namespace="shop",container="app",node="n7"\} 42$/m,
     'node role: pod found by annotations; honor_labels keeps the scraped pod label');
like($body, qr/^app_requests_total\{code="500",namespace="shop",pod="cart-1",container="app",node="n7"\} 3$/m,
     'target labels namespace, pod, container, node');
like($body, qr/^chk_requests_total\{code="500",namespace="shop",pod="chk-1",node="n7"\} 3$/m, 'second pod scraped');
ok($body !~ /quiet-1/, 'a pod without prometheus.io/scrape is not scraped');
like($body, qr/^up\{namespace="shop",pod="cart-1",container="app",node="n7"\} 1$/m, 'up per pod');

write_inv([{ namespace => 'shop', name => 'chk-1', uid => 'u2', node => 'n7', ip => '127.0.0.1',
             annotations => { %ann, 'prometheus.io/port' => $port{chunked} } }]);
my $gone = '';
for (1 .. 50) {
    (undef, $gone) = $a->http('GET', 'metrics.http', '/metrics');
    last if $gone !~ /cart-1/;
    sleep 0.2;
}
ok($gone !~ /cart-1/, "a vanished pod's series disappear");
like($gone, qr/^chk_requests_total\{code="500",namespace="shop",pod="chk-1",node="n7"\} 3$/m, 'the other pod stays');
ok($a->wait_log(qr/scrape targets: 0 added, 1 removed, 1 in all/, 5), 'discovery logged');
$a->finish_ok;

kill 'TERM', $pypid;
waitpid($pypid, 0);
done_testing;

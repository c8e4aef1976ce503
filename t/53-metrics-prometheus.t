#!/usr/bin/env perl
# metrics module with real peers: a real Prometheus server scrapes the
# agent's /metrics (it asks for OpenMetrics, so its strict parser reads our
# output) and its query API returns statsd, scraped and own metrics with
# the right labels; a real Pushgateway receives the push.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use JSON::PP;
use Outrider;

for my $bin ('/usr/bin/prometheus', '/usr/bin/prometheus-pushgateway') {
    BAIL_OUT("$bin missing: build.sh installs it") unless -x $bin;
}
my $dir = tempdir('outrider-mprom-XXXXXX', TMPDIR => 1, CLEANUP => 1);
sub spawn {
    my ($log, @cmd) = @_;
    my $pid = fork // die;
    if (!$pid) { open STDOUT, '>', $log; open STDERR, '>&', \*STDOUT; exec @cmd or die }
    return $pid;
}
sub get {
    my ($url) = @_;
    my $out = `curl -s -m 5 '$url'`;
    return $out;
}

# An app target: one Python server.
open my $py, '>', "$dir/target.py" or die;
print $py <<'PY';
from http.server import HTTPServer, BaseHTTPRequestHandler
import time
BODY = ('# HELP app_orders_total Orders.\n# TYPE app_orders_total counter\napp_orders_total{kind="book"} 17\n'
        '# HELP app_seen Last seen, with a timestamp.\n# TYPE app_seen gauge\napp_seen 5 %d\n')
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        b = (BODY % int(time.time() * 1000)).encode()
        self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
s = HTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
close $py;
my $pypid = open(my $pyout, '-|', "exec /usr/bin/python3 $dir/target.py 2>/dev/null") or die;
my $app = <$pyout>;
chomp $app;

# Prometheus and the Pushgateway cannot listen on port 0: they are handed free ports.
my ($pgw, $pgw_port) = Outrider::spawn_on_free_ports(1, sub {
    spawn("$dir/pgw.log", '/usr/bin/prometheus-pushgateway', "--web.listen-address=127.0.0.1:$_[0]");
}, timeout => 30);

my $a = Outrider->start(
    role => 'sidecar',
    env => { POD_NAME => 'web-1', POD_NAMESPACE => 'shop', NODE_NAME => 'n1' },
    conf => {
        modules => ['metrics'],
        metrics => {
            listen => '127.0.0.1:0',
            statsd => { udp => '127.0.0.1:0' },
            scrape => { interval => '1s', timeout => '900ms', targets => ["http://127.0.0.1:$app/metrics"] },
            push => { url => "http://127.0.0.1:$pgw_port", interval => '500ms', job => 'outrider-test' },
        },
    });
my $udp = IO::Socket::INET->new(PeerAddr => $a->addr('metrics.statsd'), Proto => 'udp') or die;
$udp->send("checkout.ok:3|c|#region:eu\nqueue.depth:12|g\nrender.time:250|ms") or die;

open my $cfg, '>', "$dir/prometheus.yml" or die;
print $cfg "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
    . "  - job_name: outrider\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n"
    . "    static_configs:\n      - targets: ['" . $a->addr('metrics.http') . "']\n";
close $cfg;
my ($prom, $prom_port) = Outrider::spawn_on_free_ports(1, sub {
    spawn("$dir/prom.log", '/usr/bin/prometheus', "--config.file=$dir/prometheus.yml",
          "--storage.tsdb.path=$dir/data", "--web.listen-address=127.0.0.1:$_[0]");
}, timeout => 30);

sub query {
    my ($q) = @_;
    my $enc = $q;
    $enc =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
    my $json = get("http://127.0.0.1:$prom_port/api/v1/query?query=$enc") or return [];
    my $r = eval { decode_json($json) } or return [];
    return $r->{data}{result} || [];
}
sub wait_query {
    my ($q, $secs) = @_;
    my $until = time + ($secs || 40);
    while (time < $until) {
        my $r = query($q);
        return $r if @$r;
        sleep 0.5;
    }
    return [];
}

my $r = wait_query('checkout_ok_total');
is(scalar(@$r), 1, 'Prometheus has the statsd counter') or diag(`tail -20 $dir/prom.log`);
is($r->[0]{value}[1], '3', 'with its value');
is($r->[0]{metric}{region}, 'eu', 'and its tag as a label');
is($r->[0]{metric}{job}, 'outrider', 'scraped under the job of the Prometheus config');

$r = wait_query('app_orders_total');
is($r->[0]{value}[1], '17', 'scraped target value through the agent');
is_deeply([@{ $r->[0]{metric} }{qw(kind namespace pod node)}], ['book', 'shop', 'web-1', 'n1'],
          'with its own and its target labels');
$r = wait_query('up{job="outrider",pod="web-1"}');
is($r->[0]{value}[1], '1', "the target's up from the agent");
$r = wait_query('render_time_count');
is($r->[0]{value}[1], '1', 'statsd timer histogram count');
$r = wait_query('histogram_quantile(0.5, rate(render_time_bucket[1m])) >= 0 or render_time_bucket{le="0.25"}');
ok(@$r, 'timer buckets usable by histogram_quantile');
$r = wait_query('queue_depth');
is($r->[0]{value}[1], '12', 'statsd gauge');
$r = wait_query('outrider_metrics_statsd_lines_total');
is($r->[0]{value}[1], '3', "the agent's own metrics (core registry)");
$r = wait_query('up{job="outrider",pod=""}');
is($r->[0]{value}[1], '1', 'Prometheus scraped the agent without errors (up=1)');
my $targets = eval { decode_json(get("http://127.0.0.1:$prom_port/api/v1/targets")) };
my ($t) = @{ $targets->{data}{activeTargets} || [] };
is($t->{lastError}, '', 'no scrape error reported by Prometheus') or diag(explain($t));

# The Pushgateway has the same metrics under the pushed job.
my $pushed = '';
my $until = time + 20;
while (time < $until) {
    $pushed = get("http://127.0.0.1:$pgw_port/metrics");
    last if $pushed =~ /^checkout_ok_total\{.*job="outrider-test"/m;
    sleep 0.3;
}
like($pushed, qr/^checkout_ok_total\{instance="",job="outrider-test",region="eu"\} 3$/m, 'Pushgateway received the push');
like($pushed, qr/^app_orders_total\{.*job="outrider-test".*pod="web-1"/m, 'scraped series pushed too');
# Guards a bug: the Pushgateway refuses a push with sample timestamps (400).
like($pushed, qr/^app_seen\{.*job="outrider-test".*\} 5$/m, 'a timestamped scraped sample is pushed without its timestamp');
like($pushed, qr/^push_time_seconds\{instance="",job="outrider-test"\} \d/m, 'Pushgateway recorded a successful push');
my (undef, $body) = $a->http('GET', 'metrics.http', '/metrics');
like($body, qr/^outrider_metrics_pushes_total\{result="ok"\} [1-9]/m, 'successful pushes counted');

$a->finish_ok;
kill 'TERM', $prom, $pgw, $pypid;
waitpid($_, 0) for $prom, $pgw, $pypid;
done_testing;

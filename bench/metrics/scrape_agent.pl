#!/usr/bin/env perl
# Scrape and merge in the real agent: 100 targets x 1,000 series (one
# Python process serving 100 ports), scraped every 2 s for a while.
# Reports the agent's CPU per scrape cycle, its RSS per stored series, and
# the CPU of one exposition of the merged 100,000 series.
#   bench/metrics/scrape_agent.pl [TARGETS] [SECONDS]
use strict;
use warnings;
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(sysconf _SC_CLK_TCK);
use Time::HiRes qw(sleep time);
use Cwd qw(abs_path);
use File::Basename qw(dirname);

my $root = abs_path(dirname(__FILE__) . '/../..');
my $build = $ENV{OUTRIDER_BUILD} || "$root/build";
my $targets = shift || 100;
my $secs = shift || 12;
my $tick = sysconf(_SC_CLK_TCK);
my $dir = tempdir('outrider-bscrape-XXXXXX', TMPDIR => 1, CLEANUP => 1);
sub cpu { open my $f, '<', "/proc/$_[0]/stat" or die; my @f = split ' ', (split /\) /, <$f>)[1]; return ($f[11] + $f[12]) / $tick }
sub rss_kib { open my $f, '<', "/proc/$_[0]/status" or return 0; while (<$f>) { return $1 if /^VmRSS:\s+(\d+)/ } 0 }

open my $py, '>', "$dir/targets.py" or die;
print $py <<'PY';
import sys, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
lines = ['# HELP http_requests_total Requests.', '# TYPE http_requests_total counter']
lines += ['http_requests_total{method="%s",code="%d",path="/api/v1/item/%d"} %d' % ('GET' if i % 2 else 'POST', 200 + i % 5, i, i) for i in range(600)]
lines += ['# HELP http_duration_seconds Latency.', '# TYPE http_duration_seconds histogram']
for r in range(30):
    for i, le in enumerate(['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '+Inf']):
        lines.append('http_duration_seconds_bucket{route="/r%d",le="%s"} %d' % (r, le, i * 7 + r))
    lines.append('http_duration_seconds_sum{route="/r%d"} %.3f' % (r, r * 1.25))
    lines.append('http_duration_seconds_count{route="/r%d"} %d' % (r, 63 + r))
for g in range(8):
    lines += ['# HELP app_gauge_%d Gauge.' % g, '# TYPE app_gauge_%d gauge' % g]
    lines += ['app_gauge_%d{shard="%d"} %.2f' % (g, i, g * 0.5 + i) for i in range(5)]
BODY = ('\n'.join(lines) + '\n').encode()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header('Content-Length', str(len(BODY))); self.end_headers(); self.wfile.write(BODY)
for _ in range(int(sys.argv[1])):
    s = ThreadingHTTPServer(('127.0.0.1', 0), H)
    print(s.server_address[1], flush=True)
    threading.Thread(target=s.serve_forever, daemon=True).start()
while True: time.sleep(60)
PY
close $py;
my $pypid = open(my $pyout, '-|', "exec /usr/bin/python3 $dir/targets.py $targets 2>/dev/null") or die;
my @ports = map { my $p = <$pyout>; chomp $p; $p } 1 .. $targets;

open my $c, '>', "$dir/agent.conf" or die;
print $c encode_json({ modules => ['metrics'], workers => 1, admin => { address => '127.0.0.1:0' },
    metrics => { listen => '127.0.0.1:0', statsd => { enabled => JSON::PP::false },
                 scrape => { interval => '2s', timeout => '1900ms', targets => [map { "http://127.0.0.1:$_/metrics" } @ports] } } });
close $c;
my $pid = fork // die;
if (!$pid) { open STDOUT, '>', "$dir/log"; open STDERR, '>&', \*STDOUT;
    exec "$build/outrider", '-c', "$dir/agent.conf", '--role', 'sidecar', '--state-file', "$dir/state.json", '--modules-dir', "$build/modules" or die }
my $st;
for (1 .. 100) { last if -s "$dir/state.json" && ($st = eval { local $/; open my $f, '<', "$dir/state.json"; decode_json(<$f>) }); sleep 0.1 }
die "no agent\n" unless $st;
my $http = $st->{listeners}{'metrics.http'};
my $rss0 = rss_kib($pid);
sleep 4; # first cycles
my ($ok0) = `curl -s http://$http/metrics` =~ /^outrider_metrics_scrapes_total\{result="ok"\} (\d+)/m;
my $cpu0 = cpu($pid);
sleep $secs;
my $cpu1 = cpu($pid);
my $body = `curl -s http://$http/metrics`;
my ($ok1) = $body =~ /^outrider_metrics_scrapes_total\{result="ok"\} (\d+)/m;
my ($failed) = $body =~ /^outrider_metrics_scrapes_total\{result="failed"\} (\d+)/m;
my $series = () = $body =~ /^(?:http_|app_gauge)/mg;
my $rss1 = rss_kib($pid);
my $cycles = (($ok1 // 0) - ($ok0 // 0)) / $targets;
printf "targets=%d series=%d scrapes_ok=%d failed=%d\n", $targets, $series, $ok1 // 0, $failed // 0;
printf "agent CPU per scrape cycle (%d targets, parse+build+swap): %.1f ms over %.1f cycles\n", $targets,
    $cycles ? ($cpu1 - $cpu0 - 0) * 1000 / $cycles : 0, $cycles;
printf "RSS growth per stored series: %.0f bytes (RSS %.1f -> %.1f MiB)\n", ($rss1 - $rss0) * 1024 / ($series || 1),
    $rss0 / 1024, $rss1 / 1024;
my $e0 = cpu($pid);
my $url = "http://$http/metrics";
`curl -s -o /dev/null $url -o /dev/null $url -o /dev/null $url -o /dev/null $url -o /dev/null $url`;
printf "agent CPU per exposition of %d series (average of 5, includes background scrapes): %.1f ms\n", $series, (cpu($pid) - $e0) * 1000 / 5;
kill 'TERM', $pid, $pypid;
waitpid($_, 0) for $pid, $pypid;

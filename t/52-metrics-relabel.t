#!/usr/bin/env perl
# metrics module, the Lua relabel hook: the shipped example script
# scripts/metrics_relabel.lua drops, renames, adds and removes labels on
# really scraped samples; a script that fails falls back to keeping the
# sample; a missing script is a config error naming its key.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use JSON::PP;
use Outrider;

my $dir = tempdir('outrider-mrelabel-XXXXXX', TMPDIR => 1, CLEANUP => 1);
open my $py, '>', "$dir/target.py" or die;
print $py <<'PY';
from http.server import HTTPServer, BaseHTTPRequestHandler
BODY = ('# HELP app_requests_total Requests.\n# TYPE app_requests_total counter\n'
        'app_requests_total{code="200",request_id="r-1"} 42\n'
        '# HELP app_latency_seconds Latency.\n# TYPE app_latency_seconds histogram\n'
        'app_latency_seconds_bucket{le="+Inf"} 7\napp_latency_seconds_sum 1.5\napp_latency_seconds_count 7\n'
        '# HELP app_temp_celsius Temperature.\n# TYPE app_temp_celsius gauge\napp_temp_celsius{room="a"} 21.5\n'
        '# HELP go_goroutines Goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 12\n'
        '# HELP process_open_fds Fds.\n# TYPE process_open_fds gauge\nprocess_open_fds 9\n').encode()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain; version=0.0.4')
        self.send_header('Content-Length', str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
s = HTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
close $py;
my $pypid = open(my $pyout, '-|', "exec /usr/bin/python3 $dir/target.py 2>/dev/null") or die;
my $port = <$pyout>;
chomp $port;

sub agent {
    my ($scripts, $script) = @_;
    return Outrider->start(
        role => 'sidecar',
        env => { POD_NAME => 'web-1', POD_NAMESPACE => 'shop' },
        conf => {
            modules => ['metrics'],
            scripts_dir => $scripts,
            metrics => {
                listen => '127.0.0.1:0',
                statsd => { enabled => JSON::PP::false },
                scrape => { interval => '500ms', timeout => '400ms', targets => ["http://127.0.0.1:$port/metrics"] },
                relabel => { script => $script },
            },
        });
}
sub scraped {
    my ($a, $re) = @_;
    my $body = '';
    for (1 .. 50) {
        (undef, $body) = $a->http('GET', 'metrics.http', '/metrics');
        return $body if $body =~ $re;
        sleep 0.2;
    }
    return $body;
}

my $a = agent(Outrider::root() . '/scripts', 'metrics_relabel.lua');
my $body = scraped($a, qr/^app_requests_total/m);
like($body, qr/^app_requests_total\{code="200",team="shop",namespace="shop",pod="web-1",instance="127.0.0.1:$port"\} 42$/m,
     'label added, request_id removed');
like($body, qr/^# TYPE room_temperature_celsius gauge\nroom_temperature_celsius\{room="a",team="shop",/m, 'family renamed');
like($body, qr/^app_latency_seconds_bucket\{le="\+Inf",team="shop",/m, 'histogram bucket relabelled, le kept');
like($body, qr/^app_latency_seconds_count\{team="shop",/m, 'histogram count relabelled');
ok($body !~ /^go_goroutines|^process_open_fds|app_temp_celsius/m, 'go_ and process_ families dropped, old name gone');
like($body, qr/^outrider_metrics_scrape_samples_dropped_total [1-9]/m, 'dropped samples counted');
$a->finish_ok;

# A script that errors on some samples: those are kept as they were.
open my $bad, '>', "$dir/bad.lua" or die;
print $bad <<'LUA';
function relabel(sample)
    if sample.name == "go_goroutines" then error("boom") end
    if sample.name == "app_temp_celsius" then while true do end end
    sample.labels.seen = "yes"
    return sample
end
LUA
close $bad;
$a = agent($dir, 'bad.lua');
$body = scraped($a, qr/^go_goroutines/m);
like($body, qr/^go_goroutines\{namespace="shop",/m, 'a script error keeps the sample unchanged (fallback)');
like($body, qr/^app_temp_celsius\{room="a",namespace/m, 'an endless loop is cut by the budget, sample kept');
like($body, qr/^app_requests_total\{code="200",request_id="r-1",seen="yes",/m, 'other samples relabelled');
$a->finish_ok(allow_errors => qr/lua|relabel|boom|instruction/i);

# A missing script is a configuration error that names the key.
my ($cdir, $cpath) = Outrider::write_conf({ modules => ['metrics'], scripts_dir => $dir,
    metrics => { listen => '127.0.0.1:0', statsd => { enabled => JSON::PP::false }, relabel => { script => 'nope.lua' } } });
my $out = `@{[Outrider::bin()]} -t -c $cpath --modules-dir @{[Outrider::modules_dir()]} 2>&1`;
isnt($?, 0, 'outrider -t fails');
like($out, qr/metrics\.relabel\.script/, 'the error names metrics.relabel.script') or diag($out);

kill 'TERM', $pypid;
waitpid($pypid, 0);
done_testing;

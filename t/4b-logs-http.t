#!/usr/bin/env perl
# logs: the HTTP output against a real HTTP server (Python's http.server on
# loopback) that refuses the first request with 503: the batch is retried,
# and the bodies arrive as Elasticsearch _bulk and as Loki push JSON.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(sleep time);
use Outrider;

my $dir = tempdir('logs-http-XXXXXX', TMPDIR => 1, CLEANUP => 1);
open my $py, '>', "$dir/server.py" or die;
print $py <<'PY';
import http.server, json, sys
state = {"n": 0}
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        state["n"] += 1
        if state["n"] == 1:
            self.send_response(503); self.send_header("Content-Length", "0"); self.end_headers(); return
        with open(sys.argv[2], "ab") as f:
            f.write(json.dumps({"path": self.path, "type": self.headers["Content-Type"],
                                "body": body.decode()}).encode() + b"\n")
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_port))
s.serve_forever()
PY
close $py;

sub run {
    my ($name, $format, $path) = @_;
    unlink "$dir/port";
    my $pid = fork // die;
    if (!$pid) { exec '/usr/bin/python3', "$dir/server.py", "$dir/port", "$dir/$name.got" or exit 127 }
    my $until = time + 10;
    sleep 0.05 until -s "$dir/port" || time > $until;
    open my $pf, '<', "$dir/port" or die; my $port = <$pf>; close $pf;
    open my $w, '>', "$dir/$name.log" or die;
    print $w "2026-01-01T00:00:0${_}Z stdout F msg $_ \"q\"\n" for 1 .. 5;
    close $w;
    my $a = Outrider->start(role => 'sidecar', conf => {
        modules => ['logs'],
        logs => { files => { paths => ["$dir/$name.log"], format => 'cri' }, buffer => { flush_interval => '20ms' },
                  outputs => [{ type => 'http', address => "127.0.0.1:$port", http_path => $path,
                                http_format => $format, retry_min => '50ms', retry_max => '200ms' }] },
    });
    my @got;
    $until = time + 10;
    while (time < $until) {
        if (open my $fh, '<', "$dir/$name.got") { @got = map { decode_json($_) } <$fh> }
        last if @got;
        sleep 0.05;
    }
    my ($code, $m) = $a->http('GET', 'admin', '/metrics');
    like($a->log, qr/output http0: batch failed \(HTTP status 503\), attempt 1; retrying/, "$name: the failure logged once");
    like($a->log, qr/output http0: delivering again/, "$name: and the recovery");
    $a->finish_ok;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    my ($retries) = $m =~ /^outrider_logs_output_retries_total\{[^}]*\} (\d+)/m;
    return (\@got, $retries);
}

my ($got, $retries) = run('es', 'elasticsearch', '/logs/_bulk');
is(scalar @$got, 1, 'elasticsearch: one accepted request');
is($retries, 1, 'after one retry of the refused batch');
is($got->[0]{path}, '/logs/_bulk', 'POSTed to http_path');
my @lines = split /\n/, $got->[0]{body};
is(scalar @lines, 10, '_bulk body: action and document for each of 5 records');
is($lines[0], '{"index":{}}', 'action line');
is(decode_json($lines[1])->{message}, 'msg 1 "q"', 'document');
is(decode_json($lines[9])->{message}, 'msg 5 "q"', 'last document');

($got) = run('loki', 'loki', '/loki/api/v1/push');
is($got->[0]{type}, 'application/json', 'loki: JSON body');
my $push = decode_json($got->[0]{body});
is_deeply($push->{streams}[0]{stream}, { job => 'outrider' }, 'stream labels');
my $v = $push->{streams}[0]{values};
is(scalar @$v, 5, '5 values');
is($v->[0][0], '1767225601000000000', 'timestamp in ns as a string');
is(decode_json($v->[0][1])->{message}, 'msg 1 "q"', 'line is the JSON record');
done_testing;

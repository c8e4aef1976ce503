#!/usr/bin/env perl
# logs: the HTTP output against a real HTTP server (Python's http.server on
# loopback, HTTP/1.1 with keep-alive, counting connections). It refuses the
# first request with 503: the batch is retried, and the bodies arrive as
# Elasticsearch _bulk and as Loki push JSON. Then keep-alive: batches share
# one connection; a server that answers "Connection: close", closes silently
# after a response, or closes a kept connection as a request arrives loses
# no line; an idle connection is closed after http_keepalive.
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
# argv: port file, accepted bodies file, stats file, mode.
# mode "refuse1": the first request gets 503.
# mode "closing": request 2 is answered with Connection: close, the
# connection is closed silently after request 4, and request 6 is read and
# its connection closed without an answer (not accepted).
state = {"reqs": 0, "conns": 0, "closed": 0}
mode = sys.argv[4]
def stats():
    open(sys.argv[3] + ".tmp", "w").write(json.dumps(state))
    import os; os.replace(sys.argv[3] + ".tmp", sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup(); state["conns"] += 1; stats()
    def finish(self):
        super().finish(); state["closed"] += 1; stats()
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        state["reqs"] += 1
        n = state["reqs"]
        stats()
        if mode == "refuse1" and n == 1:
            self.send_response(503); self.send_header("Content-Length", "0"); self.end_headers(); return
        if mode == "closing" and n == 6:
            self.close_connection = True; return
        with open(sys.argv[2], "ab") as f:
            f.write(json.dumps({"path": self.path, "type": self.headers["Content-Type"],
                                "connection": self.headers.get("Connection"), "body": body.decode()}).encode() + b"\n")
        self.send_response(200)
        if mode == "closing" and n == 2:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
        if mode == "closing" and n == 4:
            self.close_connection = True
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_port))
s.serve_forever()
PY
close $py;

# Starts the server in mode for test name; returns (pid, port).
sub server {
    my ($name, $mode) = @_;
    unlink "$dir/port";
    my $pid = fork // die;
    if (!$pid) { exec '/usr/bin/python3', "$dir/server.py", "$dir/port", "$dir/$name.got", "$dir/$name.stats", $mode or exit 127 }
    my $until = time + 10;
    sleep 0.05 until -s "$dir/port" || time > $until;
    open my $pf, '<', "$dir/port" or die; my $port = <$pf>; close $pf;
    return ($pid, $port);
}

sub stats {
    my ($name) = @_;
    open my $fh, '<', "$dir/$name.stats" or return { reqs => 0, conns => 0, closed => 0 };
    local $/; return decode_json(<$fh>);
}

sub got {
    my ($name) = @_;
    return [ Outrider::json_lines("$dir/$name.got") ];
}

sub run {
    my ($name, $format, $path) = @_;
    my ($pid, $port) = server($name, 'refuse1');
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
    my $until = time + 10;
    while (time < $until) {
        @got = Outrider::json_lines("$dir/$name.got");
        last if @got;
        sleep 0.05;
    }
    my ($code, $m) = $a->http('GET', 'admin', '/metrics');
    like($a->log, qr/output http0: batch failed \(HTTP status 503\), attempt 1; retrying/, "$name: the failure logged once");
    # Logged when the answer to the accepted request arrives, after the
    # server wrote it down: waited for.
    ok($a->wait_log(qr/output http0: delivering again/), "$name: and the recovery");
    $a->finish_ok;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    my ($retries) = $m =~ /^outrider_logs_output_retries_total\{[^}]*\} (\d+)/m;
    return (\@got, $retries);
}

my ($got, $retries) = run('es', 'elasticsearch', '/logs/_bulk');
is(scalar @$got, 1, 'elasticsearch: one accepted request');
is($retries, 1, 'after one retry of the refused batch');
is(stats('es')->{conns}, 2, 'a refused batch drops its connection: the retry opens a new one');
is($got->[0]{connection}, undef, 'no Connection: close sent (HTTP/1.1 keep-alive)');
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

# Sends batches one at a time (one line each, waiting for the previous one
# to be accepted); returns the agent's retries counter.
sub batches {
    my ($a, $name, $from, $to) = @_;
    for my $i ($from .. $to) {
        open my $w, '>>', "$dir/$name.log" or die;
        print $w "2026-01-01T00:00:00Z stdout F line $i\n";
        close $w;
        Outrider::poll(10, sub { scalar @{ got($name) } >= $i }) or diag("batch $i not accepted");
    }
}

sub agent {
    my ($name, $port, %o) = @_;
    open my $w, '>', "$dir/$name.log" or die; close $w;
    return Outrider->start(role => 'sidecar', conf => {
        modules => ['logs'],
        logs => { files => { paths => ["$dir/$name.log"], format => 'cri' }, buffer => { flush_interval => '20ms' },
                  outputs => [{ type => 'http', address => "127.0.0.1:$port", retry_min => '50ms',
                                retry_max => '200ms', %o }] },
    });
}

sub messages { return [ map { decode_json($_->{body})->{message} } @{ got($_[0]) } ] }
sub retries {
    my ($a) = @_;
    my ($code, $m) = $a->http('GET', 'admin', '/metrics');
    my ($r) = $m =~ /^outrider_logs_output_retries_total\{[^}]*\} (\d+)/m;
    return $r;
}

# Runs $check with a server in $mode and an agent shipping to it, then
# stops both.
sub with_sink {
    my ($name, $mode, $out, $check) = @_;
    my ($pid, $port) = server($name, $mode);
    my $a = agent($name, $port, %$out);
    $check->($a);
    $a->finish_ok;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

with_sink('ka', 'plain', {}, sub {   # keep-alive: 6 batches, one connection
    batches($_[0], 'ka', 1, 6);
    is_deeply(messages('ka'), [ map { "line $_" } 1 .. 6 ], 'keep-alive: 6 batches accepted in order');
    my $st = stats('ka');
    is($st->{reqs}, 6, 'six requests');
    is($st->{conns}, 1, 'on one connection');
});

with_sink('cl', 'closing', {}, sub {   # the server ends kept connections in three ways
    my ($a) = @_;
    batches($a, 'cl', 1, 8);
    is_deeply(messages('cl'), [ map { "line $_" } 1 .. 8 ], 'closing server: all 8 lines accepted, in order');
    my $st = stats('cl');
    is($st->{reqs}, 9, 'nine requests: the one closed unanswered was sent again');
    is($st->{conns}, 4, 'four connections: after Connection: close, a silent close, and a close before the answer');
    is(retries($a), 0, 'a kept connection closed under a request is resent at once, not counted as a failure');
    unlike($a->log, qr/batch failed/, 'and no failure logged');
});

with_sink('idle', 'plain', { http_keepalive => '300ms' }, sub {   # the agent closes an idle connection
    batches($_[0], 'idle', 1, 1);
    ok(Outrider::poll(10, sub { stats('idle')->{closed} == 1 }), 'idle: the agent closed the connection after http_keepalive');
    batches($_[0], 'idle', 2, 2);
    is(stats('idle')->{conns}, 2, 'the next batch opened a new one');
});

with_sink('nk', 'plain', { http_keepalive => '0s' }, sub {   # one connection per batch, announced
    batches($_[0], 'nk', 1, 3);
    is(stats('nk')->{conns}, 3, 'http_keepalive 0s: a connection per batch');
    is(got('nk')->[0]{connection}, 'close', 'sent with Connection: close');
});
done_testing;

#!/usr/bin/env perl
# Retries on response statuses and gRPC codes (retry_on, retriable_status_codes,
# retry_grpc_codes), for HTTP/1.1 and HTTP/2 clients, to http1 and h2
# clusters. The backends count the attempts they see, so every assertion
# checks both what the client got and how often the request was sent:
# a 503 once then 200 is retried (on another endpoint when there is one),
# a status or gRPC code not configured is not, POST is not, a body longer
# than retry_buffer is not, the budget stops retries, a response already
# streaming to the client is never retried. Also: request trailers from
# HTTP/2 clients reach h2 upstreams and HTTP/1.1 upstreams (as chunked
# trailers), and chunked trailers of HTTP/1.1 clients reach h2 upstreams.
use strict;
use warnings;
use lib 't/lib', 't/proxy';
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use Outrider;
use ProxyTest qw(proxy_agent backend_start backend_stop curl raw_http wait_metric refused_port);
use File::Temp qw(tempfile);

my $root = Outrider::root();
my $one = backend_start('one');
my $bad = backend_start('bad');
my $good = backend_start('good');
my $h2pid = open(my $h2fh, '-|', '/usr/bin/python3', "$root/t/proxy/h2_backend.py") or die "h2 backend: $!";
my $h2port = <$h2fh>;
chomp $h2port;
like($h2port, qr/^\d+$/, 'HTTP/2 backend started');
my $gpid = open(my $gfh, '-|', '/usr/bin/python3', "$root/t/proxy/grpc_server.py") or die "grpc server: $!";
my $gport = <$gfh>;
chomp $gport;
like($gport, qr/^\d+$/, 'gRPC server started');

# A port nothing listens on: bind, read the port, close.
my $dead_port = refused_port();

# A port whose accept queue is full: connecting to it hangs (SYNs dropped).
# (Linux queues backlog + 1 connections: two fillers.)
my $hang = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1) or die;
my $hang_port = $hang->sockport;
my @fillers = map { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$hang_port") or die "filler: $!" } 1 .. 2;

my $a = proxy_agent(
    conf => { workers => 1 },
    proxy => {
        clusters => [
            # One endpoint: the retry goes to the same one.
            { name => 'one', retry_on => ['5xx'], retry_budget => 1, retry_buffer => '1KiB',
              endpoints => ["127.0.0.1:$one->{port}"] },
            # Two endpoints: the retry goes to the other one (with one
            # retry only, a retry back to the failing one would fail).
            { name => 'two', lb => 'round_robin', retry_on => ['gateway-error'], retry_budget => 1, retries => 1,
              endpoints => ["127.0.0.1:$bad->{port}", "127.0.0.1:$good->{port}"] },
            { name => 'codes', retry_on => ['retriable-status-codes'], retriable_status_codes => [429],
              retry_budget => 1, retry_backoff => '0s', endpoints => ["127.0.0.1:$one->{port}"] },
            { name => 'budget', retry_on => ['5xx'], retry_budget => 0, retries => 1,
              endpoints => ["127.0.0.1:$one->{port}"] },
            { name => 'stream', retry_on => ['connect-failure', 'reset', '5xx'], retry_budget => 1,
              endpoints => ["127.0.0.1:$one->{port}"] },
            { name => 'h2', protocol => 'h2', retry_on => ['5xx'], retry_budget => 1,
              endpoints => ["127.0.0.1:$h2port"] },
            # Default retry_on (connect-failure, reset): a dead endpoint first.
            { name => 'half', lb => 'round_robin', retry_budget => 1,
              endpoints => ["127.0.0.1:$dead_port", "127.0.0.1:$good->{port}"] },
            { name => 'h2half', protocol => 'h2', lb => 'round_robin', retry_budget => 1,
              endpoints => ["127.0.0.1:$dead_port", "127.0.0.1:$h2port"] },
            { name => 'hang', connect_timeout => '1500ms', endpoints => ["127.0.0.1:$hang_port"] },
            { name => 'grpc', protocol => 'h2', retry_grpc_codes => ['unavailable'], retry_budget => 1,
              endpoints => ["127.0.0.1:$gport"] },
        ],
        routes => [
            # Route overrides: no retries, or other conditions than the cluster's.
            { authority => 'noretry.test', cluster => 'one', retries => 0 },
            { authority => 'route5xx.test', cluster => 'codes', retry_on => ['5xx'] },
            { authority => 'hang.test', cluster => 'hang', timeout => '300ms' },
            map { { authority => "$_.test", cluster => $_ } } qw(one two codes budget stream h2 grpc half h2half) ],
    });
my $addr = $a->addr('proxy.outbound');

sub req {
    my ($host, $path, @extra) = @_;
    my ($rc, $out) = curl('-w', '\n%{http_code}', '-H', "Host: $host", @extra, "http://$addr$path");
    my ($body, $code) = $out =~ /^(.*)\n(\d+)$/s ? ($1, $2) : ($out, 0);
    return ($code, $body, $rc);
}
sub hits {
    my ($be, $key) = @_;
    my ($rc, $out) = curl("http://127.0.0.1:$be->{port}/hits?key=$key");
    return $out;
}
sub h2hits {
    my ($key) = @_;
    my ($rc, $out) = curl('--http2-prior-knowledge', "http://127.0.0.1:$h2port/hits?key=$key");
    return $out;
}
sub grpc_call {
    my (@args) = @_;
    open(my $fh, '-|', '/usr/bin/python3', "$root/t/proxy/grpc_client.py", $addr, 'grpc.test', @args) or die;
    local $/;
    my $out = <$fh>;
    close $fh;
    return eval { decode_json($out) } // { raw => $out };
}
sub h2_client {
    my (@args) = @_;
    open(my $fh, '-|', '/usr/bin/python3', "$root/t/proxy/h2_client.py", $addr, @args) or die;
    local $/;
    my $out = <$fh>;
    close $fh;
    return eval { decode_json($out) } // { raw => $out };
}

# --- HTTP/1.1 clients, http1 clusters -------------------------------------------
my ($code, $body) = req('one.test', '/flaky?key=g1&fail=1');
is($code, 200, 'GET answered 503 once: retried, the client sees 200');
like($body, qr/^ok attempt=2 /, 'the backend saw the second attempt succeed');
is(hits($one, 'g1'), 2, 'two attempts on the backend');

($code, $body) = req('one.test', '/flaky?key=g2&fail=5');
is($code, 503, 'still 503 after the attempts: the last response reaches the client');
is($body, "fail 3\n", 'it is the third attempt\'s own response');
is(hits($one, 'g2'), 3, 'retries 2: three attempts, no more');

($code) = req('one.test', '/flaky?key=p1&fail=1', '--data-binary', 'x');
is($code, 503, 'POST answered 503 is not retried');
is(hits($one, 'p1'), 1, 'POST: one attempt');

($code, $body) = req('one.test', '/flaky?key=u1&fail=1', '-X', 'PUT', '--data-binary', 'u' x 1000);
is($code, 200, 'PUT with a 1000-byte body (within retry_buffer 1KiB) retried');
like($body, qr/^ok attempt=2 len=1000 /, 'the whole body was sent again');
($code, $body) = req('one.test', '/flaky?key=u2&fail=1', '-X', 'PUT', '-H', 'Transfer-Encoding: chunked',
                     '--data-binary', 'v' x 700);
is($code, 200, 'PUT with a chunked body retried');
like($body, qr/^ok attempt=2 len=700 /, 'the chunked body was sent again whole');
($code) = req('one.test', '/flaky?key=u3&fail=1', '-X', 'PUT', '--data-binary', 'w' x 100000);
is($code, 503, 'a body longer than retry_buffer is not retried');
is(hits($one, 'u3'), 1, 'long body: one attempt');

my %codes;
for my $i (1 .. 10) {
    my ($c, $b) = req('two.test', '/flaky?key=t&fail=1000&only=bad');
    $codes{$c}++;
}
is_deeply(\%codes, { 200 => 10 }, 'two endpoints, one always 503: every request ends 200');
is(hits($good, 't'), 10, 'each request reached the good endpoint exactly once');
my $bad_hits = hits($bad, 't');
cmp_ok($bad_hits, '>=', 4, "round robin sent first attempts to the bad one ($bad_hits), each retried elsewhere");

($code) = req('two.test', '/flaky?key=t500&fail=1000&code=500&only=bad');
($code) = req('two.test', '/flaky?key=t500&fail=1000&code=500&only=bad') if $code == 200;
is($code, 500, 'gateway-error does not retry 500');
is(hits($bad, 't500'), 1, '500: one attempt on the bad endpoint');

($code) = req('codes.test', '/flaky?key=c429&fail=1&code=429');
is($code, 200, 'retriable_status_codes [429]: 429 retried');
is(hits($one, 'c429'), 2, '429: two attempts');
($code) = req('codes.test', '/flaky?key=c503&fail=1&code=503');
is($code, 503, 'a status not in the list (503) is not retried');
is(hits($one, 'c503'), 1, '503 on that cluster: one attempt');

($code) = req('noretry.test', '/flaky?key=r0&fail=1');
is($code, 503, 'route retries 0: not retried');
is(hits($one, 'r0'), 1, 'route retries 0: one attempt');
($code) = req('route5xx.test', '/flaky?key=r5&fail=1&code=503');
is($code, 200, 'route retry_on [5xx] replaces the cluster\'s [retriable-status-codes]: 503 retried');
is(hits($one, 'r5'), 2, 'route retry_on: two attempts');

# Budget 0 leaves the burst of 10 retries per 10 s window.
%codes = ();
for my $i (1 .. 14) {
    my ($c) = req('budget.test', '/flaky?key=b&fail=1000');
    $codes{$c}++;
}
is_deeply(\%codes, { 503 => 14 }, 'always 503: every request fails');
is(hits($one, 'b'), 24, 'budget exhausted: 10 retries, then none (14 + 10 attempts)');

my ($rc, $out) = curl('-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: stream.test', "http://$addr/cut?key=cut1");
is($out, '200', 'a response cut mid-body: its head had reached the client');
isnt($rc, 0, 'curl sees the body incomplete');
# Once the exchange is counted it is over: no retry can follow.
ok(wait_metric($a, qr/^outrider_proxy_requests_total\{cluster="stream",code_class="2xx"\} 1$/m), 'the cut exchange ended');
is(hits($one, 'cut1'), 1, 'a response already streaming is never retried');

# --- HTTP/2 clients ------------------------------------------------------------------
my @h2 = ('--http2-prior-knowledge');
($code, $body) = req('one.test', '/flaky?key=h2a&fail=1', @h2);
is($code, 200, 'HTTP/2 client to an http1 cluster: 503 retried');
is(hits($one, 'h2a'), 2, 'two attempts');
($code, $body) = req('one.test', '/flaky?key=h2put&fail=1', @h2, '-X', 'PUT', '--data-binary', 'y' x 1000);
is($code, 200, 'PUT with a 1000-byte body (within retry_buffer 1KiB) retried');
like($body, qr/^ok attempt=2 len=1000 /, 'the whole body was sent again');
($code) = req('one.test', '/flaky?key=h2big&fail=1', @h2, '-X', 'PUT', '--data-binary', 'z' x 100000);
is($code, 503, 'a body longer than retry_buffer is not retried');
is(hits($one, 'h2big'), 1, 'long body: one attempt');
($code) = req('one.test', '/flaky?key=h2post&fail=1', @h2, '--data-binary', 'x');
is($code, 503, 'HTTP/2 POST is not retried');
is(hits($one, 'h2post'), 1, 'HTTP/2 POST: one attempt');
%codes = ();
for my $i (1 .. 6) {
    my ($c) = req('two.test', '/flaky?key=h2t&fail=1000&only=bad', @h2);
    $codes{$c}++;
}
is_deeply(\%codes, { 200 => 6 }, 'HTTP/2 client, two endpoints: retried on the good one');
is(hits($good, 'h2t'), 6, 'each reached the good endpoint once');

%codes = ();
for my $i (1 .. 6) {
    my ($c) = req('half.test', '/flaky?key=hh&fail=0', @h2, '-X', 'PUT', '--data-binary', 'b' x 100);
    $codes{$c}++;
}
is_deeply(\%codes, { 200 => 6 }, 'HTTP/2 client, http1 cluster: refused connections retried on the live endpoint');
%codes = ();
for my $i (1 .. 6) {
    my ($c) = req('h2half.test', '/flaky?key=h2h&fail=0', @h2);
    $codes{$c}++;
}
is_deeply(\%codes, { 200 => 6 }, 'HTTP/2 client, h2 cluster: refused connections retried on the live endpoint');
is(h2hits('h2h'), 6, 'each request reached the live HTTP/2 endpoint once');

# A regression guard: a stream that ended while its HTTP/1.1 connection was
# still connecting left the connection pointing at the freed stream; the
# connect timeout then used it (ASan: heap-use-after-free).
($code) = req('hang.test', '/id', @h2);
is($code, 504, 'HTTP/2 client: the route timeout ends a stream still connecting upstream');
ok(wait_metric($a, qr/^outrider_proxy_upstream_connections\{cluster="hang"\} 0$/m, 15),
   'the connect timeout then closed the connection, without the stream');

my ($nrc, $nout) = Outrider::run_cmd('nghttp', '-H', ':authority: one.test', "http://$addr/flaky?key=ng&fail=1");
like($nout, qr/^ok attempt=2 /m, 'nghttp: 503 retried');
my ($tfh, $tfile) = tempfile(UNLINK => 1);
print $tfh 'n' x 300;
close $tfh;
($nrc, $nout) = Outrider::run_cmd('nghttp', '-H', ':authority: h2.test', '-d', $tfile, '--trailer', 'x-from: nghttp',
                                  "http://$addr/echo");
my $nj = eval { decode_json($nout) } // {};
is_deeply($nj->{trailers}, [['x-from', 'nghttp']], 'nghttp request trailers reach the h2 upstream');
is($nj->{body_len}, 300, 'with the body');

($code, $body) = req('h2.test', '/flaky?key=n1&fail=1', @h2);
is($code, 200, 'HTTP/2 client to an h2 cluster: 503 retried');
is(h2hits('n1'), 2, 'two attempts on the HTTP/2 backend');
($code, $body) = req('h2.test', '/flaky?key=n2&fail=1', @h2, '-X', 'PUT', '--data-binary', 'q' x 5000);
is($code, 200, 'PUT with a body to an h2 cluster retried');
like($body, qr/^ok attempt=2 len=5000$/m, 'the body was replayed whole');
($code, $body) = req('h2.test', '/flaky?key=n3&fail=1');
is($code, 200, 'HTTP/1.1 client to an h2 cluster: 503 retried');
is(h2hits('n3'), 2, 'two attempts');

# --- gRPC ---------------------------------------------------------------------------------
my $r = grpc_call('flaky', 'k1:1');
is($r->{code}, 0, 'gRPC UNAVAILABLE (trailers-only) once: retried, the call succeeds') or diag explain $r;
is($r->{resp}, 'ok:2', 'the second attempt answered');
is(grpc_call('hits', 'k1')->{resp}, '2', 'two attempts on the gRPC server');
$r = grpc_call('flaky', 'k2:1:13');
is($r->{code}, 13, 'INTERNAL is not in retry_grpc_codes: not retried') or diag explain $r;
is(grpc_call('hits', 'k2')->{resp}, '1', 'one attempt');
$r = grpc_call('flaky', 'k3:9');
is($r->{code}, 14, 'UNAVAILABLE every time: the client gets it after the attempts');
is(grpc_call('hits', 'k3')->{resp}, '3', 'three attempts');
$r = grpc_call('stream_fail', 's1');
is_deeply($r->{msgs}, ['first'], 'server stream: the first message reached the client');
is($r->{code}, 14, 'then UNAVAILABLE in the trailers');
is(grpc_call('hits', 's1')->{resp}, '1', 'a call whose response data was forwarded is never retried');

# --- request trailers from HTTP/2 clients -------------------------------------------------
$r = h2_client('h2.test', 'POST', '/echo', 'hello', 'x-checksum=abc', 'x-more=2');
is($r->{status}, 200, 'HTTP/2 request with trailers to an h2 cluster');
my $echo = eval { decode_json($r->{body}) } // {};
is_deeply($echo->{trailers}, [['x-checksum', 'abc'], ['x-more', '2']], 'the trailers reached the h2 upstream');
is($echo->{body_len}, 5, 'with the body');
$r = h2_client('one.test', 'POST', '/echo', 'hello', 'x-checksum=abc');
is($r->{status}, 200, 'HTTP/2 request with trailers to an http1 cluster');
$echo = eval { decode_json($r->{body}) } // {};
is_deeply($echo->{trailers}, [['x-checksum', 'abc']], 'the trailers reached the HTTP/1.1 upstream as chunked trailers');
is($echo->{body_len}, 5, 'with the body, chunked');
$r = h2_client('h2.test', 'GET', '/echo', '', 'x-only=1');
$echo = eval { decode_json($r->{body}) } // {};
is_deeply($echo->{trailers}, [['x-only', '1']], 'trailers right after the headers (no body) reach the h2 upstream');

my $raw = raw_http($addr, ["POST /echo HTTP/1.1\r\nHost: h2.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                        . "5\r\nhello\r\n0\r\nX-Check", "sum: abc\r\nX-Other: 7\r\n\r\n"], gap => 0.1);
like($raw, qr{^HTTP/1.1 200 }, 'HTTP/1.1 chunked request with trailers (split over two reads) to an h2 cluster');
my ($json) = $raw =~ /\r\n\r\n(.*)$/s;
$echo = eval { decode_json($json) } // {};
is_deeply($echo->{trailers}, [['x-checksum', 'abc'], ['x-other', '7']], 'the trailers reached the h2 upstream as HTTP/2 trailers');

my ($mc, $m) = $a->http('GET', 'admin', '/metrics');
my ($one_retries) = $m =~ /^outrider_proxy_retries_total\{cluster="one"\} (\d+)$/m;
is($one_retries, 8, 'retries counted in outrider_proxy_retries_total (g1 1, g2 2, u1 1, u2 1, h2a 1, h2put 1, ng 1)');

# A status list that would do nothing is a configuration error naming it.
my ($dir, $path) = Outrider::write_conf({ modules => ['proxy'], proxy => { clusters => [
    { name => 'x', endpoints => ['127.0.0.1:1'], retriable_status_codes => [503] } ] } });
my ($tc, $tout) = Outrider::run_cmd(Outrider::bin(), '-t', '-c', $path, '--modules-dir', Outrider::modules_dir());
is($tc, 1, 'retriable_status_codes without retriable-status-codes in retry_on: invalid configuration');
like($tout, qr/proxy\.clusters\[0\]\.retriable_status_codes: has no effect unless retry_on lists/, 'the error names the key');
($dir, $path) = Outrider::write_conf({ modules => ['proxy'], proxy => { clusters => [
    { name => 'x', endpoints => ['127.0.0.1:1'], retry_grpc_codes => ['unavailabel'] } ] } });
($tc, $tout) = Outrider::run_cmd(Outrider::bin(), '-t', '-c', $path, '--modules-dir', Outrider::modules_dir());
like($tout, qr/proxy\.clusters\[0\]\.retry_grpc_codes\[0\]/, 'an unknown gRPC code name is an error naming it');

kill 'TERM', $h2pid, $gpid;
waitpid($h2pid, 0);
waitpid($gpid, 0);
backend_stop($_) for $one, $bad, $good;
close $_ for @fillers;
close $hang;
$a->finish_ok;
done_testing;

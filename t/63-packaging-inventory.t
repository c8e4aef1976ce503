#!/usr/bin/perl
# packaging/deb/outrider-inventory keeps the node role's inventory file in step
# with the pods bound to its node: list, then watch from the list's
# resourceVersion; host-network and finished pods carry no IP; a 410 Gone
# makes it list again; a rotated service-account token is picked up; every
# version of the file it leaves is complete JSON. The API server is
# t/lib/fake_kube_api.py on loopback (no API server runs on these machines).
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Test::More;
use lib 't/lib';
use Outrider;

my $root = abs_path(dirname(dirname(__FILE__)));
my $prog = "$root/packaging/deb/outrider-inventory";
my $python = '/usr/bin/python3';
my $tmp = tempdir(CLEANUP => 1);
my @pids;
END { my $status = $?; kill "TERM", $_ for @pids; waitpid($_, 0) for @pids; $? = $status }

sub spawn {
    my ($out, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', $out or die;
        open STDERR, '>&', \*STDOUT or die;
        exec @cmd or die "exec $cmd[0]: $!";
    }
    push @pids, $pid;
    return $pid;
}
sub slurp { open my $f, '<', $_[0] or return undef; local $/; <$f> }

# --- command line errors ---------------------------------------------------------------
{
    local $ENV{NODE_NAME};
    local $ENV{KUBERNETES_SERVICE_HOST};
    my $o = `$python $prog --output $tmp/x.json --api http://127.0.0.1:1 2>&1`;
    isnt($? >> 8, 0, 'no node name: refused');
    like($o, qr/NODE_NAME/, 'and told where the node name comes from');
    $o = `$python $prog --output $tmp/x.json --node n1 2>&1`;
    isnt($? >> 8, 0, 'no API server outside a cluster: refused');
    like($o, qr/--api/, 'and told to give --api');
}

# --- the fake API server -------------------------------------------------------------------
my $server = spawn("$tmp/api.log", $python, "$root/t/lib/fake_kube_api.py", "$tmp/api.port");
my $port = Outrider::poll(10, sub { slurp("$tmp/api.port") });
ok($port, "fake API server listening on 127.0.0.1:$port") or BAIL_OUT('fake API server did not start');
my $base = "http://127.0.0.1:$port";
sub control {
    my ($what, $obj) = @_;
    open my $c, '|-', 'curl', '-sf', '-o', '/dev/null', '-H', 'Content-Type: application/json', '--data-binary', '@-',
        "$base/control/$what" or die;
    print $c encode_json($obj);
    close $c;
    die "control $what failed" if $?;
}
sub requests { decode_json(`curl -sf $base/control/requests`) }

sub pod {
    my (%a) = @_;
    return {
        metadata => { namespace => $a{ns} // 'shop', name => $a{name}, uid => "uid-$a{name}",
            resourceVersion => $a{rv} // '1', labels => $a{labels} // { app => $a{name} },
            annotations => $a{annotations} // {} },
        spec => { nodeName => 'n1', ($a{hostNetwork} ? (hostNetwork => JSON::PP::true) : ()) },
        status => { phase => $a{phase} // 'Running', ($a{ip} ? (podIP => $a{ip}, podIPs => [ map { { ip => $_ } } split /,/, $a{ip} ]) : ()) },
    };
}
sub podlist { my ($rv, @items) = @_; { kind => 'PodList', metadata => { resourceVersion => $rv }, items => \@items } }

control(list => podlist('10',
    pod(name => 'cart-1', ip => '10.200.0.5,fd00::5', annotations => { 'prometheus.io/scrape' => 'true' }),
    pod(name => 'exporter', ip => '192.168.1.5', hostNetwork => 1),
    pod(name => 'report-x', ip => '10.200.0.9', phase => 'Succeeded')));

# --- list ----------------------------------------------------------------------------------
mkdir "$tmp/inv";
my $file = "$tmp/inv/pods.json";
open my $t, '>', "$tmp/token" or die;
print $t "tok-1\n";
close $t;
my $bad_reads = 0;
sub inventory {    # the file's pods by name, counting any read that is not complete JSON
    my $text = slurp($file) // return undef;
    my $inv = eval { decode_json($text) };
    $bad_reads++ unless $inv;
    return $inv && { map { $_->{name} => $_ } @{ $inv->{pods} } };
}
my $client = spawn("$tmp/inventory.log", $python, $prog, '--api', $base, '--token-file', "$tmp/token",
    '--node', 'n1', '--output', $file, '--watch-seconds', '60');

my $inv = Outrider::poll(10, sub { inventory() });
ok($inv, 'inventory written after the list') or diag slurp("$tmp/inventory.log");
is_deeply([ sort keys %{ $inv // {} } ], [qw(cart-1 exporter report-x)], 'every pod of the node is listed');
is_deeply($inv->{'cart-1'}, { namespace => 'shop', name => 'cart-1', uid => 'uid-cart-1', node => 'n1',
    ip => '10.200.0.5', ips => [ '10.200.0.5', 'fd00::5' ], labels => { app => 'cart-1' },
    annotations => { 'prometheus.io/scrape' => 'true' } }, 'a pod entry has the fields the agent reads');
is($inv->{exporter}{ip}, '', 'a host-network pod has no IP (the node address is not its own)');
is_deeply($inv->{exporter}{ips}, [], '... nor IPs');
is($inv->{'report-x'}{ip}, '', 'a finished pod keeps its entry but not its IP');
my $req = requests();
is($req->[0]{path}, '/api/v1/pods?fieldSelector=spec.nodeName%3Dn1', 'lists only the pods bound to its node');
is($req->[0]{auth}, 'Bearer tok-1', 'with the service account token');

# --- watch ---------------------------------------------------------------------------------
ok(Outrider::poll(10, sub { (grep { $_->{path} =~ /watch=1/ } @{ requests() }) }), 'then watches');
my ($watch) = grep { $_->{path} =~ /watch=1/ } @{ requests() };
like($watch->{path}, qr/[?&]resourceVersion=10(?:&|$)/, 'from the list\'s resourceVersion');
like($watch->{path}, qr/[?&]fieldSelector=spec\.nodeName%3Dn1(?:&|$)/, 'on its node only');

control(event => { type => 'ADDED', object => pod(name => 'cart-2', ip => '10.200.0.6', rv => '11') });
ok(Outrider::poll(10, sub { my $i = inventory(); $i && $i->{'cart-2'} }), 'ADDED: the new pod appears');
control(event => { type => 'MODIFIED', object => pod(name => 'cart-1', ip => '10.200.0.5', labels => { app => 'cart', v => '2' }, rv => '12') });
ok(Outrider::poll(10, sub { my $i = inventory(); $i && ($i->{'cart-1'}{labels}{v} // '') eq '2' }), 'MODIFIED: new labels');
control(event => { type => 'DELETED', object => pod(name => 'report-x', rv => '13') });
ok(Outrider::poll(10, sub { my $i = inventory(); $i && !$i->{'report-x'} }), 'DELETED: the pod is gone');
control(event => { type => 'BOOKMARK', object => { kind => 'Pod', metadata => { resourceVersion => '15' } } });

# --- the token rotates; the watch expires: list again ------------------------------------------
open $t, '>', "$tmp/token" or die;
print $t "tok-2\n";
close $t;
control(list => podlist('20', pod(name => 'cart-3', ip => '10.200.0.7')));
control(event => { type => 'ERROR', object => { kind => 'Status', code => 410, message => 'too old resource version' } });
ok(Outrider::poll(10, sub { my $i = inventory(); $i && join(',', sort keys %$i) eq 'cart-3' }), '410 Gone: listed again, the file holds the new list only');
my @lists = grep { $_->{path} !~ /watch=1/ } @{ requests() };
is(scalar @lists, 2, 'one list after the 410');
is($lists[-1]{auth}, 'Bearer tok-2', 'the rotated token is used');
ok(Outrider::poll(10, sub { (grep { $_->{path} =~ /watch=1.*resourceVersion=20|resourceVersion=20.*watch=1/ } @{ requests() }) }),
    'watches from the new list\'s resourceVersion');

# --- the watch stream ends (server timeout): watch again from the last version -----------------------
control(event => { type => 'MODIFIED', object => pod(name => 'cart-3', ip => '10.200.0.7', labels => { app => 'c3' }, rv => '21') });
ok(Outrider::poll(10, sub { my $i = inventory(); $i && ($i->{'cart-3'}{labels}{app} // '') eq 'c3' }), 'event applied');
control(event => { close => JSON::PP::true });
ok(Outrider::poll(10, sub { (grep { $_->{path} =~ /watch=1/ && $_->{path} =~ /resourceVersion=21(?:&|$)/ } @{ requests() }) }),
    'stream ended: watches again from the last seen resourceVersion, without a new list');
is(scalar(grep { $_->{path} !~ /watch=1/ } @{ requests() }), 2, 'no list needed for that');

is($bad_reads, 0, 'every read of the file found complete JSON (atomic writes)');
opendir my $d, "$tmp/inv" or die;
is_deeply([ sort grep { !/^\.\.?$/ } readdir $d ], ['pods.json'], 'no temporary file left beside it');
is((stat $file)[2] & 07777, 0644, 'the file is world-readable (the agent may run as another user)');

# --- stop --------------------------------------------------------------------------------------
kill 'TERM', $client;
is(waitpid($client, 0), $client, 'stops on SIGTERM');
@pids = grep { $_ != $client } @pids;
unlike(slurp("$tmp/inventory.log") // '', qr/Traceback/, 'no Python traceback in its log');
like(slurp("$tmp/inventory.log") // '', qr/410 Gone/, 'it logged why it listed again');

done_testing();

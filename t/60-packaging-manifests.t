#!/usr/bin/perl
# The Kubernetes manifests under packaging/k8s parse, carry what the node role
# and the native sidecar need, and agree with the agent configuration in their
# ConfigMap (admin port = probe port, drain delay = preStop sleep, grace period
# longer than the drain), so none of them can drift from the others unnoticed.
# When build/outrider exists, the agent itself checks that configuration (-t)
# in both roles.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname basename);
use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;

my $root = abs_path(dirname(dirname(__FILE__)));
my $k8s = "$root/packaging/k8s";
my $build = abs_path($ENV{OUTRIDER_BUILD} // "$root/build") // "$root/build";
my $python = '/usr/bin/python3';    # Debian's, where python3-yaml lives

# --- load every document of every YAML file ------------------------------------
my @files = sort glob("$k8s/*.yaml");
ok(@files >= 4, "packaging/k8s has manifests: @{[map { basename $_ } @files]}");
my $json = `$python -c 'import json, sys, yaml
json.dump([[f, list(yaml.safe_load_all(open(f)))] for f in sys.argv[1:]], sys.stdout)' @files`;
is($?, 0, "$python with PyYAML parses every manifest") or BAIL_OUT('manifests do not parse (needs python3-yaml)');
my @docs;
for my $pair (@{ decode_json($json) }) {
    my ($file, $list) = @$pair;
    for my $d (grep { defined } @$list) {
        ok($d->{apiVersion} && $d->{kind} && $d->{metadata}{name}, "$file: $d->{kind}/$d->{metadata}{name} has apiVersion, kind, name");
        $d->{_file} = basename($file);
        push @docs, $d;
    }
}
my %cluster_scoped = map { $_ => 1 } qw(Namespace ClusterRole ClusterRoleBinding);
for my $d (grep { !$cluster_scoped{ $_->{kind} } } @docs) {
    is($d->{metadata}{namespace}, 'outrider', "$d->{_file}: $d->{kind}/$d->{metadata}{name} is in namespace outrider");
}

sub one_of_kind {
    my ($kind) = @_;
    my @d = grep { $_->{kind} eq $kind } @docs;
    is(scalar @d, 1, "exactly one $kind") or BAIL_OUT("need exactly one $kind");
    return $d[0];
}

# --- the agent configuration -------------------------------------------------------
my $cm = one_of_kind('ConfigMap');
my $cm_name = $cm->{metadata}{name};
my $conf_text = $cm->{data}{'agent.conf'};
ok(defined $conf_text, "ConfigMap $cm_name has key agent.conf") or BAIL_OUT('no agent.conf in the ConfigMap');
my $conf = eval { JSON::PP->new->relaxed(0)->decode($conf_text) };
ok($conf, "agent.conf in the ConfigMap is valid JSON") or diag $@;
ok($conf->{roles}{node} && $conf->{roles}{sidecar}, 'one config for both roles: roles.node and roles.sidecar overrides');

# Objects merge key by key, anything else (arrays included) replaces.
sub merged {
    my ($base, $over) = @_;
    return $over unless ref $base eq 'HASH' && ref $over eq 'HASH';
    my %m = %$base;
    $m{$_} = merged($base->{$_}, $over->{$_}) for keys %$over;
    return \%m;
}
my %role_conf;
for my $role (qw(node sidecar)) {
    my %base = %$conf;
    delete $base{roles};
    $role_conf{$role} = merged(\%base, $conf->{roles}{$role});
}

sub ms {
    my ($d) = @_;
    return undef unless defined $d;
    return $d if $d =~ /^\d+$/;
    my %unit = (ms => 1, s => 1000, m => 60000, h => 3600000);
    return $1 * $unit{$2} if $d =~ /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
    fail("duration '$d' not understood");
    return undef;
}
my %admin_port;
for my $role (qw(node sidecar)) {
    my $c = $role_conf{$role};
    my ($port) = ($c->{admin}{address} // '') =~ /:(\d+)$/;
    ok($port && $port > 0, "$role: admin.address '$c->{admin}{address}' has a fixed port (probes need one)");
    $admin_port{$role} = $port // -1;
    ok(defined ms($c->{drain}{delay}) && defined ms($c->{drain}{timeout}), "$role: drain.delay and drain.timeout are set");
    is($c->{modules_dir}, '/usr/lib/outrider/modules', "$role: modules_dir is where the packages install modules");
    is($c->{scripts_dir}, '/usr/share/outrider/scripts', "$role: scripts_dir is where the package installs scripts");
}
ok($role_conf{node}{state_dir}, 'node: state_dir set (checkpoints survive the pod)');
ok($role_conf{node}{inventory}{file}, 'node: inventory.file set (callers are mapped to pods)');
ok((grep { $_ eq 'logs' } @{ $role_conf{node}{modules} }), 'node: loads the logs module');
# The node agent tails its own container's log too: writing records to stdout
# would feed every shipped line back in, without end.
ok(!(grep { ($_->{type} // '') eq 'stdout' } @{ $role_conf{node}{logs}{outputs} // [ { type => 'stdout' } ] }),
    'node: logs.outputs set, and none is stdout (its own log is tailed)');
# Scripts the config names are shipped (scripts/ becomes /usr/share/outrider/scripts).
my @named_scripts = JSON::PP->new->canonical->encode($conf) =~ /"script":"([^"]+)"/g;
ok(-f "$root/scripts/$_", "script $_ named in the ConfigMap is in scripts/") for @named_scripts;

# --- helpers over pod specs ----------------------------------------------------------
sub env_of {
    my ($c) = @_;
    my %e;
    for my $v (@{ $c->{env} // [] }) {
        $e{ $v->{name} } = exists $v->{value} ? "=$v->{value}" : $v->{valueFrom}{fieldRef}{fieldPath};
    }
    return \%e;
}
# Every ${VAR} the role's config expands must come from the container's env:
# a missing one silently falls back to its default (e.g. 127.0.0.1), and
# the probes would fail on a real cluster only.
sub check_config_env {
    my ($what, $role, $c) = @_;
    my $e = env_of($c);
    my %vars = map { $_ => 1 } JSON::PP->new->canonical->encode($role_conf{$role}) =~ /\$\{(\w+)/g;
    ok(exists $e->{$_}, "$what: env $_ set, as the $role config expands \${$_}") for sort keys %vars;
}
sub port_of {    # a probe's port: a number or the name of one of the container's ports
    my ($c, $p) = @_;
    return $p if $p =~ /^\d+$/;
    my ($named) = grep { ($_->{name} // '') eq $p } @{ $c->{ports} // [] };
    return $named ? $named->{containerPort} : -1;
}
sub check_probe {
    my ($what, $c, $kind, $path, $port) = @_;
    my $p = $c->{$kind};
    ok($p, "$what: has a $kind") or return;
    is($p->{httpGet}{path}, $path, "$what: $kind GET $path");
    is(port_of($c, $p->{httpGet}{port} // ''), $port, "$what: $kind on the admin port $port");
}
sub check_resources {
    my ($what, $c) = @_;
    for my $k (qw(requests limits)) {
        ok($c->{resources}{$k}{memory}, "$what: resources.$k.memory");
    }
    ok($c->{resources}{requests}{cpu}, "$what: resources.requests.cpu");
}
sub volume_of_mount {
    my ($spec, $c, $path) = @_;
    my ($m) = grep { $_->{mountPath} eq $path } @{ $c->{volumeMounts} // [] };
    return (undef, undef) unless $m;
    my ($v) = grep { $_->{name} eq $m->{name} } @{ $spec->{volumes} // [] };
    return ($m, $v);
}
sub config_file_of {    # the -c argument, and the ConfigMap volume mounted to hold it
    my ($what, $spec, $c) = @_;
    my @args = (@{ $c->{command} // [] }, @{ $c->{args} // [] });
    my ($i) = grep { $args[$_] eq '-c' } 0 .. $#args;
    my $file = defined $i ? $args[ $i + 1 ] : '/etc/outrider/agent.conf';
    my ($m, $v) = volume_of_mount($spec, $c, dirname($file));
    ok($v && $v->{configMap} && $v->{configMap}{name} eq $cm_name, "$what: $file comes from ConfigMap $cm_name");
    is(basename($file), 'agent.conf', "$what: the config file is the ConfigMap's key agent.conf");
    ok($m && $m->{readOnly}, "$what: config mounted read-only");
}
sub image_of { $_[0]{image} }

# --- the DaemonSet (node role) ---------------------------------------------------------
my $ds = one_of_kind('DaemonSet');
my $dspec = $ds->{spec}{template}{spec};
ok($dspec->{hostNetwork}, 'DaemonSet: hostNetwork');
is($dspec->{dnsPolicy}, 'ClusterFirstWithHostNet', 'DaemonSet: dnsPolicy ClusterFirstWithHostNet (cluster DNS despite hostNetwork)');
is($ds->{spec}{updateStrategy}{type}, 'RollingUpdate', 'DaemonSet: RollingUpdate');
ok(defined $ds->{spec}{updateStrategy}{rollingUpdate}{maxUnavailable}, 'DaemonSet: rollingUpdate.maxUnavailable set');
my ($agent) = grep { $_->{name} eq 'outrider' } @{ $dspec->{containers} };
ok($agent, 'DaemonSet: container outrider') or BAIL_OUT('no agent container in the DaemonSet');
my $env = env_of($agent);
my %downward = (POD_NAME => 'metadata.name', POD_NAMESPACE => 'metadata.namespace', POD_IP => 'status.podIP',
    NODE_NAME => 'spec.nodeName');
is($env->{$_}, $downward{$_}, "DaemonSet: env $_ from $downward{$_}") for sort keys %downward;
is($env->{NODE_IP}, 'status.hostIP', 'DaemonSet: env NODE_IP from status.hostIP');
is($env->{OUTRIDER_ROLE}, '=node', 'DaemonSet: OUTRIDER_ROLE=node');
check_config_env('DaemonSet', 'node', $agent);
config_file_of('DaemonSet', $dspec, $agent);

my ($logs_m, $logs_v) = volume_of_mount($dspec, $agent, '/var/log/pods');
is($logs_v && $logs_v->{hostPath} && $logs_v->{hostPath}{path}, '/var/log/pods', 'DaemonSet: /var/log/pods is the host\'s');
ok($logs_m && $logs_m->{readOnly}, 'DaemonSet: /var/log/pods mounted read-only');
my ($state_m, $state_v) = volume_of_mount($dspec, $agent, $role_conf{node}{state_dir} // '-');
ok($state_v && $state_v->{hostPath} && $state_v->{hostPath}{path}, "DaemonSet: state_dir $role_conf{node}{state_dir} is a hostPath");
ok($state_m && !$state_m->{readOnly}, 'DaemonSet: state dir writable');

# The inventory file is written by another container of the pod, through a shared volume.
my $inv_dir = dirname($role_conf{node}{inventory}{file} // '/-/-');
my ($inv_m, $inv_v) = volume_of_mount($dspec, $agent, $inv_dir);
ok($inv_v, "DaemonSet: the inventory's folder $inv_dir is a volume of the agent");
my @writers = grep {
    my $c = $_;
    $c->{name} ne 'outrider' && grep { $inv_v && $_->{name} eq $inv_v->{name} && !$_->{readOnly} } @{ $c->{volumeMounts} // [] }
} @{ $dspec->{initContainers} // [] }, @{ $dspec->{containers} };
is(scalar @writers, 1, 'DaemonSet: one container writes the inventory');
if (@writers) {
    my $w = $writers[0];
    ok((grep { $_ == $w } @{ $dspec->{initContainers} // [] }) && ($w->{restartPolicy} // '') eq 'Always',
        'inventory writer is a native sidecar (starts before the agent, runs along)');
    my $probe = join ' ', @{ ($w->{startupProbe} // {})->{exec}{command} // [] };
    is($probe, "test -s $role_conf{node}{inventory}{file}", 'its startupProbe waits for the first inventory, so the agent starts with one');
    is(image_of($w), image_of($agent), 'DaemonSet: the inventory writer runs from the agent image');
    is(env_of($w)->{NODE_NAME}, 'spec.nodeName', 'inventory writer: env NODE_NAME from spec.nodeName');
    my @cmd = (@{ $w->{command} // [] }, @{ $w->{args} // [] });
    is($cmd[0], 'outrider-inventory', 'inventory writer runs outrider-inventory');
    my ($o) = grep { $cmd[$_] eq '--output' } 0 .. $#cmd;
    is(defined $o ? $cmd[ $o + 1 ] : undef, $role_conf{node}{inventory}{file}, 'inventory writer writes the file inventory.file names');
    check_resources('inventory writer', $w);
    is($dspec->{serviceAccountName} && $w->{securityContext}{runAsNonRoot} ? 1 : 0, 1, 'inventory writer runs as non-root');
}
for my $c (@{ $dspec->{containers} }) {
    check_resources("DaemonSet container $c->{name}", $c);
}
check_probe('DaemonSet', $agent, 'livenessProbe', '/healthz', $admin_port{node});
check_probe('DaemonSet', $agent, 'readinessProbe', '/ready', $admin_port{node});

my $pre = $agent->{lifecycle}{preStop};
my $sleep = $pre && ($pre->{sleep} ? $pre->{sleep}{seconds}
    : $pre->{exec} && $pre->{exec}{command}[0] eq 'sleep' ? $pre->{exec}{command}[1] : undef);
my $delay = ms($role_conf{node}{drain}{delay}) // 0;
my $timeout = ms($role_conf{node}{drain}{timeout}) // 0;
is(defined $sleep ? $sleep * 1000 : undef, $delay, "DaemonSet: preStop sleeps the node role's drain.delay ($delay ms)");
cmp_ok(($dspec->{terminationGracePeriodSeconds} // 30) * 1000, '>', ($sleep // 0) * 1000 + $delay + $timeout,
    'DaemonSet: terminationGracePeriodSeconds > preStop + drain.delay + drain.timeout');

# RBAC: only what the inventory writer needs, bound to the DaemonSet's account.
my $sa = one_of_kind('ServiceAccount');
is($dspec->{serviceAccountName}, $sa->{metadata}{name}, 'DaemonSet runs as the ServiceAccount defined here');
my $crb = one_of_kind('ClusterRoleBinding');
my $cr = one_of_kind('ClusterRole');
ok((grep { $_->{kind} eq 'ServiceAccount' && $_->{name} eq $sa->{metadata}{name} && $_->{namespace} eq 'outrider' }
        @{ $crb->{subjects} }), 'ClusterRoleBinding binds the ServiceAccount');
is($crb->{roleRef}{name}, $cr->{metadata}{name}, 'ClusterRoleBinding refers to the ClusterRole');
is_deeply([ map { [ sort @{ $_->{resources} } ] } @{ $cr->{rules} } ], [ ['pods'] ], 'ClusterRole reads pods only');
is_deeply([ sort @{ $cr->{rules}[0]{verbs} } ], [qw(get list watch)], 'ClusterRole: get, list, watch (no write)');

# --- native sidecars: the Deployment and the Job ------------------------------------------
open my $vf, '<', "$root/VERSION" or die "VERSION: $!";
chomp(my $version = <$vf>);
like(image_of($agent), qr/:\Q$version\E$/, "DaemonSet image tag is VERSION ($version)");

my @with_sidecar = grep { $_->{kind} =~ /^(Deployment|Job)$/ } @docs;
ok((grep { $_->{kind} eq 'Deployment' } @with_sidecar), 'a Deployment runs the sidecar');
for my $d (@with_sidecar) {
    my $what = "$d->{kind}/$d->{metadata}{name}";
    my $spec = $d->{spec}{template}{spec};
    my ($sc) = grep { $_->{name} eq 'outrider' } @{ $spec->{initContainers} // [] };
    ok($sc, "$what: outrider is an init container") or next;
    is($sc->{restartPolicy}, 'Always', "$what: native sidecar (restartPolicy: Always)");
    ok(!(grep { $_->{name} eq 'outrider' } @{ $spec->{containers} }), "$what: outrider is not a regular container");
    is(image_of($sc), image_of($agent), "$what: same image as the DaemonSet");
    my $e = env_of($sc);
    is($e->{OUTRIDER_ROLE}, '=sidecar', "$what: OUTRIDER_ROLE=sidecar");
    check_config_env($what, 'sidecar', $sc);
    is($e->{$_}, $downward{$_}, "$what: env $_ from $downward{$_}") for sort keys %downward;
    config_file_of($what, $spec, $sc);
    check_probe($what, $sc, 'startupProbe', '/ready', $admin_port{sidecar});
    check_probe($what, $sc, 'readinessProbe', '/ready', $admin_port{sidecar});
    check_resources("$what sidecar", $sc);
    check_resources("$what container $_->{name}", $_) for @{ $spec->{containers} };
    cmp_ok(($spec->{terminationGracePeriodSeconds} // 30) * 1000, '>',
        (ms($role_conf{sidecar}{drain}{delay}) // 0) + (ms($role_conf{sidecar}{drain}{timeout}) // 0),
        "$what: terminationGracePeriodSeconds > sidecar drain.delay + drain.timeout");
    like($spec->{restartPolicy} // 'Always', qr/^(Never|OnFailure)$/, "$what: a Job's pod may complete")
        if $d->{kind} eq 'Job';
}

# --- the agent accepts the ConfigMap's configuration in both roles ---------------------------
SKIP: {
    skip "$build/outrider not built yet: the agent's own check (-t) of the ConfigMap config needs it", 4
        unless -x "$build/outrider";
    my %named = map { $_ => 1 } map { @{ $role_conf{$_}{modules} // [] } } qw(node sidecar);
    my @unbuilt = grep { !-e "$build/modules/$_.so" } sort keys %named;
    skip "modules the ConfigMap loads are not built yet (@unbuilt): the agent's -t check needs them", 4 if @unbuilt;
    my $tmp = tempdir(CLEANUP => 1);
    # Only install locations change: they point into the build tree, the way
    # the packages point them at /usr/lib/outrider and /usr/share/outrider.
    my $local = JSON::PP->new->canonical->decode($conf_text);
    my %where = (modules_dir => "$build/modules", scripts_dir => "$root/scripts", state_dir => "$tmp/state");
    for my $obj ($local, values %{ $local->{roles} }) {
        exists $obj->{$_} and $obj->{$_} = $where{$_} for keys %where;
        $obj->{inventory}{file} = "$tmp/pods.json" if $obj->{inventory} && $obj->{inventory}{file};
    }
    mkdir "$tmp/state";
    open my $p, '>', "$tmp/pods.json" or die;
    print $p '{"pods":[]}';
    close $p;
    open my $f, '>', "$tmp/agent.conf" or die;
    print $f JSON::PP->new->canonical->pretty->encode($local);
    close $f;
    # The environment the kubelet gives each container: its literal values,
    # and for the downward API a sample of what each field holds.
    my %sample = ('metadata.name' => 'outrider-test-0', 'metadata.namespace' => 'outrider',
        'metadata.uid' => '3f1c2a9e-0000-4000-8000-000000000001', 'spec.nodeName' => 'node-1',
        'status.hostIP' => '192.0.2.10', 'status.podIP' => '10.244.1.7');
    my %container = (node => $agent, sidecar => (grep { $_->{name} eq 'outrider' }
        @{ (grep { $_->{kind} eq 'Deployment' } @docs)[0]{spec}{template}{spec}{initContainers} })[0]);
    for my $role (qw(node sidecar)) {
        local %ENV = %ENV;
        delete @ENV{qw(POD_NAME POD_NAMESPACE POD_UID POD_IP NODE_NAME NODE_IP OUTRIDER_ROLE)};
        my $e = env_of($container{$role});
        for my $k (keys %$e) {
            my $v = $e->{$k};
            $ENV{$k} = $v =~ s/^=// ? $v : $sample{$v} // die "no sample for fieldPath $v";
        }
        # Under hostNetwork the pod's IP is the node's.
        $ENV{POD_IP} = $ENV{NODE_IP} if $role eq 'node' && $dspec->{hostNetwork} && exists $ENV{POD_IP};
        my $out = `$build/outrider -t --role $role -c $tmp/agent.conf 2>&1`;
        is($?, 0, "outrider -t --role $role accepts the ConfigMap's config") or diag $out;
        unlike($out, qr/error/i, "outrider -t --role $role: no error");
    }
}

done_testing();

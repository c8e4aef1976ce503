#!/usr/bin/perl
# packaging/deb/build-debs builds the agent's package and one package per
# module from the build tree; their control fields carry the module ABI
# (Provides outrider-abi-N / Depends outrider-abi-N) and the runtime libraries
# the binaries really link, and their files land where the agent looks.
#
# As root with OUTRIDER_DEB_INSTALL=1 or CI set (the machine is disposable), the
# packages are then installed into the real system with dpkg -i: the installed
# agent lists its modules, checks its packaged config, reports a removed module
# package as missing, and dpkg refuses a module built for the next ABI. Every
# package is purged at the end, whatever happened.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname basename);
use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;
use lib dirname(__FILE__) . '/lib';
use Outrider;

my $root = abs_path(dirname(dirname(__FILE__)));
my $build = abs_path($ENV{OUTRIDER_BUILD} // "$root/build") // "$root/build";
plan skip_all => "$build/outrider not built yet (run make): build-debs packages the build tree"
    unless -x "$build/outrider";
# Packages are made from release builds; the sanitizer suite already ran this
# test on build/, and an ASan agent installed system-wide helps no one.
plan skip_all => "$build is a sanitizer build: packages are built from the release build (build/)"
    if Outrider::sanitizer_build();

my $tmp = tempdir(CLEANUP => 1);
sub slurp { open my $f, '<', $_[0] or die "$_[0]: $!"; local $/; <$f> }
sub run {    # (exit code, stdout+stderr)
    my $out = `@_ 2>&1`;
    return ($? >> 8, $out);
}

chomp(my $version = slurp("$root/VERSION"));
my $header = slurp("$root/core/include/outrider/module.h");
my ($major) = $header =~ /^#define OTR_ABI_MAJOR (\d+)/m;
my ($minor) = $header =~ /^#define OTR_ABI_MINOR (\d+)/m;
ok(defined $major && defined $minor, "module.h defines the ABI ($major.$minor)");
chomp(my $arch = `dpkg --print-architecture`);
my @modules = map { basename($_, '.so') } sort glob("$build/modules/*.so");
# Until modules land, the agent's package is checked alone; each check that
# needs a module says it skipped.
diag(@modules ? "modules built: @modules" : "no module in $build/modules yet: module checks skip");

# --- build ---------------------------------------------------------------------------
my ($rc, $out) = run("$root/packaging/deb/build-debs", $build, "$tmp/debs");
is($rc, 0, 'build-debs succeeds') or diag $out;
my @printed = grep { /\.deb$/ } split /\n/, $out;
my $core_deb = "$tmp/debs/outrider_${version}_$arch.deb";
my %mod_deb = map { $_ => "$tmp/debs/outrider-mod-${_}_${version}_$arch.deb" } @modules;
my $inv_deb = "$tmp/debs/outrider-inventory_${version}_all.deb";
is_deeply([ sort @printed ], [ sort $core_deb, $inv_deb, values %mod_deb ],
    'build-debs prints the packages it wrote: the agent, one per module, the inventory writer');
ok(-f $_, basename($_) . ' exists') for $core_deb, $inv_deb, values %mod_deb;
is_deeply([ sort glob("$tmp/debs/*.deb") ], [ sort $core_deb, $inv_deb, values %mod_deb ], 'and nothing else');

sub field { my ($deb, $f) = @_; my $v = `dpkg-deb -f '$deb' $f`; chomp $v; $v }
sub files { my ($deb) = @_; [ map { (split ' ', $_)[5] } split /\n/, `dpkg-deb -c '$deb'` ] }
sub has_file { my ($list, $p) = @_; scalar grep { $_ eq $p } @$list }

# The package owning a shared library, found from its soname via the
# dynamic linker's cache: an independent cross-check of dpkg-shlibdeps.
sub owner_of_soname {
    my ($soname) = @_;
    my ($path) = `ldconfig -p` =~ /^\s+\Q$soname\E \(libc6,x86-64[^)]*\) => (\S+)$/m;
    return undef unless $path;
    for my $p ($path, abs_path($path), "/usr$path", $path =~ s{^/usr}{}r) {
        next unless defined $p;
        my $o = `dpkg -S '$p' 2>/dev/null`;
        return $1 if $o =~ /^([^:,\s]+)(?::\S+)?: /;
    }
    return undef;
}
sub needed { my ($elf) = @_; [ `objdump -p '$elf'` =~ /^\s+NEEDED\s+(\S+)$/mg ] }
sub depends_names { my ($d) = @_; [ map { (split ' ', $_)[0] } split /\s*,\s*/, $d ] }
sub check_libs {
    my ($what, $elf, $depends) = @_;
    my %dep = map { $_ => 1 } @{ depends_names($depends) };
    for my $so (@{ needed($elf) }) {
        my $pkg = owner_of_soname($so);
        ok($pkg, "$what: $so belongs to an installed package") or next;
        $pkg =~ s/:\w+$//;
        ok($dep{$pkg}, "$what: links $so, so Depends on $pkg") or diag "Depends: $depends";
    }
}

# --- the agent's package ------------------------------------------------------------------
is(field($core_deb, 'Package'), 'outrider', 'outrider: Package');
is(field($core_deb, 'Version'), $version, 'outrider: Version from VERSION');
is(field($core_deb, 'Architecture'), $arch, "outrider: Architecture $arch");
is(field($core_deb, 'Provides'), "outrider-abi-$major (= $major.$minor)", "outrider: Provides outrider-abi-$major (= $major.$minor)");
my $core_depends = field($core_deb, 'Depends');
for my $lib (qw(libuv1 libjansson4 liblua5.4-0 libc6)) {
    like($core_depends, qr/(?:^|, )\Q$lib\E \(>= [^)]+\)/, "outrider: Depends $lib with a minimal version");
}
check_libs('outrider', "$build/outrider", $core_depends);
my $core_files = files($core_deb);
for my $p (qw(./usr/bin/outrider ./etc/outrider/agent.conf ./lib/systemd/system/outrider.service
    ./usr/lib/outrider/modules/ ./usr/share/outrider/scripts/)) {
    ok(has_file($core_files, $p), "outrider installs $p");
}
ok(!(grep { m{^\./usr/lib/outrider/modules/.+} } @$core_files), 'outrider ships no module itself');
my @scripts = -d "$root/scripts" ? map { s{^\Q$root\E/}{}r } grep { -f } split /\n/, `find '$root/scripts' -type f` : ();
diag('no scripts/ in the repository yet: nothing to ship in /usr/share/outrider/scripts') unless @scripts;
ok(has_file($core_files, "./usr/share/outrider/$_"), "outrider installs /usr/share/outrider/$_") for @scripts;

system('dpkg-deb', '-R', $core_deb, "$tmp/core") == 0 or die 'dpkg-deb -R failed';
is(slurp("$tmp/core/DEBIAN/conffiles"), "/etc/outrider/agent.conf\n", 'agent.conf is a conffile (local edits survive upgrades)');
ok(-s "$tmp/core/DEBIAN/md5sums", 'md5sums present (dpkg --verify works)');
my $conf = eval { decode_json(slurp("$tmp/core/etc/outrider/agent.conf")) };
ok($conf, '/etc/outrider/agent.conf is JSON') or diag $@;
is($conf->{modules_dir}, '/usr/lib/outrider/modules', 'packaged config: modules_dir /usr/lib/outrider/modules');
is($conf->{scripts_dir}, '/usr/share/outrider/scripts', 'packaged config: scripts_dir /usr/share/outrider/scripts');
is($conf->{state_dir}, '/var/lib/outrider', 'packaged config: state_dir /var/lib/outrider');
my $example = decode_json(slurp("$root/agent.conf.example"));
if (($example->{control_socket} // '') ne '') {
    like($conf->{control_socket}, qr{^\$\{OUTRIDER_CONTROL_SOCKET:-/run/outrider/control\.sock\}$},
        'packaged config: control socket in /run/outrider (the unit\'s RuntimeDirectory), not the private /tmp');
}
delete @{$_}{qw(modules_dir scripts_dir state_dir control_socket)} for $conf, $example;
is_deeply($conf, $example, 'packaged config is agent.conf.example otherwise unchanged');

my $unit = slurp("$tmp/core/lib/systemd/system/outrider.service");
my %unit;
push @{ $unit{$1} }, $2 while $unit =~ /^(\w+)=(.*)$/mg;
like($unit{ExecStart}[0], qr{^/usr/bin/outrider -c /etc/outrider/agent\.conf --modules-dir /usr/lib/outrider/modules$},
    'unit: ExecStart runs the packaged agent, config and modules dir');
like($unit{ExecStartPre}[0] // '', qr{^/usr/bin/outrider -t }, 'unit: checks the config before starting');
is($unit{ExecReload}[0], '/bin/kill -HUP $MAINPID', 'unit: reload is SIGHUP');
is($unit{Restart}[0], 'on-failure', 'unit: Restart=on-failure');
for my $h (qw(NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes DynamicUser=yes
    StateDirectory=outrider RuntimeDirectory=outrider MemoryDenyWriteExecute=yes)) {
    my ($k, $v) = split /=/, $h;
    is($unit{$k}[0], $v, "unit hardening: $h");
}
my ($stop) = ($unit{TimeoutStopSec}[0] // '0') =~ /^(\d+)s?$/;
sub ms { my ($d, $def) = @_; return $def unless defined $d; return $d if $d =~ /^\d+$/;
    my %u = (ms => 1, s => 1000, m => 60000, h => 3600000); $d =~ /^(\d+(?:\.\d+)?)(ms|s|m|h)$/ ? $1 * $u{$2} : -1 }
my $pconf = decode_json(slurp("$tmp/core/etc/outrider/agent.conf"));
my $drain = ms($pconf->{drain}{delay}, 5000) + ms($pconf->{drain}{timeout}, 30000);    # node defaults when unset
cmp_ok(($stop // 0) * 1000, '>', $drain, "unit: TimeoutStopSec ($stop s) leaves the drain (${drain} ms) time to finish");

# --- module packages -------------------------------------------------------------------------
for my $m (@modules) {
    my $deb = $mod_deb{$m};
    is(field($deb, 'Package'), "outrider-mod-$m", "$m: Package outrider-mod-$m");
    is(field($deb, 'Version'), $version, "$m: Version");
    my $dep = field($deb, 'Depends');
    like($dep, qr/^outrider-abi-$major \(>= $major\.$minor\)(?:, |$)/, "$m: Depends outrider-abi-$major (>= $major.$minor)");
    check_libs("outrider-mod-$m", "$build/modules/$m.so", $dep);
    is_deeply([ grep { !m{/$} } @{ files($deb) } ], ["./usr/lib/outrider/modules/$m.so"], "$m: installs exactly /usr/lib/outrider/modules/$m.so");
}

# --- the inventory writer (the DaemonSet's second container runs it) ----------------------
is(field($inv_deb, 'Architecture'), 'all', 'outrider-inventory: Architecture all');
like(field($inv_deb, 'Depends'), qr/^python3 \(>= 3\.\d+\)$/, 'outrider-inventory: Depends python3 only (standard library)');
is_deeply([ grep { !m{/$} } @{ files($inv_deb) } ], ['./usr/bin/outrider-inventory'], 'outrider-inventory installs /usr/bin/outrider-inventory');
unlike(field($core_deb, 'Depends'), qr/python/, 'the agent itself does not need python3');

# A module built for the next ABI major, packaged by the same script.
my $fake = 'abinext';
mkdir "$tmp/fake";
mkdir "$tmp/fake/modules";
symlink("$build/outrider", "$tmp/fake/outrider") or die;
open my $c, '>', "$tmp/abinext.c" or die;
print $c <<"EOF";
#include "outrider/module.h"
/* Declares the ABI after this tree's: packaging must keep it off such an agent. */
OTR_MODULE_EXPORT const struct otr_module otr_module_$fake = {
    .magic = OTR_MODULE_MAGIC, .abi_major = OTR_ABI_MAJOR + 1, .abi_minor = 0,
    .size = sizeof(struct otr_module), .build_sig = OTR_BUILD_SIG,
    .name = "$fake", .version = "9.9.9", .summary = "a module for the next ABI",
};
EOF
close $c;
my $cflags = `pkg-config --cflags libuv lua5.4`;
chomp $cflags;
($rc, $out) = run("cc -shared -fPIC -fvisibility=hidden -I$root/core/include $cflags -o $tmp/fake/modules/$fake.so $tmp/abinext.c");
is($rc, 0, 'compiled a module for ABI ' . ($major + 1)) or diag $out;
($rc, $out) = run("$root/packaging/deb/build-debs", "$tmp/fake", "$tmp/fakedebs");
is($rc, 0, 'build-debs packages it') or diag $out;
my $fake_deb = "$tmp/fakedebs/outrider-mod-${fake}_${version}_$arch.deb";
my $next = $major + 1;
like(field($fake_deb, 'Depends'), qr/^outrider-abi-$next \(>= $next\.0\)/, "its package Depends on outrider-abi-$next, read from the .so");

# --- install into the real system ----------------------------------------------------------------
SKIP: {
    skip 'installing packages needs root', 1 if $> != 0;
    skip 'installing into this system only with OUTRIDER_DEB_INSTALL=1 or CI set', 1
        unless $ENV{OUTRIDER_DEB_INSTALL} || $ENV{CI};
    skip 'an outrider package is already installed here: not ours to replace or purge', 1
        if `dpkg-query -W -f '\${Status}' outrider 2>/dev/null` =~ /installed|unpacked|config-files/;

    my @pkgs = ('outrider', 'outrider-inventory', map { "outrider-mod-$_" } @modules, $fake);
    # Whatever happens below, leave the system as it was.
    my $guard = Purge->new(\@pkgs);

    # dpkg has no lock timeout of its own: wait (bounded) for other dpkg/apt users.
    my $dpkg = sub {
        my @args = @_;
        my ($r, $o);
        for (1 .. 60) {
            ($r, $o) = run('dpkg', @args);
            last unless $r != 0 && $o =~ /lock/i && $o !~ /depend/;
            sleep 2;
        }
        return ($r, $o);
    };
    ($rc, $out) = $dpkg->('-i', $core_deb, $inv_deb, values %mod_deb);
    is($rc, 0, 'dpkg -i installs the agent, the inventory writer and every module in one go') or diag $out;
    for my $p ('outrider', 'outrider-inventory', map { "outrider-mod-$_" } @modules) {
        is(`dpkg-query -W -f '\${Status}' $p`, 'install ok installed', "$p is installed");
    }
    ($rc, $out) = $dpkg->('--verify', 'outrider', map { "outrider-mod-$_" } @modules);
    is("$rc $out", '0 ', 'dpkg --verify: installed files match the packages');
    ok(-x '/usr/bin/outrider', '/usr/bin/outrider installed');
    ok(-f "/usr/lib/outrider/modules/$_.so", "/usr/lib/outrider/modules/$_.so installed") for @modules;

    ($rc, $out) = run('/usr/bin/outrider', '-V');
    is($rc, 0, 'installed outrider -V runs') or diag $out;
    like($out, qr/\Q$version\E/, '-V prints the version');
    like($out, qr/\b\Q$_\E\b/, "-V lists the installed module $_") for @modules;

    ($rc, $out) = run('/usr/bin/outrider-inventory', '--help');
    is($rc, 0, 'installed outrider-inventory runs') or diag $out;
    ($rc, $out) = run('/usr/bin/outrider', '-t', '-c', '/etc/outrider/agent.conf');
    is($rc, 0, 'the installed agent accepts its packaged config') or diag $out;
    ok(-x '/usr/bin/systemd-analyze', 'systemd-analyze is here to check the unit (package systemd, deps/packaging.txt)');
    ($rc, $out) = run('systemd-analyze', 'verify', '/lib/systemd/system/outrider.service');
    unlike($out, qr/not found/, 'systemd-analyze ran');
    unlike($out, qr/outrider\.service:\d+: /, 'systemd-analyze verify: the unit has no bad line') or diag $out;

    # Each module, loaded alone by the installed agent from the default modules dir.
    for my $m (@modules) {
        my $f = "$tmp/only-$m.conf";
        open my $cf, '>', $f or die;
        print $cf encode_json({ modules => [$m], state_dir => "$tmp/state" });
        close $cf;
        mkdir "$tmp/state";
        my @ok;
        for my $role (qw(node sidecar)) {
            my ($r, $o) = run('/usr/bin/outrider', '-t', '--role', $role, '-c', $f);
            push @ok, $role if $r == 0;
            diag "$m in role $role: $o" if $r != 0 && $o !~ /role/i;
        }
        ok(@ok, "installed agent loads $m from /usr/lib/outrider/modules (roles: @ok)");
        next unless @ok;
        # And serves with it: the installed binary, modules and scripts, under
        # the test harness (state file, /ready, clean SIGTERM exit).
        # Its listeners on loopback port 0, found from its own reference
        # (--describe): no fixed port that a parallel test might hold.
        my %section;
        for my $key (`/usr/bin/outrider --describe $m` =~ /^\| `\Q$m\E\.([a-z0-9_.]+)` \| address \|/mg) {
            my @path = split /\./, $key;
            my $leaf = pop @path;
            my $h = \%section;
            $h = $h->{$_} //= {} for @path;
            $h->{$leaf} = '127.0.0.1:0';
        }
        no warnings 'redefine';
        local *Outrider::bin = sub { '/usr/bin/outrider' };
        my $agent = eval {
            Outrider->start(role => $ok[0], modules_dir => '/usr/lib/outrider/modules',
                conf => { modules => [$m], $m => \%section, scripts_dir => '/usr/share/outrider/scripts', state_dir => "$tmp/state",
                    drain => { delay => '0s', timeout => '2s' } });
        };
        ok($agent, "installed agent starts with $m in role $ok[0]") or do { diag $@; next };
        my ($code) = $agent->http('GET', 'admin', '/ready');
        is($code, 200, "installed agent with $m is ready");
        $agent->finish_ok;
    }

    # Removing a module's package removes the module: the agent says so clearly.
    SKIP: {
        skip "no module built in $build/modules: nothing to remove", 8 unless @modules;
        my $gone = (grep { $_ eq 'metrics' } @modules) ? 'metrics' : $modules[-1];
        ($rc, $out) = $dpkg->('-r', "outrider-mod-$gone");
        is($rc, 0, "dpkg -r outrider-mod-$gone") or diag $out;
        ok(!-e "/usr/lib/outrider/modules/$gone.so", "$gone.so is gone");
        my $f = "$tmp/needs-$gone.conf";
        open my $cf, '>', $f or die;
        print $cf encode_json({ modules => [$gone] });
        close $cf;
        ($rc, $out) = run('/usr/bin/outrider', '-t', '--role', 'node', '-c', $f);
        isnt($rc, 0, "the agent refuses a config naming the removed module $gone");
        like($out, qr{/usr/lib/outrider/modules/\Q$gone\E\.so}, 'the error names the missing file');
        like($out, qr/no such file|not found|missing|not installed/i, 'and says it is missing') or diag $out;
        ($rc, $out) = run('/usr/bin/outrider', '-V');
        unlike($out, qr/\b\Q$gone\E\b/, "-V no longer lists $gone");
    }

    # The next ABI's module: dpkg refuses it, naming the ABI it needs.
    ($rc, $out) = $dpkg->('-i', $fake_deb);
    isnt($rc, 0, "dpkg -i refuses the module built for ABI $next");
    like($out, qr/outrider-mod-$fake depends on outrider-abi-$next/, "dpkg names the missing outrider-abi-$next") or diag $out;
    isnt(`dpkg-query -W -f '\${Status}' outrider-mod-$fake 2>/dev/null`, 'install ok installed', "outrider-mod-$fake is not installed");
    # dpkg -i unpacks before it finds the dependency broken (apt would not
    # even unpack): the agent's own ABI check is the second line of defence.
    if (-e "/usr/lib/outrider/modules/$fake.so") {
        open my $ff, '>', "$tmp/fake.conf" or die;
        print $ff encode_json({ modules => [$fake] });
        close $ff;
        ($rc, $out) = run('/usr/bin/outrider', '-t', '--role', 'node', '-c', "$tmp/fake.conf");
        isnt($rc, 0, 'the agent refuses the unpacked next-ABI module too');
        like($out, qr/ABI/, 'naming the ABI mismatch') or diag $out;
    }

    $guard->purge;
    for my $p (@pkgs) {
        like(`dpkg-query -W -f '\${Status}' $p 2>/dev/null`, qr/^(?:|unknown ok not-installed|purge ok not-installed|deinstall ok not-installed)$/, "$p purged");
    }
    ok(!-e '/usr/bin/outrider' && !-e '/usr/bin/outrider-inventory' && !-e '/etc/outrider/agent.conf' && !-e '/usr/lib/outrider/modules', 'no file left behind');
}

done_testing();

package Purge;
# Purges the packages when asked or, at the latest, when the test ends.
sub new { my ($class, $pkgs) = @_; bless { pkgs => $pkgs }, $class }
sub purge {
    my ($self) = @_;
    return if $self->{done}++;
    for (1 .. 60) {
        my $o = `dpkg --purge @{ $self->{pkgs} } 2>&1`;
        last unless $? != 0 && $o =~ /lock/i;
        sleep 2;
    }
}
sub DESTROY { $_[0]->purge }

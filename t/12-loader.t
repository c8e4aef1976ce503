#!/usr/bin/env perl
# The module loader refuses broken modules, each with one clear message
# naming the module and the file, and nothing is half-started.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Outrider;

my $bin = Outrider::bin();
my $mods = tempdir('outrider-mods-XXXXXX', TMPDIR => 1, CLEANUP => 1);
copy(Outrider::test_modules_dir() . "/$_.so", "$mods/$_.so") or die $! for qw(echo badabi nosym failinit nodeonly);
open my $fh, '>', "$mods/garbage.so" or die;
print $fh "this is not an ELF file\n";
close $fh;

sub try_module {
    my ($name, %o) = @_;
    my ($dir, $path) = Outrider::write_conf({ admin => { address => '127.0.0.1:0' }, modules => [$name] });
    my ($code, $out) = Outrider::run_cmd($bin, '-t', '-c', $path, '--modules-dir', $mods, @{ $o{args} || [] });
    return ($code, $out, $path, $dir);
}

my ($code, $out) = try_module('missing');
is($code, 1, 'missing module: exit 1');
like($out, qr{module "missing": \Q$mods\E/missing\.so: No such file or directory \(is the outrider-mod-missing package installed\?\)},
     'missing module: names module, file and the package');

($code, $out) = try_module('nosym');
like($out, qr{module "nosym": \Q$mods\E/nosym\.so: has no symbol otr_module_nosym}, 'missing symbol');

($code, $out) = try_module('badabi');
like($out, qr{module "badabi": \Q$mods\E/badabi\.so: was built for module ABI 2\.0, this agent has 1\.0: rebuild the module},
     'ABI mismatch');

($code, $out) = try_module('garbage');
like($out, qr{module "garbage": \Q$mods\E/garbage\.so: dlopen failed: }, 'not a shared object');

($code, $out) = try_module('nodeonly', args => ['--role', 'sidecar']);
like($out, qr{module "nodeonly": .*does not support the sidecar role}, 'role not supported');
($code, $out) = try_module('nodeonly', args => ['--role', 'node']);
is($code, 0, 'the same module loads in its role') or diag($out);

($code, $out) = try_module('failinit');
is($code, 1, 'failing init: -t exits 1');
like($out, qr{failinit\.reason: init failed: on purpose}, 'failing init: the module\'s own error, with its path');

($code, $out) = try_module('Bad/Name');
like($out, qr{module name "Bad/Name" must be lowercase}, 'module names cannot escape the modules dir');

# At run time a failing module means no start at all: exit 1, no state file,
# and the admin port it would have used is not left bound.
my ($dir, $path) = Outrider::write_conf({ admin => { address => '127.0.0.1:0' }, modules => ['echo', 'failinit'] });
my $a = Outrider->start(conf_path => $path, modules_dir => $mods, no_wait => 1);
is($a->wait_exit(20), 1, 'agent with a failing module exits 1');
ok(!-e "$dir/state.json", 'and never announced itself ready');
like($a->log, qr/failinit\.reason: init failed: on purpose/, 'the log says why');
unlike($a->log, qr/sanitizer|runtime error/i, 'no sanitizer report');

# A module whose start() fails on a worker: exit 3.
($dir, $path) = Outrider::write_conf({ admin => { address => '127.0.0.1:0' }, modules => ['echo'],
                                       echo => { fail_start => JSON::PP::true() } });
$a = Outrider->start(conf_path => $path, modules_dir => $mods, no_wait => 1);
is($a->wait_exit(20), 3, 'a module failing to start: exit 3');
like($a->log, qr/echo.*cannot start on worker 0/, 'the log names module and worker');
unlike($a->log, qr/sanitizer|runtime error/i, 'no sanitizer report');
done_testing;

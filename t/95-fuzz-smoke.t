#!/usr/bin/env perl
# Every libFuzzer target builds and survives a short run on its seeds plus
# what it generates. Long runs: ./build.sh fuzz 600.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Outrider;

my @targets = glob(Outrider::root() . '/t/fuzz/*.c');
plan skip_all => 'no fuzz targets' unless @targets;
# The targets are sanitizer builds of their own, independent of the agent's
# build: the sanitizer pass of the suite would only run them a second time.
plan skip_all => 'the fuzz targets ran in the plain pass (they are ASan+UBSan builds themselves)'
    if Outrider::sanitizer_build();
my $secs = $ENV{FUZZ_SMOKE_SECONDS} || 5;
my ($code, $out) = Outrider::run_cmd(Outrider::root() . '/t/fuzz/run', $secs);
is($code, 0, "every fuzz target ran ${secs}s with no crash") or diag($out);
for my $t (@targets) {
    my ($name) = $t =~ m{([^/]+)\.c$};
    like($out, qr/\Q$name\E: stat::number_of_executed_units:\s*[1-9]/, "$name executed inputs");
}
done_testing;

#!/usr/bin/perl
# bench/logs/gen.pl FILE BYTES: writes CRI lines (about 130 bytes each, a
# realistic mix of stdout/stderr, 1 in 50 split by the runtime as P + F)
# until the file holds BYTES; prints the physical lines and the records
# (P + F pairs count once).
use strict;
use warnings;
my ($file, $bytes) = @ARGV;
open my $fh, '>', $file or die "$file: $!";
my ($n, $recs, $size, $buf) = (0, 0, 0, '');
my @words = qw(GET POST user order cart payment id=42 status=200 latency_ms=12 region=eu-west-1 retry ok);
while ($size < $bytes) {
    $n++;
    $recs++;
    my $msg = "req-$n " . join(' ', map { $words[($n * 7 + $_ * 13) % @words] } 0 .. 9) . " trace=" . sprintf('%016x', $n * 2654435761);
    my $s = $n % 10 ? 'stdout' : 'stderr';
    my $t = sprintf('2026-01-01T00:%02d:%02d.%09dZ', ($n / 60000) % 60, ($n / 1000) % 60, $n % 1000000000);
    if ($n % 50 == 0) {
        my $half = int(length($msg) / 2);
        $buf .= "$t $s P " . substr($msg, 0, $half) . "\n$t $s F " . substr($msg, $half) . "\n";
        $n++;    # two physical lines, one record
    } else {
        $buf .= "$t $s F $msg\n";
    }
    if (length $buf > 1 << 20) { print $fh $buf; $size += length $buf; $buf = '' }
}
print $fh $buf;
close $fh;
print "$n $recs\n";

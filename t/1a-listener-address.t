#!/usr/bin/env perl
# Listener addresses take two ways: IPv4 and IPv6 literals are parsed and
# the bound address formatted by libuv; names and other forms ("localhost",
# inet_aton's "127.1") go to getaddrinfo. Each binds where it says, and the
# state file reports the bound address.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::IP;
use Outrider;

sub admin_on {
    my ($address) = @_;
    my $a = Outrider->start(conf => { admin => { address => $address } });
    my $bound = $a->addr('admin');
    my ($code) = $a->http('GET', 'admin', '/healthz');
    $a->finish_ok;
    return ($bound, $code);
}

my ($bound, $code) = admin_on('127.0.0.1:0');
like($bound, qr/^127\.0\.0\.1:[1-9]\d*$/, 'IPv4 literal: bound, state file gives address and port');
is($code, 200, 'IPv4 literal: answers');

($bound, $code) = admin_on('localhost:0');
like($bound, qr/^(?:127\.0\.0\.1|\[::1\]):[1-9]\d*$/, 'a name (getaddrinfo): bound on loopback');
is($code, 200, 'a name: answers');

($bound, $code) = admin_on('127.1:0');
like($bound, qr/^127\.0\.0\.1:[1-9]\d*$/, 'inet_aton form "127.1" (getaddrinfo): bound on 127.0.0.1');
is($code, 200, '"127.1": answers');

SKIP: {
    skip 'no IPv6 loopback here', 2 unless IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Listen => 1);
    ($bound, $code) = admin_on('[::1]:0');
    like($bound, qr/^\[::1\]:[1-9]\d*$/, 'IPv6 literal: bound, formatted in brackets');
    is($code, 200, 'IPv6 literal: answers');
}

done_testing;

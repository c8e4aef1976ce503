#!/usr/bin/perl
# packaging/image/Containerfile cannot be built on these machines (no container
# engine), so this test keeps it honest instead: every stage is named, every
# file it copies from the build context is in the repository, every file it
# copies from a stage is produced there (by build-debs), the build stage has
# what build-debs needs, and the runtime stage installs the .deb files and
# runs the agent as a non-root user.
use strict;
use warnings;
use File::Basename qw(dirname);
use Test::More;

my $root = dirname(dirname(__FILE__));
$root = '.' if $root eq '';
my $file = "$root/packaging/image/Containerfile";
open my $fh, '<', $file or BAIL_OUT("$file: $!");
my $text = do { local $/; <$fh> };

# Instructions, with continuation lines joined and comments dropped.
my @ins;
my $cur = '';
for my $line (split /\n/, $text) {
    next if $line =~ /^\s*#/ && $cur eq '';
    next if $line =~ /^\s*#/;
    $cur .= $line;
    if ($cur =~ s/\\\s*$/ /) { next }
    push @ins, $cur if $cur =~ /\S/;
    $cur = '';
}
is($cur, '', 'no dangling line continuation at the end');

# In a git checkout, "in the repository" means tracked: an untracked file in a
# developer's tree would not be in anyone else's build context.
my $git = -e "$root/.git" && system("git -C $root rev-parse --git-dir >/dev/null 2>&1") == 0;
sub in_repo {
    my ($p) = @_;
    $p =~ s{/+$}{};
    return 0 unless -e "$root/$p";
    return 1 unless $git;
    return `git -C $root ls-files -- '$p' | head -n1` ne '';
}

my (@stages, %stage_runs, %stage_of);
for my $i (@ins) {
    my ($cmd, $rest) = $i =~ /^\s*(\w+)\s+(.*)$/ or next;
    $cmd = uc $cmd;
    if ($cmd eq 'FROM') {
        my ($image, $name) = $rest =~ /^(\S+)(?:\s+AS\s+(\S+))?/i;
        ok($name, "FROM $image: stage is named") or $name = "#" . scalar @stages;
        push @stages, { name => $name, image => $image, ins => [] };
        next;
    }
    ok(@stages, "$cmd comes after a FROM") or next;
    push @{ $stages[-1]{ins} }, [ $cmd, $rest ];
}
is(scalar @stages, 2, 'two stages: build and runtime') or BAIL_OUT('unexpected stage layout');
my ($build, $runtime) = @stages;
like($build->{image}, qr/^debian:12(?:$|[.@-])/, "build stage on debian:12 ($build->{image})");
like($runtime->{image}, qr/^debian:12[.-]?.*slim/, "runtime stage on a slim debian:12 ($runtime->{image})");

sub runs { join "\n", map { $_->[1] } grep { $_->[0] eq 'RUN' } @{ $_[0]{ins} } }
my $build_run = runs($build);
my $runtime_run = runs($runtime);

# --- COPY/ADD sources ------------------------------------------------------------------
my %copied;    # destination in the build stage => source
for my $st (@stages) {
    for my $in (grep { $_->[0] eq 'COPY' || $_->[0] eq 'ADD' } @{ $st->{ins} }) {
        my @w = split ' ', $in->[1];
        my ($from) = map { /^--from=(\S+)/ ? $1 : () } @w;
        @w = grep { !/^--/ } @w;
        my $dest = pop @w;
        ok(@w, "$in->[0] $in->[1]: has a source");
        for my $src (@w) {
            unlike($src, qr/^\.\/?$|\*/, "$in->[0] $src: names what it copies (no whole context, no glob)");
            if (defined $from) {
                my ($producer) = grep { $_->{name} eq $from } @stages;
                ok($producer && $producer != $st, "$in->[0] --from=$from: an earlier stage");
                # The build stage writes the packages with build-debs BUILD_DIR OUT_DIR.
                (my $dir = $src) =~ s{/+$}{};
                like(runs($producer // {}), qr{packaging/deb/build-debs\s+\S+\s+\Q$dir\E(?:/|\s|$)},
                    "$in->[0] --from=$from $src: produced by packaging/deb/build-debs in stage $from");
            } else {
                ok(in_repo($src), "$in->[0] $src: in the repository");
                $copied{$_} = 1 for ($src, $dest);
            }
        }
    }
}

# --- the build stage -----------------------------------------------------------------
like($build_run, qr{(?:^|\s|&&)\./build\.sh(?:\s|$)}, 'build stage runs ./build.sh');
ok(in_repo('build.sh') && -x "$root/build.sh", 'build.sh is in the repository and executable');
ok(-x "$root/packaging/deb/build-debs", 'packaging/deb/build-debs is executable');
# Files the build reads must be in the image's context: what build-debs packages.
for my $needed (qw(build.sh Makefile VERSION agent.conf.example core scripts packaging)) {
    ok((grep { m{^\Q$needed\E/?$} } keys %copied), "build context copies $needed");
}
open my $bd, '<', "$root/packaging/deb/build-debs" or die;
my $bdtext = do { local $/; <$bd> };
my ($pkgs) = $bdtext =~ /\(packages: ([^)]+)\)/;
ok($pkgs, 'build-debs names the packages of the tools it needs');
my ($apt) = $build_run =~ /apt-get install([^&]*)/;
for my $p (split ' ', $pkgs // '') {
    like($apt // '', qr/(?:^|\s)\Q$p\E(?:\s|$)/, "build stage installs $p (build-debs needs it)");
}
for my $dev (qw(libuv1-dev libjansson-dev liblua5.4-dev libnghttp2-dev pkg-config)) {
    like($apt // '', qr/(?:^|\s)\Q$dev\E(?:\s|$)/, "build stage installs $dev");
}

# --- the runtime stage -----------------------------------------------------------------
my ($deb_dir) = map { my @w = split ' ', $_->[1]; $w[-1] }
    grep { $_->[0] eq 'COPY' && $_->[1] =~ /--from=\Q$build->{name}\E/ } @{ $runtime->{ins} };
ok($deb_dir, 'runtime stage copies the packages from the build stage');
$deb_dir //= '-';
(my $dd = $deb_dir) =~ s{/+$}{};
like($runtime_run, qr{apt-get install[^&]*\s(?:\Q$dd\E/|\./)\*\.deb}, 'runtime stage installs every copied .deb with apt-get (dependencies resolved)');
like($runtime_run, qr{cd \Q$dd\E\b}, "runtime stage installs from $dd") if $runtime_run =~ m{\s\./\*\.deb};
unlike($runtime_run, qr/dpkg\s.*--force/, 'no dpkg --force-*');
unlike($runtime_run, qr/build-essential|-dev\b/, 'runtime stage installs no build tools');
my ($user) = map { $_->[1] } grep { $_->[0] eq 'USER' } @{ $runtime->{ins} };
like($user // '', qr/^[1-9]\d*(?::\d+)?$/, 'runtime stage runs as a numeric non-root user (runAsNonRoot can check it)');
my ($uid) = ($user // '') =~ /^(\d+)/;
like($runtime_run, qr/--uid \Q$uid\E\b/, "user $uid is created in the image") if $uid;
# The packaged config (build-debs) writes to state_dir /var/lib/outrider and
# puts its control socket in /run/outrider: both must be the user's.
for my $dir ('/var/lib/outrider', '/run/outrider') {
    like($bdtext, qr{\Q$dir\E}, "build-debs points the packaged config at $dir");
    like($runtime_run, qr{install -d -o \Q$uid\E -g \d+ [^&]*\Q$dir\E(?:\s|$)}, "runtime stage gives $dir to user $uid") if $uid;
}
my ($entry) = map { $_->[1] } grep { $_->[0] eq 'ENTRYPOINT' } @{ $runtime->{ins} };
like($entry // '', qr{^\[\s*"(?:/usr/bin/)?outrider"}, 'ENTRYPOINT runs outrider (exec form, so it is PID 1 and gets SIGTERM)');
like($bdtext, qr{usr/bin/outrider"}, 'build-debs installs /usr/bin/outrider, the ENTRYPOINT');
my ($cmdline) = map { $_->[1] } grep { $_->[0] eq 'CMD' } @{ $runtime->{ins} };
like($cmdline // '', qr{"/etc/outrider/agent\.conf"}, 'CMD points at the packaged config file');
like($bdtext, qr{etc/outrider/agent\.conf"}, 'build-debs installs /etc/outrider/agent.conf');

done_testing();

package Outrider;
# Test harness: starts the real agent with a configuration, waits for its
# state file (written once every listener is bound), and stops it, checking
# that it exited cleanly with no error line and no sanitizer report.
#
#   my $a = Outrider->start(conf => {...}, role => 'sidecar');
#   my ($code, $body) = $a->http('GET', 'admin', '/healthz');
#   $a->finish_ok;
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir tempfile);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use Test::More;

our $ROOT = abs_path(dirname(__FILE__) . '/../..');

sub build_dir { my $b = $ENV{OUTRIDER_BUILD} || 'build'; return $b =~ m{^/} ? $b : "$ROOT/$b" }
# Whether the agent under test is built with AddressSanitizer/UBSan.
sub sanitizer_build {
    my $bin = bin();
    return -x $bin && `objdump -p '$bin'` =~ /NEEDED\s+lib(?:asan|ubsan)\./;
}
sub bin { return build_dir() . '/outrider' }
sub modules_dir { return build_dir() . '/modules' }
sub test_modules_dir { return build_dir() . '/t/modules' }
sub root { return $ROOT }
sub json { return JSON::PP->new->canonical->pretty }

# Writes a config (hashref or text) to a new temp dir; returns (dir, path).
sub write_conf {
    my ($conf, %o) = @_;
    my $dir = $o{dir} || tempdir('outrider-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $path = "$dir/" . ($o{name} || 'agent.conf');
    open my $fh, '>', $path or die "$path: $!";
    print $fh (ref $conf ? json()->encode($conf) : $conf);
    close $fh;
    return ($dir, $path);
}

# Fills in what every test agent needs unless the test says otherwise.
sub _defaults {
    my ($conf) = @_;
    return $conf unless ref $conf eq 'HASH';
    my %c = %$conf;
    $c{admin} = { address => '127.0.0.1:0', %{ $c{admin} || {} } };
    $c{scripts_dir} //= "$ROOT/scripts";
    return \%c;
}

sub start {
    my ($class, %o) = @_;
    # Only the process that started the agent may stop it: a test's forked
    # child exiting must not run DESTROY's clean-up against it.
    my $self = bless { %o, owner => $$ }, $class;
    my ($dir, $path) = $o{conf_path} ? (dirname($o{conf_path}), $o{conf_path}) : write_conf(_defaults($o{conf} || {}));
    $self->{dir} = $dir;
    $self->{conf_path} = $path;
    $self->{state_file} = "$dir/state.json";
    $self->{log_file} = "$dir/agent.log";
    unlink $self->{state_file};
    my @cmd = (bin(), '-c', $path, '--state-file', $self->{state_file},
               '--modules-dir', $o{modules_dir} || modules_dir());
    push @cmd, '--role', $o{role} if $o{role};
    push @cmd, @{ $o{args} || [] };
    unshift @cmd, 'ip', 'netns', 'exec', $o{netns} if $o{netns};
    unshift @cmd, @{ $o{wrap} } if $o{wrap}; # e.g. a mount namespace: the command execs its arguments
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $ENV{$_} = $o{env}{$_} for keys %{ $o{env} || {} };
        $ENV{ASAN_OPTIONS} //= 'detect_leaks=1:abort_on_error=0:exitcode=99';
        $ENV{UBSAN_OPTIONS} //= 'print_stacktrace=1:halt_on_error=1:exitcode=99';
        open STDOUT, '>>', $self->{log_file} or die;
        open STDERR, '>>', $self->{log_file} or die;
        exec @cmd or die "exec: $!";
    }
    $self->{pid} = $pid;
    return $self if $o{no_wait};
    $self->wait_ready($o{timeout} || 20) or do {
        diag("agent did not become ready; its log:\n" . $self->log);
        $self->kill_hard;
        die "agent did not start\n";
    };
    return $self;
}

# Waits for a state file of at least generation $gen (default 1).
sub wait_ready {
    my ($self, $timeout, $gen) = @_;
    $gen //= 1;
    my $until = time + ($timeout || 20);
    while (time < $until) {
        if (my $st = $self->_read_state) {
            if (($st->{generation} || 0) >= $gen) { $self->{state} = $st; return 1 }
        }
        if (waitpid($self->{pid}, WNOHANG) == $self->{pid}) {
            $self->{exit} = $? >> 8;
            $self->{reaped} = 1;
            return 0;
        }
        sleep 0.01;
    }
    return 0;
}

sub _read_state {
    my ($self) = @_;
    open my $fh, '<', $self->{state_file} or return undef;
    local $/;
    my $t = <$fh>;
    return eval { decode_json($t) };
}

sub state { my ($self) = @_; return $self->{state} = $self->_read_state || $self->{state} }
sub pid { $_[0]{pid} }
sub dir { $_[0]{dir} }
sub conf_path { $_[0]{conf_path} }
sub addr {
    my ($self, $name) = @_;
    my $a = $self->state->{listeners}{$name} or die "no listener $name in state file";
    return $a;
}
sub port { my ($self, $name) = @_; my ($p) = $self->addr($name) =~ /:(\d+)$/; return $p }

sub log {
    my ($self) = @_;
    open my $fh, '<', $self->{log_file} or return '';
    local $/;
    return scalar <$fh>;
}

sub signal { my ($self, $sig) = @_; kill $sig, $self->{pid} }

# Rewrites the agent's config file (hashref gets test defaults).
sub rewrite_conf {
    my ($self, $conf) = @_;
    write_conf(_defaults($conf), dir => $self->{dir}, name => (split m{/}, $self->{conf_path})[-1]);
}

sub wait_log {
    my ($self, $re, $timeout) = @_;
    return poll($timeout || 10, sub { $self->log =~ $re }) ? 1 : 0;
}

# GETs $path from $listener every 50 ms until it answers 200 with a body
# that $cond accepts, or $secs (default 15) have passed; returns the last
# (status, body).
sub get_until {
    my ($self, $listener, $path, $cond, $secs) = @_;
    my ($code, $body);
    poll($secs || 15, sub { ($code, $body) = $self->http('GET', $listener, $path); $code == 200 && $cond->($body) });
    return ($code, $body);
}

# Runs curl against a listener; returns (status, body).
sub http {
    my ($self, $method, $listener, $path, %o) = @_;
    my $url = "http://" . $self->addr($listener) . $path;
    my @cmd = ('curl', '-s', '-m', $o{timeout} || 10, '-o', '-', '-w', '\n%{http_code}', '-X', $method);
    push @cmd, '-H', $_ for @{ $o{headers} || [] };
    push @cmd, '--data-binary', $o{body} if defined $o{body};
    push @cmd, $url;
    open my $fh, '-|', @cmd or die "curl: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    my ($body, $code) = $out =~ /\A(.*)\n(\d{3})\z/s or return (0, '');
    return ($code, $body);
}

# Waits for the process to exit; returns its exit code (undef on timeout).
sub wait_exit {
    my ($self, $timeout) = @_;
    return $self->{exit} if $self->{reaped};
    my $until = time + ($timeout || 20);
    while (time < $until) {
        if (waitpid($self->{pid}, WNOHANG) == $self->{pid}) {
            $self->{reaped} = 1;
            $self->{exit} = WIFSIGNALED($?) ? 128 + WTERMSIG($?) : $? >> 8;
            return $self->{exit};
        }
        sleep 0.02;
    }
    return undef;
}

sub stop {
    my ($self, $timeout) = @_;
    kill 'TERM', $self->{pid} unless $self->{reaped};
    my $code = $self->wait_exit($timeout || 30);
    $self->kill_hard unless defined $code;
    return $code;
}

sub kill_hard {
    my ($self) = @_;
    return if $self->{reaped};
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
    $self->{reaped} = 1;
}

# Lines that must never appear in a clean run.
sub sanitizer_report {
    my ($log) = @_;
    return $log =~ /(ERROR: (?:Address|Leak)Sanitizer.*|runtime error:.*|SUMMARY: \w+Sanitizer.*)/ ? $1 : undef;
}

# Stops the agent and checks a clean exit: code 0, no error-level line
# (unless allowed by $o{allow_errors} regex), no sanitizer report.
sub finish_ok {
    my ($self, %o) = @_;
    my $code = $self->stop;
    my $log = $self->log;
    is($code, 0, 'agent exited 0') or diag($log);
    my $san = sanitizer_report($log);
    ok(!defined $san, 'no sanitizer report') or diag($log);
    my @errors = grep { (/ error \[/ || /"level":"error"/) && !($o{allow_errors} && $_ =~ $o{allow_errors}) } split /\n/, $log;
    ok(!@errors, 'no error lines in the agent log') or diag(join("\n", @errors));
    return $code;
}

# Passes when promtool accepts $exposition (Prometheus text format) as it
# would a scrape: `promtool check metrics`, its complaints shown on failure.
sub promtool_ok {
    my ($exposition, $name) = @_;
    my ($fh, $file) = File::Temp::tempfile(UNLINK => 1);
    print $fh $exposition;
    close $fh;
    my ($rc, $out) = run_cmd('sh', '-c', "promtool check metrics < $file");
    return is($rc, 0, $name) || diag($out);
}

# Evaluates $cond every 50 ms until it returns true or $secs have passed
# (then once more, late); returns its last value.
sub poll {
    my ($secs, $cond) = @_;
    my $until = time + $secs;
    while (time < $until) {
        my $v = $cond->();
        return $v if $v;
        sleep 0.05;
    }
    return $cond->();
}

# The lines of a file another process may still be appending to: a last
# line without its newline is still being written and is left for the next
# read. Empty if the file is absent; a count in scalar context.
sub complete_lines {
    my ($path) = @_;
    my @lines;
    open my $fh, '<', $path or return @lines;
    @lines = <$fh>;
    pop @lines if @lines && $lines[-1] !~ /\n\z/;
    return @lines;
}

# The records of such a file of JSON lines, decoded.
sub json_lines { return map { decode_json($_) } complete_lines(@_) }

# Whether process $pid holds a socket listening on loopback port $port
# (its inode in /proc/net/tcp among the process's descriptors).
sub listens_on {
    my ($pid, $port) = @_;
    my %inode;
    for my $table ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $table or next;
        while (my $line = <$fh>) {
            my @c = split ' ', $line;
            $inode{ $c[9] } = 1 if @c > 9 && $c[3] eq '0A' && $c[1] =~ /:([0-9A-F]{4})$/ && hex($1) == $port;
        }
    }
    return 0 unless %inode;
    opendir my $d, "/proc/$pid/fd" or return 0;
    for my $fd (readdir $d) {
        my $l = readlink("/proc/$pid/fd/$fd") // next;
        return 1 if $l =~ /^socket:\[(\d+)\]$/ && $inode{$1};
    }
    return 0;
}

# Starts a server that cannot listen on port 0 (nginx, nghttpd, rsyslogd,
# Prometheus) on $n free loopback ports: $start->(@ports) forks it and
# returns its pid. A port found free may be taken by a parallel test before
# the server binds it, and then a client could reach that test's server in
# its place; so this waits until the server itself listens on every port,
# and tries other ports if it exits. Returns ($pid, @ports).
sub spawn_on_free_ports {
    my ($n, $start, %o) = @_;
    for my $attempt (1 .. 5) {
        my @probes = map { IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1) or die "bind: $!" } 1 .. $n;
        my @ports = map { $_->sockport } @probes;
        close $_ for @probes;
        my $pid = $start->(@ports);
        my $until = time + ($o{timeout} || 20);
        while (time < $until) {
            return ($pid, @ports) unless grep { !listens_on($pid, $_) } @ports;
            if (waitpid($pid, WNOHANG) == $pid) {
                diag("server on ports @ports exited (status $?): trying others");
                last;
            }
            sleep 0.05;
        }
        next if waitpid($pid, WNOHANG) == $pid || !kill(0, $pid);
        kill 'TERM', $pid;
        waitpid($pid, 0);
        die "server on ports @ports did not listen within " . ($o{timeout} || 20) . " s\n";
    }
    die "no server could listen on free ports\n";
}

# Runs the binary with arguments; returns (exit code, stdout+stderr).
sub run_cmd {
    my (@cmd) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        $ENV{ASAN_OPTIONS} //= 'detect_leaks=1:exitcode=99';
        $ENV{UBSAN_OPTIONS} //= 'print_stacktrace=1:halt_on_error=1:exitcode=99';
        exec @cmd or exit 127;
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

sub DESTROY {
    my ($self) = @_;
    $self->kill_hard if $self->{pid} && !$self->{reaped} && $self->{owner} == $$;
}

1;

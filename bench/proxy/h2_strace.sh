#!/bin/bash
# Syscalls and bytes per request through outrider to an HTTP/2 backend,
# counted, not timed (strace -f on the agent): the companion of
# h2_callgrind.sh, same scenarios (h2_scenario.sh). outrider runs natively;
# after a warm-up, strace follows it during `requests` requests.
#
#   bench/proxy/h2_strace.sh [build-dir] [requests] [scenario]
#   (defaults: build, 20000, h2c)
#
# Prints syscalls per request (all of the agent's threads, by name) and
# bytes per request on each leg: read from and written to the clients'
# connections (accepted during the run) and the upstream connections
# (pooled during the warm-up). With many streams in flight, how frames
# batch into reads and writes moves the syscall count by about 10 %
# between runs of one build; bytes are exact.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
n=${2:-20000}
scenario=${3:-h2c}
source "$root/bench/proxy/h2_scenario.sh"
scenario_needs strace ss
scenario_start h2_strace
"$build/outrider" -c "$tmp/outrider.json" --modules-dir "$build/modules" --state-file "$tmp/outrider.state" \
    > "$tmp/outrider.log" 2>&1 &
agent=$!
pids+=($agent)
scenario_wait_proxy 50 0.2
scenario_load "$warmup" | grep -E '^requests:'
ups=$(ss -tnpH state established "( dport = :$backend )" | grep -o "pid=$agent,fd=[0-9]*" | sed 's/.*fd=//' | tr '\n' ' ')
strace -f -qq -p $agent -o "$tmp/trace" &
tracer=$!
sleep 1 # attached to every thread
scenario_load "$n" > "$tmp/load.out"
sleep 0.5
kill -INT $tracer
wait $tracer 2>/dev/null || true
grep -E '^requests:|^traffic:' "$tmp/load.out"
python3 - "$tmp/trace" "$n" "$ups" <<'PY'
import collections, re, sys
trace, n, ups = sys.argv[1], int(sys.argv[2]), set(int(x) for x in sys.argv[3].split())
calls, byts, clients = collections.Counter(), collections.Counter(), set()
for line in open(trace):
    m = re.match(r'\d+\s+(\w+)\((\d+)?.*\)\s+=\s+(-?\d+)', line)
    if not m:
        m = re.match(r'\d+\s+(\w+)\(', line)
        if m:
            calls[m.group(1)] += 1
        continue
    name, fd, rv = m.group(1), m.group(2), int(m.group(3))
    calls[name] += 1
    if name in ('accept', 'accept4') and rv >= 0:
        clients.add(rv)
    if fd is None or rv <= 0:
        continue
    leg = 'upstream' if int(fd) in ups else 'client' if int(fd) in clients else None
    if leg and name in ('read', 'readv', 'recvfrom', 'recvmsg'):
        byts[leg + ' in'] += rv
    elif leg and name in ('write', 'writev', 'sendto', 'sendmsg'):
        byts[leg + ' out'] += rv
print('syscalls per request: %.3f (%s)' % (sum(calls.values()) / n,
      ', '.join('%s %.3f' % (k, v / n) for k, v in calls.most_common())))
print('bytes per request: ' + ', '.join('%s %.1f' % (k, byts[k] / n)
      for k in ('client in', 'client out', 'upstream out', 'upstream in')))
PY

#!/bin/bash
# User-space instructions per h2c request through outrider to an h2c
# backend, under callgrind: deterministic enough to compare two builds on a
# loaded machine, where CPU times are not.
#
# The set-up is bench/proxy/run's h2c scenario: nginx answering
# "hello world" over h2c (prior knowledge), outrider configured as
# outrider_conf() writes it (one worker, cluster protocol h2). Callgrind
# starts with instrumentation off; after a 2,000-request warm-up it is
# switched on around `h2load -c50 -m10 -n N`, so start-up, warm-up and
# shutdown are left out: instructions per request = collected / N.
#
#   bench/proxy/h2_callgrind.sh [build-dir] [requests] [out-prefix] [scenario]
#   (defaults: build, 20000, /tmp/h2_callgrind, h2c; scenarios grpc and ids
#   in h2_scenario.sh, warm-up 300 requests for them); then e.g.
#   callgrind_annotate --inclusive=yes /tmp/h2_callgrind.<pid>.1
#
# Counts vary by about +-60 per request between runs (how frames batch into
# reads and writes); compare functions' inclusive counts for small changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
n=${2:-20000}
out=${3:-/tmp/h2_callgrind}
scenario=${4:-h2c}
source "$root/bench/proxy/h2_scenario.sh"
scenario_needs valgrind callgrind_control
scenario_start h2_callgrind
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.%p" \
    "$build/outrider" -c "$tmp/outrider.json" --modules-dir "$build/modules" --state-file "$tmp/outrider.state" \
    > "$tmp/outrider.log" 2>&1 &
agent=$!
pids+=($agent)
scenario_wait_proxy 100 0.3 # up to 30 s for valgrind to start the agent
scenario_load "$warmup" | grep -E '^requests:'
callgrind_control -i on $agent > /dev/null
report=$(scenario_load "$n")
callgrind_control -i off $agent > /dev/null
callgrind_control -d $agent > /dev/null
echo "$report" | grep -E '^requests:'
ok=$(echo "$report" | sed -n 's/.* \([0-9]*\) succeeded.*/\1/p')
total=$(grep -h '^totals:' "$out.$agent".* | awk '{ s += $2 } END { print s }')
echo "instructions: $total over $n requests ($ok succeeded): $((total / n)) per request"
echo "profile: $(ls "$out.$agent".* | tail -1)"

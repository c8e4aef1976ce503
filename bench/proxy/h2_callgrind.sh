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
#   bench/proxy/h2_callgrind.sh [build-dir] [requests] [out-prefix]
#   (defaults: build, 20000, /tmp/h2_callgrind); then e.g.
#   callgrind_annotate --inclusive=yes /tmp/h2_callgrind.<pid>.1
#
# Counts vary by about +-60 per request between runs (how frames batch into
# reads and writes); compare functions' inclusive counts for small changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
n=${2:-20000}
out=${3:-/tmp/h2_callgrind}
case $build in /*) ;; *) build=$root/$build ;; esac
for tool in valgrind callgrind_control nginx h2load curl python3; do
    command -v $tool >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
tmp=$(mktemp -d /tmp/h2_callgrind.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
backend=$(free_port)
proxy=$(free_port)
cat > "$tmp/nginx.conf" <<EOF
worker_processes 1; daemon off; master_process off; pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 8192; }
http {
  access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
  client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp; uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server { listen 127.0.0.1:$backend http2 backlog=4096; location / { return 200 "hello world\n"; } }
}
EOF
nginx -c "$tmp/nginx.conf" -e "$tmp/error.log" &
pids+=($!)
mkdir -p "$tmp/state"
cat > "$tmp/outrider.json" <<EOF
{"role": "sidecar", "workers": 1, "log": {"level": "warn"}, "admin": {"address": "127.0.0.1:0"},
 "state_dir": "$tmp/state", "modules": ["proxy"],
 "proxy": {"outbound": {"address": "127.0.0.1:$proxy", "default_cluster": "backend"},
           "inbound": {"enabled": false}, "xff": "off",
           "clusters": [{"name": "backend", "endpoints": ["127.0.0.1:$backend"], "max_idle": 256,
                         "max_connections": 4096, "protocol": "h2"}]}}
EOF
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.%p" \
    "$build/outrider" -c "$tmp/outrider.json" --modules-dir "$build/modules" --state-file "$tmp/outrider.state" \
    > "$tmp/outrider.log" 2>&1 &
agent=$!
pids+=($agent)
for _ in $(seq 100); do # up to 30 s for valgrind to start the agent
    curl -s -o /dev/null --max-time 5 --http2-prior-knowledge "http://127.0.0.1:$proxy/" && break
    sleep 0.3
done
h2load -c50 -m10 -n 2000 "http://127.0.0.1:$proxy/" | grep -E '^requests:'
callgrind_control -i on $agent > /dev/null
report=$(h2load -c50 -m10 -n "$n" "http://127.0.0.1:$proxy/")
callgrind_control -i off $agent > /dev/null
callgrind_control -d $agent > /dev/null
echo "$report" | grep -E '^requests:'
ok=$(echo "$report" | sed -n 's/.* \([0-9]*\) succeeded.*/\1/p')
total=$(grep -h '^totals:' "$out.$agent".* | awk '{ s += $2 } END { print s }')
echo "instructions: $total over $n requests ($ok succeeded): $((total / n)) per request"
echo "profile: $(ls "$out.$agent".* | tail -1)"

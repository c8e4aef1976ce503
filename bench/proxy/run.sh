#!/usr/bin/env bash
# Proxy benchmark: outrider vs haproxy vs nginx (HTTP/1.1) and outrider vs
# nghttpx (h2c clients), one worker each, in front of the same nginx
# backend (HTTP/1.1) on loopback.
#
#   bench/proxy/run.sh [seconds-per-run]     (default 8)
#
# The proxy under test is pinned to CPU 0, the load generator and the backend
# to CPU 1 (taskset). On 2 cores the load generator, not the proxy, caps
# req/s, so the figure that counts is the proxy's CPU time per request:
# (utime+stime from /proc/<pid>/stat over the run) / requests served.
# Scenarios: wrk keep-alive -c50; wrk with "Connection: close" -c50; a fixed
# 5,000 req/s (wrk with a delay() script) that saturates nothing; h2load
# h2c -c50 -m10 (outrider and nghttpx).
# Prints one line per proxy and scenario, then ratios to the best peer.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-8}
BUILD=${OUTRIDER_BUILD:-build}
work=$(mktemp -d /tmp/outrider-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not up" >&2; return 1; }
# CPU ticks of a process and its children (nghttpx serves from a forked worker).
ticks() {
    local t=0 p
    for p in "$1" $(ps -o pid= --ppid "$1"); do
        t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
hwm_tree_kb() {
    local m=0 p v
    for p in "$1" $(ps -o pid= --ppid "$1"); do
        v=$(awk '/^VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        m=$((m + v))
    done
    echo "$m"
}
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

# --- backend: nginx answering 12 bytes, keep-alive --------------------------------
BPORT=$(free_port)
mkdir -p "$work/backend"
cat > "$work/backend/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/backend/nginx.pid; error_log $work/backend/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$BPORT; location / { return 200 "hello world\n"; } } }
CONF
taskset -c 1 nginx -c "$work/backend/nginx.conf" -e "$work/backend/error.log" & pids+=($!)
wait_port "$BPORT"

# --- proxies ---------------------------------------------------------------------
start_outrider() {
    cat > "$work/outrider.json" <<CONF
{"role":"sidecar","workers":1,"admin":{"address":"127.0.0.1:0"},"log":{"level":"warn"},"modules":["proxy"],
 "proxy":{"outbound":{"address":"127.0.0.1:$PPORT","default_cluster":"b"},"inbound":{"enabled":false},
          "xff":"off","clusters":[{"name":"b","endpoints":["127.0.0.1:$BPORT"],"max_idle":256}]}}
CONF
    taskset -c 0 "$BUILD/outrider" -c "$work/outrider.json" --modules-dir "$BUILD/modules" 2>"$work/outrider.log" &
    PPID_=$!
}
start_haproxy() {
    cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend f
  bind 127.0.0.1:$PPORT
  default_backend b
backend b
  server s1 127.0.0.1:$BPORT
CONF
    taskset -c 0 haproxy -db -f "$work/haproxy.cfg" 2>"$work/haproxy.log" &
    PPID_=$!
}
start_nginx() {
    mkdir -p "$work/nginx"
    cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log;
events { worker_connections 4096; }
http { access_log off;
  upstream b { server 127.0.0.1:$BPORT; keepalive 256; }
  server { listen 127.0.0.1:$PPORT;
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
    taskset -c 0 nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
    PPID_=$!
}

start_nghttpx() {
    taskset -c 0 nghttpx --conf=/dev/null --frontend="127.0.0.1,$PPORT;no-tls" --backend="127.0.0.1,$BPORT" --workers=1 \
        --no-ocsp --accesslog-file=/dev/null --errorlog-file="$work/nghttpx.log" &
    PPID_=$!
}

cat > "$work/close.lua" <<'LUA'
wrk.headers["Connection"] = "close"
LUA
cat > "$work/rate.lua" <<'LUA'
-- 50 connections, each one request per 10 ms: 5,000 req/s in total.
function delay() return 10 end
LUA

run_h2load() { # -> "requests p50 p99" (p50/p99: h2load gives mean and sd only; mean shown as p50)
    taskset -c 1 h2load -c50 -m10 -D "$SECS" "http://127.0.0.1:$PPORT/" > "$work/h2load.out" 2>&1
    local req mean
    req=$(awk '/^requests:/{print $8}' "$work/h2load.out")
    mean=$(awk '/^time for request:/{print $6}' "$work/h2load.out")
    echo "$req ${mean}(mean) -"
}

run_wrk() { # scenario -> "requests p50 p99"
    local extra=()
    case $1 in
        keepalive) ;;
        close) extra=(-s "$work/close.lua") ;;
        rate5k) extra=(-s "$work/rate.lua") ;;
    esac
    taskset -c 1 wrk -t1 -c50 -d"${SECS}s" --latency "${extra[@]}" -H "Host: svc" "http://127.0.0.1:$PPORT/" > "$work/wrk.out" 2>&1
    local req p50 p99
    req=$(awk '/requests in/{print $1}' "$work/wrk.out")
    p50=$(awk '$1=="50%"{print $2}' "$work/wrk.out")
    p99=$(awk '$1=="99%"{print $2}' "$work/wrk.out")
    echo "$req $p50 $p99"
}

printf '%-9s %-10s %10s %10s %9s %9s %12s %9s %9s\n' proxy scenario requests req/s p50 p99 cpu_us/req idle_rss peak_rss
declare -A CPU
for run in outrider:keepalive outrider:close outrider:rate5k outrider:h2c haproxy:keepalive haproxy:close \
           haproxy:rate5k nginx:keepalive nginx:close nginx:rate5k nghttpx:h2c; do
    proxy=${run%%:*} scen=${run#*:}
    {
        PPORT=$(free_port)
        "start_$proxy"
        pids+=("$PPID_")
        wait_port "$PPORT"
        sleep 0.3
        idle=0
        for p in "$PPID_" $(ps -o pid= --ppid "$PPID_"); do idle=$((idle + $(rss_kb "$p"))); done
        t0=$(ticks "$PPID_")
        if [ "$scen" = h2c ]; then read -r req p50 p99 < <(run_h2load); else read -r req p50 p99 < <(run_wrk "$scen"); fi
        t1=$(ticks "$PPID_")
        peak=$(hwm_tree_kb "$PPID_")
        cpu_us=$(awk -v a="$t0" -v b="$t1" -v n="$req" -v hz="$HZ" 'BEGIN{printf "%.1f", (b-a)*1e6/hz/n}')
        CPU[$proxy.$scen]=$cpu_us
        printf '%-9s %-10s %10s %10.0f %9s %9s %12s %7sKB %7sKB\n' "$proxy" "$scen" "$req" \
            "$(awk -v n="$req" -v s="$SECS" 'BEGIN{print n/s}')" "$p50" "$p99" "$cpu_us" "$idle" "$peak"
        kill "$PPID_"; wait "$PPID_" 2>/dev/null || true
    }
done
echo
for scen in keepalive close rate5k; do
    best=$(printf '%s\n%s\n' "${CPU[haproxy.$scen]}" "${CPU[nginx.$scen]}" | sort -g | head -1)
    printf 'ratio %-10s outrider/best-peer CPU per request: %s\n' "$scen" \
        "$(awk -v a="${CPU[outrider.$scen]}" -v b="$best" 'BEGIN{printf "%.2f", a/b}')"
done
printf 'ratio %-10s outrider/nghttpx CPU per request: %s\n' h2c \
    "$(awk -v a="${CPU[outrider.h2c]}" -v b="${CPU[nghttpx.h2c]}" 'BEGIN{printf "%.2f", a/b}')"

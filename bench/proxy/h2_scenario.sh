# Sourced by h2_callgrind.sh and h2_strace.sh: one worker of outrider in
# front of an HTTP/2 backend, and the load that goes through it, for the
# deterministic counts (instructions, syscalls, bytes) of one scenario:
#   h2c   bench/proxy/run's: h2load -c50 -m10 GET / to nginx's h2c "hello world"
#   grpc  bench/proxy/run's: h2load -c10 -m5 unary POST to the grpcio backend
#   ids   like h2c, from h2_ids_client.py (python3-h2, one connection, 20
#         in flight), each request with a new x-request-id
#   timeouts  the same with a new grpc-timeout on every request
# Needs $root, $build and $scenario. scenario_needs TOOL... exits unless
# these and the scenarios' own tools are installed. scenario_start NAME
# makes $build absolute and sets $warmup (requests before counting), makes
# $tmp (/tmp/NAME.*), starts the backend, writes outrider's configuration
# to $tmp/outrider.json, sets $backend and $proxy; whatever is added to the
# pids array is killed and $tmp removed on exit. scenario_wait_proxy TRIES
# PAUSE waits for the agent's listener. Then scenario_load N runs N
# requests (prints h2load's lines, or "requests: N done, M succeeded").

scenario_needs() {
    for tool in "$@" nginx h2load curl python3; do
        command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
    done
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pids=()
scenario_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}

scenario_start() {
    case $build in /*) ;; *) build=$root/$build ;; esac
    case $scenario in h2c) warmup=2000 ;; *) warmup=300 ;; esac
    tmp=$(mktemp -d "/tmp/$1.XXXXXX")
    trap scenario_cleanup EXIT
    proxy=$(free_port)
    case $scenario in
    h2c | ids | timeouts)
        backend=$(free_port)
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
        ;;
    grpc)
        /usr/bin/python3 "$root/bench/proxy/grpc_backend.py" serve "$tmp/grpc.port" > "$tmp/grpc.out" 2>&1 &
        pids+=($!)
        for _ in $(seq 100); do [ -s "$tmp/grpc.port" ] && break; sleep 0.2; done
        backend=$(cat "$tmp/grpc.port")
        /usr/bin/python3 -c "import sys; sys.path.insert(0, '$root/bench/proxy'); from grpc_backend import encode_request_body; open('$tmp/req.bin', 'wb').write(encode_request_body())"
        ;;
    *) echo "unknown scenario $scenario (h2c, grpc, ids, timeouts)" >&2; exit 2 ;;
    esac
    mkdir -p "$tmp/state"
    cat > "$tmp/outrider.json" <<EOF
{"role": "sidecar", "workers": 1, "log": {"level": "warn"}, "admin": {"address": "127.0.0.1:0"},
 "state_dir": "$tmp/state", "modules": ["proxy"],
 "proxy": {"outbound": {"address": "127.0.0.1:$proxy", "default_cluster": "backend"},
           "inbound": {"enabled": false}, "xff": "off",
           "clusters": [{"name": "backend", "endpoints": ["127.0.0.1:$backend"], "max_idle": 256,
                         "max_connections": 4096, "protocol": "h2"}]}}
EOF
}

scenario_wait_proxy() {
    for _ in $(seq "$1"); do
        curl -s -o /dev/null --max-time 5 --http2-prior-knowledge "http://127.0.0.1:$proxy/" && return
        sleep "$2"
    done
}

scenario_load() {
    case $scenario in
    h2c) h2load -c50 -m10 -n "$1" "http://127.0.0.1:$proxy/" ;;
    grpc)
        h2load -c10 -m5 -n "$1" -d "$tmp/req.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
            "http://127.0.0.1:$proxy/bench.Echo/Unary" ;;
    ids) /usr/bin/python3 "$root/bench/proxy/h2_ids_client.py" "$proxy" "$1" ;;
    timeouts) /usr/bin/python3 "$root/bench/proxy/h2_ids_client.py" "$proxy" "$1" grpc-timeout ;;
    esac
}

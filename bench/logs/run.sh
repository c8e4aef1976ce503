#!/bin/sh
# bench/logs/run.sh: a generated CRI file tailed from its head to a TCP sink
# on loopback, by outrider (without and with a Lua filter) and by rsyslog's
# imfile + omfwd, one after the other on the same file. Prints, per run:
# records, seconds (first byte to last record at the sink), records/s,
# MB/s of file, CPU seconds of the agent, records per CPU-second, peak RSS.
#
#   SIZE=268435456 sh bench/logs/run.sh          (default 256 MiB; 1 GiB: SIZE=1073741824)
#
# Needs a built tree (make) and rsyslog. Runs each agent alone; the machine
# should otherwise be quiet.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${OUTRIDER_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SIZE=${SIZE:-268435456}
WORK=${WORK:-/tmp/outrider-bench-logs}
mkdir -p "$WORK" "$BUILD/bench"
FILE=$WORK/bench-$SIZE.log
if [ ! -s "$FILE.count" ]; then
    perl "$ROOT/bench/logs/gen.pl" "$FILE" "$SIZE" > "$FILE.count"
fi
read LINES RECORDS < "$FILE.count"
BYTES=$(stat -c %s "$FILE")
cc -O2 -o "$BUILD/bench/logs_sink" "$ROOT/bench/logs/sink.c"

# measure LABEL EXPECTED_LINES STARTER: starts the sink, then the agent
# (STARTER PORT runs it in the foreground: it is backgrounded here), waits
# for the sink, samples the agent's CPU time and peak RSS, stops it.
measure() {
    label=$1; want=$2; starter=$3
    rm -f "$WORK/port"
    "$BUILD/bench/logs_sink" "$WORK/port" "$want" 900 > "$WORK/sink.out" &
    sink=$!
    while [ ! -s "$WORK/port" ]; do sleep 0.05; done
    port=$(cat "$WORK/port")
    $starter "$port" > "$WORK/$label.agent.log" 2>&1 &
    agent=$!
    wait $sink || true
    # utime + stime in clock ticks: fields 14 and 15 of /proc/pid/stat
    # (the whole process: every thread, live or exited)
    ticks=$(awk '{print $14 + $15}' /proc/$agent/stat)
    tticks=$(cat /proc/$agent/task/*/stat | awk '{s += $14 + $15} END {print s}')
    echo "$label: process ticks $ticks, sum over live threads $tticks" >> "$WORK/ticks.log"
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$agent/status)
    kill -TERM $agent; wait $agent 2>/dev/null || true
    read got secs < "$WORK/sink.out"
    awk -v l="$label" -v g="$got" -v s="$secs" -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v h="$hwm" -v b="$BYTES" 'BEGIN {
        cpu = t / hz
        printf "%-20s %9d rec %7.2f s %9.0f rec/s %6.1f MB/s %6.2f CPU-s %9.0f rec/CPU-s %6.1f MiB peak RSS\n",
            l, g, s, g / s, b / s / 1e6, cpu, g / cpu, h / 1024 }'
}

outrider_with() { # outrider_with FILTER_JSON PORT
    rm -rf "$WORK/state"
    cat > "$WORK/agent.conf" <<CONF
{"modules": ["logs"], "state_dir": "$WORK/state", "admin": {"address": "127.0.0.1:0"},
 "logs": {"files": {"paths": ["$FILE"], "format": "cri", "start": "head"},
          "filter": $1,
          "outputs": [{"type": "tcp", "address": "127.0.0.1:$2"}]}}
CONF
    exec "$BUILD/outrider" --role sidecar -c "$WORK/agent.conf" --modules-dir "$BUILD/modules"
}
outrider_plain() { outrider_with '{}' "$1"; }
outrider_lua() { outrider_with "{\"script\": \"$ROOT/bench/logs/passthrough.lua\"}" "$1"; }

# rsyslog: imfile from the head of the file, omfwd over TCP (octet-counted
# RFC 5424 would be heavier; the plain forward format is its usual setup).
# imfile ships physical lines: it does not join CRI partials.
rsyslog_imfile() {
    rm -rf "$WORK/rsyslog"; mkdir -p "$WORK/rsyslog"
    cat > "$WORK/rsyslog.conf" <<CONF
global(workDirectory="$WORK/rsyslog")
module(load="imfile" mode="inotify")
input(type="imfile" file="$FILE" tag="bench" freshStartTail="off" readMode="0")
action(type="omfwd" target="127.0.0.1" port="$1" protocol="tcp" template="RSYSLOG_ForwardFormat")
CONF
    exec /usr/sbin/rsyslogd -n -f "$WORK/rsyslog.conf" -i "$WORK/rsyslog/pid"
}

echo "file: $FILE: $BYTES bytes, $LINES lines, $RECORDS records"
measure outrider "$RECORDS" outrider_plain
measure outrider+lua "$RECORDS" outrider_lua
if [ -x /usr/sbin/rsyslogd ]; then
    measure rsyslog-imfile "$LINES" rsyslog_imfile
fi

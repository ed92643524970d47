#!/usr/bin/env bash
# Streaming benchmarks against bench_server (release build), over loopback only:
#
#   scripts/stream_bench.sh [CLIENTS] [TICKS]      # defaults 10000 50
#
# 1. JSON array memory: downloads /stream/json?n=N for N = 10^4, 10^6, 10^7 from one server
#    process and prints the server's peak resident memory (VmHWM) after each. Flat = resident
#    memory independent of the item count. (Throughput against serde_json into one Vec is the
#    criterion bench: cargo bench --bench stream.)
# 2. SSE fan-out: CLIENTS concurrent /sse connections (examples/sse_load.rs), a tick published
#    every 100 ms; prints the server's resident memory with every client connected and the
#    p50/p99/max fan-out delay over TICKS ticks.
#
# Raises the open-file limit (needs root or a high hard limit). The server and the client are
# pinned to different cores when taskset exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CLIENTS=${1:-10000}
TICKS=${2:-50}
ADDR=127.0.0.1:18095

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open-file limit: $(ulimit -n)"
cargo build --release --example bench_server --example sse_load

pin_server=() pin_client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin_server=(taskset -c 0) pin_client=(taskset -c 1)
fi

PID=
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=; }
trap stop EXIT
start() {
    "${pin_server[@]}" target/release/examples/bench_server "$ADDR" >/dev/null 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -s -o /dev/null "http://$ADDR/" && return; sleep 0.1; done
    echo "bench_server did not start" >&2; exit 1
}
kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$PID/status"; }
# server CPU time (user + system) in clock ticks
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

echo
echo "== JSON array: peak server RSS by item count"
start
printf '%-10s %-14s %-10s %s\n' items bytes seconds "server VmHWM (KiB)"
for n in 10000 1000000 10000000; do
    out=$("${pin_client[@]}" curl -s -o /dev/null -w '%{size_download} %{time_total}' "http://$ADDR/stream/json?n=$n")
    printf '%-10s %-14s %-10s %s\n' "$n" ${out% *} ${out#* } "$(kb VmHWM)"
done
stop

# Runs sse_load with $1 as its third argument and prints the server's peak RSS meanwhile.
load() {
    start
    echo "server RSS before clients: $(kb VmRSS) KiB"
    cpu0=$(cpu)
    "${pin_client[@]}" target/release/examples/sse_load "$ADDR" "$CLIENTS" "$1" &
    CLIENT=$!
    max=0
    while kill -0 "$CLIENT" 2>/dev/null; do
        r=$(kb VmRSS); [ "${r:-0}" -gt "$max" ] && max=$r
        sleep 0.5
    done
    wait "$CLIENT" || echo "sse_load failed" >&2
    echo "server RSS peak: $max KiB ($((max / 1024)) MiB), $((max * 1024 / CLIENTS)) bytes a connection"
    echo "server CPU during the run: $(( ($(cpu) - cpu0) * 1000 / $(getconf CLK_TCK) )) ms (machine load: $(cut -d' ' -f1-3 /proc/loadavg))"
    stop
}

echo
echo "== Baseline: $CLIENTS idle keep-alive connections (one GET / each)"
load idle

echo
echo "== SSE: $CLIENTS clients, $TICKS ticks"
load "$TICKS"

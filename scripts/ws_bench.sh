#!/usr/bin/env bash
# WebSocket benchmarks against bench_server (release build), over loopback only:
#
#   scripts/ws_bench.sh [CLIENTS] [MESSAGES] [TICKS]        # 10000 200 50
#
# 1. Idle sockets: CLIENTS sockets to /ws (examples/ws_load.rs, handshake only), once without
#    compression and once offering permessage-deflate; prints the server's resident memory
#    (VmRSS) with every socket open, and its growth per socket. Targets: 10,000 sockets in at
#    most 64 MB without compression, under 128 MB with permessage-deflate.
# 2. Small-message echo: 50 sockets each send MESSAGES 32-byte text messages one at a time;
#    prints the server's CPU time (user + system, from /proc) per message, for bench_server's
#    /ws and, side by side in the same run, axum 0.8's WebSocket echo (benches/peers axum_ws).
#    Target: conduit at most axum's figure.
# 3. Broadcast: CLIENTS sockets on /ws/ticks (the /sse hub, a tick every 100 ms); prints the
#    p50 / p99 / max fan-out delay over TICKS ticks (from the first socket that got each tick).
#    Target: p99 under 100 ms at 10,000 sockets.
#
# WS_BENCH_PEERS=0 skips the axum build and run (benches/peers builds axum and actix-web with
# fat LTO: minutes the first time). WS_BENCH_PROFILE=debug uses debug builds (a quick check
# that the script runs; the figures mean nothing then). Raises the open-file limit (needs root
# or a high hard limit); the server and the client are pinned to different cores when taskset
# exists.
set -euo pipefail
# shellcheck source=perf/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/perf/lib.sh"
cd "$repo"

CLIENTS=${1:-10000}
MESSAGES=${2:-200}
TICKS=${3:-50}
ECHO_SOCKETS=50
PROFILE=${WS_BENCH_PROFILE:-release}
case $PROFILE in release) cargo_profile=(--release) ;; debug) cargo_profile=() ;;
    *) echo "WS_BENCH_PROFILE is release or debug" >&2; exit 2 ;; esac

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open-file limit: $(ulimit -n); profile: $PROFILE"
need curl curl
cargo build "${cargo_profile[@]}" -q --example bench_server --example ws_load
bin=$(target_dir "$repo/Cargo.toml")/$PROFILE/examples
LOAD=$bin/ws_load
axum_bin=
if [ "${WS_BENCH_PEERS:-1}" != 0 ]; then
    echo "building axum_ws in benches/peers ($PROFILE)..." >&2
    if (cd "$peers_dir" && cargo build "${cargo_profile[@]}" --locked -q --bin axum_ws); then
        axum_bin=$(target_dir "$peers_dir/Cargo.toml")/$PROFILE/axum_ws
    else
        echo "benches/peers did not build: the echo runs without axum" >&2
    fi
fi

pin_server=() pin_client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin_server=(taskset -c 0) pin_client=(taskset -c 1)
fi

PID= ADDR=
start() { # BINARY
    # A port free of listeners may still be the local port of a client connection (the load
    # client's, in the ephemeral range), which bind refuses: then try another.
    local port attempt
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        ADDR=127.0.0.1:$port
        "${pin_server[@]}" "$1" "$ADDR" >"$work/server.log" 2>&1 &
        PID=$!
        started "$PID"
        wait_port "$port" "$PID" && return 0
        grep -q 'Address already in use' "$work/server.log" || break
    done
    echo "$1 did not start on $ADDR (attempt $attempt):" >&2
    cat "$work/server.log" >&2
    exit 1
}
stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; }
kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$PID/status"; }
# server CPU time (user + system) in clock ticks
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
tck=$(getconf CLK_TCK)
summary=()

echo "== 1. $CLIENTS idle sockets on /ws"
for mode in plain deflate; do
    start "$bin/bench_server"
    before=$(kb VmRSS)
    fifo=$work/hold-$mode
    mkfifo "$fifo"
    offer=(); [ $mode = deflate ] && offer=(deflate)
    "${pin_client[@]}" "$LOAD" "$ADDR" idle "$CLIENTS" "${offer[@]}" <"$fifo" >"$work/idle-$mode.out" &
    client=$!
    started "$client"
    exec 3>"$fifo"
    for _ in $(seq 600); do
        grep -q '^open' "$work/idle-$mode.out" 2>/dev/null && break
        kill -0 "$client" 2>/dev/null || { echo "ws_load idle failed" >&2; exit 1; }
        sleep 0.1
    done
    sleep 1
    rss=$(kb VmRSS)
    exec 3>&-
    wait "$client" || true
    line=$(awk -v m="$mode" -v n="$(cut -d' ' -f2 "$work/idle-$mode.out")" -v r="$rss" \
        -v b="$before" -v c="$CLIENTS" 'BEGIN { printf "%s: %s sockets, server VmRSS %.1f MB (%.1f MB before), %.2f KiB per socket", m, n, r / 1024, b / 1024, (r - b) / c }')
    echo "$line"
    summary+=("idle $line")
    stop
done

echo "== 2. echo: $ECHO_SOCKETS sockets x $MESSAGES messages of 32 bytes"
servers=("conduit=$bin/bench_server")
[ -n "$axum_bin" ] && servers+=("axum=$axum_bin")
for entry in "${servers[@]}"; do
    name=${entry%%=*}
    start "${entry#*=}"
    c0=$(cpu)
    out=$("${pin_client[@]}" "$LOAD" "$ADDR" echo "$ECHO_SOCKETS" "$MESSAGES")
    c1=$(cpu)
    msgs=$((ECHO_SOCKETS * MESSAGES))
    line=$(awk -v n="$name" -v o="$out" -v d="$((c1 - c0))" -v t="$tck" -v m="$msgs" \
        'BEGIN { printf "%s: %s; server CPU %.2f µs per message", n, o, d * 1e6 / t / m }')
    echo "$line"
    summary+=("echo $line")
    stop
done

echo "== 3. broadcast: $CLIENTS sockets on /ws/ticks, $TICKS ticks"
start "$bin/bench_server"
out=$("${pin_client[@]}" "$LOAD" "$ADDR" broadcast "$CLIENTS" "$TICKS")
echo "$out (server VmRSS $(( $(kb VmRSS) / 1024 )) MB)"
summary+=("$out")
stop

echo "== summary ($PROFILE)"
printf '%s\n' "${summary[@]}"

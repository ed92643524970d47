#!/usr/bin/env bash
# Fan-out side by side: one event a tick (every 100 ms) to CLIENTS subscribers of one server,
# over loopback, with the fan-out delay of each delivery measured from the first delivery of
# its tick (examples/sse_load.rs, examples/ws_load.rs `broadcast`):
#
#   scripts/fanout_bench.sh [--cores pinned|shared] [CLIENTS] [TICKS] [ROUNDS]   # pinned 10000 30 3
#
# Servers, each started fresh, in turn, ROUNDS times:
#   floor         benches/peers fanout_floor: no HTTP library, no task per connection, one
#                 loop of `try_write` over every socket: the kernel's cost alone
#   axum-sse      benches/peers axum_sse_hub: axum 0.8 SSE over a tokio broadcast channel
#   conduit-sse   bench_server /sse (conduit_stream's Hub, in process)
#   conduit-ws    bench_server /ws/ticks (the same hub, through conduit-ws)
#
# `--cores pinned` (the default) pins the server to CPU 0 and the client to CPU 1; `shared`
# lets both use every core (the server's runtime then has a worker per core). On loopback the
# receiver's TCP work runs on the sender's core, so the server's core does most of the
# kernel's work for both ends, including waking the client's thread when it sleeps: pinned,
# the client spins (`LOAD_SPIN=1`, see examples/sse_load.rs) on its own core so that it never
# sleeps, as a client on another machine would cost the server nothing of the kind; `SPIN=0`
# turns that off. Shared, it does not spin (it would take the server's cores).
# Prints p50 / p99 / max of every round and the median p99.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CORES=pinned
if [ "${1:-}" = --cores ]; then CORES=$2; shift 2; fi
case $CORES in pinned|shared) ;; *) sed -n 2,20p "$0"; exit 2;; esac
CLIENTS=${1:-10000}
TICKS=${2:-30}
ROUNDS=${3:-3}
PORT=${FANOUT_BENCH_PORT:-18195}
ADDR=127.0.0.1:$PORT

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $(( CLIENTS + 100 )) ] || { echo "open-file limit $(ulimit -n) is too low for $CLIENTS clients" >&2; exit 1; }
cargo build --release --example bench_server --example sse_load --example ws_load
cargo build --release --locked --manifest-path benches/peers/Cargo.toml --bin fanout_floor --bin axum_sse_hub
target=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
EX=$target/release/examples
PEERS=benches/peers/target/release

pin_server=() pin_client=(env LOAD_SPIN=0)
if [ "$CORES" = pinned ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin_server=(taskset -c 0) pin_client=(env "LOAD_SPIN=${SPIN:-1}" taskset -c 1)
fi

PID=
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap stop EXIT
declare -A SERVER=(
    [floor]="$PEERS/fanout_floor"
    [axum-sse]="$PEERS/axum_sse_hub"
    [conduit-sse]="$EX/bench_server"
    [conduit-ws]="$EX/bench_server"
)
NAMES=(floor axum-sse conduit-sse conduit-ws)
declare -A P99S
# ms NAME OUTPUT: the figure after NAME (`p99 1.4ms`, `p99 344.5µs`, `p99 12.34 ms`) in ms
ms() {
    grep -oE "$1 [0-9.]+ ?(µs|ms|s)" <<<"$2" | head -1 | awk '{
        v = $2; u = $3; if (u == "") { u = v; sub(/^[0-9.]+/, "", u) } v += 0
        printf "%.1f", u == "µs" ? v / 1000 : u == "s" ? v * 1000 : v }'
}

for round in $(seq "$ROUNDS"); do
    for name in "${NAMES[@]}"; do
        "${pin_server[@]}" ${SERVER[$name]} "$ADDR" >/dev/null 2>&1 &
        PID=$!
        # fanout_floor answers only SSE heads: wait for the port, not for a response
        for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
        if [ "$name" = conduit-ws ]; then
            out=$("${pin_client[@]}" "$EX/ws_load" "$ADDR" broadcast "$CLIENTS" "$TICKS")
        else
            out=$("${pin_client[@]}" "$EX/sse_load" "$ADDR" "$CLIENTS" "$TICKS" | grep 'fan-out delay')
        fi
        stop
        p50=$(ms p50 "$out") p99=$(ms p99 "$out") max=$(ms max "$out")
        missing=$(grep -oE '[0-9]+ (deliveries )?missing' <<<"$out" | grep -oE '^[0-9]+' | head -1)
        P99S[$name]="${P99S[$name]:-} $p99"
        printf 'round %s  %-12s p50 %8s  p99 %8s  max %8s ms; %s missing\n' "$round" "$name" "$p50" "$p99" "$max" "${missing:-?}"
    done
done

echo
echo "== $CLIENTS subscribers, $TICKS ticks, cores $CORES (client spinning: ${pin_client[1]#LOAD_SPIN=}): median p99 of $ROUNDS rounds (ms)"
for name in "${NAMES[@]}"; do
    # shellcheck disable=SC2086
    med=$(printf '%s\n' ${P99S[$name]} | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    printf '%-12s %8s   (rounds:%s)\n' "$name" "$med" "${P99S[$name]}"
done

#!/usr/bin/env bash
# Streaming benchmarks against bench_server (release build), over loopback only:
#
#   scripts/stream_bench.sh [--hyper both|patched|unpatched] [CLIENTS] [TICKS]   # both 10000 50
#
# 1. JSON array memory: downloads /stream/json?n=N for N = 10^4, 10^6, 10^7 from one server
#    process and prints the server's peak resident memory (VmHWM) after each. Flat = resident
#    memory independent of the item count. (Throughput against serde_json into one Vec is the
#    criterion bench: cargo bench --bench stream.)
# 2. Idle keep-alive connections and SSE fan-out: CLIENTS concurrent connections
#    (examples/sse_load.rs) that each made one `GET /`, then CLIENTS `/sse` clients with a tick
#    published every 100 ms; prints the server's resident memory with every client connected
#    and the p50/p99/max fan-out delay over TICKS ticks.
#
# Measurement 2 runs twice by default, to show what the hyper patch (vendor/hyper/CONDUIT_PATCH.md)
# is worth: once with bench_server as this workspace builds it (`[patch.crates-io]` applies:
# patched hyper), once built as an application that depends on conduit gets it without that
# entry (unpatched hyper from crates.io). The second build happens in a copy of the workspace
# without the `[patch.crates-io]` section, under the target folder (target/unpatched-hyper/);
# the first time it is a full release build (several minutes on 2 cores). A summary of the
# figures ends the run.
#
# Raises the open-file limit (needs root or a high hard limit). The server and the client are
# pinned to different cores when taskset exists.
#
#   scripts/stream_bench.sh --redis [CLIENTS] [TICKS] [SECONDS]                  # 10000 50 10
#
# Scale-out on Redis (conduit-redis), against a redis-server this script starts on a free port
# in a temporary folder (no persistence):
# 3. Fan-out over two instances: two bench_servers with REDIS_URL (the first with TICKS=1
#    publishes a tick every 100 ms, stamped just before its XADD), CLIENTS SSE clients split
#    over both; sse_load prints the delay from the publish (p50/p99/max) and the fan-out spread.
#    Then the same CLIENTS on one in-process bench_server: memory per SSE client of both.
#    FANOUT_WORKERS=N gives each instance N runtime workers (default 1; 0: one per CPU).
# 4. Rate limiting: wrk on /limited (past its burst: every answer is a 429 after a store check)
#    for SECONDS against bench_server with the MemoryStore, then with REDIS_URL (RedisStore);
#    prints req/s and the CPU time per request of bench_server and of redis-server, and the
#    difference. Instructions per request: REDIS_URL=redis://... scripts/perf/instr.sh limited.
# In 4, bench_server runs on CPU 0, redis-server and wrk on CPU 1 (when taskset exists);
# past the burst the RedisStore refuses from its memory of Redis's refusal, and
# REDIS_LOCAL_DENIALS=0 (passed on to bench_server) makes every check a Redis round trip.
# STREAM_BENCH_ONLY=fanout or =limited runs only 3 or only 4; STREAM_BENCH_BIN=PATH runs that
# bench_server binary (e.g. one built from another commit) and builds nothing (sse_load as built).
# STREAM_BENCH_PROFILE=dev builds the debug binaries instead (a smoke run of the script only:
# its figures say nothing about performance).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODE=hyper
if [ "${1:-}" = --redis ]; then MODE=redis; shift; fi
HYPER=both
if [ "${1:-}" = --hyper ]; then HYPER=$2; shift 2; fi
case $HYPER in both|patched|unpatched) ;; *) sed -n 2,40p "$0"; exit 2;; esac
CLIENTS=${1:-10000}
TICKS=${2:-50}
SECONDS_RL=${3:-10}
ADDR=127.0.0.1:${STREAM_BENCH_PORT:-18095}
ADDR2=127.0.0.1:$(( ${STREAM_BENCH_PORT:-18095} + 1 ))
PROFILE=${STREAM_BENCH_PROFILE:-release}
profile_dir=$PROFILE; [ "$PROFILE" = dev ] && profile_dir=debug

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open-file limit: $(ulimit -n)"
[ -n "${STREAM_BENCH_BIN:-}" ] || cargo build --profile "$PROFILE" --example bench_server --example sse_load
target=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
SSE_LOAD=$target/$profile_dir/examples/sse_load
declare -A BIN=([patched]=${STREAM_BENCH_BIN:-$target/$profile_dir/examples/bench_server})
ONLY=${STREAM_BENCH_ONLY:-}
[ "$MODE" = redis ] && HYPER=patched

# bench_server without the [patch]: the workspace copied (sources only, mtimes kept so cargo
# rebuilds only what changed), the [patch.crates-io] section and vendor/hyper removed, hyper
# pinned to the release the patch is made against.
if [ "$HYPER" != patched ]; then
    copy=$target/unpatched-hyper/workspace
    echo "building bench_server with unpatched hyper in $copy ..."
    rm -rf "$copy"; mkdir -p "$copy"
    tar -cf - --exclude=./target --exclude=./.git --exclude=./vendor/hyper \
        --exclude=./benches/peers/target . | tar -xf - -C "$copy"
    awk '/^\[patch\.crates-io\]/ {skip = 1; next} /^\[/ {skip = 0} !skip' Cargo.toml >"$copy/Cargo.toml"
    touch -r Cargo.toml "$copy/Cargo.toml"
    hyper_version=$(awk -F'"' '/^version = / {print $2; exit}' vendor/hyper/Cargo.toml)
    # the lock's hyper was the path package: resolving gives crates.io's newest 1.x, then pin it
    (cd "$copy" && cargo metadata -q --format-version 1 >/dev/null &&
        cargo update -q -p hyper --precise "$hyper_version" &&
        cargo build --release --example bench_server --target-dir "$target/unpatched-hyper/target")
    grep -A2 '^name = "hyper"$' "$copy/Cargo.lock" | grep -q 'source = "registry' ||
        { echo "the copy still builds a patched hyper" >&2; exit 1; }
    BIN[unpatched]=$target/unpatched-hyper/target/release/examples/bench_server
fi

pin_server=() pin_client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin_server=(taskset -c 0) pin_client=(taskset -c 1)
fi

PID=
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=; }
trap stop EXIT
start() { # [BINARY]
    "${pin_server[@]}" "${1:-${BIN[patched]}}" "$ADDR" >/dev/null 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -s -o /dev/null "http://$ADDR/" && return; sleep 0.1; done
    echo "bench_server did not start" >&2; exit 1
}
kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$PID/status"; }
# server CPU time (user + system) in clock ticks
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

if [ "$MODE" = redis ]; then
    command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)" >&2; exit 1; }
    command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
    rdir=$(mktemp -d)
    rport=$(( ${STREAM_BENCH_PORT:-18095} + 2 ))
    PIDS=()
    cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
    trap 'cleanup; rm -rf "$rdir"' EXIT
    "${pin_client[@]}" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$rdir" \
        --loglevel warning >/dev/null 2>&1 &
    RPID=$!; PIDS+=("$RPID")
    for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
    export_url=redis://127.0.0.1:$rport
    serve() { # ADDR [ENV=VALUE ...]: a bench_server in the background; its pid in SPID
        local addr=$1; shift
        env "$@" "${pin_run[@]}" "${BIN[patched]}" "$addr" >/dev/null 2>&1 &
        SPID=$!; PIDS+=("$SPID")
        for _ in $(seq 100); do curl -s -o /dev/null "http://$addr/" && return; sleep 0.1; done
        echo "bench_server did not start on $addr" >&2; exit 1
    }
    rss() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"; }
    ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
    # sse_run ADDRS PID...: sse_load over ADDRS; prints each PID's peak RSS growth per client
    sse_run() {
        local addrs=$1; shift
        local -A base peak
        for p in "$@"; do base[$p]=$(rss "$p"); peak[$p]=${base[$p]}; done
        "${pin_client[@]}" "$SSE_LOAD" "$addrs" "$CLIENTS" "$TICKS" &
        local client=$!
        while kill -0 "$client" 2>/dev/null; do
            for p in "$@"; do r=$(rss "$p"); [ "${r:-0}" -gt "${peak[$p]}" ] && peak[$p]=$r; done
            sleep 0.5
        done
        wait "$client" || echo "sse_load failed" >&2
        local total=0
        for p in "$@"; do
            echo "server $p: RSS ${base[$p]} KiB before, peak ${peak[$p]} KiB"
            total=$(( total + peak[$p] - base[$p] ))
        done
        PER_CLIENT=$(( total * 1024 / CLIENTS ))
        echo "memory per SSE client (RSS growth over the servers / clients): $PER_CLIENT bytes"
    }

    pin_run=() # the fan-out's servers share both cores; the rate limit's server gets CPU 0
    if [ "$ONLY" != limited ]; then
    echo
    echo "== Redis hub: $CLIENTS SSE clients over two instances, $TICKS ticks published by the first"
    # FANOUT_WORKERS=N: N runtime workers per instance (tokio's TOKIO_WORKER_THREADS), 1 by
    # default: two instances on a 2-core machine, as one would deploy them (with one worker per
    # CPU each, four workers, Redis and the client share two cores). 0: tokio's default.
    workers=()
    [ "${FANOUT_WORKERS:-1}" != 0 ] && workers=(TOKIO_WORKER_THREADS="${FANOUT_WORKERS:-1}")
    serve "$ADDR" REDIS_URL="$export_url" TICKS=1 "${workers[@]}"; A=$SPID
    serve "$ADDR2" REDIS_URL="$export_url" "${workers[@]}"; B=$SPID
    sse_run "$ADDR,$ADDR2" "$A" "$B"; redis_per=$PER_CLIENT
    cleanup_servers() { kill "$A" "$B" 2>/dev/null; wait "$A" "$B" 2>/dev/null || true; }
    cleanup_servers
    echo
    echo "== In-process hub: $CLIENTS SSE clients on one instance, $TICKS ticks"
    serve "$ADDR"; M=$SPID
    sse_run "$ADDR" "$M"; memory_per=$PER_CLIENT
    kill "$M"; wait "$M" 2>/dev/null || true
    echo "memory per SSE client: Redis hub $redis_per bytes, in-process hub $memory_per bytes"
    fi
    [ "$ONLY" = fanout ] && exit 0
    pin_run=("${pin_server[@]}")

    echo
    echo "== Rate limiting: wrk -t1 -c64 -d${SECONDS_RL}s on /limited"
    declare -A RPS CPU_US
    for store in memory redis; do
        if [ "$store" = redis ]; then serve "$ADDR" REDIS_URL="$export_url"; else serve "$ADDR"; fi
        S=$SPID
        curl -s -o /dev/null "http://$ADDR/limited"
        s0=$(ticks_of "$S"); r0=$(ticks_of "$RPID")
        out=$("${pin_client[@]}" wrk -t1 -c64 -d"${SECONDS_RL}s" "http://$ADDR/limited")
        s1=$(ticks_of "$S"); r1=$(ticks_of "$RPID")
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        n=$(awk '/requests in/ {print $1}' <<<"$out")
        hz=$(getconf CLK_TCK)
        srv_us=$(awk -v d=$(( s1 - s0 )) -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
        red_us=$(awk -v d=$(( r1 - r0 )) -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
        echo "$store store: $rps req/s ($n requests); CPU per request: bench_server $srv_us µs, redis-server $red_us µs"
        RPS[$store]=$rps; CPU_US[$store]=$(awk -v a="$srv_us" -v b="$red_us" 'BEGIN {print a + b}')
        kill "$S"; wait "$S" 2>/dev/null || true
    done
    echo "RedisStore adds $(awk -v a="${CPU_US[redis]}" -v b="${CPU_US[memory]}" 'BEGIN {printf "%.1f", a - b}') µs of CPU per request (bench_server + redis-server) over the MemoryStore; ${RPS[redis]} vs ${RPS[memory]} req/s"
    exit 0
fi

echo
echo "== JSON array: peak server RSS by item count"
start
printf '%-10s %-14s %-10s %s\n' items bytes seconds "server VmHWM (KiB)"
for n in 10000 1000000 10000000; do
    out=$("${pin_client[@]}" curl -s -o /dev/null -w '%{size_download} %{time_total}' "http://$ADDR/stream/json?n=$n")
    printf '%-10s %-14s %-10s %s\n' "$n" ${out% *} ${out#* } "$(kb VmHWM)"
done
stop

# load MODE BUILD: runs sse_load with MODE as its third argument against BUILD's server and
# prints the server's peak RSS meanwhile (also kept in PEAK[BUILD-MODE]).
declare -A PEAK
load() {
    start "${BIN[$2]}"
    echo "server RSS before clients: $(kb VmRSS) KiB"
    cpu0=$(cpu)
    "${pin_client[@]}" "$SSE_LOAD" "$ADDR" "$CLIENTS" "$1" &
    CLIENT=$!
    max=0
    while kill -0 "$CLIENT" 2>/dev/null; do
        r=$(kb VmRSS); [ "${r:-0}" -gt "$max" ] && max=$r
        sleep 0.5
    done
    wait "$CLIENT" || echo "sse_load failed" >&2
    echo "server RSS peak: $max KiB ($((max / 1024)) MiB), $((max * 1024 / CLIENTS)) bytes a connection"
    PEAK[$2-$1]=$max
    echo "server CPU during the run: $(( ($(cpu) - cpu0) * 1000 / $(getconf CLK_TCK) )) ms (machine load: $(cut -d' ' -f1-3 /proc/loadavg))"
    stop
}

builds=(patched unpatched)
[ "$HYPER" = both ] || builds=("$HYPER")
for b in "${builds[@]}"; do
    echo
    echo "== $b hyper: $CLIENTS idle keep-alive connections (one GET / each)"
    load idle "$b"
    echo
    echo "== $b hyper: SSE, $CLIENTS clients, $TICKS ticks"
    load "$TICKS" "$b"
done

mib() { awk -v k="${PEAK[$1]:-0}" 'BEGIN { if (k == 0) print "-"; else printf "%.1f MiB", k / 1024 }'; }
per() { awk -v k="${PEAK[$1]:-0}" -v c="$CLIENTS" 'BEGIN { if (k == 0) print "-"; else printf "%.1f KB", k * 1024 / c / 1000 }'; }
echo
echo "== Server peak RSS with $CLIENTS clients (whole process)"
printf '%-34s %-24s %s\n' "" "patched hyper" "unpatched hyper"
printf '%-34s %-24s %s\n' "" "(this workspace)" "(a dependent without [patch])"
for m in idle "$TICKS"; do
    label="idle keep-alive connections"; [ "$m" = idle ] || label="SSE clients ($TICKS ticks)"
    printf '%-34s %-24s %s\n' "$label" "$(mib "patched-$m") ($(per "patched-$m"))" "$(mib "unpatched-$m") ($(per "unpatched-$m"))"
done

#!/usr/bin/env bash
# Load-test a running conduit server (or any HTTP server) with wrk, vegeta, ab, oha or h2load,
# check the performance targets, and capture a CPU profile under load.
#
#   scripts/load_test.sh [all|wrk|vegeta|ab|oha|h2load|keepalive|targets|profile|rate]   (default: all)
#
# Start the server first, e.g.
#   cargo run --release --example optimized_server      # ADDR=127.0.0.1:8080, PROFILE_ADDR=127.0.0.1:6060
#   scripts/load_test.sh targets
#
# Subcommands
#   all        every tool that is installed (or installable), then `keepalive` and `targets`
#   wrk        wrk: throughput and latency percentiles (HTTP/1.1 keep-alive)
#   vegeta     vegeta at a constant RATE, when `vegeta` is on the PATH. vegeta is NOT packaged in
#              Debian/Ubuntu: install its release binary yourself; otherwise this is skipped
#   ab         ApacheBench (apache2-utils), keep-alive (-k)
#   oha        oha (installed with `cargo install oha --locked` when missing: a few minutes once)
#   h2load     h2load (nghttp2-client): HTTP/2 cleartext with 10 streams per connection
#              (H2LOAD_H1=1: HTTP/1.1 instead)
#   keepalive  the same wrk run with keep-alive and with `Connection: close` (a new TCP
#              connection per request), side by side
#   targets    wrk run checked against the targets below; prints a table and a JSON summary
#              and exits 1 when a target is missed
#   profile    `targets`-style wrk load while fetching a CPU profile from PROFILE_URL
#              (/debug/pprof/profile, pprof protobuf) and, with FLAMEGRAPH=1, a flamegraph
#   rate       constant-rate latency: oha with --latency-correction at each of RATES, 64
#              connections (CONNECTIONS, if set), the server pinned to SERVER_CPU and oha to
#              LOAD_CPU; prints one row per rate and endpoint (achieved req/s, p50, p99, p99.9,
#              max, non-2xx, errors: oha counts a request still in flight when the duration
#              ends as one). Latency correction counts each request from the moment
#              the schedule meant to send it, so a stalled server shows in the tail instead of
#              slowing the load down. Not part of `all` (it pins CPUs)
#
# Configuration (environment)
#   SERVER_URL   base URL                               default http://127.0.0.1:8080
#   ENDPOINTS    comma-separated paths, rotated          default /
#   DURATION     per run: 30, 30s or 2m                  default 10s
#   CONNECTIONS  concurrent connections                  default 100
#   THREADS      load-generator threads                  default: number of CPUs
#   RATE         requests/s for vegeta and oha (0: as fast as possible; vegeta then uses 1000)
#                                                        default 0
#   PROFILE_URL  the server's debug listener             default http://127.0.0.1:6060
#   OUT_DIR      reports and profiles                    default target/load-test
#   TARGET_RPS=30000 TARGET_P50_MS=5 TARGET_P95_MS=10 TARGET_P99_MS=50 TARGET_ERRORS=0
#   NO_INSTALL=1 never install a missing tool
#   rate only:
#   RATES        requests/s, space- or comma-separated  default 30000 60000
#   SERVER_CMD   a command that starts the server (on SERVER_URL's port): run pinned to
#                SERVER_CPU, stopped at the end. Without it, SERVER_PID (the running server,
#                all its threads) is pinned; with neither, the server is not pinned
#   SERVER_CPU=0 LOAD_CPU=1   the cores of the server and of oha (taskset)
#   LABEL        the name in the table's first column   default: SERVER_CMD's first word, or "server"
#
# Every run is bounded: each tool runs for DURATION under `timeout` (DURATION + 30 s). Only the
# address in SERVER_URL is loaded: loopback by default, anything else only because you named it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONNECTIONS_GIVEN="${CONNECTIONS:-}"
SERVER_URL="${SERVER_URL:-http://127.0.0.1:8080}"
SERVER_URL="${SERVER_URL%/}"
ENDPOINTS="${ENDPOINTS:-/}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-100}"
THREADS="${THREADS:-$(nproc 2>/dev/null || echo 2)}"
RATE="${RATE:-0}"
PROFILE_URL="${PROFILE_URL:-http://127.0.0.1:6060}"
PROFILE_URL="${PROFILE_URL%/}"
OUT_DIR="${OUT_DIR:-target/load-test}"
TARGET_RPS="${TARGET_RPS:-30000}"
TARGET_P50_MS="${TARGET_P50_MS:-5}"
TARGET_P95_MS="${TARGET_P95_MS:-10}"
TARGET_P99_MS="${TARGET_P99_MS:-50}"
TARGET_ERRORS="${TARGET_ERRORS:-0}"

say() { printf '\n==> %s\n' "$*"; }
die() { echo "load_test.sh: $*" >&2; exit 2; }

# --- arguments -------------------------------------------------------------------------------
seconds() { # 30 | 30s | 2m -> whole seconds
    local d="$1"
    case "$d" in
        *[0-9]s) echo "${d%s}" ;;
        *[0-9]m) echo $(( ${d%m} * 60 )) ;;
        *[0-9]) echo "$d" ;;
        *) die "DURATION must look like 30, 30s or 2m (got '$d')" ;;
    esac
}
SECS="$(seconds "$DURATION")"
[ "$SECS" -ge 1 ] || die "DURATION must be at least 1 second"
for v in CONNECTIONS THREADS RATE; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
[ "$CONNECTIONS" -ge 1 ] && [ "$THREADS" -ge 1 ] || die "CONNECTIONS and THREADS must be >= 1"
[ "$THREADS" -le "$CONNECTIONS" ] || THREADS="$CONNECTIONS"
LIMIT=$(( SECS + 30 )) # hard bound on any one tool run

IFS=',' read -r -a PATHS <<< "$ENDPOINTS"
[ ${#PATHS[@]} -ge 1 ] || die "ENDPOINTS is empty"
for p in "${PATHS[@]}"; do [[ "$p" == /* ]] || die "each endpoint must start with / (got '$p')"; done
URLS=()
for p in "${PATHS[@]}"; do URLS+=("$SERVER_URL$p"); done

host_of() { local h="${1#*://}"; h="${h%%/*}"; h="${h%:*}"; echo "${h#[}" | tr -d ']'; }
HOST="$(host_of "$SERVER_URL")"
case "$HOST" in
    127.*|localhost|::1) ;;
    *) echo "note: loading $HOST because SERVER_URL names it (not loopback)" >&2 ;;
esac
case "$SERVER_URL" in http://*) ;; https://*) ;; *) die "SERVER_URL must start with http:// or https://" ;; esac

mkdir -p "$OUT_DIR"

# --- tools -----------------------------------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }

apt_install() { # command package
    have "$1" && return 0
    [ -z "${NO_INSTALL:-}" ] || return 1
    if [ "$(id -u)" = 0 ] && have apt-get; then
        say "installing $2 (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 \
            || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
                 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1; } \
            || true
    fi
    have "$1"
}

ensure() { # command -> installs it if possible, else explains
    case "$1" in
        wrk) apt_install wrk wrk ;;
        ab) apt_install ab apache2-utils ;;
        h2load) apt_install h2load nghttp2-client ;;
        curl) apt_install curl curl ;;
        oha)
            have oha && return 0
            [ -z "${NO_INSTALL:-}" ] || return 1
            have cargo || return 1
            say "installing oha (cargo install oha --locked; compiles once, a few minutes)"
            cargo install oha --locked >/dev/null 2>&1 || true
            have oha || { [ -x "$HOME/.cargo/bin/oha" ] && export PATH="$HOME/.cargo/bin:$PATH"; }
            have oha ;;
        vegeta) have vegeta ;;
        *) have "$1" ;;
    esac
}

need() {
    ensure "$1" && return 0
    case "$1" in
        vegeta) echo "vegeta is not on the PATH and is not packaged in Debian/Ubuntu: install its release binary to use it" >&2 ;;
        oha) echo "oha is missing and could not be installed (needs cargo: cargo install oha --locked)" >&2 ;;
        *) echo "$1 is missing and could not be installed (run as root with apt-get, or install it yourself)" >&2 ;;
    esac
    return 1
}

bounded() { timeout --kill-after=5 "$LIMIT" "$@"; }

check_server() {
    need curl || die "curl is needed to check the server"
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${URLS[0]}" || true)"
    [ "$code" != "000" ] || die "no server answers at ${URLS[0]} (start it first, or set SERVER_URL)"
}

# A wrk Lua script: rotates ENDPOINTS (only when there are several, as Lua per request costs
# load-generator CPU) and prints the summary as one JSON line prefixed with "JSON ".
WRK_LUA="$OUT_DIR/wrk.lua"
write_lua() {
    cat > "$WRK_LUA" <<'LUA'
local paths = {}
for p in string.gmatch(os.getenv("ENDPOINTS") or "/", "[^,]+") do paths[#paths + 1] = p end
if #paths > 1 then
  local reqs, n = {}, 0
  init = function(args)
    for i, p in ipairs(paths) do reqs[i] = wrk.format(nil, p) end
  end
  request = function()
    n = n + 1
    return reqs[(n % #reqs) + 1]
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_s":%.3f,"bytes":%d,"rps":%.1f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}}\n',
    summary.requests, summary.duration / 1e6, summary.bytes, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, latency.mean / 1e3,
    e.connect, e.read, e.write, e.timeout, e.status))
end
LUA
}

run_wrk() { # extra wrk args...; prints wrk's report and leaves the JSON line in $OUT_DIR/wrk.json
    write_lua
    local out="$OUT_DIR/wrk.txt"
    ENDPOINTS="$ENDPOINTS" bounded wrk -t "$THREADS" -c "$CONNECTIONS" -d "${SECS}s" \
        --latency -s "$WRK_LUA" "$@" "${URLS[0]}" | tee "$out" | grep -v '^JSON '
    grep '^JSON ' "$out" | sed 's/^JSON //' > "$OUT_DIR/wrk.json"
}

json_field() { # file key -> number ("errors" sums the error counts)
    python3 - "$1" "$2" <<'PY' 2>/dev/null || sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1"
import json, sys
d = json.load(open(sys.argv[1]))
k = sys.argv[2]
print(sum(d["errors"].values()) if k == "errors" else d[k])
PY
}

# --- subcommands -----------------------------------------------------------------------------
cmd_wrk() {
    need wrk || return 1
    say "wrk: $CONNECTIONS connections, $THREADS threads, ${SECS}s, ${ENDPOINTS}"
    run_wrk
}

cmd_vegeta() {
    need vegeta || { echo "skipping vegeta"; return 3; }
    local rate="$RATE"; [ "$rate" -gt 0 ] || rate=1000
    say "vegeta: $rate req/s for ${SECS}s, ${ENDPOINTS}"
    printf 'GET %s\n' "${URLS[@]}" > "$OUT_DIR/vegeta.targets"
    bounded vegeta attack -targets="$OUT_DIR/vegeta.targets" -rate="$rate" -duration="${SECS}s" \
        -connections="$CONNECTIONS" > "$OUT_DIR/vegeta.bin"
    vegeta report < "$OUT_DIR/vegeta.bin"
}

cmd_ab() {
    need ab || return 1
    for u in "${URLS[@]}"; do
        say "ab -k: $CONNECTIONS concurrent, ${SECS}s, $u"
        # -t caps the run; -n only needs to be large enough not to end it first.
        bounded ab -k -q -c "$CONNECTIONS" -t "$SECS" -n 100000000 "$u" \
            | grep -E 'Requests per second|Time per request|Failed requests|Non-2xx|Complete requests|^ +(50|95|99|100)%' || true
    done
}

cmd_oha() {
    need oha || return 1
    for u in "${URLS[@]}"; do
        say "oha: $CONNECTIONS connections, ${SECS}s, $u"
        local q=(); [ "$RATE" -gt 0 ] && q=(-q "$RATE")
        bounded oha --no-tui -z "${SECS}s" -c "$CONNECTIONS" "${q[@]}" "$u"
    done
}

cmd_h2load() {
    need h2load || return 1
    local proto=(-m 10) label="HTTP/2 (h2c), 10 streams per connection"
    if [ -n "${H2LOAD_H1:-}" ]; then proto=(--h1); label="HTTP/1.1"; fi
    say "h2load: $label, $CONNECTIONS connections, $THREADS threads, ${SECS}s, ${ENDPOINTS}"
    bounded h2load "${proto[@]}" -c "$CONNECTIONS" -t "$THREADS" -D "$SECS" "${URLS[@]}" \
        | grep -Ev '^(progress|spawning|starting|Application protocol|Warm-up|Main benchmark|Stopped all)' || true
}

cmd_keepalive() {
    need wrk || return 1
    say "keep-alive vs a new connection per request (wrk, ${SECS}s each)"
    run_wrk >/dev/null
    local ka_rps ka_p99
    ka_rps="$(json_field "$OUT_DIR/wrk.json" rps)"; ka_p99="$(json_field "$OUT_DIR/wrk.json" p99_ms)"
    run_wrk -H 'Connection: close' >/dev/null
    local cl_rps cl_p99
    cl_rps="$(json_field "$OUT_DIR/wrk.json" rps)"; cl_p99="$(json_field "$OUT_DIR/wrk.json" p99_ms)"
    printf '%-28s %12s %10s\n' "mode" "req/s" "p99 ms"
    printf '%-28s %12.0f %10.2f\n' "keep-alive" "$ka_rps" "$ka_p99"
    printf '%-28s %12.0f %10.2f\n' "Connection: close" "$cl_rps" "$cl_p99"
    python3 -c "print(f'keep-alive is {$ka_rps / max($cl_rps, 1):.1f}x the throughput of a connection per request')" 2>/dev/null || true
}

cmd_targets() {
    need wrk || die "targets needs wrk (apt-get install wrk)"
    say "targets: wrk, $CONNECTIONS connections, $THREADS threads, ${SECS}s, ${ENDPOINTS} at $SERVER_URL"
    run_wrk >/dev/null
    local f="$OUT_DIR/wrk.json"
    [ -s "$f" ] || die "wrk produced no summary (see $OUT_DIR/wrk.txt)"
    python3 - "$f" "$TARGET_RPS" "$TARGET_P50_MS" "$TARGET_P95_MS" "$TARGET_P99_MS" "$TARGET_ERRORS" \
        "$SERVER_URL" "$ENDPOINTS" "$CONNECTIONS" "$THREADS" "$SECS" "$OUT_DIR/targets.json" <<'PY'
import json, sys
f, rps_t, p50_t, p95_t, p99_t, err_t, url, eps, conns, threads, secs, out = sys.argv[1:]
d = json.load(open(f))
errors = sum(d["errors"].values())
rows = [
    ("throughput", "req/s", d["rps"], ">=", float(rps_t), d["rps"] >= float(rps_t)),
    ("p50 latency", "ms", d["p50_ms"], "<", float(p50_t), d["p50_ms"] < float(p50_t)),
    ("p95 latency", "ms", d["p95_ms"], "<", float(p95_t), d["p95_ms"] < float(p95_t)),
    ("p99 latency", "ms", d["p99_ms"], "<", float(p99_t), d["p99_ms"] < float(p99_t)),
    ("errors", "", errors, "<=", float(err_t), errors <= float(err_t)),
]
print(f"{'metric':<14} {'measured':>14} {'target':>14}  result")
for name, unit, val, op, tgt, ok in rows:
    m = f"{val:,.0f} {unit}" if unit == "req/s" or not unit else f"{val:.3f} {unit}"
    t = f"{op} {tgt:,.0f} {unit}".strip()
    print(f"{name:<14} {m:>14} {t:>14}  {'PASS' if ok else 'MISS'}")
summary = {
    "server_url": url, "endpoints": eps.split(","), "connections": int(conns),
    "threads": int(threads), "duration_s": d["duration_s"], "requests": d["requests"],
    "rps": round(d["rps"], 1), "p50_ms": d["p50_ms"], "p90_ms": d["p90_ms"],
    "p95_ms": d["p95_ms"], "p99_ms": d["p99_ms"], "max_ms": d["max_ms"],
    "errors": d["errors"], "error_total": errors,
    "targets": {"rps": float(rps_t), "p50_ms": float(p50_t), "p95_ms": float(p95_t),
                "p99_ms": float(p99_t), "errors": float(err_t)},
    "passed": all(r[5] for r in rows),
    "missed": [r[0] for r in rows if not r[5]],
}
json.dump(summary, open(out, "w"), indent=2)
print("\nJSON summary (" + out + "):")
print(json.dumps(summary))
sys.exit(0 if summary["passed"] else 1)
PY
}

cmd_profile() {
    need wrk || die "profile needs wrk"
    need curl || die "profile needs curl"
    local stamp pb
    stamp="$(date +%Y%m%d-%H%M%S)"
    pb="$OUT_DIR/cpu-$stamp.pb"
    say "profile: ${SECS}s CPU profile from $PROFILE_URL while wrk loads $SERVER_URL"
    curl -sf -o /dev/null --max-time 5 "$PROFILE_URL/debug/pprof/" \
        || die "no debug listener at $PROFILE_URL (optimized_server serves it on PROFILE_ADDR)"
    curl -sf --max-time "$LIMIT" -o "$pb" "$PROFILE_URL/debug/pprof/profile?seconds=$SECS" &
    local curl_pid=$!
    run_wrk | grep -E 'Requests/sec|Latency ' || true
    wait "$curl_pid" || die "fetching the profile failed"
    echo "CPU profile (pprof protobuf, $(wc -c < "$pb") bytes): $pb"
    echo "  open it with: pprof -http=: $pb    (or: go tool pprof -top $pb)"
    if [ -n "${FLAMEGRAPH:-}" ]; then
        local svg="$OUT_DIR/flamegraph-$stamp.svg"
        curl -sf --max-time "$LIMIT" -o "$svg" "$PROFILE_URL/debug/pprof/flamegraph?seconds=$SECS" &
        curl_pid=$!
        run_wrk >/dev/null
        wait "$curl_pid" || die "fetching the flamegraph failed"
        echo "flamegraph: $svg"
    fi
}

# rate: started server (SERVER_CMD), stopped on exit
server_pid=""
stop_server() {
    [ -n "$server_pid" ] || return 0
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

cmd_rate() {
    need oha || die "rate needs oha (cargo install oha --locked)"
    have taskset || die "rate needs taskset (util-linux)"
    local rates conns="${CONNECTIONS_GIVEN:-64}" cpu="${SERVER_CPU:-0}" load_cpu="${LOAD_CPU:-1}"
    rates="$(echo "${RATES:-30000 60000}" | tr ',' ' ')"
    for r in $rates; do [[ "$r" =~ ^[0-9]+$ ]] && [ "$r" -gt 0 ] || die "RATES must be whole numbers > 0 (got '$r')"; done
    [[ "$conns" =~ ^[0-9]+$ ]] && [ "$conns" -ge 1 ] || die "CONNECTIONS must be >= 1"
    local label="${LABEL:-}"
    if [ -n "${SERVER_CMD:-}" ]; then
        [ -n "$label" ] || label="$(basename "${SERVER_CMD%% *}")"
        # shellcheck disable=SC2086 # the command line is words by design
        timeout --kill-after=5 $(( LIMIT * $(echo "$rates" | wc -w) * ${#URLS[@]} + 60 )) \
            taskset -c "$cpu" $SERVER_CMD >"$OUT_DIR/rate-server.log" 2>&1 &
        server_pid=$!
        trap stop_server EXIT
        local i
        for i in $(seq 100); do
            [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "${URLS[0]}" || true)" != 000 ] && break
            kill -0 "$server_pid" 2>/dev/null || die "SERVER_CMD exited (see $OUT_DIR/rate-server.log)"
            sleep 0.1
        done
        check_server
    elif [ -n "${SERVER_PID:-}" ]; then
        check_server
        taskset -a -p -c "$cpu" "$SERVER_PID" >/dev/null || die "could not pin SERVER_PID $SERVER_PID"
    else
        check_server
        echo "note: neither SERVER_CMD nor SERVER_PID: the server is not pinned" >&2
    fi
    [ -n "$label" ] || label=server
    say "rate: oha --latency-correction, $conns connections, ${SECS}s per rate, server on CPU $cpu, oha on CPU $load_cpu"
    local rows="$OUT_DIR/rate.tsv"
    : > "$rows"
    local k=0
    for u in "${URLS[@]}"; do
        k=$((k + 1))
        for r in $rates; do
            local out="$OUT_DIR/rate-$k-$r.json"
            bounded taskset -c "$load_cpu" oha --no-tui --output-format json --latency-correction \
                -z "${SECS}s" -c "$conns" -q "$r" "$u" > "$out" \
                || { echo "oha failed at $r req/s on $u" >&2; continue; }
            printf '%s\t%s\t%s\t%s\n' "$label" "${u#"$SERVER_URL"}" "$r" "$out" >> "$rows"
        done
    done
    stop_server
    python3 - "$rows" <<'PY'
import json, sys
print(f"{'server':<12} {'path':<16} {'rate':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8} {'non-2xx':>8} {'errors':>7}")
for line in open(sys.argv[1]):
    label, path, rate, f = line.rstrip("\n").split("\t")
    d = json.load(open(f))
    s, p = d["summary"], d["latencyPercentiles"]
    ms = lambda v: "-" if v is None else f"{v * 1e3:.2f}"
    codes = d.get("statusCodeDistribution", {})
    non2xx = sum(n for c, n in codes.items() if not str(c).startswith("2"))
    errors = sum(d.get("errorDistribution", {}).values())
    print(f"{label:<12} {path:<16} {rate:>8} {s['requestsPerSec']:>9.0f} {ms(p.get('p50')):>8} "
          f"{ms(p.get('p99')):>8} {ms(p.get('p99.9')):>9} {ms(s.get('slowest')):>8} {non2xx:>8} {errors:>7}")
PY
}

cmd_all() {
    local status=0
    cmd_wrk || status=1
    cmd_ab || status=1
    cmd_h2load || status=1
    cmd_oha || status=1
    cmd_vegeta || true
    cmd_keepalive || status=1
    cmd_targets || status=1
    return "$status"
}

sub="${1:-all}"
case "$sub" in
    all|wrk|vegeta|ab|oha|h2load|keepalive|targets|profile) check_server ;;
    rate) ;; # checks the server once it has started it
    -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown subcommand '$sub' (all, wrk, vegeta, ab, oha, h2load, keepalive, targets, profile, rate)" ;;
esac
"cmd_$sub"

#!/usr/bin/env bash
# User-space instructions per request (callgrind), conduit against reference servers: a figure
# that does not move with the machine's noise (CPU times from compare.sh move by ±5 %).
#
#   scripts/perf/instr.sh [options] [scenario | /path ...]
#
#   scenarios, on conduit's bench_server and on each peer that has the route:
#     plaintext (/)   json (/json)   h2 (/ over HTTP/2, 32 streams a connection)
#     static-small (/static/small.txt)   static-big (/static/big.bin)   stack (/stack)
#     gzip (/gz/data.json with Accept-Encoding: gzip)
#   bench_server only:
#     etag (/etag/json)   etag-304 (/etag/json with a matching If-None-Match)
#     limited (/limited, past its burst: 429s)   metrics (/metrics)   tower (/tower)
#     tower-identity (/tower-identity)   no-store (/no-store)
#     stream-json (/stream/json?n=10)   stream-ndjson (/stream/ndjson?n=10)
#     /any/path   that bench_server path over HTTP/1.1 (with the -H headers, if any)
#   groups: routes (every bench_server scenario above), peers (plaintext json h2 static-small stack)
#   default: plaintext json h2
#
#   --n N          measured requests per scenario (default 20000; static-big and gzip 1000)
#   --servers "conduit hyper axum actix"   (the default)
#   -H 'Name: value'   an extra request header for /path arguments (repeatable)
#   --keep DIR     keep each run's callgrind file in DIR (for callgrind_annotate)
#
# Each server runs under valgrind's callgrind. After 2000 warm-up requests the counters are
# zeroed (callgrind_control -z), h2load sends N requests over 16 connections (HTTP/1.1 unless
# h2), the counters are dumped, and the total instruction count over N is printed. Kernel work
# is not counted: this is the server's own cost, not the whole cost of a request. Figures are
# repeatable to within a few instructions, so concurrent runs do not disturb each other.
#
# conduit is examples/bench_server.rs in release mode (or the binary in $CONDUIT_BIN, e.g. one
# built from another commit); the peers are benches/peers. Needs valgrind, h2load and curl:
# installed with apt-get when run as root. Works in a fresh temporary folder (KEEP_WORK=1 keeps it).
set -u
source "$(dirname "$0")/lib.sh"

n= servers="conduit hyper axum actix" keep= headers=()
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --n) n=$2; shift 2;;
        --servers) servers=$2; shift 2;;
        --keep) keep=$2; shift 2;;
        -H) headers+=(-H "$2"); shift 2;;
        -h|--help) sed -n 2,33p "$0"; exit 0;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2;;
        *) args+=("$1"); shift;;
    esac
done
peer_scen="plaintext json h2 static-small static-big stack gzip"
conduit_scen="etag etag-304 limited metrics tower tower-identity no-store stream-json stream-ndjson"
scen=()
for a in "${args[@]:-plaintext json h2}"; do
    for b in $a; do
        case $b in
            routes) read -ra more <<<"$peer_scen $conduit_scen"; scen+=("${more[@]}");;
            peers) scen+=(plaintext json h2 static-small stack);;
            /*) scen+=("$b");;
            *) case " $peer_scen $conduit_scen " in
                   *" $b "*) scen+=("$b");;
                   *) echo "unknown scenario $b (see --help)" >&2; exit 2;;
               esac;;
        esac
    done
done

need valgrind valgrind; need callgrind_control valgrind; need h2load nghttp2-client; need curl curl

root=$work/root
write_workload "$root"
want() { case " $servers " in *" $1 "*) return 0;; esac; return 1; }
want conduit && { build_conduit || servers=${servers/conduit/}; }
if want hyper || want axum || want actix; then build_peers || exit 2; fi
[ -n "$keep" ] && mkdir -p "$keep"

path_of() { # SCENARIO SERVER -> the path, empty when the server has no such route
    case $1 in
        plaintext) echo /;;
        json) echo /json;;
        h2) case $2 in conduit|axum) echo /;; esac;;
        static-small) [ "$2" = hyper ] || echo /static/small.txt;;
        static-big) [ "$2" = hyper ] || echo /static/big.bin;;
        stack) case $2 in conduit|axum) echo /stack;; esac;;
        gzip) case $2 in conduit|axum) echo /gz/data.json;; esac;;
        *) [ "$2" = conduit ] || return 0
           case $1 in
               etag|etag-304) echo /etag/json;;
               stream-json) echo '/stream/json?n=10';;
               stream-ndjson) echo '/stream/ndjson?n=10';;
               /*) echo "$1";;
               *) echo "/$1";; # limited metrics tower tower-identity no-store
           esac;;
    esac
}
cmd_of() { # SERVER PORT -> the server's command line
    case $1 in
        conduit) echo "$conduit_bin 127.0.0.1:$2 $root";;
        hyper) echo "$peers_bin/hyper_hello 127.0.0.1:$2";;
        axum) echo "$peers_bin/axum_hello 127.0.0.1:$2 $root";;
        actix) echo "$peers_bin/actix_hello 127.0.0.1:$2 $root";;
    esac
}

# run SERVER SCENARIO PATH -> "instructions_per_request status_summary", or nothing on failure
run() {
    local s=$1 sc=$2 p=$3 port vpid url out req ir f m=1 h=(--h1) hdr=() count=${n:-20000}
    case $sc in
        h2) m=32; h=();;
        gzip) hdr=(-H 'Accept-Encoding: gzip'); count=${n:-1000};;
        static-big) count=${n:-1000};;
        /*) hdr=("${headers[@]}");;
    esac
    port=$(free_port) || return 1
    rm -f "$work"/cg.*
    # shellcheck disable=SC2046 # the command line is words by design
    WORKERS=1 valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" $(cmd_of "$s" "$port") \
        >"$work/$s.log" 2>&1 &
    vpid=$!
    started "$vpid"
    wait_port "$port" "$vpid" 60 || { echo "$s did not start under valgrind" >&2; return 1; }
    url="http://127.0.0.1:$port$p"
    if [ "$sc" = etag-304 ]; then
        local tag
        tag=$(curl -s -D - -o /dev/null "$url" | awk -F': ' 'tolower($1) == "etag" {print $2}' | tr -d '\r')
        [ -n "$tag" ] || { echo "no ETag from $url" >&2; kill "$vpid"; wait "$vpid" 2>/dev/null; return 1; }
        hdr=(-H "If-None-Match: $tag")
    fi
    h2load "${h[@]}" -n 2000 -c 16 -m $m "${hdr[@]}" "$url" >/dev/null 2>&1
    callgrind_control -z "$vpid" >/dev/null 2>&1
    out=$(h2load "${h[@]}" -n "$count" -c 16 -m $m "${hdr[@]}" "$url" 2>&1)
    callgrind_control -d "$vpid" >/dev/null 2>&1
    sleep 0.5
    kill "$vpid" 2>/dev/null; wait "$vpid" 2>/dev/null
    req=$(echo "$out" | awk '/^requests:/ {print $6}') # done (any status)
    # the dump taken after zeroing is the numbered part file
    f=$(ls -t "$work"/cg.*.[0-9]* 2>/dev/null | head -1)
    [ -n "$f" ] && ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
    [ -n "${ir:-}" ] && [ "${req:-0}" -gt 0 ] || { echo "$s $sc: no count (h2load: $(echo "$out" | grep -E '^requests:'))" >&2; return 1; }
    if [ -n "$keep" ]; then cp "$f" "$keep/$s.$(echo "$sc" | tr -c 'a-zA-Z0-9-\n' _).callgrind"; fi
    local st
    st=$(echo "$out" | awk '/^status codes:/ {s = ""; for (i = 3; i <= NF; i += 2) if ($i + 0 > 0) { k = $(i + 1); sub(/,$/, "", k); s = s (s ? "," : "") k "=" ($i + 0) } print s}')
    awk -v a="$ir" -v r="$req" -v st="$st" 'BEGIN { printf "%.0f %s\n", a / r, st }'
}

echo "# scripts/perf/instr.sh${n:+ --n $n} ${scen[*]}"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'), $(valgrind --version)"
[ -n "${CONDUIT_BIN:-}" ] && echo "# conduit: CONDUIT_BIN=$CONDUIT_BIN"
printf "%-22s %-8s %14s %11s  %s\n" scenario server "instr/request" "vs conduit" statuses
for sc in "${scen[@]}"; do
    declare -A I=() S=()
    for s in $servers; do
        p=$(path_of "$sc" "$s"); [ -n "$p" ] || continue
        r=$(run "$s" "$sc" "$p") || continue
        read -r I[$s] S[$s] <<<"$r"
    done
    base=${I[conduit]:-}
    for s in $servers; do
        [ -n "${I[$s]:-}" ] || continue
        ratio=$(awk -v a="${I[$s]}" -v b="${base:-0}" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }')
        printf "%-22s %-8s %14s %11s  %s\n" "$sc" "$s" "${I[$s]}" "$ratio" "${S[$s]}"
    done
    unset I S
done

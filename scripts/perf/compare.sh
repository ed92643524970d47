#!/usr/bin/env bash
# conduit side by side with reference servers, in one run: server CPU time per request, req/s, p99.
#
#   scripts/perf/compare.sh [options] [scenario...]
#
#   scenarios  plaintext json stack static-small static-big gzip h2        (default: all of them)
#   --secs N     seconds per measurement (default 5)
#   --rounds N   rounds; the median is printed (default 3)
#   --servers "conduit hyper axum actix nginx sws"   (default: all but sws)
#
# What each server is: benches/peers/README.md. conduit is examples/bench_server.rs, built in
# release mode (or the binary in $CONDUIT_BIN, to compare two builds). sws (static-web-server,
# static-small, static-big and gzip only) is installed with cargo the first time it is asked
# for, which takes about 10 minutes on 2 cores. A server without a scenario's route is skipped.
#
# Every server is pinned to CPU 0 and the load generator (wrk; h2load for h2) to CPU 1, and the
# servers take turns (A B C A B C ...) so that drift hits all alike. The fairest figure is
# cpu_us/req, the server's own CPU time (utime + stime from /proc) divided by the requests it
# answered; req/s is often bound by the load generator on 2 cores. cost/conduit is cpu_us/req
# over conduit's. CPU times move by ±5 % between runs on a shared machine: read the ratios of one
# run, and do not run two timing benchmarks at once (serialise them yourself, e.g. with
# `flock SOME_FILE scripts/perf/compare.sh ...`).
#
# Needs wrk, h2load, nginx, taskset, python3 and curl: installed with apt-get when run as root.
# Everything it writes (workload files, nginx config, logs) goes to a fresh temporary folder,
# removed at the end (KEEP_WORK=1 keeps it).
set -u
source "$(dirname "$0")/lib.sh"

secs=5 rounds=3 servers="conduit hyper axum actix nginx"
scen=()
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) secs=$2; shift 2;;
        --rounds) rounds=$2; shift 2;;
        --servers) servers=$2; shift 2;;
        -h|--help) sed -n 2,26p "$0"; exit 0;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2;;
        *) scen+=("$1"); shift;;
    esac
done
all_scen="plaintext json stack static-small static-big gzip h2"
[ ${#scen[@]} -gt 0 ] || read -ra scen <<<"$all_scen"
for sc in "${scen[@]}"; do
    case " $all_scen " in *" $sc "*) ;; *) echo "unknown scenario $sc (known: $all_scen)" >&2; exit 2;; esac
done

need wrk wrk; need h2load nghttp2-client; need taskset util-linux; need curl curl
case " $servers " in *" nginx "*) need nginx nginx; need pgrep procps;; esac
if [ "$(nproc)" -lt 2 ]; then echo "needs 2 CPUs (server on CPU 0, load on CPU 1)" >&2; exit 2; fi

root=$work/root
write_workload "$root"

want() { case " $servers " in *" $1 "*) return 0;; esac; return 1; }
want conduit && { build_conduit || servers=${servers/conduit/}; }
if want hyper || want axum || want actix; then build_peers || exit 2; fi
if want sws; then
    if build_sws; then
        # sws serves one folder: the workload under /static and again under /gz
        mkdir -p "$work/sws"; cp -r "$root" "$work/sws/static"; cp -r "$root" "$work/sws/gz"
    else
        servers=${servers/sws/}
    fi
fi

declare -A port pid
for s in $servers; do port[$s]=$(free_port) || exit 2; done
want nginx && h2port=$(free_port)

if want nginx; then
    cat >"$work/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 8192; }
http {
  access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 10000000;
  client_body_temp_path $work/nginx-tmp; proxy_temp_path $work/nginx-tmp;
  fastcgi_temp_path $work/nginx-tmp; uwsgi_temp_path $work/nginx-tmp; scgi_temp_path $work/nginx-tmp;
  open_file_cache max=1000 inactive=60s; include /etc/nginx/mime.types; default_type application/octet-stream;
  gzip on; gzip_types application/json text/plain; gzip_min_length 256;
  server { listen 127.0.0.1:${port[nginx]}; listen 127.0.0.1:$h2port http2;
    location = / { default_type text/plain; return 200 "Hello, World!"; }
    location = /json { default_type application/json; return 200 '{"message":"Hello, World!"}'; }
    location /static/ { alias $root/; }
    location /gz/ { alias $root/; }
  }
}
EOF
fi

# start SERVER: runs it on CPU 0, sets pid[SERVER] to the process that does the work.
start() {
    local s=$1 a=127.0.0.1:${port[$1]}
    case $s in
        conduit) taskset -c 0 "$conduit_bin" "$a" "$root" >"$work/$s.log" 2>&1 & ;;
        hyper) taskset -c 0 "$peers_bin/hyper_hello" "$a" >"$work/$s.log" 2>&1 & ;;
        axum) taskset -c 0 "$peers_bin/axum_hello" "$a" "$root" >"$work/$s.log" 2>&1 & ;;
        actix) WORKERS=1 taskset -c 0 "$peers_bin/actix_hello" "$a" "$root" >"$work/$s.log" 2>&1 & ;;
        sws) taskset -c 0 "$sws_bin" -a 127.0.0.1 -p "${port[$s]}" -d "$work/sws" -x true \
                 --security-headers false -g error >"$work/$s.log" 2>&1 & ;;
        nginx) taskset -c 0 nginx -p "$work" -e "$work/nginx.err" -c "$work/nginx.conf" >"$work/$s.log" 2>&1 & ;;
    esac
    local p=$!
    started "$p"
    wait_port "${port[$s]}" "$p" || { echo "$s did not start (log: $(tail -3 "$work/$s.log" | tr '\n' ' '))" >&2; return 1; }
    pid[$s]=$p
    # nginx: the worker answers, the master only waits
    [ "$s" = nginx ] && pid[$s]=$(pgrep -P "$p" | head -1)
    return 0
}
live=()
for s in $servers; do start "$s" && live+=("$s"); done
[ ${#live[@]} -gt 0 ] || { echo "no server started" >&2; exit 2; }
sleep 1

path_of() { # SCENARIO SERVER -> the path, empty when the server has no such route
    case $1 in
        plaintext) [ "$2" = sws ] || echo /;;
        json) [ "$2" = sws ] || echo /json;;
        stack) case $2 in conduit|axum) echo /stack;; esac;;
        static-small) [ "$2" = hyper ] || echo /static/small.txt;;
        static-big) [ "$2" = hyper ] || echo /static/big.bin;;
        gzip) case $2 in conduit|axum|nginx|sws) echo /gz/data.json;; esac;;
        h2) case $2 in conduit|axum|nginx) echo /;; esac;;
    esac
}
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; }
to_ms() { # "850.00us" / "1.23ms" / "1.02s" -> milliseconds
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; else { print "nan"; exit } printf "%.2f\n", n }'
}
measure() { # SERVER SCENARIO -> "rps cpu_us p99_ms errors"
    local s=$1 sc=$2 p url c0 c1 out req rps p99 err=0
    p=$(path_of "$sc" "$s"); [ -n "$p" ] || return 1
    url="http://127.0.0.1:${port[$s]}$p"
    [ "$sc" = h2 ] && [ "$s" = nginx ] && url="http://127.0.0.1:$h2port$p"
    c0=$(cpu_ticks "${pid[$s]}") || return 1
    case $sc in
        h2) out=$(taskset -c 1 h2load -D "$secs" -c 16 -m 32 "$url" 2>&1)
            req=$(echo "$out" | awk '/^requests:/ {print $8}')
            rps=$(echo "$out" | awk '/finished in/ {print $4}')
            # h2load prints no percentiles: its mean request time stands in (marked "mean")
            p99=$(echo "$out" | awk '/time for request:/ {print $6}')
            echo "$out" | grep -q '^status codes: [0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx' || err=1;;
        *)  local conns=64 hdr=()
            [ "$sc" = static-big ] && conns=16
            [ "$sc" = gzip ] && { conns=16; hdr=(-H 'Accept-Encoding: gzip'); }
            out=$(taskset -c 1 wrk -t1 -c$conns -d"${secs}s" --latency "${hdr[@]}" "$url" 2>&1)
            req=$(echo "$out" | awk '/requests in/ {print $1}')
            rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
            p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
            echo "$out" | grep -qE 'Non-2xx|Socket errors' && err=1;;
    esac
    p99=$(to_ms "${p99:-}")
    c1=$(cpu_ticks "${pid[$s]}") || return 1
    awk -v a="$c0" -v b="$c1" -v t="$tck" -v r="${req:-0}" -v rps="${rps:-0}" -v p="$p99" -v e=$err \
        'BEGIN { if (r > 0) printf "%s %.2f %s %s\n", rps, (b - a) / t * 1e6 / r, p, e; else print "0 nan " p " 1" }'
}
median() { grep -v '^$' | sort -g | awk '{a[NR] = $1} END { if (NR == 0) print "nan"; else print a[int((NR + 1) / 2)] }'; }

echo "# scripts/perf/compare.sh --secs $secs --rounds $rounds ${scen[*]}"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, $(uname -r)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "${CONDUIT_BIN:-}" ] && echo "# conduit: CONDUIT_BIN=$CONDUIT_BIN"
printf "%-13s %-8s %12s %12s %12s %13s\n" scenario server req/s cpu_us/req p99_ms cost/conduit
for sc in "${scen[@]}"; do
    declare -A R=() C=() P=() E=()
    for _ in $(seq "$rounds"); do
        for s in "${live[@]}"; do
            m=$(measure "$s" "$sc") || continue
            read -r a b c d <<<"$m"
            R[$s]+="$a "; C[$s]+="$b "; P[$s]+="$c "; [ "$d" = 0 ] || E[$s]=1
        done
    done
    base=$(tr ' ' '\n' <<<"${C[conduit]:-}" | median)
    for s in "${live[@]}"; do
        [ -n "${R[$s]:-}" ] || continue
        rps=$(tr ' ' '\n' <<<"${R[$s]}" | median)
        cpu=$(tr ' ' '\n' <<<"${C[$s]}" | median)
        p99=$(tr ' ' '\n' <<<"${P[$s]}" | median)
        [ "$sc" = h2 ] && p99="$p99(mean)"
        [ -n "${E[$s]:-}" ] && p99="$p99(ERR)"
        ratio=$(awk -v a="$cpu" -v b="$base" 'BEGIN { if (b == "nan" || b == 0) print "-"; else printf "%.2f", a / b }')
        printf "%-13s %-8s %12s %12s %12s %13s\n" "$sc" "$s" "$rps" "$cpu" "$p99" "$ratio"
    done
    unset R C P E
done
echo "# p99_ms: median of the rounds' p99 latency (h2: h2load's mean); ERR: non-2xx answers or socket errors"

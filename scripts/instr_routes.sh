#!/usr/bin/env bash
# User-space instructions per request for any bench_server routes, by ../shared/perf/instr.sh's
# method (which measures fixed scenarios only): bench_server under callgrind with one worker,
# 2000 warm-up requests, counters zeroed, N requests (h2load --h1, 16 connections), counters
# dumped, total Ir / N.
#
#   flock /tmp/perf.lock scripts/instr_routes.sh [--n N] PATH...
#   flock /tmp/perf.lock scripts/instr_routes.sh / /no-store /tower-identity /tower
#
# Run from the project root; it builds bench_server in release mode first. It uses instr.sh's
# port (18190), hence the lock shared with the perf scripts. Each route's callgrind file is kept
# in /tmp/conduit-instr-routes/ for callgrind_annotate.
set -u
n=20000
if [ "${1:-}" = --n ]; then n=$2; shift 2; fi
[ $# -gt 0 ] || { sed -n 2,12p "$0"; exit 2; }
for tool in valgrind callgrind_control h2load; do
  command -v $tool >/dev/null || { echo "missing $tool (apt: valgrind, nghttp2-client)"; exit 2; }
done
root=/tmp/conduit-compare-root
bash ../shared/perf/workload.sh $root
cargo build --release -q --example bench_server || exit 2
out=/tmp/conduit-instr-routes; mkdir -p $out
port=18190
printf "%-20s %14s\n" route "instr/request"
for p in "$@"; do
  rm -f $out/cg.*
  WORKERS=1 valgrind --tool=callgrind --callgrind-out-file=$out/cg.%p \
    target/release/examples/bench_server 127.0.0.1:$port $root >/dev/null 2>&1 &
  vpid=$!
  for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  h2load --h1 -n 2000 -c 16 -m 1 "http://127.0.0.1:$port$p" >/dev/null 2>&1
  callgrind_control -z $vpid >/dev/null 2>&1
  res=$(h2load --h1 -n $n -c 16 -m 1 "http://127.0.0.1:$port$p" 2>&1 | awk '/^requests:/ {print $8}')
  callgrind_control -d $vpid >/dev/null 2>&1
  sleep 0.5
  kill $vpid 2>/dev/null; wait $vpid 2>/dev/null
  f=$(ls -t $out/cg.*.[0-9]* 2>/dev/null | head -1)
  ir=$([ -n "$f" ] && awk '/^(summary|totals):/ {print $2; exit}' "$f")
  name=$(echo "$p" | tr -c 'a-zA-Z0-9\n' _)
  [ -n "$f" ] && mv "$f" "$out/route$name.callgrind"
  if [ -n "$ir" ] && [ "${res:-0}" -gt 0 ]; then
    printf "%-20s %14s\n" "$p" "$(awk -v a=$ir -v r=$res 'BEGIN{printf "%.0f", a/r}')"
  else
    printf "%-20s %14s\n" "$p" "failed"
  fi
done

#!/usr/bin/env bash
# User-space instructions per request on any bench_server routes (callgrind, HTTP/1.1):
#
#   scripts/instr_routes.sh [--n N] [-H 'Name: value'] [--keep DIR] PATH...
#   scripts/instr_routes.sh / /no-store /tower-identity /tower
#
# The same measurement as scripts/perf/instr.sh (which this runs, conduit only), for paths
# rather than named scenarios; see its --help. --keep DIR keeps each route's callgrind file for
# callgrind_annotate.
set -u
[ $# -gt 0 ] || { sed -n 2,9p "$0"; exit 2; }
exec "$(dirname "$0")/perf/instr.sh" --servers conduit "$@"

#!/usr/bin/env bash
# Runs the commands of the guides in docs/ as written, against a real example server.
#
#   scripts/check_guides.sh [GUIDE.md...]     (default: docs/deployment.md docs/profiling.md docs/load-testing.md)
#
# A fenced block is checked when its info string says so:
#   ```sh check            run with `bash -euo pipefail` from the project root
#   ```sh check-if:CMD     the same, reported as skipped when CMD is not installed
#   ```nginx check         wrapped in an nginx.conf, loaded by `nginx -t`, then served in front of the
#                          example: `/health` and the `/events` stream must come through it
#                          (skipped when nginx is not installed)
#   ```ini check:systemd   checked by `systemd-analyze verify` (skipped without systemd-analyze)
#   ```yaml check          parsed as YAML (skipped without python3's yaml module)
# Other blocks are for readers only (commands that change the machine, build release binaries or
# take minutes). The guides' Rust blocks are doctests of the `conduit` crate (src/lib.rs includes
# the guides under cfg(doctest)): `cargo test -p conduit --doc`.
#
# The server is target/debug/examples/optimized_server (built first if missing), started with its
# app and its debug listener on free ports. The guides name the defaults, 127.0.0.1:8080 and
# 127.0.0.1:6060; in what runs those are replaced by the free ports, and SERVER_URL and PROFILE_URL
# (scripts/load_test.sh's settings) point at them, so a server already on 8080 is never touched.
# Files the blocks write go under target/. Everything started here is stopped on exit.
# VERBOSE=1 prints what every block printed, not only the failing ones'.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

guides=("$@")
[ ${#guides[@]} -gt 0 ] || guides=(docs/deployment.md docs/profiling.md docs/load-testing.md)

work="$(mktemp -d -t conduit-check-guides.XXXXXX)"
server_pid=
nginx_pid=
cleanup() {
    [ -z "$nginx_pid" ] || kill "$nginx_pid" 2>/dev/null || true
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

have() { command -v "$1" >/dev/null 2>&1; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
APP_PORT="$(free_port)"
DEBUG_PORT="$(free_port)"
NGINX_PORT="$(free_port)"
export SERVER_URL="http://127.0.0.1:$APP_PORT" PROFILE_URL="http://127.0.0.1:$DEBUG_PORT"

# --- the server ------------------------------------------------------------------------------
bin="${CARGO_TARGET_DIR:-target}/debug/examples/optimized_server"
[ -x "$bin" ] || cargo build --example optimized_server
ADDR="127.0.0.1:$APP_PORT" PROFILE_ADDR="127.0.0.1:$DEBUG_PORT" \
    DATABASE_PATH="$work/items.sqlite" ITEMS=1000 RUST_LOG=warn \
    "$bin" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
    curl -fs -o /dev/null "$SERVER_URL/health" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "check_guides: the server exited" >&2; exit 1; }
    sleep 0.1
done
curl -fs -o /dev/null "$SERVER_URL/health" || { echo "check_guides: the server did not start" >&2; exit 1; }
echo "optimized_server on $SERVER_URL, debug listener on $PROFILE_URL"

# --- the blocks ------------------------------------------------------------------------------
mkdir -p "$work/blocks"
python3 - "$work/blocks" "${guides[@]}" <<'PY'
import re, sys
out, guides = sys.argv[1], sys.argv[2:]
n = 0
with open(f"{out}/manifest", "w") as manifest:
    for guide in guides:
        lines = open(guide).read().split("\n")
        i = 0
        while i < len(lines):
            m = re.match(r"^```(\S+)(.*)$", lines[i])
            if not m:
                i += 1
                continue
            lang, info, start = m.group(1), m.group(2).split(), i + 1
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            body = "\n".join(lines[i + 1:j]) + "\n"
            i = j + 1
            kind, cond = None, "-"
            for word in info:
                if word == "check":
                    kind = lang
                elif word.startswith("check-if:"):
                    kind, cond = lang, word.split(":", 1)[1]
                elif word.startswith("check:"):
                    kind = word.split(":", 1)[1]
            if kind is None:
                continue
            n += 1
            open(f"{out}/{n:03}", "w").write(body)
            manifest.write(f"{n:03} {kind} {cond} {guide}:{start}\n")
PY

ports() {
    sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$APP_PORT/g" -e "s/localhost:8080/localhost:$APP_PORT/g" \
        -e "s/127\.0\.0\.1:6060/127.0.0.1:$DEBUG_PORT/g" "$1"
}

# Called as `check_nginx file || status=$?`, where `set -e` does not apply: every step says
# `|| return 1` itself.
check_nginx() { # block file -> 0 when nginx loads it and proxies /health and /events
    local d="$work/nginx"
    mkdir -p "$d/logs"
    {
        echo "pid $d/nginx.pid; error_log $d/logs/error.log; worker_processes 1;"
        echo "events { worker_connections 256; }"
        echo "http { access_log off;"
        ports "$1" | sed -e "s/listen 80;/listen 127.0.0.1:$NGINX_PORT;/"
        echo "}"
    } > "$d/nginx.conf"
    nginx -t -q -p "$d" -c "$d/nginx.conf" || return 1
    nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' &
    nginx_pid=$!
    local up=
    for _ in $(seq 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$NGINX_PORT/health" && { up=1; break; }
        sleep 0.1
    done
    [ -n "$up" ] || { cat "$d/logs/error.log" >&2; return 1; }
    [ "$(curl -fsS "http://127.0.0.1:$NGINX_PORT/health")" = ok ] || return 1
    # The hub publishes a tick every second: one must arrive through nginx within 3 s.
    curl -sN --max-time 3 "http://127.0.0.1:$NGINX_PORT/events" > "$d/events.txt" || true
    grep -q '^event: tick' "$d/events.txt" || { echo "no tick through nginx in 3 s:"; cat "$d/events.txt"; return 1; }
    kill "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=
}

passed=0 failed=0 skipped=0
while read -r id kind cond where <&3; do
    file="$work/blocks/$id"
    if [ "$cond" != - ] && ! have "$cond"; then
        echo "SKIP $where ($cond is not installed)"
        skipped=$((skipped + 1))
        continue
    fi
    log="$work/$id.log"
    status=0
    case "$kind" in
        sh | bash)
            ports "$file" > "$file.run"
            timeout 300 bash -euo pipefail "$file.run" < /dev/null > "$log" 2>&1 || status=$? ;;
        nginx)
            if ! have nginx; then echo "SKIP $where (nginx is not installed)"; skipped=$((skipped + 1)); continue; fi
            check_nginx "$file" < /dev/null > "$log" 2>&1 || status=$? ;;
        systemd)
            if ! have systemd-analyze; then echo "SKIP $where (systemd-analyze is not installed)"; skipped=$((skipped + 1)); continue; fi
            unit="$work/conduit-app.service"
            sed -e "s#^ExecStart=/usr/local/bin/conduit-app#ExecStart=$(realpath "$bin")#" "$file" > "$unit"
            systemd-analyze verify "$unit" > "$log" 2>&1 || status=$? ;;
        yaml)
            if ! python3 -c 'import yaml' 2>/dev/null; then echo "SKIP $where (python3 has no yaml module)"; skipped=$((skipped + 1)); continue; fi
            python3 -c 'import sys, yaml; docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]; assert docs, "no document"' \
                "$file" > "$log" 2>&1 || status=$? ;;
        *)
            echo "FAIL $where: unknown check kind '$kind'"; failed=$((failed + 1)); continue ;;
    esac
    if [ "$status" = 0 ]; then
        echo "ok   $where ($kind)"
        [ -z "${VERBOSE:-}" ] || sed 's/^/     | /' "$log"
        passed=$((passed + 1))
    else
        echo "FAIL $where ($kind, exit $status):"
        sed 's/^/     | /' "$log" | tail -40
        failed=$((failed + 1))
    fi
done 3< "$work/blocks/manifest"

echo "guides: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

# Helpers for compare.sh and instr.sh (sourced by them, not run on its own).
#
# Sets: repo (the project root), work (a fresh temporary folder, removed on exit unless
# KEEP_WORK=1), and defines need, free_port, wait_port, write_workload, build_conduit,
# build_peers, build_sws.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
peers_dir=$repo/benches/peers

# One temporary folder per run for the workload files, configs, logs and callgrind output.
# It is world-readable so that nginx's worker (which drops root) can read the workload.
work=$(mktemp -d -t conduit-perf.XXXXXX)
chmod 755 "$work"

# Cleanup: every process started with `started PID` is stopped, then the folder goes.
bg_pids=()
started() { bg_pids+=("$1"); }
cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# need COMMAND APT_PACKAGE: installs the package (as root, with apt-get) when the command is
# missing, or stops with what to install.
apt_updated=0
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing $2 (for $1)..." >&2
        export DEBIAN_FRONTEND=noninteractive
        if [ $apt_updated = 0 ]; then apt-get update -qq >/dev/null 2>&1; apt_updated=1; fi
        apt-get install -y -qq "$2" >/dev/null 2>&1
    fi
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "missing $1: install the package $2 (apt-get install $2)" >&2
    exit 2
}
# cargo itself comes from rustup, as for scripts/test.sh.
command -v cargo >/dev/null 2>&1 || { echo "missing cargo: install Rust (https://rustup.rs)" >&2; exit 2; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on now (and that this run has not
# handed out yet), so several runs and other servers on the machine do not collide.
ports_given=" "
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 30000))
        case "$ports_given" in *" $p "*) continue;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            ports_given+="$p "
            echo "$p"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# wait_port PORT PID [SECONDS]: waits until PORT accepts connections; fails if PID exits first.
wait_port() {
    local i limit=$(( ${3:-30} * 10 ))
    for ((i = 0; i < limit; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# write_workload DIR: the fixed files every server serves (the same bytes on every machine):
#   small.txt (1 KiB text), big.bin (1 MiB pseudo-random, seeded), data.json (a 136 KB JSON array)
write_workload() {
    need python3 python3-minimal
    mkdir -p "$1"
    python3 - "$1" <<'PY'
import json, os, random, sys
root = sys.argv[1]
random.seed(1)
open(os.path.join(root, 'small.txt'), 'w').write(('conduit-static small file ' * 64)[:1024])
open(os.path.join(root, 'big.bin'), 'wb').write(random.randbytes(1 << 20))
items = [{'id': i, 'name': 'item-%d' % i, 'tags': ['a', 'b', 'c'],
          'price': round(random.random() * 100, 2), 'active': i % 2 == 0} for i in range(1500)]
open(os.path.join(root, 'data.json'), 'w').write(json.dumps(items))
PY
    chmod -R a+rX "$1"
}

# target_dir MANIFEST: where cargo puts that workspace's builds (honours CARGO_TARGET_DIR and
# .cargo/config).
target_dir() {
    cargo metadata --format-version 1 --no-deps --manifest-path "$1" 2>/dev/null |
        grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4
}

# build_conduit: sets conduit_bin to the release bench_server (CONDUIT_BIN, when set, is used
# as is: a binary built from another commit, to compare two builds).
build_conduit() {
    if [ -n "${CONDUIT_BIN:-}" ]; then conduit_bin=$CONDUIT_BIN; return 0; fi
    echo "building bench_server (release)..." >&2
    (cd "$repo" && cargo build --release -q --example bench_server) || { echo "bench_server did not build" >&2; return 1; }
    conduit_bin=$(target_dir "$repo/Cargo.toml")/release/examples/bench_server
}

# build_peers: builds the reference servers of benches/peers (the first time takes a few
# minutes: axum, actix-web and their trees with fat LTO) and sets peers_bin to their folder.
build_peers() {
    echo "building the reference servers in benches/peers (release)..." >&2
    (cd "$peers_dir" && cargo build --release --locked -q) || { echo "benches/peers did not build" >&2; return 1; }
    peers_bin=$(target_dir "$peers_dir/Cargo.toml")/release
}

# build_sws: installs static-web-server (once, ~10 minutes on 2 cores) under the peers' target
# folder and sets sws_bin; fails softly.
sws_version=3.0.0-beta.2
build_sws() {
    local root
    root=$(target_dir "$peers_dir/Cargo.toml")/sws-$sws_version
    sws_bin=$root/bin/static-web-server
    [ -x "$sws_bin" ] && return 0
    echo "installing static-web-server $sws_version (once, about 10 minutes)..." >&2
    cargo install -q --locked static-web-server --version "$sws_version" --root "$root" || {
        echo "static-web-server did not install; left out" >&2
        return 1
    }
}

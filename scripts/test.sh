#!/usr/bin/env bash
# The whole check, as CI runs it: tools, formatting, lints, examples, every test, doctests.
#
#   scripts/test.sh
#
# Installs what the tests need when it can (curl and h2load via apt-get when run as root;
# rustfmt and clippy via rustup), then runs, stopping at the first failure:
#   bash -n on every script; scripts/hyper_patch.sh check
#   cargo fmt --all --check
#   promtool check rules / test rules       (docs/alerts.yml, docs/alerts_test.yml)
#   cargo clippy --workspace --all-targets -- -D warnings
#   cargo check over a list of feature combinations (warnings are errors)
#   cargo build --workspace --examples      (tests/basic_server.rs runs the built example)
#   scripts/check_guides.sh                 (the guides' commands, against the built examples)
#   python3 -m venv target/py-venv + pip install websockets schemathesis  (once; conduit-ws's
#                                           Python client, the fuzzer tests/todo_api.rs runs)
#   cargo nextest run --workspace           (or cargo test --workspace --lib --bins --tests)
#   cargo test --workspace --benches        (each criterion bench once, so they cannot rot)
#   cargo test --workspace --doc            (nextest does not run doctests)
#   cargo doc --workspace --no-deps         (with warnings as errors)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

# --- system tools used by the tests: command -> Debian/Ubuntu package ----------------------
declare -A packages=([curl]=curl [h2load]=nghttp2-client)
# headless Chromium drives the live_events page in tests/browser.rs (conduit-stream)
packages[chromium]=chromium
# promtool checks and unit-tests the alerting rules in docs/ (Debian's prometheus package)
packages[promtool]=prometheus
# conduit-redis's tests start their own redis-server (and redis-cli --cluster) on free ports
packages[redis-server]=redis-server
packages[redis-cli]=redis-server
# the guides' load-testing and profiling commands (scripts/check_guides.sh) drive wrk
packages[wrk]=wrk
missing=()
for cmd in "${!packages[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${packages[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        step "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}"
    else
        echo "scripts/test.sh needs these packages: ${missing[*]}" >&2
        echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

# --- rustfmt and clippy ------------------------------------------------------------------------
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
        step "rustup component add rustfmt clippy"
        rustup component add rustfmt clippy
    else
        echo "scripts/test.sh needs rustfmt and clippy (and rustup is not installed)" >&2
        exit 1
    fi
fi

step "bash -n scripts/*.sh scripts/perf/*.sh (the benchmark scripts are not run here: too long)"
for f in scripts/*.sh scripts/perf/*.sh; do bash -n "$f"; done

step "scripts/hyper_patch.sh check (vendor/hyper = the crates.io release + vendor/hyper/conduit.patch)"
scripts/hyper_patch.sh check

step "cargo fmt --all --check"
cargo fmt --all --check

step "promtool check rules docs/alerts.yml; promtool test rules docs/alerts_test.yml"
promtool check rules docs/alerts.yml
promtool test rules docs/alerts_test.yml

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# Each feature on its own and the usual sets: `default-features = false` must build only what
# is asked for (no rustls without `tls`, no prometheus-client without `metrics`), and every
# combination must build without warnings. `cargo check` of the libraries only: seconds each.
feature_sets=(
    "-p conduit --no-default-features"
    "-p conduit --no-default-features --features server"
    "-p conduit --no-default-features --features server,tls"
    "-p conduit --no-default-features --features middleware"
    "-p conduit --no-default-features --features metrics"
    "-p conduit --no-default-features --features static"
    "-p conduit --no-default-features --features stream"
    "-p conduit --no-default-features --features ws"
    "-p conduit --no-default-features --features ws,stream,metrics"
    "-p conduit --no-default-features --features typed-headers"
    "-p conduit --no-default-features --features api"
    "-p conduit"
    "-p conduit --all-features"
    "-p conduit-server --no-default-features"
    "-p conduit-server --no-default-features --features tls"
    "-p conduit-server --no-default-features --features sqlite"
    "-p conduit-middleware --no-default-features"
    "-p conduit-middleware --no-default-features --features metrics"
    "-p conduit-ws"
    "-p conduit-ws --features hub,metrics"
    "-p conduit --no-default-features --features redis"
    "-p conduit-redis --no-default-features"
)
step "cargo check over ${#feature_sets[@]} feature combinations"
for set in "${feature_sets[@]}"; do
    echo "cargo check $set"
    # shellcheck disable=SC2086 # each entry is a list of arguments
    if ! out=$(cargo check --quiet $set 2>&1) || grep -q '^warning' <<<"$out"; then
        printf '%s\n' "$out" >&2
        echo "feature combination failed: cargo check $set" >&2
        exit 1
    fi
done
# What the features leave out is not in the tree at all.
lean=$(cargo tree -p conduit --no-default-features --features server,middleware,stream,static \
    -e normal --prefix none)
if grep -E '^(prometheus-client|rustls|ring) ' <<<"$lean"; then
    echo "the crates above must not be in the tree without the metrics and tls features" >&2
    exit 1
fi

step "cargo build --workspace --examples"
cargo build --workspace --examples

step "scripts/check_guides.sh (the guides' commands, against the optimized_server example)"
scripts/check_guides.sh

# conduit-ws/tests/python.rs drives the server with Python's `websockets` client, and
# tests/todo_api.rs runs schemathesis against the todo_api example's OpenAPI document, both
# from a virtual environment kept in the target directory (created once; later runs only
# check it).
py_venv="${CARGO_TARGET_DIR:-target}/py-venv"
if ! "$py_venv/bin/python" -c 'import websockets, schemathesis' >/dev/null 2>&1; then
    step "python3 -m venv $py_venv; pip install websockets schemathesis"
    rm -rf "$py_venv"
    if ! python3 -m venv "$py_venv"; then
        # Debian splits venv (with ensurepip) out of python3.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            rm -rf "$py_venv"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
            python3 -m venv "$py_venv"
        else
            echo "scripts/test.sh needs python3's venv: sudo apt-get install -y python3-venv" >&2
            exit 1
        fi
    fi
    "$py_venv/bin/pip" install --quiet --disable-pip-version-check websockets "schemathesis>=4.32,<5"
fi
CONDUIT_WS_PYTHON="$(cd "$py_venv" && pwd)/bin/python"
CONDUIT_SCHEMATHESIS="$(cd "$py_venv" && pwd)/bin/schemathesis"
export CONDUIT_WS_PYTHON CONDUIT_SCHEMATHESIS

if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --workspace"
    cargo nextest run --workspace
else
    step "cargo test --workspace (cargo-nextest not installed)"
    cargo test --workspace --lib --bins --tests
fi

step "cargo test --workspace --benches (criterion's test mode: each bench runs once, debug build)"
cargo test --workspace --benches

# conduit-static's path-resolver fuzz target needs nightly (cargo-fuzz); on stable the same
# property runs, bounded by iteration count, as conduit-static/tests/fuzz_resolver.rs above.
if cargo +nightly fuzz --version >/dev/null 2>&1; then
    step "cargo +nightly fuzz run resolve_path (conduit-static, 100000 runs)"
    (cd conduit-static && cargo +nightly fuzz run resolve_path -- -runs=100000)
fi

step "cargo test --workspace --doc"
cargo test --workspace --doc

step "cargo doc --workspace --no-deps (warnings are errors: broken links, missing docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "all checks passed"

#!/usr/bin/env bash
# The whole check, as CI runs it: tools, formatting, lints, examples, every test, doctests.
#
#   scripts/test.sh
#
# Installs what the tests need when it can (curl and h2load via apt-get when run as root;
# rustfmt and clippy via rustup), then runs, stopping at the first failure:
#   bash -n on every script; scripts/hyper_patch.sh check
#   cargo fmt --all --check
#   cargo clippy --workspace --all-targets -- -D warnings
#   cargo build --workspace --examples      (tests/basic_server.rs runs the built example)
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

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build --workspace --examples"
cargo build --workspace --examples

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

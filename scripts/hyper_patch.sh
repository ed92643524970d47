#!/usr/bin/env bash
# vendor/hyper against the hyper release it patches, as published on crates.io:
#
#   scripts/hyper_patch.sh check   # vendor/hyper == pristine release + vendor/hyper/conduit.patch
#   scripts/hyper_patch.sh diff    # rewrites vendor/hyper/conduit.patch from vendor/hyper's sources
#
# The pristine release is downloaded by cargo (`cargo fetch` of a throw-away package that
# depends on exactly that version; cargo checks the crate's SHA-256 against the registry
# index) into a temporary folder. See vendor/hyper/CONDUIT_PATCH.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=${1:-check}
case $mode in check|diff) ;; *) sed -n 2,9p "$0"; exit 2;; esac

version=$(awk -F'"' '/^version = / {print $2; exit}' vendor/hyper/Cargo.toml)
tmp=$(mktemp -d -t conduit-hyper.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# A throw-away package with its own CARGO_HOME, so the .crate is found where we put it.
mkdir -p "$tmp/fetch/src" "$tmp/home"
touch "$tmp/fetch/src/lib.rs"
cat >"$tmp/fetch/Cargo.toml" <<EOF
[package]
name = "fetch-hyper"
version = "0.0.0"
edition = "2021"
[dependencies]
hyper = { version = "=$version", default-features = false }
[workspace]
EOF
[ -f "${CARGO_HOME:-$HOME/.cargo}/config.toml" ] && cp "${CARGO_HOME:-$HOME/.cargo}/config.toml" "$tmp/home/"
CARGO_HOME=$tmp/home cargo fetch -q --manifest-path "$tmp/fetch/Cargo.toml"
crate=$(ls "$tmp"/home/registry/cache/*/hyper-"$version".crate)
echo "pristine: hyper-$version.crate, sha256 $(sha256sum "$crate" | cut -d' ' -f1)"
mkdir "$tmp/pristine"
tar xzf "$crate" -C "$tmp/pristine"
pristine=$tmp/pristine/hyper-$version

# Every file of the release that vendor/hyper changed, as a patch for `patch -p1` (or
# `git apply`) inside the release or hyper's repository at the release's tag.
make_patch() {
    local f status=0
    (cd "$pristine" && find . -type f | sort) | while read -r f; do
        f=${f#./}
        diff -u --label "a/$f" --label "b/$f" "$pristine/$f" "vendor/hyper/$f" || status=$?
        [ "$status" -le 1 ] || exit 2
    done
}

case $mode in
    diff)
        make_patch >vendor/hyper/conduit.patch
        echo "wrote vendor/hyper/conduit.patch ($(grep -c '^+++ ' vendor/hyper/conduit.patch) files, $(wc -l <vendor/hyper/conduit.patch) lines)"
        ;;
    check)
        cp -r "$pristine" "$tmp/patched"
        (cd "$tmp/patched" && git apply -p1) <vendor/hyper/conduit.patch
        # vendor/hyper holds the release's files, the patch applied, plus these two
        if diff -r -x CONDUIT_PATCH.md -x conduit.patch "$tmp/patched" vendor/hyper; then
            echo "ok: vendor/hyper is hyper $version from crates.io with vendor/hyper/conduit.patch applied"
        else
            echo "vendor/hyper differs from hyper $version + conduit.patch (see above)" >&2
            exit 1
        fi
        ;;
esac

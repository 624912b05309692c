#!/usr/bin/env bash
# Builds every Rust guard under guards/*/ for wasm32-wasip1 in release mode
# and prints the path of each produced .wasm file, one per line, on stdout
# (cargo's progress goes to stderr). Idempotent: cargo rebuilds only what
# changed. Installs the wasm32-wasip1 target with rustup when it is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="wasm32-wasip1"

if ! rustc --print target-libdir --target "$target" >/dev/null 2>&1 \
    || [ ! -d "$(rustc --print target-libdir --target "$target")" ]; then
    echo "installing the $target target" >&2
    rustup target add "$target" >&2
fi

shopt -s nullglob
found=0
for manifest in "$root"/guards/*/Cargo.toml; do
    dir="$(dirname "$manifest")"
    found=1
    cargo build --quiet --manifest-path "$manifest" --target "$target" --release >&2
    # The cdylib's file name is the package name with '-' replaced by '_'.
    name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n 1)"
    wasm="$dir/target/$target/release/${name//-/_}.wasm"
    if [ ! -f "$wasm" ]; then
        echo "error: $manifest built no $wasm" >&2
        exit 1
    fi
    echo "$wasm"
done

if [ "$found" -eq 0 ]; then
    echo "error: no guards found under $root/guards" >&2
    exit 1
fi

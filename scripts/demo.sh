#!/usr/bin/env bash
# Runs the gateway on its default set-up: examples/guardway.toml, with the demo
# GitHub-shaped backend behind the sample guard. Extra arguments are passed to
# `guardway serve` (for example `--listen 127.0.0.1:8000` or `--unified`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-guards.sh >/dev/null
cargo build --release --quiet -p guardway -p guardway-demo
export GUARDWAY_BIN_DIR="$PWD/target/release"
exec target/release/guardway serve --config examples/guardway.toml "$@"

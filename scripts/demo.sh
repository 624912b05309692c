#!/usr/bin/env bash
# Runs the gateway on its default set-up: examples/guardway.toml, with the demo
# GitHub-shaped backend behind the sample guard, listening on 127.0.0.1:3000.
# Extra arguments are passed to `guardway serve` (for example
# `--listen 127.0.0.1:8000` or `--unified`).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "building the sample guard and the gateway (first run: a few minutes)..." >&2
scripts/build-guards.sh >/dev/null
cargo build --quiet -p guardway -p guardway-demo
exec target/debug/guardway serve --config examples/guardway.toml "$@"

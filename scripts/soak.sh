#!/usr/bin/env bash
# Runs the soak test: concurrent agent sessions through a guarded gateway to
# real stdio backends while backends are killed, clients disconnect mid-call
# and guards trap or loop; it checks answers, denials, filtering, child
# processes, file descriptors and resident memory, and prints the figures
# (docs/reliability.md, "Soak test").
#
#   SOAK_AGENTS=20   concurrent agents
#   SOAK_OPS=60      operations per agent
#   SOAK_SEED=N      seed of the operation and fault choices
#   RUST_LOG         gateway logs on the test output (default: off; the
#                    expected guard failures alone log about 90 errors)
#
# Debug build: about 1.5 minutes on 2 busy cores.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUST_LOG="${RUST_LOG:-off}"
cargo test -p guardway-gateway --test gateway soak -- --ignored --nocapture

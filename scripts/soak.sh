#!/usr/bin/env bash
# Runs the soak test: concurrent agent sessions through a guarded gateway to
# real stdio backends and a real streamable-HTTP backend while stdio backends
# are killed, the HTTP backend is killed and restarted on its port, clients
# disconnect mid-call, guards trap or loop (always, or only on poisoned
# calls among good ones on one server, up to quarantine) and agents leave
# sessions to the session timeout; it checks answers, denials, filtering,
# quarantine, reconnection, session expiry, child processes, file
# descriptors and resident memory, and prints the figures
# (docs/reliability.md, "Soak test").
#
#   SOAK_AGENTS=20   concurrent agents
#   SOAK_OPS=60      operations per agent
#   SOAK_SEED=N      seed of the operation and fault choices
#   RUST_LOG         gateway logs on the test output (default: off; the
#                    expected guard faults and quarantines log many errors)
#
# Builds the guards (scripts/build-guards.sh) when the fault guard is
# missing. Debug build: about 1.2 minutes on 2 busy cores.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUST_LOG="${RUST_LOG:-off}"
cargo test -p guardway-gateway --test gateway soak -- --ignored --nocapture

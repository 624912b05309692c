#!/usr/bin/env bash
# Runs the official MCP conformance suite (npm @modelcontextprotocol/conformance,
# pinned in tests/node/package.json; server mode, --suite all) against the
# conformance backend (tests/python/backends/conformance_server.py) directly,
# then through the real guardway binary in routed mode
# (tests/conformance/guardway.toml), RUNS times in a row. Prints each run's
# score and exits non-zero unless every run passed every scenario.
#
# The suite is pinned at 0.1.13: its 32 server scenarios and their checks are
# those of the newest release (0.1.16), which needs Node.js 22 (it imports
# fs.globSync) where the test machines have Node.js 20. The suite tests a
# streamable-HTTP URL on a loopback name (its DNS-rebinding scenario needs
# one), opens a new MCP session per scenario and runs them one at a time;
# through guardway it sends the agent key via tests/node/conformance-auth.mjs.
#
# usage: scripts/conformance.sh [--runs N] [--keep]
#   --runs N  runs through guardway (default 5)
#   --keep    keep the results, the backend's and the gateway's logs
# Environment: GUARDWAY_BIN (a built guardway binary; default: cargo build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

runs=5
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "usage: scripts/conformance.sh [--runs N] [--keep]" >&2; exit 2 ;;
    esac
done

# Server scenarios of the pinned suite with --suite all.
expected=32
agent_key="conformance-agent"
suite="$root/tests/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
python="$root/.venv/bin/python"
if ! command -v node >/dev/null 2>&1; then
    echo "conformance: node not found (the suite needs Node.js 20.18.1 or later)" >&2
    exit 1
fi
if [ ! -f "$suite" ] || [ ! -x "$python" ]; then
    scripts/setup-test-env.sh
fi
if [ -z "${GUARDWAY_BIN:-}" ]; then
    cargo build --quiet -p guardway
    GUARDWAY_BIN="$root/target/debug/guardway"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/guardway-conformance.XXXXXX")"
backend_pid=""
gateway_pid=""
cleanup() {
    for pid in $gateway_pid $backend_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$keep" = 1 ]; then
        echo "conformance results and logs kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# Waits up to 60 s for file $1 to hold what python expression $2 (on the
# file's text `t`) extracts, and prints it.
wait_for() {
    local file="$1" expression="$2" value
    for _ in $(seq 600); do
        value="$("$python" -c "import json, re, sys
t = open(sys.argv[1]).read()
try:
    print($expression)
except Exception:
    pass" "$file")"
        if [ -n "$value" ]; then
            echo "$value"
            return 0
        fi
        sleep 0.1
    done
    echo "timed out waiting for $file" >&2
    return 1
}

# Runs the suite once against URL $1; results in $work/$2; score labelled $3.
run_suite() {
    local url="$1" results="$work/$2" label="$3"
    shift 3
    mkdir -p "$results"
    if ! timeout 600 node "$@" "$suite" server --url "$url" --suite all -o "$results" \
        >"$results.log" 2>&1; then
        echo "  (the suite exited non-zero; its output: $results.log)"
    fi
    "$python" tests/conformance/score.py "$results" "$expected" "$label" "$work/tally"
}

"$python" tests/python/backends/conformance_server.py streamable-http --port 0 \
    >"$work/backend.out" 2>"$work/backend.log" &
backend_pid=$!
backend_port="$(wait_for "$work/backend.out" "re.search(r'PORT (\d+)', t).group(1)")"
backend_url="http://127.0.0.1:$backend_port/mcp"

failures=0
score() {
    "$@" || failures=$((failures + 1))
}

echo "== conformance: the backend directly ($backend_url)"
score run_suite "$backend_url" direct "direct"

CONFORMANCE_BACKEND_URL="$backend_url" "$GUARDWAY_BIN" --config tests/conformance/guardway.toml \
    --routed --listen 127.0.0.1:0 --log-dir "$work/gateway-logs" \
    >"$work/gateway.out" 2>"$work/gateway.log" &
gateway_pid=$!
gateway_url="$(wait_for "$work/gateway.out" "json.loads(t)['mcpServers']['conformance']['url']")"
# The suite has no option for headers: a preload adds the agent key.
export CONFORMANCE_AUTHORIZATION="$agent_key"
CONFORMANCE_ORIGIN="$(echo "$gateway_url" | sed -E 's#^(https?://[^/]+).*#\1#')"
export CONFORMANCE_ORIGIN

echo "== conformance: through guardway, routed ($gateway_url), $runs runs"
for run in $(seq "$runs"); do
    score run_suite "$gateway_url" "guardway-$run" "guardway run $run" \
        --import "$root/tests/node/conformance-auth.mjs"
done

if [ "$failures" -ne 0 ] && [ "$keep" = 0 ]; then
    echo "== gateway warnings and errors (last 40)"
    grep -E " (WARN|ERROR) " "$work/gateway.log" | tail -n 40 || true
fi
# One line a test log reader understands: scenarios over all runs.
awk '{ passed += $1; failed += $2 } END { printf "conformance: %d passed, %d failed\n", passed, failed }' \
    "$work/tally"
[ "$failures" -eq 0 ]

#!/usr/bin/env bash
# Prepares the peers the gateway integration tests run against:
#   .venv/                 Python with the MCP SDK 1.x and pytest (tests/python/requirements.txt)
#   .venv-mcp2/            Python with the MCP SDK 2.x (tests/python/requirements-mcp2.txt), the
#                          second client the tests run their Python agents with
#   tests/node/node_modules  @modelcontextprotocol/server-everything and the MCP
#                            conformance suite (tests/node/package-lock.json)
# Idempotent; run from anywhere.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r tests/python/requirements.txt
if [ ! -x .venv-mcp2/bin/python ]; then
  "$python" -m venv .venv-mcp2
fi
.venv-mcp2/bin/python -m pip install --quiet --upgrade pip
.venv-mcp2/bin/python -m pip install --quiet -r tests/python/requirements-mcp2.txt

if command -v npm >/dev/null 2>&1; then
  (cd tests/node && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi)
  # The conformance suite's HTTP client (undici 7) needs Node.js 20.18.1 or later.
  if ! node -e 'const [a, b, c] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && (b > 18 || (b === 18 && c >= 1))) ? 0 : 1)'; then
    echo "Node.js $(node --version) is too old: the tests need Node.js 20.18.1 or later" >&2
  fi
else
  echo "npm not found: the server-everything and conformance tests will fail until Node.js 20.18.1+ and npm are installed" >&2
fi
echo "test environment ready: $root/.venv, $root/.venv-mcp2, $root/tests/node/node_modules"

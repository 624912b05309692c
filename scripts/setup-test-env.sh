#!/usr/bin/env bash
# Prepares the peers the gateway integration tests run against:
#   .venv/                 Python with the MCP SDK 1.x and pytest (tests/python/requirements.txt)
#   .venv-mcp2/            Python with the MCP SDK 2.x (tests/python/requirements-mcp2.txt), the
#                          second client the tests run their Python agents with
#   tests/node/node_modules  @modelcontextprotocol/server-everything (tests/node/package-lock.json)
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
else
  echo "npm not found: the server-everything tests will fail until Node.js and npm are installed" >&2
fi
echo "test environment ready: $root/.venv, $root/.venv-mcp2, $root/tests/node/node_modules"

"""The official Python MCP SDK as an agent of a gateway whose `github`
server's policy limits `issue_read` to two calls per session (started by
crates/guardway-gateway/tests/gateway/guarded.rs): the third call of a session is
refused with the limit's text; a new session starts from zero; other tools
are not limited. Prints one JSON line with what it saw."""

import json
import os
import sys

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError

URL = os.environ["GUARDED_URL"]
KEY = os.environ["GATEWAY_API_KEY"]
READ = {"method": "get", "owner": "octo-org", "repo": "api",
        "issue_number": int(os.environ["APPROVED_ISSUE"])}
LIST = {"owner": "octo-org", "repo": "api", "perPage": 5}


async def outcome(session, tool, args):
    try:
        result = await session.call_tool(tool, args)
        return "error result" if result.isError else "ok"
    except McpError as err:
        return f"{err.error.code}: {err.error.message}"


async def one_session():
    headers = {"Authorization": KEY, "X-Agent-Id": "agent-limits"}
    async with streamablehttp_client(f"{URL}/mcp/github", headers=headers) as (r, w, _):
        async with ClientSession(r, w) as session:
            await session.initialize()
            seen = [await outcome(session, "issue_read", READ) for _ in range(3)]
            seen.append(await outcome(session, "list_issues", LIST))
            seen.append(await outcome(session, "issue_read", READ))
            return seen


async def main():
    first = await one_session()
    second = await one_session()
    print(json.dumps({"first": first, "second": second}))


if __name__ == "__main__":
    anyio.run(main)
    sys.exit(0)

"""Concurrent agents through a gateway, with the official MCP Python SDK (1.x).

    concurrent_agents.py URL KEY SESSIONS CALLS

Opens SESSIONS sessions at once on URL (`Authorization: KEY`), makes CALLS
guarded `list_issues` calls on octo-org/api in each, closes each session
(DELETE), and prints one JSON line: sessions, calls answered, error answers,
and how many answers carried the guard's `[Filtered]` notice.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


async def agent(url: str, key: str, calls: int) -> dict:
    tally = {"answered": 0, "errors": 0, "filtered": 0}
    async with streamablehttp_client(url, headers={"Authorization": key}) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for _ in range(calls):
                result = await session.call_tool(
                    "list_issues", {"owner": "octo-org", "repo": "api", "perPage": 30}
                )
                tally["answered"] += 1
                if result.isError:
                    tally["errors"] += 1
                text = "".join(getattr(c, "text", "") for c in result.content)
                if "[Filtered]" in text:
                    tally["filtered"] += 1
    return tally


async def main() -> None:
    url, key, sessions, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    tallies = await asyncio.gather(*(agent(url, key, calls) for _ in range(sessions)))
    total = {"sessions": sessions}
    for name in ("answered", "errors", "filtered"):
        total[name] = sum(t[name] for t in tallies)
    print(json.dumps(total), flush=True)


asyncio.run(main())

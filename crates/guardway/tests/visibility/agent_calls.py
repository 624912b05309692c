"""An agent for the repository-visibility tests: the official Python MCP SDK
makes the given tool calls in order, one session each, against a running
guardway.

Environment: MCP_KEY (the `Authorization` value), MCP_AGENT (sent as
`X-Agent-ID`), MCP_CALLS (a JSON array of {"url", "tool", "args"}). Prints
one JSON array on stdout, one entry per call: {"ok": true, "texts": [...],
"isError": bool} for a result, or {"ok": false, "code": n, "message": "..."}
for a JSON-RPC error (a DIFC denial is one).
"""

import json
import os

import anyio
import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError


async def call(http: httpx.AsyncClient, url: str, tool: str, args: dict) -> dict:
    async with streamable_http_client(url, http_client=http) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            try:
                result = await session.call_tool(tool, args)
            except McpError as error:
                return {"ok": False, "code": error.error.code, "message": error.error.message}
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    return {"ok": True, "texts": texts, "isError": bool(result.isError)}


async def main() -> None:
    headers = {"Authorization": os.environ["MCP_KEY"], "X-Agent-ID": os.environ["MCP_AGENT"]}
    outcomes = []
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=120)) as http:
        for entry in json.loads(os.environ["MCP_CALLS"]):
            outcomes.append(await call(http, entry["url"], entry["tool"], entry.get("args", {})))
    print(json.dumps(outcomes))


anyio.run(main)

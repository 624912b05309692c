"""One agent session with the official Python MCP SDK, 1.x or 2.x: connect,
list tools, call one tool, end the session (DELETE). Run by the Rust
integration tests of the gateway's HTTP surface, with the interpreter of
either test environment (`.venv`: mcp 1.x, `.venv-mcp2`: mcp 2.x).

Environment: MCP_URL, MCP_HEADERS (JSON object), MCP_TOOL, MCP_ARGS (JSON),
optional MCP_CA_FILE (trusted CA for https). Prints one JSON line with the
SDK's major version, the tool names, the result's text items and isError;
SDK warnings (such as a failed session termination) go to stderr.
"""

import json
import os
import ssl
from importlib.metadata import version

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

try:  # mcp 2.x: its HTTP client is httpx2
    import httpx2 as httpx
except ImportError:  # mcp 1.x
    import httpx


async def main() -> None:
    headers = json.loads(os.environ.get("MCP_HEADERS", "{}"))
    ca_file = os.environ.get("MCP_CA_FILE")
    verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
    async with httpx.AsyncClient(headers=headers, verify=verify, timeout=httpx.Timeout(30, read=300)) as http:
        async with streamable_http_client(os.environ["MCP_URL"], http_client=http) as (r, w, *_):
            async with ClientSession(r, w) as session:
                await session.initialize()
                tools = await session.list_tools()
                result = await session.call_tool(os.environ["MCP_TOOL"], json.loads(os.environ.get("MCP_ARGS", "{}")))
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    is_error = getattr(result, "is_error", None)  # 2.x field name
    if is_error is None:
        is_error = result.isError
    print(json.dumps({
        "sdk": int(version("mcp").split(".")[0]),
        "tools": [t.name for t in tools.tools],
        "texts": texts,
        "isError": is_error,
    }))


anyio.run(main)

"""A plain JSON-RPC-over-POST MCP backend for the gateway tests: no SSE and
no streamable-HTTP negotiation; each POST carries one JSON-RPC message and
a request's response is the response body (content type
`application/json-rpc`, as older JSON-RPC servers send). Messages are built
with the `mcp` package's types.

usage: json_post_server.py NAME [--issue-session]

Binds 127.0.0.1 on a free port and prints `PORT <n>` once listening.
Every POST after `initialize` must carry `Mcp-Session-Id`: with
--issue-session the id this server returned to `initialize` (an unknown id
gets HTTP 404 "Session not found"), else the client's own id, which must
stay the same. Tools: echo, add, stats (initialize/ping counts),
forget_sessions (drops all sessions, as a restarted server would),
authorization (the Authorization header of that call)."""

import argparse
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mcp import types
from mcp.shared.version import LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS

parser = argparse.ArgumentParser()
parser.add_argument("name")
parser.add_argument("--issue-session", action="store_true")
args = parser.parse_args()

NAME = args.name
lock = threading.Lock()
state = {"initializes": 0, "pings": 0, "sessions": set(), "client_session": None}
# The Authorization header of the request being handled, per thread.
local = threading.local()

TOOLS = [
    types.Tool(
        name="echo",
        description="Echo the text back, tagged with the server name.",
        inputSchema={
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    ),
    types.Tool(
        name="add",
        description="Add two integers.",
        inputSchema={
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    ),
    types.Tool(
        name="stats",
        description="Counts of initialize and ping requests.",
        inputSchema={"type": "object", "properties": {}},
    ),
    types.Tool(
        name="authorization",
        description="The Authorization header this call carried.",
        inputSchema={"type": "object", "properties": {}},
    ),
    types.Tool(
        name="forget_sessions",
        description="Forget every session, as a restarted server would.",
        inputSchema={"type": "object", "properties": {}},
    ),
]


def dump(model) -> dict:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def text_result(text: str, is_error: bool = False) -> dict:
    return dump(types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], isError=is_error
    ))


def call_tool(params: dict) -> dict:
    name = params.get("name")
    arguments = params.get("arguments") or {}
    if name == "echo":
        return text_result(f"{NAME}: {arguments.get('text', '')}")
    if name == "add":
        return text_result(str(int(arguments["a"]) + int(arguments["b"])))
    if name == "stats":
        with lock:
            return text_result(f"initializes={state['initializes']} pings={state['pings']}")
    if name == "authorization":
        return text_result(getattr(local, "authorization", None) or "(none)")
    if name == "forget_sessions":
        with lock:
            state["sessions"].clear()
        return text_result("forgotten")
    return text_result(f"unknown tool {name}", is_error=True)


def error(request_id, code: int, message: str) -> dict:
    return dump(types.JSONRPCError(
        jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message)
    ))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *a):  # noqa: A002 - the base class's name
        pass  # one line per request would drown the test output

    def reply(self, status: int, body: dict | None, headers: dict | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json-rpc")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self.reply(405, None)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        try:
            message = json.loads(self.rfile.read(length))
        except ValueError:
            self.reply(400, error(None, -32700, "Parse error"))
            return
        method = message.get("method")
        request_id = message.get("id")
        session = self.headers.get("Mcp-Session-Id")
        local.authorization = self.headers.get("Authorization")
        if method == "initialize":
            with lock:
                state["initializes"] += 1
            requested = (message.get("params") or {}).get("protocolVersion")
            version = (
                requested if requested in SUPPORTED_PROTOCOL_VERSIONS else LATEST_PROTOCOL_VERSION
            )
            result = dump(types.InitializeResult(
                protocolVersion=version,
                capabilities=types.ServerCapabilities(tools=types.ToolsCapability()),
                serverInfo=types.Implementation(name=NAME, version="1.0.0"),
            ))
            headers = {}
            if args.issue_session:
                issued = uuid.uuid4().hex
                with lock:
                    state["sessions"].add(issued)
                headers["Mcp-Session-Id"] = issued
            self.reply(200, {"jsonrpc": "2.0", "id": request_id, "result": result}, headers)
            return
        if not session:
            self.reply(400, error(request_id, -32600, "Mcp-Session-Id header required"))
            return
        with lock:
            if args.issue_session:
                known = session in state["sessions"]
            else:
                if state["client_session"] is None:
                    state["client_session"] = session
                known = state["client_session"] == session
        if not known:
            status = 404 if args.issue_session else 400
            self.reply(status, error(request_id, -32001, "Session not found"))
            return
        if request_id is None:
            # A notification (or a response): nothing to answer.
            self.reply(202, None)
            return
        if method == "ping":
            with lock:
                state["pings"] += 1
            self.reply(200, {"jsonrpc": "2.0", "id": request_id, "result": {}})
        elif method == "tools/list":
            result = dump(types.ListToolsResult(tools=TOOLS))
            self.reply(200, {"jsonrpc": "2.0", "id": request_id, "result": result})
        elif method == "tools/call":
            result = call_tool(message.get("params") or {})
            self.reply(200, {"jsonrpc": "2.0", "id": request_id, "result": result})
        else:
            self.reply(200, error(request_id, -32601, f"Method not found: {method}"))


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""A stdio MCP server written directly on newline-delimited JSON-RPC (no
SDK), so that tests can make it send exactly what they need around a
tools/call: its own request to the client, stray lines, progress, and
answers a well-behaved server would not send.

Tools:
- request_info: answers with the call's request id and progress token.
- no_result: answers with neither `result` nor `error`.
- ping_first: pings the client and waits for its answer before answering.
- chatter: writes a line that is not JSON, a log message, the call's
  progress and a list-changed notification, then answers (with a UTF-8
  byte-order mark before it).

With --ignore-eof the process keeps running after its stdin closes, until
SIGTERM, which it records in $TERM_MARK before exiting.
"""

import json
import os
import signal
import sys
import time

TOOLS = ["request_info", "no_result", "ping_first", "chatter"]
pending_lines = []


def send(message, prefix=""):
    sys.stdout.write(prefix + json.dumps(message) + "\n")
    sys.stdout.flush()


def read_message():
    if pending_lines:
        return pending_lines.pop(0)
    line = sys.stdin.readline()
    if not line:
        return None
    return json.loads(line)


def text_result(request_id, text):
    send({"jsonrpc": "2.0", "id": request_id,
          "result": {"content": [{"type": "text", "text": text}], "isError": False}})


def call_tool(request):
    request_id = request["id"]
    params = request.get("params", {})
    name = params.get("name")
    token = params.get("_meta", {}).get("progressToken")
    if name == "request_info":
        text_result(request_id, json.dumps({"id": request_id, "progressToken": token}))
    elif name == "no_result":
        send({"jsonrpc": "2.0", "id": request_id})
    elif name == "ping_first":
        send({"jsonrpc": "2.0", "id": "server-ping-1", "method": "ping"})
        while True:
            message = read_message()
            if message is None:
                return
            if message.get("id") == "server-ping-1" and "method" not in message:
                break
            pending_lines.append(message)
        answered = "result" in message
        text_result(request_id, "ping answered" if answered else "ping refused")
    elif name == "chatter":
        sys.stdout.write("this line is not JSON\n")
        send({"jsonrpc": "2.0", "method": "notifications/message",
              "params": {"level": "info", "data": "chatter"}})
        if token is not None:
            for step in (1, 2, 3):
                send({"jsonrpc": "2.0", "method": "notifications/progress",
                      "params": {"progressToken": token, "progress": step, "total": 3}})
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        send({"jsonrpc": "2.0", "id": request_id,
              "result": {"content": [{"type": "text", "text": "chattered"}]}},
             prefix="\ufeff")
    else:
        send({"jsonrpc": "2.0", "id": request_id,
              "error": {"code": -32602, "message": f"unknown tool {name}"}})


def serve():
    while True:
        message = read_message()
        if message is None:
            return
        method = message.get("method")
        if "id" not in message or method is None:
            continue
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": message["id"], "result": {
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {"listChanged": True}},
                "serverInfo": {"name": "raw", "version": "1"}}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": message["id"], "result": {"tools": [
                {"name": name, "description": name,
                 "inputSchema": {"type": "object", "properties": {}}}
                for name in TOOLS]}})
        elif method == "tools/call":
            call_tool(message)
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": message["id"], "result": {}})
        else:
            send({"jsonrpc": "2.0", "id": message["id"],
                  "error": {"code": -32601, "message": "method not found"}})


def on_sigterm(_signum, _frame):
    mark = os.environ.get("TERM_MARK")
    if mark:
        with open(mark, "w") as f:
            f.write("terminated")
    os._exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    serve()
    if "--ignore-eof" in sys.argv:
        while True:
            time.sleep(1)

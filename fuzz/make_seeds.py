#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/seeds/<target>/ from the
repository's own fixtures: the example configuration and configuration
shapes of the tests, the sample guard's case files (policies, guard outputs,
tool results), and small scripts for the scripted guard and the cache
reader. Run from anywhere; rewrites the seeds deterministically."""

import hashlib
import json
import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
SEEDS = FUZZ / "seeds"
SEP = b"\xff"


def write(target, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    (folder / name).write_bytes(data)


def config_seeds():
    example = (ROOT / "examples" / "guardway.toml").read_bytes()
    write("config", b"\x00" + example)
    toml_docs = [
        """guards_mode = "strict"
sequential_launch = true
[gateway]
port = 8080
api_key = "${GITHUB_TOKEN}"
domain = "localhost"
startup_timeout = 30
tool_timeout = 120
keepalive_interval = "30s"
payload_dir = "/tmp/payloads"
payload_size_threshold = 1024
trusted_bots = ["dependabot[bot]"]
[gateway.opentelemetry]
endpoint = "https://otel.example/v1/traces"
service_name = "gw"
[servers.github]
type = "stdio"
container = "ghcr.io/github/github-mcp-server:v1"
env = { GITHUB_TOKEN = "${GITHUB_TOKEN}", EMPTY = "" }
mounts = ["/src:/dst:ro"]
entrypoint_args = ["stdio"]
tools = ["list_issues", "issue_read"]
guard = "gh"
[servers.github.guard_policies.allow-only]
repos = ["octo-org/*", "acme/api"]
min-integrity = "approved"
[servers.web]
type = "http"
url = "https://mcp.example/mcp"
headers = { Authorization = "Bearer x" }
tool_timeout = 5
rate_limit_threshold = 3
rate_limit_cooldown = 60
[servers.web.auth]
type = "github-oidc"
audience = "api://mcp"
[servers.web.tool_response_filters]
list_items = ".items | map(.name)"
[guards.gh]
type = "wasm"
path = "guards/gh.wasm"
""",
        """[servers.local]
command = "python3"
args = ["server.py", "--port", "${PORT}"]
working_directory = "/srv"
[servers.local.guard_policies.write-sink]
accept = ["private:octo-org/*"]
""",
        "[gateway]\nport = 0\n[servers]\n",
        'guards_mode = "loud"\n[servers.a]\ntype = "http"\nurl = "ftp://x"\n',
    ]
    for doc in toml_docs:
        write("config", b"\x00" + doc.encode())
    json_docs = [
        {
            "gateway": {"port": 8080, "domain": "localhost", "agentId": "key",
                        "startupTimeout": 30, "toolTimeout": 60,
                        "payloadSizeThreshold": 2048, "trustedBots": ["bot"],
                        "opentelemetry": {"endpoint": "https://otel", "traceId": "0" * 32}},
            "mcpServers": {
                "github": {"type": "stdio", "container": "ghcr.io/github/github-mcp-server",
                           "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_TOKEN}"},
                           "entrypointArgs": ["stdio"], "mounts": ["/a:/b:rw"],
                           "guard-policies": {"allow-only": {"repos": "public", "min-integrity": "none"}}},
                "remote": {"type": "http", "url": "https://mcp.example/mcp",
                           "headers": {"X-Key": "v"}, "tools": ["*"],
                           "auth": {"type": "github-oidc", "audience": "a"}},
                "custom": {"type": "acme", "url": "https://x"},
            },
            "customSchemas": {"acme": "https://schemas.example/acme.json"},
            "guards": {"gh": {"type": "wasm", "path": "/g.wasm", "policy": {"allow-only": {"repos": "all", "min-integrity": "none"}}}},
        },
        {"gateway": {"port": "80"}, "mcpServers": {"x": {"type": "stdio"}}},
        {"mcpServers": {}},
        [],
    ]
    for doc in json_docs:
        write("config", b"\x01" + json.dumps(doc).encode())
    write("config", b"\x02" + b"# comment\nexport A=1\nB=\"${A}x\"\nC='$A'\nD=$HOME/bin\n")
    for text in [b"1m30s", b"300ms", b"1.5h", b"0", b"-1s", b"9999999999h"]:
        write("config", b"\x03" + text)
    write("config", b"\x04" + b"${HOME}/x $NOT ${EMPTY}${PORT} ${A:-b} $")
    for text in [b"127.0.0.1:3000", b"[::1]:80", b":8080", b"localhost:99999"]:
        write("config", b"\x05" + text)
    for policy in [
        {"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}},
        {"write-sink": {"accept": ["*"]}},
        {"policy": {"allow-only": {}}},
    ]:
        write("config", b"\x06" + json.dumps(policy).encode())
    write("config", b"\x07" + b" github , web,github,, ")


def difc_seeds():
    cases = sorted((ROOT / "guards" / "sample-guard" / "tests" / "cases").glob("*.json"))
    cases += sorted((ROOT / "guards" / "raw-abi-guard" / "tests" / "cases").glob("*.json"))
    agents, resources, responses = [], [], []
    for path in cases:
        case = json.loads(path.read_text())
        output = case.get("expect", {}).get("output")
        call = case.get("call")
        if call == "label_agent" and output is not None:
            agents.append((case.get("policy"), output))
        elif call == "label_resource" and output is not None:
            resources.append(output)
        elif call == "label_response":
            result = case.get("input", {}).get("tool_result")
            responses.append((output, result))
    default_agent = {"agent": {"secrecy": [], "integrity": []}, "difc_mode": "filter"}
    default_resource = {"resource": {"description": "r", "secrecy": [], "integrity": []},
                        "operation": "read"}
    for index, (output, result) in enumerate(responses):
        policy, agent = agents[index % len(agents)] if agents else (None, default_agent)
        resource = resources[index % len(resources)] if resources else default_resource
        response_bytes = b"" if output is None else json.dumps(output).encode()
        write("difc", bytes([index % 256]) + SEP.join([
            json.dumps(policy).encode(), json.dumps(agent).encode(),
            json.dumps(resource).encode(), response_bytes, json.dumps(result).encode()]))
    for policy, agent in agents:
        write("difc", b"\x00" + SEP.join([json.dumps(policy).encode(), json.dumps(agent).encode(),
                                          json.dumps(default_resource).encode(), b"", b"{}"]))


def record(action, a=0, b=0, c=0, payload=b""):
    return bytes([action]) + struct.pack("<iii", a, b, c) + payload


def chunk(queue, data):
    return bytes([queue]) + struct.pack("<H", len(data)) + data


def guard_abi_seeds():
    agent = b'{"agent":{"secrecy":["private:o"],"integrity":["approved:o/*"]},"difc_mode":"filter"}'
    resource = b'{"resource":{"description":"d","secrecy":[],"integrity":[]},"operation":"read"}'
    labels = b'{"labeled_paths":[{"path":"/0","labels":{"secrecy":["private:o/r"],"integrity":[]}}]}'

    def header(flags=0, initial=64, extra=256, memory=4, failures=3, attempts=2, calls=b"\x00\x01\x02\x03"):
        return (bytes([flags]) + struct.pack("<HH", initial - 1, extra) + bytes([memory, failures, attempts, len(calls) - 1])
                + calls)

    seeds = [
        header() + chunk(0, record(0, c=1, payload=agent)) + chunk(0, record(0, c=1, payload=resource))
        + chunk(0, record(0, c=1, payload=labels)),
        # -2 with a hint, then the answer.
        header(initial=16) + chunk(0, record(0, c=1, payload=agent[:4]))
        + chunk(0, record(0, a=-2, payload=struct.pack("<I", 200)))
        + chunk(0, record(0, c=1, payload=resource)),
        # a length beyond the buffer, a negative code, a trap, a loop.
        header(calls=b"\x00\x00\x00\x00\x00") + chunk(0, record(0, a=1 << 20))
        + chunk(0, record(0, a=-7)) + chunk(0, record(1)) + chunk(0, record(2)),
        # alloc answering a pointer out of memory, 0, then trapping; dealloc trapping.
        header(calls=b"\x00\x01\x00") + chunk(1, bytes([1]) + struct.pack("<i", 0x7FFFFFF0))
        + chunk(1, bytes([3, 0, 0, 0, 0])) + chunk(1, bytes([2, 0, 0, 0, 0])) + chunk(2, bytes([2])),
        # memory growth, a log line with a bad pointer, call_backend with bad pointers.
        header(calls=b"\x00\x00\x00\x06") + chunk(0, record(3, a=1000, b=0))
        + chunk(0, record(4, a=-5, b=3, c=1 << 30, payload=resource))
        + chunk(0, record(5, a=256, b=100000, c=0, payload=b"{}")) + chunk(3, b'{"ok":true}'),
        # no allocator (end-of-memory buffers), cancellation, another policy.
        header(flags=2, calls=b"\x05\x04\x00\x02") + chunk(0, record(0, c=1, payload=agent)),
    ]
    for seed in seeds:
        write("guard_abi", seed)


def disk_cache_seeds():
    write("disk_cache", b"\x00\x00")
    write("disk_cache", b"\x00\x00GWCWASM\x00\x01\x00\x00\x00")
    # The valid artifact at its full length, one byte changed in the header, the body, the checksum.
    for at in [8, 20, 40, 70, 75, 90, 200]:
        write("disk_cache", b"\x01\x00" + struct.pack("<I", 0) + struct.pack("<I", at) + b"\x5a")
    write("disk_cache", b"\x01\x00" + struct.pack("<I", 100))
    write("disk_cache", b"\x01\x01" + struct.pack("<I", 0))
    write("disk_cache", b"\x01\x04")
    write("disk_cache", b"\x01\x08" + struct.pack("<I", 0))
    write("disk_cache", b"\x02\x00GWCWASM\x00\x01\x00\x00\x00")


def http_request(method, path, flags, headers=b"", suffix=b"", body=b""):
    return bytes([method, path, flags]) + headers + SEP + suffix + SEP + body


def http_seeds():
    # Methods: 0 POST, 1 GET, 2 DELETE; paths: 0 /mcp/echo, 3 /mcp,
    # 4 /health, 5 /metrics, 6 /reflect, 7 /close; flags: 0 right key,
    # 1 wrong key, 2 none, +4 the open session, +8 the MCP headers.
    def rpc(method, params=None, id_=1):
        message = {"jsonrpc": "2.0", "method": method}
        if id_ is not None:
            message["id"] = id_
        if params is not None:
            message["params"] = params
        return json.dumps(message).encode()

    init = rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                              "clientInfo": {"name": "seed", "version": "0"}})
    write("http", http_request(0, 0, 8, body=init))
    write("http", http_request(0, 0, 9, body=init))
    write("http", http_request(0, 0, 10, body=b"x" * 300))
    write("http", http_request(0, 0, 12, body=rpc("tools/list")))
    write("http", http_request(0, 0, 12, body=rpc("tools/call", {"name": "echo", "arguments": {"text": "hi"}}, 7)))
    write("http", http_request(0, 0, 12, body=rpc("tools/call", {"name": "add", "arguments": {"a": 1, "b": "x"}}, "s")))
    write("http", http_request(0, 0, 12, body=rpc("notifications/initialized", id_=None)))
    write("http", http_request(0, 0, 12, body=b"[" + rpc("ping") + b"," + rpc("tools/list", id_=2) + b"]"))
    write("http", http_request(0, 0, 12, headers=b"content-type: text/plain", body=rpc("ping")))
    write("http", http_request(0, 0, 12, headers=b"mcp-protocol-version: 1999-01-01", body=rpc("ping")))
    write("http", http_request(0, 0, 8, headers=b"x-agent-id: ../etc", body=init))
    write("http", http_request(0, 0, 8, headers=b"mcp-session-id: nope", body=rpc("ping")))
    write("http", http_request(1, 0, 4, headers=b"accept: text/event-stream"))
    write("http", http_request(2, 0, 4))
    write("http", http_request(1, 4, 2))
    write("http", http_request(1, 5, 2))
    write("http", http_request(1, 6, 2))
    write("http", http_request(0, 7, 1))
    write("http", http_request(0, 3, 8, body=init))
    write("http", http_request(1, 0, 0, suffix=b"?a=%zz&b"))


if __name__ == "__main__":
    http_seeds()
    config_seeds()
    difc_seeds()
    guard_abi_seeds()
    disk_cache_seeds()

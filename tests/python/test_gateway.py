"""The official Python MCP SDK as an agent of the gateway: routed and
unified modes over streamable HTTP, two real Python backends, errors,
progress, prompts, resources, allow-lists, auth."""

from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError


@asynccontextmanager
async def connect(url: str, key: str):
    async with streamablehttp_client(url, headers={"Authorization": key}) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def text_of(result) -> str:
    return "".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def run(fn):
    return anyio.run(fn)


# ---- routed mode -------------------------------------------------------------


def test_routed_lists_each_backends_tools(routed_url, api_key):
    async def go():
        async with connect(f"{routed_url}/mcp/alpha", api_key) as s:
            tools = {t.name: t for t in (await s.list_tools()).tools}
        assert {"echo", "add", "fail", "crash", "count", "sleep", "big", "secret"} <= set(tools)
        assert tools["echo"].description.startswith("[alpha] ")
        assert tools["echo"].inputSchema["type"] == "object"
        async with connect(f"{routed_url}/mcp/beta", api_key) as s:
            names = {t.name for t in (await s.list_tools()).tools}
        # beta's allow-list hides the rest.
        assert names == {"echo", "add", "fail", "count", "big"}

    run(go)


def test_routed_calls_reach_the_right_backend(routed_url, api_key):
    async def go():
        async with connect(f"{routed_url}/mcp/alpha", api_key) as s:
            r = await s.call_tool("echo", {"text": "hi"})
            assert not r.isError
            assert text_of(r) == "alpha: hi"
            r = await s.call_tool("add", {"a": 2, "b": 40})
            assert text_of(r) == "42"
        async with connect(f"{routed_url}/mcp/beta", api_key) as s:
            r = await s.call_tool("echo", {"text": "hi"})
            assert text_of(r) == "beta: hi"

    run(go)


def test_routed_unknown_tool_is_invalid_params(routed_url, api_key):
    async def go():
        async with connect(f"{routed_url}/mcp/alpha", api_key) as s:
            with pytest.raises(McpError) as err:
                await s.call_tool("nope", {})
        assert err.value.error.code == -32602
        assert err.value.error.message == 'unknown tool "nope"'

    run(go)


def test_routed_disallowed_tool_is_refused(routed_url, api_key):
    async def go():
        async with connect(f"{routed_url}/mcp/beta", api_key) as s:
            with pytest.raises(McpError) as err:
                await s.call_tool("secret", {})
        assert err.value.error.code == 0
        assert "not in the allowed-tools list" in err.value.error.message

    run(go)


def test_backend_tool_errors_pass_through(routed_url, api_key):
    async def go():
        async with connect(f"{routed_url}/mcp/alpha", api_key) as s:
            r = await s.call_tool("fail", {"reason": "bad input"})
        assert r.isError
        assert "tool failed: bad input" in text_of(r)

    run(go)


def test_progress_is_relayed_to_the_caller(routed_url, api_key):
    async def go():
        seen = []

        async def on_progress(progress, total, message):
            seen.append((progress, total, message))

        async with connect(f"{routed_url}/mcp/alpha", api_key) as s:
            r = await s.call_tool("count", {"steps": 5}, progress_callback=on_progress)
        assert text_of(r) == "counted 5"
        assert [p for p, _, _ in seen] == [1, 2, 3, 4, 5]
        assert all(t == 5 for _, t, _ in seen)
        assert seen[-1][2] == "step 5"

    run(go)


def test_large_result_passes_through(routed_url, api_key):
    async def go():
        async with connect(f"{routed_url}/mcp/beta", api_key) as s:
            r = await s.call_tool("big", {"n": 3_000_000})
        assert len(text_of(r)) == 3_000_000

    run(go)


def test_routed_prompts_and_resources(routed_url, api_key):
    async def go():
        async with connect(f"{routed_url}/mcp/alpha", api_key) as s:
            prompts = (await s.list_prompts()).prompts
            assert [p.name for p in prompts] == ["greet"]
            got = await s.get_prompt("greet", {"name": "Ann"})
            assert got.messages[0].content.text == "Hello Ann from alpha"
            resources = (await s.list_resources()).resources
            assert [str(r.uri) for r in resources] == ["echo://info"]
            read = await s.read_resource("echo://info")
            assert read.contents[0].text == "server alpha"

    run(go)


def test_crashed_backend_gives_an_error_then_restarts(routed_url, api_key):
    async def go():
        async with connect(f"{routed_url}/mcp/alpha", api_key) as s:
            with pytest.raises(McpError) as err:
                await s.call_tool("crash", {})
            assert err.value.error.code == 0
            assert '"alpha"' in err.value.error.message
            # The next call relaunches the backend.
            r = await s.call_tool("echo", {"text": "again"})
            assert text_of(r) == "alpha: again"

    run(go)


# ---- unified mode ------------------------------------------------------------


def test_unified_lists_prefixed_tools_of_all_backends(unified_url, api_key):
    async def go():
        async with connect(f"{unified_url}/mcp", api_key) as s:
            tools = {t.name: t for t in (await s.list_tools()).tools}
        assert "alpha___echo" in tools and "beta___echo" in tools
        assert "beta___secret" not in tools and "alpha___secret" in tools
        assert tools["beta___add"].description == "[beta] Add two integers."

    run(go)


def test_unified_dispatches_calls(unified_url, api_key):
    async def go():
        async with connect(f"{unified_url}/mcp", api_key) as s:
            assert text_of(await s.call_tool("alpha___echo", {"text": "x"})) == "alpha: x"
            assert text_of(await s.call_tool("beta___echo", {"text": "y"})) == "beta: y"
            with pytest.raises(McpError) as err:
                await s.call_tool("gamma___echo", {})
            assert err.value.error.code == -32602
            assert err.value.error.message == 'unknown tool "gamma___echo"'

    run(go)


def test_unified_prompts_are_prefixed(unified_url, api_key):
    async def go():
        async with connect(f"{unified_url}/mcp", api_key) as s:
            names = sorted(p.name for p in (await s.list_prompts()).prompts)
            assert names == ["alpha___greet", "beta___greet"]
            got = await s.get_prompt("beta___greet", {"name": "Bo"})
            assert got.messages[0].content.text == "Hello Bo from beta"

    run(go)


def test_unified_crash_names_the_backend(unified_url, api_key):
    async def go():
        async with connect(f"{unified_url}/mcp", api_key) as s:
            with pytest.raises(McpError) as err:
                await s.call_tool("alpha___crash", {})
            assert err.value.error.code == 0
            assert '"alpha"' in err.value.error.message
            # beta is unaffected
            assert text_of(await s.call_tool("beta___echo", {"text": "ok"})) == "beta: ok"

    run(go)


# ---- auth and routing ----------------------------------------------------------

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_bad_api_key_is_refused(routed_url, api_key):
    r = httpx.post(f"{routed_url}/mcp/alpha", json=INIT, headers={**HEADERS, "Authorization": "wrong"})
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized", "message": "invalid API key"}
    r = httpx.post(f"{routed_url}/mcp/alpha", json=INIT, headers=HEADERS)
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized", "message": "missing Authorization header"}
    r = httpx.post(
        f"{routed_url}/mcp/alpha", json=INIT, headers={**HEADERS, "Authorization": f"Bearer {api_key}"}
    )
    assert r.status_code == 401

    async def go():
        async with connect(f"{routed_url}/mcp/alpha", "wrong"):
            pass

    with pytest.raises(BaseException):
        run(go)


def test_unknown_server_is_404(routed_url, api_key):
    r = httpx.post(f"{routed_url}/mcp/nope", json=INIT, headers={**HEADERS, "Authorization": api_key})
    assert r.status_code == 404


def test_health_is_open(routed_url):
    r = httpx.get(f"{routed_url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["specVersion"] == "1.14.0"
    assert set(body["servers"]) == {"alpha", "beta"}
    assert body["servers"]["beta"]["status"] == "running"

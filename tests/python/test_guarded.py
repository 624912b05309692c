"""The official Python MCP SDK as an agent of a guarded gateway (started by
crates/guardway-gateway/tests/gateway/guarded.rs): the sample guard in front of the
demo backend filters list results and denies calls outside its policy,
faulty guards fail their calls closed while the gateway keeps serving."""

import json
import os
import urllib.request
from contextlib import asynccontextmanager

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run through `cargo test -p guardway-gateway --test gateway guarded::`")
    return value


URL = os.environ.get("GUARDED_URL", "")
KEY = os.environ.get("GATEWAY_API_KEY", "")


@asynccontextmanager
async def connect(server: str, agent: str):
    headers = {"Authorization": _env("GATEWAY_API_KEY"), "X-Agent-Id": agent}
    async with streamablehttp_client(f"{_env('GUARDED_URL')}/mcp/{server}", headers=headers) as (r, w, _):
        async with ClientSession(r, w) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def direct():
    params = StdioServerParameters(command=_env("DEMO_BACKEND"), args=[])
    async with stdio_client(params) as (r, w):
        async with ClientSession(r, w) as session:
            await session.initialize()
            yield session


def texts(result):
    return [c.text for c in result.content if getattr(c, "type", None) == "text"]


def run(fn):
    return anyio.run(fn)


def health():
    with urllib.request.urlopen(f"{_env('GUARDED_URL')}/health") as response:
        return json.load(response)


def call_log_tools():
    with open(_env("GITHUB_CALL_LOG")) as log:
        return [json.loads(line) for line in log if line.strip()]


LIST_ARGS = {"owner": "octo-org", "repo": "api", "perPage": 60}


async def backend_issues():
    async with direct() as s:
        result = await s.call_tool("list_issues", LIST_ARGS)
    return json.loads("".join(texts(result)))["issues"]


def test_list_loses_exactly_the_items_below_min_integrity():
    async def go():
        issues = await backend_issues()
        expected = [i["number"] for i in issues
                    if i["author_association"] in ("OWNER", "MEMBER", "COLLABORATOR")]
        removed = len(issues) - len(expected)
        assert 0 < len(expected) < len(issues)
        async with connect("github", "agent-list") as s:
            result = await s.call_tool("list_issues", LIST_ARGS)
        assert not result.isError
        body = texts(result)
        assert [i["number"] for i in json.loads(body[0])] == expected
        assert body[1].startswith(
            f"[Filtered] {removed} item(s) in this response were removed by integrity policy and are not shown")

    run(go)


def test_lower_min_integrity_keeps_contributors():
    async def go():
        issues = await backend_issues()
        expected = [i["number"] for i in issues
                    if i["author_association"] in ("OWNER", "MEMBER", "COLLABORATOR", "CONTRIBUTOR")]
        async with connect("github_low", "agent-low") as s:
            result = await s.call_tool("list_issues", LIST_ARGS)
        assert not result.isError
        assert [i["number"] for i in json.loads(texts(result)[0])] == expected

    run(go)


def test_write_outside_the_policy_is_denied_before_the_backend():
    async def go():
        async with connect("github", "agent-write") as s:
            with pytest.raises(McpError) as err:
                await s.call_tool("create_issue", {"owner": "acme", "repo": "web", "title": "nope"})
        assert err.value.error.code == 0
        message = err.value.error.message
        assert message.startswith(
            "DIFC Violation: Agent lacks required integrity to write to 'write in acme/web")\
            or message.startswith("DIFC Violation: Agent lacks required integrity to write to")
        assert "Current Agent Labels:" in message
        assert "create_issue" not in [line["tool"] for line in call_log_tools()]

    run(go)


def test_read_of_another_repository_is_denied():
    async def go():
        async with connect("github", "agent-read") as s:
            with pytest.raises(McpError) as err:
                await s.call_tool("issue_read", {"method": "get", "owner": "acme", "repo": "web",
                                                 "issue_number": 1})
        assert err.value.error.code == 0
        assert err.value.error.message.startswith("[Filtered] ")
        assert "exists but is not accessible \u2014 filtered by" in err.value.error.message

    run(go)


def test_faulty_guards_fail_closed_and_the_gateway_keeps_serving():
    async def go():
        async with connect("trapper", "agent-faults") as s:
            with pytest.raises(McpError) as err:
                await s.call_tool("list_issues", LIST_ARGS)
        assert err.value.error.code == 0
        assert err.value.error.message.startswith("guard labeling failed: resource labeling failed:")
        async with connect("looper", "agent-faults") as s:
            with pytest.raises(McpError) as err:
                await s.call_tool("list_issues", LIST_ARGS)
        assert err.value.error.code == 0
        assert err.value.error.message.startswith("guard labeling failed: resource labeling failed:")
        async with connect("broken", "agent-faults") as s:
            with pytest.raises(McpError) as err:
                await s.call_tool("list_issues", LIST_ARGS)
        assert err.value.error.code == 0
        assert "no-such-guard.wasm" in err.value.error.message
        async with connect("plain", "agent-faults") as s:
            result = await s.call_tool("list_issues", LIST_ARGS)
        assert not result.isError
        assert len(json.loads("".join(texts(result)))["issues"]) == 60

    run(go)
    servers = health()["servers"]
    assert servers["github"]["guard"]["state"] == "healthy"
    assert servers["trapper"]["guard"]["state"] in ("degraded", "quarantined")
    assert servers["looper"]["guard"]["state"] in ("degraded", "quarantined")
    assert servers["broken"]["guard"]["state"] == "failed-to-load"
    assert "no-such-guard.wasm" in servers["broken"]["guard"]["reason"]
    assert servers["plain"]["guard"]["type"] == "noop"

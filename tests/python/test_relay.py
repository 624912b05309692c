"""The official Python MCP SDK as an agent of the gateway, for what the
gateway relays between an agent and its backends besides tool calls: the
backend's requests to the agent during a tool call (sampling, elicitation,
roots, ping) answered by the agent's callbacks, completions, and resource
subscriptions with their update notifications. Routed and unified modes,
a stdio and an HTTP backend (tests/python/backends/conformance_server.py).
Run by crates/guardway-gateway/tests/gateway/relay.rs."""

import json
import os
from contextlib import asynccontextmanager

import anyio
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError

SERVERS = ["stdio", "http"]
MODES = ["routed", "unified"]
WATCHED = "test://watched-resource"
SEP1034_DEFAULTS = {
    "name": "John Doe",
    "age": 30,
    "score": 95.5,
    "status": "active",
    "verified": True,
}


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run through `cargo test -p guardway-gateway --test gateway relay::`")
    return value


def url_for(mode: str, server: str) -> str:
    if mode == "routed":
        return f"{env('RELAY_ROUTED_URL')}/mcp/{server}"
    return f"{env('RELAY_UNIFIED_URL')}/mcp"


def name_for(mode: str, server: str, name: str) -> str:
    return name if mode == "routed" else f"{server}___{name}"


@asynccontextmanager
async def connect(mode: str, server: str, **callbacks):
    headers = {"Authorization": env("RELAY_API_KEY")}
    async with streamablehttp_client(url_for(mode, server), headers=headers) as (read, write, _):
        async with ClientSession(read, write, **callbacks) as session:
            result = await session.initialize()
            session.initialize_result = result
            yield session


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def run(fn):
    return anyio.run(fn)


both = pytest.mark.parametrize("mode", MODES)
servers = pytest.mark.parametrize("server", SERVERS)


@both
@servers
def test_sampling_reaches_the_agent_and_its_answer_the_backend(mode, server):
    seen = []

    async def sampling(context, params: types.CreateMessageRequestParams):
        seen.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"answer from {mode}/{server}"),
            model="relay-test-model",
            stopReason="endTurn",
        )

    async def go():
        async with connect(mode, server, sampling_callback=sampling) as s:
            result = await s.call_tool(name_for(mode, server, "test_sampling"), {"prompt": "what is 6 x 7?"})
        assert not result.isError, text_of(result)
        assert text_of(result) == f"LLM response: answer from {mode}/{server}"
        assert len(seen) == 1
        assert seen[0].maxTokens == 100
        assert seen[0].messages[0].content.text == "what is 6 x 7?"

    run(go)


@both
@servers
def test_elicitation_keeps_the_schema_and_returns_the_answer(mode, server):
    seen = []

    async def elicitation(context, params: types.ElicitRequestParams):
        seen.append(params)
        return types.ElicitResult(action="accept", content=dict(SEP1034_DEFAULTS, name="Ada"))

    async def go():
        async with connect(mode, server, elicitation_callback=elicitation) as s:
            result = await s.call_tool(name_for(mode, server, "test_elicitation_sep1034_defaults"), {})
        assert not result.isError, text_of(result)
        assert len(seen) == 1
        properties = seen[0].requestedSchema["properties"]
        assert {key: value["default"] for key, value in properties.items()} == SEP1034_DEFAULTS
        assert properties["status"]["enum"] == ["active", "inactive", "pending"]
        assert text_of(result).startswith("Elicitation completed: action=accept, content=")
        content = json.loads(text_of(result).split("content=", 1)[1])
        assert content["name"] == "Ada"

    run(go)


@both
@servers
def test_elicitation_enum_forms_pass_unchanged(mode, server):
    seen = []

    async def elicitation(context, params: types.ElicitRequestParams):
        seen.append(params)
        return types.ElicitResult(action="decline")

    async def go():
        async with connect(mode, server, elicitation_callback=elicitation) as s:
            result = await s.call_tool(name_for(mode, server, "test_elicitation_sep1330_enums"), {})
        assert text_of(result) == "Elicitation completed: action=decline, content=null"
        properties = seen[0].requestedSchema["properties"]
        assert properties["titledSingle"]["oneOf"][0] == {"const": "value1", "title": "First Option"}
        assert properties["legacyEnum"]["enumNames"] == ["Option One", "Option Two", "Option Three"]
        assert properties["untitledMulti"]["items"]["enum"] == ["option1", "option2", "option3"]
        assert properties["titledMulti"]["items"]["anyOf"][2] == {"const": "value3", "title": "Third Choice"}

    run(go)


@both
@servers
def test_roots_and_ping_reach_the_agent(mode, server):
    async def roots(context):
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    async def go():
        async with connect(mode, server, list_roots_callback=roots) as s:
            listed = await s.call_tool(name_for(mode, server, "test_list_roots"), {})
            pinged = await s.call_tool(name_for(mode, server, "test_ping_client"), {})
        assert json.loads(text_of(listed)) == ["file:///work/project"]
        assert text_of(pinged) == "client answered the ping"

    run(go)


@both
@servers
def test_an_agent_without_sampling_is_not_asked(mode, server):
    async def go():
        async with connect(mode, server) as s:
            result = await s.call_tool(name_for(mode, server, "test_sampling"), {"prompt": "hi"})
        # The backend's request is refused for the agent; the tool fails.
        assert result.isError
        assert "sampling" in text_of(result)

    run(go)


@both
def test_concurrent_sessions_each_answer_their_own_requests(mode):
    # HTTP only: a stdio process serves all the sessions of an agent id and
    # cannot say which call a request of its belongs to (see
    # test_stdio_requests_of_concurrent_sessions_are_refused).
    server = "http"

    async def go():
        results = {}

        async def one(label: str):
            async def elicitation(context, params):
                await anyio.sleep(0.05)
                return types.ElicitResult(action="accept", content={"username": label, "email": f"{label}@x"})

            async with connect(mode, server, elicitation_callback=elicitation) as s:
                results[label] = await s.call_tool(
                    name_for(mode, server, "test_elicitation"), {"message": f"who is {label}?"}
                )

        async with anyio.create_task_group() as group:
            for label in ("ann", "bob", "cid"):
                group.start_soon(one, label)
        for label, result in results.items():
            assert f'"username": "{label}"' in text_of(result), text_of(result)

    run(go)


def test_stdio_requests_of_concurrent_sessions_are_refused():
    """A stdio process serves every session of an agent id and cannot say
    which call its request belongs to: while calls of two sessions are in
    flight on it, its requests go to neither."""

    async def go():
        release = anyio.Event()
        asked = anyio.Event()

        async def elicitation(context, params):
            asked.set()
            await release.wait()
            return types.ElicitResult(action="accept", content={"username": "ann", "email": "ann@x"})

        async def sampling(context, params):
            raise AssertionError("the second session was asked")

        async with connect("routed", "stdio", elicitation_callback=elicitation) as first, connect(
            "routed", "stdio", sampling_callback=sampling
        ) as second:
            results = {}

            async def first_call():
                results["first"] = await first.call_tool("test_elicitation", {"message": "who?"})

            async with anyio.create_task_group() as group:
                group.start_soon(first_call)
                # Only the first session's call was in flight: it was asked.
                with anyio.fail_after(30):
                    await asked.wait()
                refused = await second.call_tool("test_sampling", {"prompt": "hi"})
                release.set()
        assert refused.isError
        assert "no agent session" in text_of(refused), text_of(refused)
        assert '"username": "ann"' in text_of(results["first"])

    run(go)


@both
@servers
def test_completion_is_relayed(mode, server):
    async def go():
        async with connect(mode, server) as s:
            assert s.initialize_result.capabilities.completions is not None
            reference = types.PromptReference(
                type="ref/prompt", name=name_for(mode, server, "test_prompt_with_arguments")
            )
            result = await s.complete(reference, {"name": "arg1", "value": "pa"})
        assert result.completion.values == ["paris", "park", "party"]
        assert result.completion.total == 3

    run(go)


@both
@servers
def test_completion_of_an_unknown_prompt_is_refused(mode, server):
    async def go():
        async with connect(mode, server) as s:
            reference = types.PromptReference(type="ref/prompt", name=name_for(mode, server, "no_such_prompt"))
            with pytest.raises(McpError) as error:
                await s.complete(reference, {"name": "arg1", "value": "pa"})
        assert error.value.error.code == types.INVALID_PARAMS

    run(go)


def subscriber():
    """A message handler collecting resource updates, and a way to wait."""
    updates = []
    arrived = anyio.Event()

    async def handler(message):
        if isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.ResourceUpdatedNotification
        ):
            updates.append(str(message.root.params.uri))
            arrived.set()

    return updates, arrived, handler


@servers
def test_routed_subscription_delivers_updates_to_its_session_only(server):
    async def go():
        updates, arrived, handler = subscriber()
        other_updates, _, other_handler = subscriber()
        async with connect("routed", server, message_handler=handler) as s, connect(
            "routed", server, message_handler=other_handler
        ) as other:
            assert s.initialize_result.capabilities.resources.subscribe is True
            await s.subscribe_resource(WATCHED)
            # The backend tells a new subscriber at once.
            with anyio.fail_after(10):
                await arrived.wait()
            assert updates == [WATCHED]
            await s.unsubscribe_resource(WATCHED)
            await other.list_tools()
        assert other_updates == []

    run(go)


def test_routed_update_after_unsubscribe_is_not_delivered():
    async def go():
        updates, arrived, handler = subscriber()
        async with connect("routed", "http", message_handler=handler) as s:
            await s.subscribe_resource(WATCHED)
            with anyio.fail_after(10):
                await arrived.wait()
            told = await s.call_tool("test_update_resource", {"uri": WATCHED})
            # The gateway's session with the backend is subscribed once.
            assert text_of(told) == "told 1 subscribed session(s)"
            with anyio.fail_after(10):
                while len(updates) < 2:
                    await anyio.sleep(0.01)
            await s.unsubscribe_resource(WATCHED)
            told = await s.call_tool("test_update_resource", {"uri": WATCHED})
            assert text_of(told) == "told 0 subscribed session(s)"
        assert updates == [WATCHED, WATCHED]

    run(go)


def test_unified_mode_offers_no_resources():
    async def go():
        async with connect("unified", "http") as s:
            assert s.initialize_result.capabilities.resources is None
            with pytest.raises(McpError) as error:
                await s.subscribe_resource(WATCHED)
            assert error.value.error.code == types.METHOD_NOT_FOUND
            template = types.ResourceTemplateReference(type="ref/resource", uri="test://template/{id}/data")
            with pytest.raises(McpError) as error:
                await s.complete(template, {"name": "id", "value": "1"})
            assert error.value.error.code == types.INVALID_PARAMS
            assert "no resources" in error.value.error.message
            # The session is still fine.
            await s.list_tools()

    run(go)


# ---- guarded server (RELAY_GUARDED_URL: routed, server "guarded" behind the sample guard) ----


def test_guarded_call_relays_sampling_and_elicitation():
    async def sampling(context, params):
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="guarded answer"),
            model="relay-test-model",
        )

    async def elicitation(context, params):
        return types.ElicitResult(action="accept", content={"username": "gus", "email": "gus@x"})

    async def go():
        headers = {"Authorization": env("RELAY_API_KEY")}
        url = f"{env('RELAY_GUARDED_URL')}/mcp/guarded"
        async with streamablehttp_client(url, headers=headers) as (read, write, _):
            async with ClientSession(
                read, write, sampling_callback=sampling, elicitation_callback=elicitation
            ) as s:
                await s.initialize()
                sampled = await s.call_tool("test_sampling", {"prompt": "hi"})
                elicited = await s.call_tool("test_elicitation", {"message": "who?"})
        assert text_of(sampled) == "LLM response: guarded answer"
        assert '"username": "gus"' in text_of(elicited)

    run(go)

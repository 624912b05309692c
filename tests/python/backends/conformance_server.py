"""An MCP server (Python SDK, low-level server) implementing every tool,
prompt and resource that the server scenarios of the official MCP
conformance suite (npm @modelcontextprotocol/conformance) call, plus a few
tools the gateway tests use to exercise the relay (roots, ping, resource
updates). Used as a real backend: directly it scores all scenarios.

usage: conformance_server.py stdio
       conformance_server.py streamable-http [--port N]

Over HTTP the server binds 127.0.0.1 (port 0 = any free port), serves
/mcp, prints `PORT <n>` on stdout once listening, keeps an in-memory event
store (resumable SSE streams, SEP-1699) and rejects requests whose Host or
Origin is not a loopback name (DNS-rebinding protection)."""

import argparse
import asyncio
import base64
import contextlib
import json
import socket
import sys
import weakref
from collections.abc import AsyncIterator
from typing import Any

import mcp.types as types
import uvicorn
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import McpError
from mcp.shared.message import ServerMessageMetadata
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

NAME = "conformance"

# A 1x1 red PNG and a short silent WAV (44-byte header + 8 samples).
RED_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
SILENT_WAV = (
    b"RIFF" + (36 + 16).to_bytes(4, "little") + b"WAVEfmt "
    + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    + (8000).to_bytes(4, "little") + (16000).to_bytes(4, "little")
    + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    + b"data" + (16).to_bytes(4, "little") + bytes(16)
)
PNG_B64 = base64.b64encode(RED_PIXEL_PNG).decode()
WAV_B64 = base64.b64encode(SILENT_WAV).decode()

WATCHED_URI = "test://watched-resource"
LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


class ConformanceServer(Server):
    """The low-level server, advertising resource subscriptions (the SDK
    advertises `subscribe: false` whatever handlers are registered)."""

    def get_capabilities(
        self,
        notification_options: NotificationOptions,
        experimental_capabilities: dict[str, dict[str, Any]],
    ) -> types.ServerCapabilities:
        capabilities = super().get_capabilities(notification_options, experimental_capabilities)
        if capabilities.resources is not None:
            capabilities.resources.subscribe = True
        return capabilities


server = ConformanceServer(NAME, version="1.0.0")

# Per-session state: the logging level each client asked for, and the
# resources each session subscribed to.
session_levels: "weakref.WeakKeyDictionary[ServerSession, str]" = weakref.WeakKeyDictionary()
subscriptions: "weakref.WeakKeyDictionary[ServerSession, set[str]]" = weakref.WeakKeyDictionary()
# Tasks started by handlers, kept until they end.
background: set[asyncio.Task] = set()


def text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def empty_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


TOOLS = [
    types.Tool(name="test_simple_text", description="Returns a simple text.", inputSchema=empty_schema()),
    types.Tool(name="test_image_content", description="Returns a PNG image.", inputSchema=empty_schema()),
    types.Tool(name="test_audio_content", description="Returns a WAV clip.", inputSchema=empty_schema()),
    types.Tool(
        name="test_embedded_resource",
        description="Returns an embedded text resource.",
        inputSchema=empty_schema(),
    ),
    types.Tool(
        name="test_multiple_content_types",
        description="Returns text, an image and a resource.",
        inputSchema=empty_schema(),
    ),
    types.Tool(
        name="test_tool_with_logging",
        description="Sends three log messages while it runs.",
        inputSchema=empty_schema(),
    ),
    types.Tool(
        name="test_tool_with_progress",
        description="Reports progress 0, 50 and 100 of 100.",
        inputSchema=empty_schema(),
    ),
    types.Tool(name="test_error_handling", description="Always fails.", inputSchema=empty_schema()),
    types.Tool(
        name="test_sampling",
        description="Asks the client's LLM to answer the prompt (sampling/createMessage).",
        inputSchema={
            "type": "object",
            "properties": {"prompt": {"type": "string", "description": "The prompt"}},
            "required": ["prompt"],
        },
    ),
    types.Tool(
        name="test_elicitation",
        description="Asks the user for a username and an email (elicitation/create).",
        inputSchema={
            "type": "object",
            "properties": {"message": {"type": "string", "description": "What to ask"}},
            "required": ["message"],
        },
    ),
    types.Tool(
        name="test_elicitation_sep1034_defaults",
        description="Elicitation whose fields have default values (SEP-1034).",
        inputSchema=empty_schema(),
    ),
    types.Tool(
        name="test_elicitation_sep1330_enums",
        description="Elicitation with every enum form (SEP-1330).",
        inputSchema=empty_schema(),
    ),
    types.Tool(
        name="json_schema_2020_12_tool",
        description="Tool with JSON Schema 2020-12 features",
        inputSchema={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {
                "address": {
                    "type": "object",
                    "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
                }
            },
            "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
            "additionalProperties": False,
        },
    ),
    types.Tool(
        name="test_reconnection",
        description="Closes the request's SSE stream before answering (SEP-1699).",
        inputSchema=empty_schema(),
    ),
    types.Tool(
        name="test_list_roots",
        description="Asks the client for its roots (roots/list) and returns them.",
        inputSchema=empty_schema(),
    ),
    types.Tool(
        name="test_ping_client",
        description="Pings the client and says whether it answered.",
        inputSchema=empty_schema(),
    ),
    types.Tool(
        name="test_update_resource",
        description="Tells every session subscribed to the URI that the resource changed.",
        inputSchema={
            "type": "object",
            "properties": {"uri": {"type": "string"}},
            "required": ["uri"],
        },
    ),
]


@server.list_tools()
async def list_tools() -> list[types.Tool]:
    return TOOLS


async def log(level: str, message: str) -> None:
    """A log message on the current request's stream, if the session's
    level lets it through."""
    context = server.request_context
    wanted = session_levels.get(context.session, "debug")
    if LOG_LEVELS.index(level) < LOG_LEVELS.index(wanted):
        return
    await context.session.send_log_message(
        level=level, data=message, logger=NAME, related_request_id=context.request_id
    )


async def elicit(message: str, schema: dict[str, Any]) -> types.ElicitResult:
    context = server.request_context
    return await context.session.elicit_form(
        message=message, requestedSchema=schema, related_request_id=context.request_id
    )


def elicitation_summary(result: types.ElicitResult) -> list[types.TextContent]:
    return [text(f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}")]


SEP1034_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
    "required": [],
}

SEP1330_SCHEMA = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
    "required": [],
}


async def notify_resource_updated(uri: str) -> int:
    """Sends notifications/resources/updated to every session subscribed
    to `uri`; returns how many were told."""
    told = 0
    for session, uris in list(subscriptions.items()):
        if uri in uris:
            await session.send_resource_updated(uri)
            told += 1
    return told


@server.call_tool(validate_input=False)
async def call_tool(name: str, arguments: dict[str, Any]) -> Any:
    context = server.request_context
    session = context.session
    if name == "test_simple_text":
        return [text("This is a simple text response for testing.")]
    if name == "test_image_content":
        return [types.ImageContent(type="image", data=PNG_B64, mimeType="image/png")]
    if name == "test_audio_content":
        return [types.AudioContent(type="audio", data=WAV_B64, mimeType="audio/wav")]
    if name == "test_embedded_resource":
        return [
            types.EmbeddedResource(
                type="resource",
                resource=types.TextResourceContents(
                    uri="test://embedded-resource",
                    mimeType="text/plain",
                    text="This is an embedded resource content.",
                ),
            )
        ]
    if name == "test_multiple_content_types":
        return [
            text("Multiple content types test:"),
            types.ImageContent(type="image", data=PNG_B64, mimeType="image/png"),
            types.EmbeddedResource(
                type="resource",
                resource=types.TextResourceContents(
                    uri="test://mixed-content-resource",
                    mimeType="application/json",
                    text=json.dumps({"test": "data", "value": 123}),
                ),
            ),
        ]
    if name == "test_tool_with_logging":
        await log("info", "Tool execution started")
        await asyncio.sleep(0.05)
        await log("info", "Tool processing data")
        await asyncio.sleep(0.05)
        await log("info", "Tool execution completed")
        return [text("Tool with logging executed successfully")]
    if name == "test_tool_with_progress":
        token = context.meta.progressToken if context.meta else None
        for step, progress in enumerate((0, 50, 100)):
            if step:
                await asyncio.sleep(0.05)
            if token is not None:
                await session.send_progress_notification(
                    token, progress, total=100, message=f"step {step + 1}",
                    related_request_id=context.request_id,
                )
        return [text("Tool with progress executed successfully")]
    if name == "test_error_handling":
        return types.CallToolResult(
            content=[text("This tool intentionally returns an error for testing")], isError=True
        )
    if name == "test_sampling":
        result = await session.create_message(
            messages=[
                types.SamplingMessage(role="user", content=text(str(arguments.get("prompt", ""))))
            ],
            max_tokens=100,
            related_request_id=context.request_id,
        )
        content = result.content
        answer = content.text if isinstance(content, types.TextContent) else str(content)
        return [text(f"LLM response: {answer}")]
    if name == "test_elicitation":
        result = await elicit(
            str(arguments.get("message", "")),
            {
                "type": "object",
                "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"},
                },
                "required": ["username", "email"],
            },
        )
        return [text(f"User response: action={result.action}, content={json.dumps(result.content)}")]
    if name == "test_elicitation_sep1034_defaults":
        result = await elicit("Please review and update the form fields with defaults", SEP1034_SCHEMA)
        return elicitation_summary(result)
    if name == "test_elicitation_sep1330_enums":
        result = await elicit("Please select options from the enum fields", SEP1330_SCHEMA)
        return elicitation_summary(result)
    if name == "json_schema_2020_12_tool":
        return [text(f"Received: {json.dumps(arguments)}")]
    if name == "test_reconnection":
        if context.close_sse_stream is not None:
            await context.close_sse_stream()
        await asyncio.sleep(0.2)
        return [text("Reconnection test completed successfully")]
    if name == "test_list_roots":
        roots = await session.send_request(
            types.ServerRequest(types.ListRootsRequest()),
            types.ListRootsResult,
            metadata=related(context.request_id),
        )
        return [text(json.dumps([str(root.uri) for root in roots.roots]))]
    if name == "test_ping_client":
        await session.send_request(
            types.ServerRequest(types.PingRequest()),
            types.EmptyResult,
            metadata=related(context.request_id),
        )
        return [text("client answered the ping")]
    if name == "test_update_resource":
        told = await notify_resource_updated(str(arguments.get("uri", "")))
        return [text(f"told {told} subscribed session(s)")]
    raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=f"unknown tool {name!r}"))


def related(request_id: types.RequestId) -> ServerMessageMetadata:
    """Metadata that keeps a server request on its tool call's stream."""
    return ServerMessageMetadata(related_request_id=request_id)


PROMPTS = [
    types.Prompt(name="test_simple_prompt", description="A prompt without arguments."),
    types.Prompt(
        name="test_prompt_with_arguments",
        description="A prompt with two required arguments.",
        arguments=[
            types.PromptArgument(name="arg1", description="First test argument", required=True),
            types.PromptArgument(name="arg2", description="Second test argument", required=True),
        ],
    ),
    types.Prompt(
        name="test_prompt_with_embedded_resource",
        description="A prompt embedding a resource.",
        arguments=[
            types.PromptArgument(name="resourceUri", description="URI of the resource to embed", required=True)
        ],
    ),
    types.Prompt(name="test_prompt_with_image", description="A prompt with an image."),
]


@server.list_prompts()
async def list_prompts() -> list[types.Prompt]:
    return PROMPTS


@server.get_prompt()
async def get_prompt(name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
    arguments = arguments or {}
    if name == "test_simple_prompt":
        messages = [types.PromptMessage(role="user", content=text("This is a simple prompt for testing."))]
    elif name == "test_prompt_with_arguments":
        arg1, arg2 = arguments.get("arg1", ""), arguments.get("arg2", "")
        messages = [
            types.PromptMessage(role="user", content=text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))
        ]
    elif name == "test_prompt_with_embedded_resource":
        uri = arguments.get("resourceUri", "test://example-resource")
        messages = [
            types.PromptMessage(
                role="user",
                content=types.EmbeddedResource(
                    type="resource",
                    resource=types.TextResourceContents(
                        uri=uri, mimeType="text/plain", text="Embedded resource content for testing."
                    ),
                ),
            ),
            types.PromptMessage(role="user", content=text("Please process the embedded resource above.")),
        ]
    elif name == "test_prompt_with_image":
        messages = [
            types.PromptMessage(
                role="user", content=types.ImageContent(type="image", data=PNG_B64, mimeType="image/png")
            ),
            types.PromptMessage(role="user", content=text("Please analyze the image above.")),
        ]
    else:
        raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=f"unknown prompt {name!r}"))
    return types.GetPromptResult(messages=messages)


RESOURCES = [
    types.Resource(
        uri="test://static-text",
        name="static-text",
        description="A static text resource.",
        mimeType="text/plain",
    ),
    types.Resource(
        uri="test://static-binary",
        name="static-binary",
        description="A static binary resource (PNG).",
        mimeType="image/png",
    ),
    types.Resource(
        uri=WATCHED_URI,
        name="watched-resource",
        description="A resource clients may subscribe to.",
        mimeType="text/plain",
    ),
]

TEMPLATE = "test://template/{id}/data"


@server.list_resources()
async def list_resources() -> list[types.Resource]:
    return RESOURCES


@server.list_resource_templates()
async def list_resource_templates() -> list[types.ResourceTemplate]:
    return [
        types.ResourceTemplate(
            uriTemplate=TEMPLATE,
            name="template-data",
            description="Data for an id.",
            mimeType="application/json",
        )
    ]


@server.read_resource()
async def read_resource(uri) -> list[ReadResourceContents]:
    uri = str(uri)
    if uri == "test://static-text":
        return [ReadResourceContents(content="This is the content of the static text resource.", mime_type="text/plain")]
    if uri == "test://static-binary":
        return [ReadResourceContents(content=RED_PIXEL_PNG, mime_type="image/png")]
    if uri == WATCHED_URI:
        return [ReadResourceContents(content="The watched resource.", mime_type="text/plain")]
    prefix, suffix = "test://template/", "/data"
    if uri.startswith(prefix) and uri.endswith(suffix) and len(uri) > len(prefix) + len(suffix):
        item = uri[len(prefix) : -len(suffix)]
        body = json.dumps({"id": item, "templateTest": True, "data": f"Data for ID: {item}"})
        return [ReadResourceContents(content=body, mime_type="application/json")]
    raise McpError(types.ErrorData(code=-32002, message=f"resource not found: {uri}"))


@server.subscribe_resource()
async def subscribe_resource(uri) -> None:
    session = server.request_context.session
    subscriptions.setdefault(session, set()).add(str(uri))
    # A new subscriber is told at once that the resource changed (its
    # version is newer than none): a notification that may arrive before the
    # client has opened its standalone stream.
    task = asyncio.get_running_loop().create_task(tell_subscriber(session, str(uri)))
    background.add(task)
    task.add_done_callback(background.discard)


async def tell_subscriber(session: ServerSession, uri: str) -> None:
    try:
        await session.send_resource_updated(uri)
    except Exception as error:  # the session may have ended meanwhile
        sys.stderr.write(f"resource update for {uri} not sent: {error}\n")


@server.unsubscribe_resource()
async def unsubscribe_resource(uri) -> None:
    subscriptions.get(server.request_context.session, set()).discard(str(uri))


@server.set_logging_level()
async def set_logging_level(level: types.LoggingLevel) -> None:
    session_levels[server.request_context.session] = level


COMPLETIONS = {"arg1": ["paris", "park", "party", "test-value"], "arg2": ["alpha", "beta"], "id": ["123", "456"]}


@server.completion()
async def complete(ref, argument: types.CompletionArgument, context) -> types.Completion:
    if isinstance(ref, types.PromptReference) and ref.name not in {p.name for p in PROMPTS}:
        raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=f"unknown prompt {ref.name!r}"))
    if isinstance(ref, types.ResourceTemplateReference) and ref.uri != TEMPLATE:
        raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=f"unknown template {ref.uri!r}"))
    candidates = COMPLETIONS.get(argument.name, [])
    values = [value for value in candidates if value.startswith(argument.value)]
    return types.Completion(values=values, total=len(values), hasMore=False)


class MemoryEventStore(EventStore):
    """Every event of every stream, in order, for replay after a client
    reconnects with Last-Event-ID."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, types.JSONRPCMessage | None]] = []
        self.next_id = 0

    async def store_event(self, stream_id: str, message: types.JSONRPCMessage | None) -> str:
        self.next_id += 1
        event_id = str(self.next_id)
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        position = next((i for i, (eid, _, _) in enumerate(self.events) if eid == last_event_id), None)
        if position is None:
            return None
        stream_id = self.events[position][1]
        for event_id, stream, message in self.events[position + 1 :]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


def options() -> InitializationOptions:
    return server.create_initialization_options(NotificationOptions(resources_changed=True))


async def serve_stdio() -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, options())


def serve_http(port: int) -> None:
    manager = StreamableHTTPSessionManager(
        app=server,
        event_store=MemoryEventStore(),
        retry_interval=1000,
        security_settings=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        ),
    )

    class Endpoint:
        """/mcp as a plain ASGI app (a class instance, so Starlette routes
        every method to it)."""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    app = Starlette(routes=[Route("/mcp", endpoint=Endpoint())], lifespan=lifespan)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    config = uvicorn.Config(app, log_level="warning")
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    sys.stderr.write(f"{NAME} serving streamable-http\n")
    sys.stderr.flush()
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "streamable-http"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.transport == "stdio":
        asyncio.run(serve_stdio())
    else:
        serve_http(args.port)


if __name__ == "__main__":
    main()

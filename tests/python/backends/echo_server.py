"""A small stdio MCP server (Python SDK, FastMCP) used as a real backend in
the gateway tests. The first argument names the server; its tools echo,
compute, fail, report progress, sleep, or make the process exit."""

import asyncio
import os
import sys

from mcp.server.fastmcp import Context, FastMCP

NAME = sys.argv[1] if len(sys.argv) > 1 else "echo"
mcp = FastMCP(NAME)


@mcp.tool(description="Echo the text back, tagged with the server name.")
def echo(text: str) -> str:
    return f"{NAME}: {text}"


@mcp.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@mcp.tool(description="Always fails with a tool error.")
def fail(reason: str = "boom") -> str:
    raise ValueError(f"tool failed: {reason}")


@mcp.tool(description="Exit the server process at once.")
def crash() -> str:
    sys.stderr.write(f"{NAME} crashing on request\n")
    sys.stderr.flush()
    os._exit(3)


@mcp.tool(description="Report progress in steps, then return.")
async def count(steps: int, ctx: Context) -> str:
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        await asyncio.sleep(0.01)
    return f"counted {steps}"


def mark_started() -> None:
    """Lets a test see that a slow tool has started: touches $STARTED_MARK."""
    mark = os.environ.get("STARTED_MARK")
    if mark:
        with open(mark, "w") as f:
            f.write("started")


@mcp.tool(description="Sleep for the given seconds.")
async def sleep(seconds: float) -> str:
    mark_started()
    await asyncio.sleep(seconds)
    return "slept"


@mcp.tool(description="Wait until cancelled; record the cancellation in $CANCEL_MARK.")
async def wait_for_cancel(seconds: float = 30) -> str:
    mark_started()
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        mark = os.environ.get("CANCEL_MARK")
        if mark:
            with open(mark, "w") as f:
                f.write("cancelled")
        raise
    return "not cancelled"


@mcp.tool(description="Return a large text of n bytes.")
def big(n: int) -> str:
    return "x" * n


@mcp.tool(description="Always answers like a rate-limited API.")
def limited() -> str:
    raise RuntimeError("API rate limit exceeded, retry after 1 seconds")


@mcp.tool(description="A tool hidden by allow-lists.")
def secret() -> str:
    return "secret"


@mcp.prompt(description="Greet someone.")
def greet(name: str) -> str:
    return f"Hello {name} from {NAME}"


@mcp.resource("echo://info", description="Static information about the server.")
def info() -> str:
    return f"server {NAME}"


if __name__ == "__main__":
    sys.stderr.write(f"{NAME} starting\n")
    sys.stderr.flush()
    mcp.run()

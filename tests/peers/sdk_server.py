"""A small MCP server built on the official ``mcp`` SDK, as an interop peer for the tests.

Run it with the peers venv's Python (see ``peers.sdk_server_command``)::

    tests/peers/.venv/bin/python tests/peers/sdk_server.py streamable-http

Transports: ``stdio``, ``sse`` and ``streamable-http``. Over HTTP it binds a
free port on 127.0.0.1 itself (no race with other processes) and prints
``listening on <url>`` as its first line on stdout.

Tools: ``add(a, b)`` returns the integer sum (also as structured content);
``echo(message)`` returns the message; ``progress(steps)`` reports progress
``steps`` times (when the call carries a progress token) and returns ``"done"``;
``fail(message)`` raises, so the result is a tool error whose text names
``message``. Resource
``peer://greeting`` is the text ``hello``; prompt ``greet(name)`` is one user
message.
"""

from __future__ import annotations

import importlib
import socket
import sys
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def echo(message: str) -> str:
    """Return the message unchanged."""
    return message


async def progress(steps: int, ctx: Context[Any, Any]) -> str:
    """Report progress ``steps`` times, then finish."""
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
    return "done"


def fail(message: str) -> str:
    """Fail with ``message``; the caller gets a tool result with ``isError`` set and that text."""
    raise ToolError(message)


async def touch(uri: str, ctx: Context[Any, Any]) -> str:
    """Announce that ``uri`` changed, to the clients watching it."""
    await ctx.notify_resource_updated(uri)
    return "touched"


def greeting() -> str:
    """The text of ``peer://greeting``."""
    return "hello"


def greet(name: str) -> str:
    """A prompt that greets ``name``."""
    return f"Please greet {name}."


def build() -> Any:
    """The server with its tools, resource and prompt."""
    app = MCPServer("opex-trio-sdk-peer", version="1.0.0")
    for tool in (add, echo, progress, fail, touch):
        app.add_tool(tool)
    app.resource("peer://greeting", name="greeting", mime_type="text/plain")(greeting)
    app.prompt(name="greet")(greet)
    return app


def main(argv: list[str]) -> int:
    """Serve over the transport named in ``argv`` (default ``streamable-http``)."""
    transport = argv[0] if argv else "streamable-http"
    app = build()
    if transport == "stdio":
        app.run("stdio")
        return 0
    if transport == "streamable-http":
        asgi, path = app.streamable_http_app(host="127.0.0.1"), "/mcp"
    elif transport == "sse":
        asgi, path = app.sse_app(host="127.0.0.1"), "/sse"
    else:
        print(
            f"unknown transport {transport!r}: use stdio, sse or streamable-http", file=sys.stderr
        )
        return 2
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listen before saying so: connections made before uvicorn has started
    # then wait in the backlog instead of being refused.
    sock.listen(128)
    port = sock.getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}{path}", flush=True)
    # Imported by name: the peers venv has uvicorn (through mcp); the typing venv need not.
    uvicorn = importlib.import_module("uvicorn")
    config = uvicorn.Config(asgi, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

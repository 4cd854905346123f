"""A small MCP server built on the official ``mcp`` SDK, as an interop peer for the tests.

Run it with the peers venv's Python (see ``peers.sdk_server_command``)::

    tests/peers/.venv/bin/python tests/peers/sdk_server.py streamable-http [options]

By default it serves both protocol eras, as the SDK does. ``--modern-only``
refuses the legacy ``initialize`` with ``UnsupportedProtocolVersionError``
naming the modern versions, as a server that speaks only 2026-07-28 does
(over stdio it runs the SDK's modern loop alone; over HTTP a middleware
refuses ``initialize``).
``--tools-ttl-ms N`` makes ``tools/list`` results carry ``ttlMs: N`` (public).

Transports: ``stdio``, ``sse`` and ``streamable-http``. Over HTTP it binds a
free port on 127.0.0.1 itself (no race with other processes) and prints
``listening on <url>`` as its first line on stdout.

Tools: ``add(a, b)`` returns the integer sum (also as structured content);
``echo(message)`` returns the message; ``progress(steps)`` reports progress
``steps`` times (when the call carries a progress token) and returns ``"done"``;
``fail(message)`` raises, so the result is a tool error whose text names
``message``; ``grow(name, notify)`` adds a tool ``name`` (which returns its
own name) and, with ``notify``, says the tool list changed. Resource
``peer://greeting`` is the text ``hello``; prompt ``greet(name)`` is one user
message.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
import sys
from typing import Any

import anyio
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.runner import _serve_modern_stream
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

MODERN_VERSIONS = ["2026-07-28"]
UNSUPPORTED_PROTOCOL_VERSION = -32022


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


async def refuse_initialize(ctx: Any, call_next: Any) -> Any:
    """Middleware of ``--modern-only``: the legacy handshake is refused, naming the versions."""
    if ctx.method == "initialize":
        requested = (ctx.params or {}).get("protocolVersion")
        raise MCPError(
            code=UNSUPPORTED_PROTOCOL_VERSION,
            message="this server speaks only the modern protocol; initialize is not accepted",
            data={"supported": MODERN_VERSIONS, "requested": requested},
        )
    return await call_next(ctx)


async def serve_modern_stdio(app: Any) -> None:
    """Serve stdin/stdout in the modern era only, as a server without the legacy era does.

    The SDK's stdio loop lets the first request pick the era for the process;
    a modern-only server has no legacy loop, so ``initialize`` is refused with
    ``UnsupportedProtocolVersionError`` and every later request still served.
    """
    lowlevel = app._lowlevel_server
    async with stdio_server() as (read, write), lowlevel.lifespan(lowlevel) as state:
        await _serve_modern_stream(
            lowlevel, read, write, lifespan_state=state, raise_exceptions=False
        )


def build(*, modern_only: bool = False, tools_ttl_ms: int | None = None) -> Any:
    """The server with its tools, resource and prompt."""
    hints: Any = None
    if tools_ttl_ms is not None:
        hints = {"tools/list": CacheHint(ttl_ms=tools_ttl_ms, scope="public")}
    app = MCPServer(
        "opex-trio-sdk-peer",
        version="1.0.0",
        cache_hints=hints,
        middleware=[refuse_initialize] if modern_only else None,
    )

    async def grow(name: str, ctx: Context[Any, Any], notify: bool = True) -> str:
        """Add a tool ``name`` that returns its own name; with ``notify``, announce the change."""

        def grown() -> str:
            return name

        app.add_tool(grown, name=name, description=f"Return {name!r}.")
        if notify:
            await ctx.notify_tools_changed()  # subscriptions/listen (modern era)
            # The legacy notification; a modern connection has no channel for it.
            with contextlib.suppress(Exception):
                await ctx.session.send_tool_list_changed()
        return name

    for tool in (add, echo, progress, fail, touch, grow):
        app.add_tool(tool)
    app.resource("peer://greeting", name="greeting", mime_type="text/plain")(greeting)
    app.prompt(name="greet")(greet)
    return app


def main(argv: list[str]) -> int:
    """Serve over the transport named in ``argv`` (default ``streamable-http``), with its options."""
    args = list(argv)
    modern_only = "--modern-only" in args
    if modern_only:
        args.remove("--modern-only")
    ttl: int | None = None
    if "--tools-ttl-ms" in args:
        at = args.index("--tools-ttl-ms")
        ttl = int(args[at + 1])
        del args[at : at + 2]
    transport = args[0] if args else "streamable-http"
    app = build(modern_only=modern_only, tools_ttl_ms=ttl)
    if transport == "stdio":
        if modern_only:
            anyio.run(serve_modern_stdio, app)
        else:
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

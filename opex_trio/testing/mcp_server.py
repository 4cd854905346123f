"""A small, scriptable MCP server for tests: in process, or as a real stdio process.

:class:`McpTestServer` speaks the legacy-era lifecycle (``initialize``,
``ping``, tools, resources, prompts, completion, logging) and lets a test
register tools as plain functions. It serves an in-memory connection
(:meth:`McpTestServer.serve_memory`) or stdin/stdout
(:meth:`McpTestServer.serve_stdio`).

Run as a program, ``python -m opex_trio.testing.mcp_server``, it serves a set
of built-in tools over stdio, with switches that make it misbehave in the ways
real servers do (ignore SIGTERM, print garbage, flood stderr, crash at start,
go silent, leave a grandchild behind), so the client's fault handling can be
tested against a real process.

Tool functions take ``(arguments, ctx)`` and may be sync or async; they
return a string (one text block), a dict (a full ``CallToolResult``), or raise
:class:`ToolFailure` for an ``isError`` result; any other exception also becomes
an ``isError`` result naming it (logged with its traceback), as real servers do.
``ctx`` (:class:`ToolContext`) sends progress, log messages and server-to-client
requests.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..errors import TransportBrokenError
from ..protocol import jsonrpc
from ..protocol.jsonrpc import Notification, Request
from ..protocol.versions import LEGACY_VERSIONS
from ..transports.base import Transport, TransportFactory
from ..transports.memory import MemoryServerEnd, memory_pair
from ._builtin_tools import add_builtin_tools

# The helpers below are re-exported explicitly: tests and the HTTP test server import them here.
from ._connection import _NO_ANSWER as _NO_ANSWER
from ._connection import ToolContext, ToolFailure, _Tool
from ._connection import ToolFunction as ToolFunction
from ._connection import _Connection as _Connection
from ._connection import _RpcError as _RpcError

__all__ = ["McpTestServer", "ToolContext", "ToolFailure", "builtin_server", "main"]

logger = logging.getLogger("opex_trio.testing.mcp_server")


class McpTestServer:
    """A scriptable MCP server. Register tools with :meth:`tool` or :meth:`add_tool`.

    ``capabilities`` replaces the server capabilities it declares (by default
    tools, resources without subscriptions, prompts, logging and completions).
    It records what it received (:attr:`requests`, :attr:`notifications`, the
    ids of requests the client cancelled in :attr:`cancelled`) so tests can
    assert on them.
    """

    def __init__(
        self,
        name: str = "opex-test-server",
        version: str = "1.0.0",
        *,
        protocol_versions: tuple[str, ...] = LEGACY_VERSIONS,
        instructions: str | None = None,
        page_size: int | None = None,
        capabilities: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.capabilities = (
            dict(capabilities)
            if capabilities is not None
            else {
                "tools": {"listChanged": True},
                "resources": {"listChanged": True, "subscribe": False},
                "prompts": {"listChanged": True},
                "logging": {},
                "completions": {},
            }
        )
        self.version = version
        self.protocol_versions = protocol_versions
        self.instructions = instructions
        self.page_size = page_size
        self.tools: dict[str, _Tool] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        self.prompts: dict[str, dict[str, Any]] = {}
        self.requests: list[Request] = []
        self.notifications: list[Notification] = []
        self.cancelled: list[jsonrpc.RequestId] = []
        self.log_level: str | None = None
        self._connections: list[_Connection] = []

    # -- registration

    def add_tool(
        self,
        name: str,
        function: ToolFunction,
        *,
        description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Register ``function`` as tool ``name``; ``fields`` are extra Tool members."""
        definition: dict[str, Any] = {
            "name": name,
            "inputSchema": dict(input_schema or {"type": "object", "properties": {}}),
            **fields,
        }
        if description is not None:
            definition["description"] = description
        self.tools[name] = _Tool(definition, function)

    def tool(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Callable[[ToolFunction], ToolFunction]:
        """Decorator form of :meth:`add_tool`."""

        def register(function: ToolFunction) -> ToolFunction:
            self.add_tool(
                name or function.__name__,
                function,
                description=description or inspect.getdoc(function),
                input_schema=input_schema,
                **fields,
            )
            return function

        return register

    def remove_tool(self, name: str) -> None:
        """Unregister a tool."""
        self.tools.pop(name, None)

    async def notify_all(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Send a notification to every connected client."""
        for conn in list(self._connections):
            await conn.send(Notification(method, params))

    # -- dispatch

    async def dispatch(self, request: Request, conn: _Connection) -> Any:
        """Answer one request; raise ``_RpcError`` for a JSON-RPC error."""
        params = dict(request.params or {})
        method = request.method
        if method == "initialize":
            return self._initialize(params, conn)
        if method == "ping":
            return {}
        if conn.version is None:
            raise _RpcError(jsonrpc.INVALID_REQUEST, f"{method} before initialize")
        if method == "tools/list":
            return self._page("tools", [t.definition for t in self.tools.values()], params)
        if method == "tools/call":
            return await self._call_tool(request, params, conn)
        if method == "resources/list":
            listed = [r["resource"] for r in self.resources.values()]
            return self._page("resources", listed, params)
        if method == "resources/templates/list":
            return {"resourceTemplates": []}
        if method == "resources/read":
            entry = self.resources.get(params.get("uri", ""))
            if entry is None:
                raise _RpcError(jsonrpc.RESOURCE_NOT_FOUND, f"no resource {params.get('uri')!r}")
            return {"contents": [entry["contents"]]}
        if method == "prompts/list":
            return self._page("prompts", [p["prompt"] for p in self.prompts.values()], params)
        if method == "prompts/get":
            prompt = self.prompts.get(params.get("name", ""))
            if prompt is None:
                raise _RpcError(jsonrpc.INVALID_PARAMS, f"no prompt {params.get('name')!r}")
            args = params.get("arguments") or {}
            return {"messages": prompt["render"](args)}
        if method == "completion/complete":
            value = str((params.get("argument") or {}).get("value", ""))
            values = [v for v in ("alpha", "beta", "gamma") if v.startswith(value)]
            return {"completion": {"values": values, "total": len(values), "hasMore": False}}
        if method == "logging/setLevel":
            self.log_level = params.get("level")
            return {}
        raise _RpcError(jsonrpc.METHOD_NOT_FOUND, f"method not found: {method}")

    def _initialize(self, params: dict[str, Any], conn: _Connection) -> dict[str, Any]:
        offered = params.get("protocolVersion")
        version = offered if offered in self.protocol_versions else self.protocol_versions[0]
        conn.version = version
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": self.capabilities,
            "serverInfo": {"name": self.name, "version": self.version},
        }
        if self.instructions:
            result["instructions"] = self.instructions
        return result

    def _page(self, key: str, items: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        if not self.page_size:
            return {key: items}
        start = int(params.get("cursor") or 0)
        end = start + self.page_size
        page: dict[str, Any] = {key: items[start:end]}
        if end < len(items):
            page["nextCursor"] = str(end)
        return page

    async def _call_tool(self, request: Request, params: dict[str, Any], conn: _Connection) -> Any:
        name = params.get("name")
        tool = self.tools.get(name) if isinstance(name, str) else None
        if tool is None:
            raise _RpcError(jsonrpc.INVALID_PARAMS, f"unknown tool: {name!r}")
        arguments = params.get("arguments") or {}
        ctx = ToolContext(self, request, conn)
        try:
            value = tool.function(arguments, ctx)
            if inspect.isawaitable(value):
                value = await value
        except ToolFailure as exc:
            return {"content": [{"type": "text", "text": str(exc)}], "isError": True}
        except _RpcError:
            raise
        except Exception as exc:
            # As real servers do: a tool that breaks is the call's error
            # result, never the end of the server.
            logger.warning("tool %r raised %r", name, exc, exc_info=True)
            text = f"tool {name!r} raised {type(exc).__name__}: {exc}"
            return {"content": [{"type": "text", "text": text}], "isError": True}
        if value is _NO_ANSWER:
            return value
        if isinstance(value, str):
            return {"content": [{"type": "text", "text": value}]}
        return value

    # -- serving

    def in_process(
        self, nursery: trio.Nursery, name: str = "in-process", *, refuse_first: int = 0
    ) -> TransportFactory:
        """A transport factory connecting to this server in process (no IO).

        Each connection is served by a task started in ``nursery``; pass the
        factory to :class:`~opex_trio.mcp.client.McpClient` or
        :meth:`~opex_trio.mcp.manager.SessionManager.add_server`. The first
        ``refuse_first`` connections fail with
        :class:`~opex_trio.errors.TransportBrokenError`, to test reconnection.
        """
        opened = 0

        @asynccontextmanager
        async def connect() -> AsyncIterator[Transport]:
            nonlocal opened
            opened += 1
            if opened <= refuse_first:
                raise TransportBrokenError(f"refused connection {opened} to {self.name}")
            transport, end = memory_pair(name)
            nursery.start_soon(self.serve_memory, end)
            async with transport:
                yield transport
            await end.aclose()

        return connect

    async def serve_memory(self, end: MemoryServerEnd) -> None:
        """Serve one in-memory connection until the client closes it."""

        async def send_text(data: bytes) -> None:
            with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                await end.send(data)

        await self._serve(end.receive, send_text, (trio.EndOfChannel, trio.ClosedResourceError))

    async def serve_stdio(self) -> None:
        """Serve stdin/stdout until stdin ends."""
        stdin = trio.lowlevel.FdStream(os.dup(0))
        stdout = trio.lowlevel.FdStream(os.dup(1))
        buffer = b""

        async def receive() -> bytes:
            nonlocal buffer
            while b"\n" not in buffer:
                chunk = await stdin.receive_some(65536)
                if not chunk:
                    raise EOFError
                buffer += chunk
            line, buffer = buffer.split(b"\n", 1)
            return line

        async def send_text(data: bytes) -> None:
            await stdout.send_all(data + b"\n")

        await self._serve(receive, send_text, (EOFError,))

    async def _serve(
        self,
        receive: Callable[[], Awaitable[bytes]],
        send_text: Callable[[bytes], Awaitable[None]],
        end_errors: tuple[type[BaseException], ...],
    ) -> None:
        conn = _Connection(self, send_text)
        self._connections.append(conn)
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    try:
                        data = await receive()
                    except end_errors:
                        break
                    if data.strip():
                        await conn.handle_text(data, nursery)
                nursery.cancel_scope.cancel()
        finally:
            self._connections.remove(conn)


def builtin_server(options: argparse.Namespace | None = None) -> McpTestServer:
    """The server the program form runs: echo, add, sleep, progress, big, crash, and more."""
    opts = options or _parser().parse_args([])
    server = McpTestServer(
        opts.name,
        protocol_versions=tuple(opts.protocol_version or LEGACY_VERSIONS),
        page_size=opts.page_size,
    )

    add_builtin_tools(server)
    return server


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m opex_trio.testing.mcp_server")
    p.add_argument("--name", default="opex-test-server")
    p.add_argument("--protocol-version", action="append", help="versions to accept, in order")
    p.add_argument("--page-size", type=int, default=None)
    p.add_argument("--ignore-sigterm", action="store_true", help="survive SIGTERM")
    p.add_argument("--ignore-stdin-eof", action="store_true", help="keep running after stdin ends")
    p.add_argument("--garbage-first", type=int, default=0, help="print N non-JSON lines at start")
    p.add_argument("--stderr-flood", type=int, default=0, help="write N bytes to stderr at start")
    p.add_argument("--crash-at-start", action="store_true", help="exit with status 7 at once")
    p.add_argument("--silent-after", type=int, default=None, help="stop answering after N requests")
    p.add_argument(
        "--silent-to", action="append", default=[], help="never answer this method (repeatable)"
    )
    p.add_argument("--grandchild", action="store_true", help="start a long sleep in the group")
    p.add_argument("--pid-file", default=None, help="write pid (and grandchild pid) here")
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the built-in test server over stdio."""
    opts = _parser().parse_args(argv)
    if opts.crash_at_start:
        sys.stderr.write("crashing at start on purpose\n")
        sys.stderr.flush()
        os._exit(7)
    if opts.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pids = [os.getpid()]
    if opts.grandchild:
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pids.append(child.pid)
    if opts.pid_file:
        with open(opts.pid_file, "w") as f:
            f.write(" ".join(map(str, pids)))
    for _ in range(opts.garbage_first):
        os.write(1, b"garbage: not a JSON-RPC message\n")
    if opts.stderr_flood:
        chunk = b"flood " * 1000 + b"\n"
        written = 0
        while written < opts.stderr_flood:
            os.write(2, chunk)
            written += len(chunk)
    server = builtin_server(opts)
    if opts.silent_after is not None or opts.silent_to:
        inner = server.dispatch
        count = 0

        async def dispatch(request: Request, conn: _Connection) -> Any:
            nonlocal count
            count += 1
            if request.method in opts.silent_to:
                return _NO_ANSWER
            if opts.silent_after is not None and count > opts.silent_after:
                return _NO_ANSWER
            return await inner(request, conn)

        server.dispatch = dispatch  # type: ignore[method-assign]

    async def run() -> None:
        await server.serve_stdio()
        if opts.ignore_stdin_eof:
            await trio.sleep_forever()

    trio.run(run)


if __name__ == "__main__":
    main()

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
:class:`ToolFailure` for an ``isError`` result. ``ctx`` (:class:`ToolContext`)
sends progress, log messages and server-to-client requests.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from ..errors import ProtocolError, TransportBrokenError
from ..protocol import jsonrpc
from ..protocol.jsonrpc import ErrorObject, ErrorResponse, Notification, Request, Response
from ..protocol.versions import LEGACY_VERSIONS, features
from ..transports.base import Transport, TransportFactory
from ..transports.memory import MemoryServerEnd, memory_pair

__all__ = ["McpTestServer", "ToolContext", "ToolFailure", "builtin_server", "main"]

ToolFunction = Callable[[Mapping[str, Any], "ToolContext"], Any]


class ToolFailure(Exception):
    """Raise from a tool function to return an ``isError`` result with this message."""


@attrs.define
class _Tool:
    definition: dict[str, Any]
    function: ToolFunction


class ToolContext:
    """What a running tool can do besides returning: progress, logs, requests to the client."""

    def __init__(self, server: McpTestServer, request: Request, conn: _Connection) -> None:
        self.server = server
        self.call = request
        """The ``tools/call`` request being served."""
        self._conn = conn
        meta = (request.params or {}).get("_meta") or {}
        self.progress_token = meta.get("progressToken")

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Send ``notifications/progress`` if the caller gave a progress token."""
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self._conn.send(Notification("notifications/progress", params))

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        """Send ``notifications/message``."""
        params: dict[str, Any] = {"level": level, "data": data}
        if logger:
            params["logger"] = logger
        await self._conn.send(Notification("notifications/message", params))

    async def request(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Send a request to the client and wait for its result (or raise on its error)."""
        return await self._conn.request(method, params)

    async def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Send any notification to the client."""
        await self._conn.send(Notification(method, params))


class _Connection:
    """One client connection: a reader loop, and a task per request."""

    def __init__(
        self,
        server: McpTestServer,
        send_text: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self.server = server
        self._send_text = send_text
        self._send_lock = trio.Lock()
        self.version: str | None = None
        self._ids = jsonrpc.IdAllocator(1000)
        self._waiting: dict[jsonrpc.RequestId, trio.MemorySendChannel[Any]] = {}
        self._running: dict[jsonrpc.RequestId, trio.CancelScope] = {}
        self.initialized = trio.Event()

    async def send(self, message: jsonrpc.Message) -> None:
        async with self._send_lock:
            await self._send_text(jsonrpc.encode(message))

    async def request(self, method: str, params: Mapping[str, Any] | None) -> Any:
        rid = self._ids()
        send, recv = trio.open_memory_channel[Any](1)
        self._waiting[rid] = send
        try:
            await self.send(Request(rid, method, params))
            outcome = await recv.receive()
        finally:
            self._waiting.pop(rid, None)
        if isinstance(outcome, ErrorObject):
            raise ToolFailure(
                f"client answered {method} with error {outcome.code}: {outcome.message}"
            )
        return outcome

    async def handle_text(self, data: bytes | str, nursery: trio.Nursery) -> None:
        allow_batch = bool(self.version and features(self.version).batching)
        try:
            messages = jsonrpc.decode(data, allow_batch=allow_batch)
        except ProtocolError as exc:
            await self.send(ErrorResponse(exc.request_id, ErrorObject(exc.code, str(exc))))
            return
        for message in messages:
            if isinstance(message, ProtocolError):
                await self.send(
                    ErrorResponse(message.request_id, ErrorObject(message.code, str(message)))
                )
            elif isinstance(message, Request):
                nursery.start_soon(self._serve_request, message)
            elif isinstance(message, Notification):
                await self._on_notification(message)
            else:
                waiter = self._waiting.get(message.id) if message.id is not None else None
                if waiter is not None:
                    value = message.result if isinstance(message, Response) else message.error
                    waiter.send_nowait(value)

    async def _on_notification(self, message: Notification) -> None:
        self.server.notifications.append(message)
        if message.method == "notifications/initialized":
            self.initialized.set()
        elif message.method == "notifications/cancelled":
            rid = (message.params or {}).get("requestId")
            scope = self._running.get(rid) if isinstance(rid, str | int) else None
            if scope is not None and isinstance(rid, str | int):
                # Recorded here, in the reader, so a request read after this
                # notification always sees it.
                scope.cancel()
                self.server.cancelled.append(rid)

    async def _serve_request(self, request: Request) -> None:
        self.server.requests.append(request)
        with trio.CancelScope() as scope:
            self._running[request.id] = scope
            try:
                try:
                    result = await self.server.dispatch(request, self)
                except _RpcError as exc:
                    await self.send(ErrorResponse(request.id, exc.error))
                    return
                if result is _NO_ANSWER:
                    await trio.sleep_forever()
                await self.send(Response(request.id, result))
            finally:
                self._running.pop(request.id, None)


class _RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.error = ErrorObject(code, message, data)


_NO_ANSWER: Any = object()


class McpTestServer:
    """A scriptable MCP server. Register tools with :meth:`tool` or :meth:`add_tool`.

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
    ) -> None:
        self.name = name
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
            "capabilities": {
                "tools": {"listChanged": True},
                "resources": {"listChanged": True, "subscribe": False},
                "prompts": {"listChanged": True},
                "logging": {},
                "completions": {},
            },
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


# -- the built-in tool set used by the program form


def builtin_server(options: argparse.Namespace | None = None) -> McpTestServer:
    """The server the program form runs: echo, add, sleep, progress, big, crash, and more."""
    opts = options or _parser().parse_args([])
    server = McpTestServer(
        opts.name,
        protocol_versions=tuple(opts.protocol_version or LEGACY_VERSIONS),
        page_size=opts.page_size,
    )

    @server.tool(
        input_schema={
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        },
        annotations={"readOnlyHint": True},
    )
    def echo(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Return the message."""
        return str(args.get("message", ""))

    @server.tool(
        input_schema={
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
        annotations={"readOnlyHint": True, "idempotentHint": True},
    )
    def add(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Add two numbers."""
        total = args["a"] + args["b"]
        return {
            "content": [{"type": "text", "text": str(total)}],
            "structuredContent": {"sum": total},
        }

    @server.tool(
        input_schema={"type": "object", "properties": {"seconds": {"type": "number"}}},
    )
    async def sleep(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Sleep, then answer."""
        await trio.sleep(float(args.get("seconds", 1)))
        return "slept"

    @server.tool(
        input_schema={"type": "object", "properties": {"steps": {"type": "integer"}}},
    )
    async def progress(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Report progress in steps."""
        steps = int(args.get("steps", 3))
        for i in range(1, steps + 1):
            await ctx.progress(i, steps, f"step {i}")
            await trio.sleep(0.01)
        return f"done in {steps} steps"

    @server.tool(input_schema={"type": "object", "properties": {"size": {"type": "integer"}}})
    def big(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Answer with a text of ``size`` bytes."""
        return "x" * int(args.get("size", 1024))

    @server.tool()
    def crash(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Exit the whole process at once, mid-call."""
        os._exit(3)

    @server.tool()
    def hang(args: Mapping[str, Any], ctx: ToolContext) -> Any:
        """Never answer."""
        return _NO_ANSWER

    @server.tool()
    async def garbage(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Write a non-JSON line to stdout, then answer."""
        os.write(1, b"this is not JSON\n")
        return "after garbage"

    @server.tool()
    def fail(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Fail as a tool (an isError result)."""
        raise ToolFailure("the tool failed on purpose")

    @server.tool(
        input_schema={
            "type": "object",
            "properties": {"level": {"type": "string"}, "message": {"type": "string"}},
        }
    )
    async def log(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Send a log message, then answer."""
        await ctx.log(str(args.get("level", "info")), str(args.get("message", "hello")), "test")
        return "logged"

    @server.tool()
    async def sample(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Ask the client's model (sampling/createMessage) and return its text."""
        result = await ctx.request(
            "sampling/createMessage",
            {
                "messages": [{"role": "user", "content": {"type": "text", "text": "Say hi"}}],
                "maxTokens": 20,
            },
        )
        return str(result.get("content", {}).get("text", ""))

    @server.tool()
    async def roots(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Ask the client for its roots and return them as JSON."""
        result = await ctx.request("roots/list")
        return json.dumps(result.get("roots", []))

    @server.tool()
    async def elicit(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Ask the user (elicitation/create) and return the answer as JSON."""
        result = await ctx.request(
            "elicitation/create",
            {
                "message": "Your name?",
                "requestedSchema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                },
            },
        )
        return json.dumps(result)

    @server.tool(input_schema={"type": "object", "properties": {"name": {"type": "string"}}})
    async def add_tool(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Register a new echo-like tool and notify the client that the list changed."""
        new_name = str(args.get("name", "extra"))
        server.add_tool(new_name, lambda a, c: f"{new_name}: {a}")
        await ctx.notify("notifications/tools/list_changed")
        return f"added {new_name}"

    @server.tool()
    def pid(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """The server's pid."""
        return str(os.getpid())

    @server.tool()
    def meta(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """The ``_meta`` of this call's request, as JSON."""
        return json.dumps((ctx.call.params or {}).get("_meta") or {}, sort_keys=True)

    @server.tool()
    def stats(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """What the server saw: request count, ids the client cancelled, notification methods."""
        seen = {
            "requests": len(server.requests),
            "cancelled": server.cancelled,
            "notifications": [n.method for n in server.notifications],
            "log_level": server.log_level,
        }
        return {"content": [{"type": "text", "text": json.dumps(seen)}], "structuredContent": seen}

    @server.tool(input_schema={"type": "object", "properties": {"name": {"type": "string"}}})
    def getenv(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """The value of an environment variable of the server, or <unset>."""
        return os.environ.get(str(args.get("name")), "<unset>")

    @server.tool()
    async def ping_client(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Ping the client and report its answer."""
        return json.dumps(await ctx.request("ping"))

    server.resources["test://hello"] = {
        "resource": {"uri": "test://hello", "name": "hello", "mimeType": "text/plain"},
        "contents": {"uri": "test://hello", "mimeType": "text/plain", "text": "Hello, world"},
    }
    server.prompts["greet"] = {
        "prompt": {
            "name": "greet",
            "description": "Greet someone",
            "arguments": [{"name": "who", "required": True}],
        },
        "render": lambda a: [
            {"role": "user", "content": {"type": "text", "text": f"Hello, {a.get('who')}!"}}
        ],
    }
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
    if opts.silent_after is not None:
        inner = server.dispatch
        count = 0

        async def dispatch(request: Request, conn: _Connection) -> Any:
            nonlocal count
            count += 1
            if count > opts.silent_after:
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

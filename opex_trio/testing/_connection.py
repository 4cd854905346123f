"""One client connection of the MCP test server, and what a running tool sees of it.

:class:`~opex_trio.testing.mcp_server.McpTestServer` answers the requests; this
module reads and writes the messages, runs a task per request, and carries
server-to-client requests for :class:`ToolContext`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..errors import ProtocolError
from ..protocol import jsonrpc
from ..protocol.jsonrpc import ErrorObject, ErrorResponse, Notification, Request, Response
from ..protocol.versions import features

if TYPE_CHECKING:
    from .mcp_server import McpTestServer

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

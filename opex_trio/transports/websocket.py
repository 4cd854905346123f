"""Remote MCP servers over WebSocket, with trio-websocket.

Theory of operation
-------------------
One JSON-RPC message travels in one text frame, in both directions, on a
connection opened with the subprotocol ``mcp``. trio-websocket runs the
connection's reader in its own nursery and queues incoming messages;
:meth:`WebSocketTransport.receive` takes them from that queue and
:meth:`WebSocketTransport.send` writes frames in order.

A keepalive task pings the server every ``ping_interval`` seconds; a server
that does not answer within ``ping_timeout`` is taken as gone, and the
connection is closed, so every pending call fails at once instead of waiting
for its deadline.

Close codes become typed errors: a close this side started is
:class:`~opex_trio.errors.TransportClosedError`; a refused handshake (401,
403) or a close for policy reasons (1008, 4401, 4403) is
:class:`~opex_trio.errors.TransportAuthError`; anything else, including a
message over ``max_message_size`` (which WebSocket answers by closing with
1009), is :class:`~opex_trio.errors.TransportBrokenError` with the code and
reason in its message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import attrs
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    DisconnectionTimeout,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from ..auth.flow import OAuth
from ..errors import (
    ConfigError,
    OpexError,
    TransportAuthError,
    TransportBrokenError,
    TransportClosedError,
)
from ..protocol.framing import DEFAULT_MAX_MESSAGE_SIZE
from ._params import (
    check_execution_id,
    check_header_name,
    check_token,
    normalize_headers,
    redacted_headers,
)
from .base import Outgoing, Transport

__all__ = ["WebSocketParameters", "WebSocketTransport", "open_websocket_transport"]

_AUTH_CLOSE_CODES = frozenset({1008, 4401, 4403})
_CLOSE_WORDS = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1006: "abnormal closure",
    1007: "invalid data",
    1008: "policy violation",
    1009: "message too big",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
}


def _check_ws_url(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"url must be a string, got {type(value).__name__}")
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}" if parts.scheme else value
        raise ConfigError(f"url must be a ws:// or wss:// URL, got {shown!r}")


@attrs.frozen
class WebSocketParameters:
    """How to reach an MCP server over WebSocket.

    ``auth_token`` is sent as ``Authorization: Bearer`` in the handshake and
    ``headers`` are added to it. ``execution_id`` goes in the handshake too, in
    the header named ``execution_id_header``: over HTTP it comes with every
    ``tools/call``, but a WebSocket carries every call of the connection after
    one handshake, so that is where the server learns it. ``auth`` (an
    :class:`opex_trio.auth.OAuth`) authorizes the handshake: its token goes in
    the handshake's headers, and a handshake refused with 401 or 403 is
    authorized and tried once more. ``ping_interval`` (``None``: no keepalive)
    and ``ping_timeout`` drive the keepalive; ``connect_timeout`` bounds the
    opening handshake and ``close_timeout`` the closing one (when the client
    is cancelled, the server's answer to the close cannot be read any more,
    so a cancelled close takes this long). ``max_message_size`` bounds one
    incoming message in bytes.
    """

    url: str = attrs.field(validator=_check_ws_url)
    auth_token: str | None = attrs.field(default=None, repr=False, validator=check_token)
    headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=normalize_headers, repr=redacted_headers
    )
    execution_id: str | None = attrs.field(default=None, validator=check_execution_id)
    execution_id_header: str = attrs.field(default="Execution-Id", validator=check_header_name)
    auth: OAuth | None = attrs.field(default=None, repr=False, eq=False)
    name: str | None = None
    subprotocol: str = "mcp"
    ping_interval: float | None = 20.0
    ping_timeout: float = 20.0
    connect_timeout: float = 30.0
    close_timeout: float = 2.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    message_queue_size: int = 64

    @property
    def label(self) -> str:
        """The server's name, or the host of its URL when it has none."""
        return self.name or urlsplit(self.url).hostname or "websocket"

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        """The extra headers of the opening handshake."""
        headers = [(k.encode(), v.encode()) for k, v in self.headers.items()]
        if self.execution_id is not None:
            headers.append((self.execution_id_header.encode(), self.execution_id.encode()))
        if self.auth_token is not None:
            headers.append((b"Authorization", f"Bearer {self.auth_token}".encode()))
        return headers


class WebSocketTransport(Transport):
    """An open WebSocket to an MCP server. Made by :func:`open_websocket_transport`."""

    def __init__(self, ws: WebSocketConnection, params: WebSocketParameters) -> None:
        self.name = params.label
        self.params = params
        self.ws = ws
        self._closed = False
        self._broken: TransportBrokenError | None = None

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose (``"mcp"``, or ``None`` if it chose none)."""
        return self.ws.subprotocol

    def _closed_error(self) -> TransportClosedError:
        return TransportClosedError(f"the connection to MCP server {self.name!r} is closed")

    def _map_closed(self, exc: ConnectionClosed) -> OpexError:
        if self._closed:
            return self._closed_error()
        if self._broken is not None:
            return self._broken
        reason = exc.reason
        code = reason.code if reason is not None else 1006
        words = _CLOSE_WORDS.get(code, reason.name.lower() if reason is not None else "")
        detail = f"{code} ({words})" + (f": {reason.reason}" if reason and reason.reason else "")
        if code in _AUTH_CLOSE_CODES:
            return TransportAuthError(
                f"MCP server {self.name!r} closed the WebSocket for policy reasons, {detail}; "
                "check its credentials",
                server=self.name,
                status=code,
            )
        if code == 1009:
            detail += f" (the limit is {self.params.max_message_size} bytes)"
        return TransportBrokenError(f"MCP server {self.name!r} closed the WebSocket: {detail}")

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """Send each message as one text frame."""
        if self._closed:
            raise self._closed_error()
        for message in messages:
            try:
                await self.ws.send_message(message.data.decode("utf-8"))
            except ConnectionClosed as exc:
                raise self._map_closed(exc) from exc
            except (trio.BrokenResourceError, OSError) as exc:
                raise TransportBrokenError(
                    f"the WebSocket to MCP server {self.name!r} broke: {exc}"
                ) from exc

    async def receive(self) -> bytes | str:
        """The next message the server sent."""
        if self._closed:
            raise self._closed_error()
        try:
            return await self.ws.get_message()
        except ConnectionClosed as exc:
            raise self._map_closed(exc) from exc

    async def keepalive(self) -> None:
        """Ping every ``ping_interval`` seconds; close the connection when a pong is late."""
        interval = self.params.ping_interval
        if interval is None:
            return
        while True:
            await trio.sleep(interval)
            with trio.move_on_after(self.params.ping_timeout) as scope:
                try:
                    await self.ws.ping()
                except ConnectionClosed:
                    return
            if scope.cancelled_caught:
                self._broken = TransportBrokenError(
                    f"MCP server {self.name!r} did not answer a WebSocket ping within "
                    f"{self.params.ping_timeout:g} s"
                )
                await self.ws.aclose(1011, "ping timeout")
                return

    async def shutdown(self) -> None:
        """Close the connection with 1000. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True), trio.move_on_after(self.params.close_timeout):
            await self.ws.aclose(1000, "client closing")
        # When the peer vanished before the closing handshake, trio-websocket
        # marks the connection closed and its aclose() returns at once, leaving
        # the TCP stream open for the garbage collector (a ResourceWarning).
        stream = getattr(self.ws, "_stream", None)
        if stream is not None:
            with trio.CancelScope(shield=True):
                await stream.aclose()


@asynccontextmanager
async def open_websocket_transport(
    params: WebSocketParameters,
) -> AsyncIterator[WebSocketTransport]:
    """Open the WebSocket and yield its transport; close it on exit."""
    if params.auth is None:
        async with _open(params, []) as transport:
            yield transport
        return
    entered = False
    for attempt in range(2):
        extra = await params.auth.handshake_headers(params.url)
        try:
            async with _open(params, [(k.encode(), v.encode()) for k, v in extra.items()]) as ws:
                entered = True
                yield ws
            return
        except TransportAuthError as exc:
            if entered or attempt == 1 or exc.status not in (401, 403):
                raise
            await params.auth.challenged(exc.status, exc.www_authenticate)


@asynccontextmanager
async def _open(
    params: WebSocketParameters, auth_headers: list[tuple[bytes, bytes]]
) -> AsyncIterator[WebSocketTransport]:
    entered = body_failed = False
    try:
        async with open_websocket_url(
            params.url,
            subprotocols=[params.subprotocol],
            extra_headers=params.handshake_headers() + auth_headers,
            max_message_size=params.max_message_size,
            message_queue_size=params.message_queue_size,
            connect_timeout=params.connect_timeout,
            disconnect_timeout=params.close_timeout,
        ) as ws:
            entered = True
            transport = WebSocketTransport(ws, params)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(transport.keepalive)
                try:
                    yield transport
                except BaseException:
                    body_failed = True
                    raise
                finally:
                    nursery.cancel_scope.cancel()
                    await transport.shutdown()
    except BaseException as exc:
        if entered:
            if not body_failed and _only(exc, DisconnectionTimeout) is not None:
                # Our closing handshake went unanswered; the socket is closed all the same.
                return
            raise
        await _close_abandoned_streams(exc)
        error = _open_error(params, exc)
        if error is None:
            raise
        raise error from exc


async def _close_abandoned_streams(exc: BaseException) -> None:
    """Close the TCP streams of connections whose opening handshake failed with ``exc``.

    trio-websocket raises a refused handshake (an HTTP 401 while credentials
    are renewed, say) from the connection's reader task and never closes that
    connection's stream: its socket would stay open until the garbage
    collector finds it, with a ResourceWarning. The connection is reachable
    only from the frames the error passed through.
    """
    streams = []
    for leaf in _leaves(exc):
        tb = leaf.__traceback__
        while tb is not None:
            owner = tb.tb_frame.f_locals.get("self")
            if isinstance(owner, WebSocketConnection):
                stream = getattr(owner, "_stream", None)
                if stream is not None and stream not in streams:
                    streams.append(stream)
            tb = tb.tb_next
    with trio.CancelScope(shield=True):
        for stream in streams:
            await stream.aclose()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _only(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The one ``kind`` leaf of ``exc`` (older trio-websocket raises groups), if that is all."""
    leaves = [leaf for leaf in _leaves(exc) if not isinstance(leaf, trio.Cancelled)]
    if len(leaves) == 1 and isinstance(leaves[0], kind):
        return leaves[0]
    return None


def _open_error(params: WebSocketParameters, exc: BaseException) -> OpexError | None:
    """The typed error for a failed opening handshake, or ``None`` for anything else."""
    rejected = _only(exc, ConnectionRejected)
    if isinstance(rejected, ConnectionRejected):
        status = rejected.status_code
        if status in (401, 403):
            www = dict(rejected.headers).get(b"www-authenticate")
            return TransportAuthError(
                f"MCP server {params.label!r} refused the WebSocket handshake with HTTP {status}"
                + ("; check its auth_token" if params.auth_token else "; it needs credentials"),
                server=params.label,
                status=status,
                www_authenticate=www.decode("latin-1") if www else None,
            )
        return TransportBrokenError(
            f"MCP server {params.label!r} refused the WebSocket handshake with HTTP {status}"
        )
    failed = _only(exc, HandshakeError) or _only(exc, OSError)
    if failed is not None:
        cause = failed.__cause__ or failed.__context__ or failed
        return TransportBrokenError(
            f"could not open a WebSocket to MCP server {params.label!r}: "
            f"{type(failed).__name__}: {cause}"
        )
    return None

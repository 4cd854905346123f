"""Remote MCP servers over HTTP: Streamable HTTP, with automatic fallback to HTTP+SSE.

Theory of operation
-------------------
Streamable HTTP (protocol 2025-03-26 and later) sends every client message as
its own POST to one endpoint. :meth:`HttpTransport.send` POSTs notifications
and responses in the caller's task (the server answers 202 at once, and the
order of messages is kept); each request gets a task of its own in the
transport's nursery, because the server answers a request only when it is
done: with one JSON body, or with a Server-Sent Events stream that may carry
progress, log messages and server-to-client requests before the response.
Everything that arrives, on any stream, goes into one bounded channel that
:meth:`HttpTransport.receive` reads, so the actor sees one ordered flow of
messages as on stdio.

The transport learns what it needs from the messages it carries, without help
from the protocol core: the ``Mcp-Session-Id`` header of the response to
``initialize``, and the negotiated version from that response's body (sent
back as ``MCP-Protocol-Version``). After ``notifications/initialized`` it opens
the optional GET stream for messages the server sends on its own (a 405 means
the server has none).

An SSE stream that ends before the response it was opened for (the server
may close it on purpose, or the network drops it) is resumed with a GET that
carries ``Last-Event-ID``, after the delay the server asked for with
``retry:``. A stream without event ids cannot be resumed: that request fails.

A modern request (one that names its protocol version in ``_meta``) is
cancelled by closing its response stream, as the modern era asks of HTTP: a
``notifications/cancelled`` for it is not POSTed (a server without sessions
could not place it) but closes the stream of the request it names.

Errors: a network failure (refused connection, reset, timeout) breaks the
connection (:class:`~opex_trio.errors.TransportBrokenError`); a 401 or 403
raises :class:`~opex_trio.errors.TransportAuthError`; a 404 for our session
(or a 400 whose body speaks of the session, which many servers send instead)
means a :class:`~opex_trio.errors.SessionExpiredError`, and
:meth:`HttpTransport.reset_session` lets the actor start a new one. When the
404 answered a request, it comes as that request's :class:`RequestFailure`:
the server refused the request without running it, so the actor may send it
again in the new session; otherwise (a notification, a resumed stream) it is
raised, once per session. Any other error status fails only the request it
answered (:class:`RequestFailure`), and a JSON-RPC error in such a body is
passed on as the server's answer.

HTTP+SSE (protocol 2024-11-05) keeps one GET stream open; its first event,
``endpoint``, names the URL to POST messages to, and every server message
arrives on the stream. ``transport="auto"`` (the default) tries Streamable
HTTP first and falls back to HTTP+SSE when the first POST is answered 400, 404
or 405, as the specification's backwards-compatibility section says.

The bearer token goes only to the configured origin: httpx2 drops the
``Authorization`` header when a redirect leaves the origin, and an
``endpoint`` on another origin is refused. It never appears in a repr, a log
line or an error message.

Where things live: this module holds the public transport, which routes each
message to the driver of the connection's mode; :mod:`._streamable_http`
and :mod:`._legacy_sse` are the two drivers; :mod:`._http_conn` holds the
state they share (session, version, the inbound channel, the session's
tasks), the request headers and the mapping of HTTP failures to errors;
:mod:`._http_params` holds :class:`HttpParameters` and its checks.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx2
import trio

from ..errors import OpexError
from ..protocol.jsonrpc import Notification, Request, RequestId
from ..protocol.modern import PROTOCOL_VERSION_KEY
from ._http_conn import JSON, HttpConnection
from ._http_params import HttpMode, HttpParameters, safe_url
from ._legacy_sse import LegacySse
from ._streamable_http import StreamableHttp
from .base import Outgoing, Transport

__all__ = ["HttpMode", "HttpParameters", "HttpTransport", "open_http_transport"]

logger = logging.getLogger("opex_trio.transports.http")


class HttpTransport(Transport):
    """A connection to a remote MCP server. Made by :func:`open_http_transport`."""

    def __init__(
        self, params: HttpParameters, client: httpx2.AsyncClient, nursery: trio.Nursery
    ) -> None:
        self.name = params.label
        self.params = params
        self._conn = HttpConnection(params, client, nursery)
        self._streamable = StreamableHttp(self._conn)
        self._legacy = LegacySse(self._conn)
        # The streams of modern requests in flight: cancelling one closes it.
        self._modern_streams: dict[RequestId, trio.CancelScope] = {}

    # -- what the connection learned

    @property
    def mode(self) -> str | None:
        """``"streamable-http"`` or ``"sse"`` once known (after the first POST in auto mode)."""
        return self._conn.mode

    @property
    def session_id(self) -> str | None:
        """The session id the server gave, if any (a stateless server gives none)."""
        return self._conn.session_id

    @property
    def protocol_version(self) -> str | None:
        """The protocol version negotiated in the ``initialize`` this transport carried."""
        return self._conn.protocol_version

    @property
    def endpoint(self) -> str | None:
        """The URL messages are POSTed to (the ``endpoint`` event's, for HTTP+SSE)."""
        return self._legacy.endpoint if self._conn.mode == "sse" else self.params.url

    def failure_details(self) -> str:
        """The endpoint, for error messages."""
        return f"url {safe_url(self.params.url)}"

    @property
    def can_reset_session(self) -> bool:
        """True: a new session can be started after the server forgot ours."""
        return not self._conn.closed

    # -- the interface

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """POST the messages: requests each in a task of their own, the rest in order, here."""
        conn = self._conn
        for out in messages:
            conn.check_open()
            message = out.message
            if conn.dropping:
                # After a reset, what the old session still had queued is not
                # sent: the new session starts with its initialize.
                if isinstance(message, Request) and message.method == "initialize":
                    conn.dropping = False
                else:
                    continue
            if isinstance(message, Request):
                if message.method == "initialize":
                    conn.init_id = message.id
                if conn.mode == "sse":
                    await self._legacy.post(out)
                else:
                    conn.spawn(self._request, out, self._modern_scope(message))
            elif conn.mode == "sse":
                await self._legacy.post(out)
            elif not self._closed_stream_of(message):
                await self._streamable.post_oneway(out)
                if (
                    isinstance(message, Notification)
                    and message.method == "notifications/initialized"
                    and self.params.open_get_stream
                ):
                    conn.spawn(self._streamable.listen)

    def _modern_scope(self, message: Request) -> trio.CancelScope | None:
        """The scope of a modern request's stream, known before its task starts; else None."""
        meta = (message.params or {}).get("_meta")
        if not isinstance(meta, dict) or PROTOCOL_VERSION_KEY not in meta:
            return None
        scope = self._modern_streams[message.id] = trio.CancelScope()
        return scope

    async def _request(self, out: Outgoing, scope: trio.CancelScope | None) -> None:
        if scope is None:
            status = await self._streamable.request(out)
            if status is not None:
                await self._legacy.fall_back(out, status)
            return
        message = out.message
        assert isinstance(message, Request)
        # Cancelled before it started, it is never sent.
        with scope:
            try:
                await self._streamable.request(out)
            finally:
                if self._modern_streams.get(message.id) is scope:
                    del self._modern_streams[message.id]

    def _closed_stream_of(self, message: object) -> bool:
        """Close the stream a modern request's cancellation names; whether it did."""
        if not isinstance(message, Notification) or message.method != "notifications/cancelled":
            return False
        rid = (message.params or {}).get("requestId")
        scope = self._modern_streams.pop(rid, None) if isinstance(rid, str | int) else None
        if scope is None:
            return False
        scope.cancel()
        return True

    async def receive(self) -> bytes | str:
        """The next message from any of the server's streams or responses."""
        self._conn.check_open()
        try:
            item = await self._conn.inbound_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError) as exc:
            raise self._conn.closed_error() from exc
        if isinstance(item, BaseException):
            raise item
        return item

    async def reset_session(self) -> None:
        """Forget the expired session: stop its streams, drop its leftovers, await a new one."""
        conn = self._conn
        conn.check_open()
        conn.cancel_session_tasks()
        while True:
            try:
                conn.inbound_recv.receive_nowait()
            except trio.WouldBlock:
                break
        conn.session_id = None
        conn.protocol_version = None
        conn.init_id = None
        conn.expired = False
        conn.dropping = True
        if conn.mode == "sse":
            await self._legacy.start()

    # -- closing

    async def shutdown(self) -> None:
        """Stop every stream and end the session with a DELETE (a 405 is fine). Idempotent."""
        conn = self._conn
        if conn.closed:
            return
        conn.closed = True
        conn.cancel_session_tasks()
        conn.inbound_send.close()
        conn.inbound_recv.close()
        if conn.session_id is not None and conn.mode != "sse" and self.params.terminate_on_close:
            with trio.CancelScope(shield=True), trio.move_on_after(self.params.timeout):
                try:
                    response = await conn.client.delete(
                        self.params.url,
                        headers=conn.headers(JSON),
                        timeout=conn.timeout,
                        auth=self.params.auth
                        if self.params.auth is not None
                        else httpx2.USE_CLIENT_DEFAULT,
                    )
                except (httpx2.HTTPError, OpexError) as exc:
                    logger.debug("MCP server %r: DELETE failed: %r", self.name, exc)
                else:
                    if response.status_code >= 300 and response.status_code != 405:
                        logger.debug(
                            "MCP server %r answered DELETE with %d",
                            self.name,
                            response.status_code,
                        )


@asynccontextmanager
async def open_http_transport(params: HttpParameters) -> AsyncIterator[HttpTransport]:
    """Connect to a remote MCP server and yield its transport; end the session on exit.

    With ``transport="sse"`` the SSE stream is opened (and its endpoint
    awaited) before this yields; otherwise nothing is sent until the first
    message.
    """
    client = params.http_client
    own = client is None
    if client is None:
        client = httpx2.AsyncClient(
            limits=httpx2.Limits(
                max_connections=params.max_connections, max_keepalive_connections=20
            ),
        )
    try:
        async with trio.open_nursery() as nursery:
            transport = HttpTransport(params, client, nursery)
            try:
                if transport.mode == "sse":
                    try:
                        await transport._legacy.start()
                    except httpx2.TransportError as exc:
                        raise transport._conn.network_error(exc, "opening the SSE stream") from exc
                yield transport
            finally:
                await transport.shutdown()
                nursery.cancel_scope.cancel()
    finally:
        if own:
            with trio.CancelScope(shield=True):
                await client.aclose()

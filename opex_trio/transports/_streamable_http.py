"""Streamable HTTP (protocol 2025-03-26 and later): one POST per message, SSE answers, resumption.

Each request is POSTed in a task of its own (:meth:`StreamableHttp.request`),
because the server answers only when it is done: with one JSON body, or with
a Server-Sent Events stream that may carry progress, log messages and
server-to-client requests before the response. Notifications and responses
are POSTed in the caller's task (:meth:`StreamableHttp.post_oneway`): the
server answers 202 at once, and the order of messages is kept.

The answer to ``initialize`` teaches the connection its ``Mcp-Session-Id``
and the negotiated version (sent back as ``MCP-Protocol-Version``). After
``notifications/initialized`` the optional GET stream
(:meth:`StreamableHttp.listen`) carries what the server sends on its own; a
405 means the server has none.

An SSE stream that ends before the response it was opened for (the server
may close it on purpose, or the network drops it) is resumed with a GET that
carries ``Last-Event-ID``, after the delay the server asked for with
``retry:``. A stream without event ids cannot be resumed: that request fails.
The GET stream is reopened the same way when it ends.
"""

from __future__ import annotations

import contextlib
import logging

import attrs
import httpx2
import trio

from ..errors import ProtocolError, TransportBrokenError
from ..protocol.jsonrpc import Notification, Request, RequestId, find_id
from ._http_conn import BODY_EXCERPT, JSON, SSE, HttpConnection, forgot_session, is_sse
from ._sse import SseEvent
from .base import Outgoing, RequestFailure

__all__ = ["StreamableHttp"]

logger = logging.getLogger("opex_trio.transports.http")

# The first POST's statuses that mean "no Streamable HTTP here", as the
# specification's backwards-compatibility section says.
_FALLBACK_STATUSES = frozenset({400, 404, 405})


@attrs.define
class _StreamState:
    """What a stream told us that a resumption needs."""

    last_event_id: str | None = None
    retry: float | None = None


class StreamableHttp:
    """The Streamable HTTP driver of one :class:`HttpConnection`."""

    def __init__(self, conn: HttpConnection) -> None:
        self._conn = conn
        self.name = conn.name
        self.params = conn.params

    async def request(self, out: Outgoing) -> int | None:
        """POST a request and deliver its answer; the status that calls for HTTP+SSE, if any.

        Only the first ``initialize`` of a connection in ``"auto"`` mode can
        fall back: the caller then retries it over HTTP+SSE.
        """
        message = out.message
        assert isinstance(message, Request)
        if message.method == "tools/list":
            self._conn.tools.listing(message.id)
        try:
            return await self._request(out, message)
        finally:
            self._conn.tools.done(message.id)

    async def _request(self, out: Outgoing, message: Request) -> int | None:
        sent_session = self._conn.session_id
        try:
            async with self._conn.stream(
                "POST", self.params.url, self._conn.headers(f"{JSON}, {SSE}", message), out.data
            ) as response:
                if (
                    message.method == "initialize"
                    and self._conn.mode is None
                    and response.status_code in _FALLBACK_STATUSES
                ):
                    status = response.status_code
                    await response.aclose()
                    fall_back = True
                else:
                    fall_back = False
                    broken = await self._on_post_response(message, response, sent_session)
        except httpx2.TransportError as exc:
            raise self._conn.network_error(exc, message.method) from exc
        if fall_back:
            return status
        if broken is not None:
            # Resumed outside the POST, so its connection goes back to the pool.
            await self._resume(message, broken)
        return None

    async def _on_post_response(
        self, message: Request, response: httpx2.Response, sent_session: str | None
    ) -> _StreamState | None:
        """Handle the answer to a POSTed request; the state of a stream to resume, if any."""
        status = response.status_code
        if status in (401, 403):
            raise await self._conn.auth_error(response, message.method)
        body: bytes | None = None
        if status == 400 and sent_session is not None:
            body = await self._conn.body(response, self.params.max_message_size)
        if (status == 404 or forgot_session(status, body)) and sent_session is not None:
            # Refused, not run: the actor renews the session (unless this one is
            # older than the current) and may send the request again.
            error = self._conn.session_gone(sent_session) or self._conn.expired_error()
            await self._conn.deliver(RequestFailure(message.id, error))
            return None
        if status >= 300:
            await self._error_status(message, response, body)
            return None
        if message.method == "initialize":
            if self._conn.mode is None:
                self._conn.mode = "streamable-http"
            session = response.headers.get("mcp-session-id")
            if session is not None:
                if not session or not all(0x21 <= ord(c) <= 0x7E for c in session):
                    raise ProtocolError(
                        f"MCP server {self.name!r} sent an invalid Mcp-Session-Id header"
                    )
                self._conn.learn_session(session)
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if status in (202, 204):
            return None  # the answer will come on the GET stream
        if content_type == SSE:
            return await self._read_post_stream(message, response)
        if content_type == JSON or content_type.endswith("+json"):
            body = await self._conn.body(response, self.params.max_message_size)
            if len(body) > self.params.max_message_size:
                await self._conn.fail_request(message, self._conn.too_large(None))
                return None
            self._conn.learn(body, message.id)
            await self._conn.deliver(self._conn.tools.screen(body))
            return None
        await self._conn.fail_request(
            message,
            ProtocolError(
                f"MCP server {self.name!r} answered {message.method} with content type "
                f"{content_type or 'none'!r}; expected {JSON} or {SSE}",
                request_id=message.id,
            ),
        )
        return None

    async def _error_status(
        self, message: Request, response: httpx2.Response, body: bytes | None = None
    ) -> None:
        if body is None:
            body = await self._conn.body(response, self.params.max_message_size)
        if len(body) <= self.params.max_message_size and self._conn.learn(body, message.id):
            # A JSON-RPC error for this request: that is the server's answer.
            await self._conn.deliver(body)
            return
        text = self._conn.redact(body[:BODY_EXCERPT].decode("utf-8", "replace").strip())
        await self._conn.fail_request(
            message,
            TransportBrokenError(
                f"MCP server {self.name!r} answered {message.method} with "
                f"{self._conn.status_words(response)}" + (f": {text}" if text else "")
            ),
        )

    async def _read_post_stream(
        self, message: Request, response: httpx2.Response
    ) -> _StreamState | None:
        state = _StreamState()
        try:
            if await self._consume(response, state, message.id):
                return None
        except httpx2.TransportError as exc:
            logger.debug("MCP server %r: stream of %s broke: %r", self.name, message.method, exc)
        return state

    async def _resume(self, message: Request, state: _StreamState) -> None:
        """Resume the broken stream of ``message`` with GETs carrying ``Last-Event-ID``."""
        failures = 0
        while True:
            if state.last_event_id is None:
                await self._conn.fail_request(
                    message,
                    TransportBrokenError(
                        f"MCP server {self.name!r} ended the response stream of {message.method} "
                        "without an answer, and the stream cannot be resumed (no event id)"
                    ),
                )
                return
            await trio.sleep(self._retry_delay(state))
            headers = self._conn.headers(SSE)
            headers["Last-Event-ID"] = state.last_event_id
            sent_session = self._conn.session_id
            try:
                async with self._conn.stream("GET", self.params.url, headers) as response:
                    status = response.status_code
                    if status in (401, 403):
                        raise await self._conn.auth_error(response, "resuming a stream")
                    if status in (400, 404) and sent_session is not None:
                        body = await self._conn.body(response, BODY_EXCERPT)
                        if status == 404 or forgot_session(status, body):
                            gone = self._conn.session_gone(sent_session)
                            if gone is not None:
                                raise gone
                            return
                    if status != 200 or not is_sse(response):
                        await self._conn.fail_request(
                            message,
                            TransportBrokenError(
                                f"MCP server {self.name!r} did not resume the stream of "
                                f"{message.method}: {self._conn.status_words(response)}"
                            ),
                        )
                        return
                    if await self._consume(response, state, message.id):
                        return
                    failures = 0
            except httpx2.TransportError as exc:
                # Refused connections count too: a restarting server comes back.
                failures += 1
                if failures > self.params.max_reconnects:
                    raise TransportBrokenError(
                        str(
                            self._conn.network_error(
                                exc, f"resuming the stream of {message.method}"
                            )
                        )
                    ) from exc

    def _retry_delay(self, state: _StreamState) -> float:
        return state.retry if state.retry is not None else self.params.reconnect_delay

    async def _consume(
        self, response: httpx2.Response, state: _StreamState, want: RequestId | None
    ) -> bool:
        """Deliver the stream's messages; True once the answer to ``want`` came."""
        decoder = self._conn.events()
        # Returning from inside the loop must close httpx2's generators now,
        # not when the garbage collector finds them.
        async with contextlib.aclosing(response.aiter_bytes()) as stream:
            async for chunk in stream:
                if await self._on_events(decoder.feed(chunk), state, want):
                    return True
        return await self._on_events(decoder.end(), state, want)

    async def _on_events(
        self, events: list[SseEvent], state: _StreamState, want: RequestId | None
    ) -> bool:
        for event in events:
            if event.id:
                state.last_event_id = event.id
            if event.retry is not None:
                state.retry = event.retry / 1000
            if event.event != "message" or not event.data.strip():
                continue  # a priming event, or an event type MCP does not use
            if event.oversized:
                too_large = self._conn.oversized(event)
                # The actor fails the request whose id the head names.
                await self._conn.deliver(too_large)
                if want is not None and find_id(too_large.head) == want:
                    return True
                continue
            answered = self._conn.learn(event.data, want)
            await self._conn.deliver(self._conn.tools.screen(event.data))
            if answered:
                return True
        return False

    async def listen(self) -> None:
        """The optional GET stream for what the server sends on its own; reopened when it ends."""
        state = _StreamState()
        failures = 0
        while True:
            headers = self._conn.headers(SSE)
            if state.last_event_id is not None:
                headers["Last-Event-ID"] = state.last_event_id
            sent_session = self._conn.session_id
            try:
                async with self._conn.stream("GET", self.params.url, headers) as response:
                    status = response.status_code
                    if status == 405:
                        logger.debug("MCP server %r offers no GET stream (405)", self.name)
                        return
                    if status in (401, 403):
                        raise await self._conn.auth_error(response, "the GET stream")
                    if status in (400, 404) and sent_session is not None:
                        # The session may be gone; the next POST finds out, with a caller.
                        logger.debug("MCP server %r: GET stream answered %d", self.name, status)
                        return
                    if status != 200 or not is_sse(response):
                        logger.warning(
                            "MCP server %r answered the GET stream with %s; not listening",
                            self.name,
                            self._conn.status_words(response),
                        )
                        return
                    failures = 0
                    await self._consume(response, state, None)
            except httpx2.TransportError as exc:
                # Refused connections count too: a restarting server comes back.
                failures += 1
                if failures > self.params.max_reconnects:
                    raise TransportBrokenError(
                        str(self._conn.network_error(exc, "the GET stream"))
                    ) from exc
            await trio.sleep(self._retry_delay(state))

    async def post_oneway(self, out: Outgoing) -> None:
        """POST a notification or a response; the server answers 202 at once."""
        message = out.message
        what = getattr(message, "method", None) or "a response"
        sent_session = self._conn.session_id
        try:
            async with self._conn.stream(
                "POST",
                self.params.url,
                self._conn.headers(
                    f"{JSON}, {SSE}", message if isinstance(message, Notification) else None
                ),
                out.data,
            ) as response:
                status = response.status_code
                if status in (401, 403):
                    raise await self._conn.auth_error(response, what)
                body: bytes | None = None
                if status == 400 and sent_session is not None:
                    body = await self._conn.body(response, BODY_EXCERPT)
                if (status == 404 or forgot_session(status, body)) and sent_session is not None:
                    gone = self._conn.session_gone(sent_session)
                    if gone is not None:
                        raise gone
                    return
                if status >= 300:
                    logger.warning(
                        "MCP server %r rejected %s with %s%s",
                        self.name,
                        what,
                        self._conn.status_words(response),
                        await self._conn.excerpt(response),
                    )
                    return
        except httpx2.TransportError as exc:
            raise self._conn.network_error(exc, f"sending {what}") from exc

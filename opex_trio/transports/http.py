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
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import attrs
import httpx2
import trio

from ..errors import (
    ConfigError,
    MessageTooLargeError,
    OpexError,
    ProtocolError,
    SessionExpiredError,
    TransportAuthError,
    TransportBrokenError,
    TransportClosedError,
)
from ..protocol.framing import DEFAULT_MAX_MESSAGE_SIZE
from ..protocol.jsonrpc import Notification, Request, RequestId, find_id
from ._params import (
    check_execution_id,
    check_header_name,
    check_token,
    normalize_headers,
    redacted_headers,
)
from ._sse import SseDecoder, SseEvent
from .base import Outgoing, RequestFailure, Transport

__all__ = ["HttpParameters", "HttpTransport", "open_http_transport"]

logger = logging.getLogger("opex_trio.transports.http")

HttpMode = Literal["auto", "streamable-http", "sse"]

_JSON = "application/json"
_SSE = "text/event-stream"
_FALLBACK_STATUSES = frozenset({400, 404, 405})
_BODY_EXCERPT = 300
_INBOUND_BUFFER = 128
# Header names a user may not set through ``headers``: the transport owns them.
_RESERVED_HEADERS = frozenset(
    {"accept", "content-type", "content-length", "mcp-session-id", "mcp-protocol-version", "host"}
)


def _normalize_headers(value: Any) -> dict[str, str]:
    return normalize_headers(value, _RESERVED_HEADERS)


def _check_url(url: Any, what: str = "url") -> str:
    if not isinstance(url, str):
        raise ConfigError(f"{what} must be a string, got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be an http:// or https:// URL, got {_safe_url(url)!r}")
    return url


def _safe_url(url: str) -> str:
    """``url`` without user info, query or fragment, which may hold credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else "<invalid URL>"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _positive(name: str) -> Any:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")

    return check


@attrs.frozen
class HttpParameters:
    """How to reach a remote MCP server over HTTP.

    ``url`` is the MCP endpoint (Streamable HTTP) or the SSE URL of an older
    server. ``auth_token`` is sent as ``Authorization: Bearer`` to that
    origin only. ``execution_id`` is sent with every ``tools/call`` in the
    header named ``execution_id_header``. ``headers`` are added to every
    request. ``timeout`` bounds connecting, writing and the wait for a free
    connection; ``sse_read_timeout`` is the longest silence tolerated while a
    response or stream is being read (``None``: no limit). Request deadlines
    are not set here: each call has its own.

    ``transport`` picks the protocol: ``"auto"`` tries Streamable HTTP and
    falls back to HTTP+SSE, the other two force one. ``http_client`` borrows
    an :class:`httpx2.AsyncClient` (it is not closed); by default the
    transport makes its own. ``reconnect_delay`` is the pause before resuming
    a stream when the server gave no ``retry:``; ``max_reconnects`` bounds the
    attempts in a row. ``open_get_stream`` opens the optional stream for
    messages the server sends on its own; ``terminate_on_close`` sends the
    DELETE that ends the session. ``auth`` is an :class:`httpx2.Auth` applied
    to every request, such as :class:`opex_trio.auth.OAuth` (which then owns the
    ``Authorization`` header).
    """

    url: str = attrs.field(validator=lambda i, a, v: _check_url(v))
    auth_token: str | None = attrs.field(default=None, repr=False, validator=check_token)
    execution_id: str | None = attrs.field(default=None, validator=check_execution_id)
    execution_id_header: str = attrs.field(default="Execution-Id", validator=check_header_name)
    headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=_normalize_headers, repr=redacted_headers
    )
    timeout: float = attrs.field(default=30.0, validator=_positive("timeout"))
    sse_read_timeout: float | None = attrs.field(
        default=300.0, validator=_positive("sse_read_timeout")
    )
    transport: HttpMode = attrs.field(default="auto")
    max_message_size: int = attrs.field(default=DEFAULT_MAX_MESSAGE_SIZE)
    http_client: httpx2.AsyncClient | None = attrs.field(default=None, repr=False, eq=False)
    auth: httpx2.Auth | None = attrs.field(default=None, repr=False, eq=False)
    name: str | None = None
    follow_redirects: bool = True
    reconnect_delay: float = attrs.field(default=1.0, validator=_positive("reconnect_delay"))
    max_reconnects: int = 5
    open_get_stream: bool = True
    terminate_on_close: bool = True
    max_connections: int = 100

    @transport.validator
    def _check_transport(self, attribute: Any, value: Any) -> None:
        if value not in ("auto", "streamable-http", "sse"):
            raise ConfigError(
                f"transport must be 'auto', 'streamable-http' or 'sse', got {value!r}"
            )

    @max_message_size.validator
    def _check_size(self, attribute: Any, value: Any) -> None:
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"max_message_size must be a positive integer, got {value!r}")

    @property
    def label(self) -> str:
        """The server's name, or the host of its URL when it has none."""
        return self.name or urlsplit(self.url).hostname or "http"


@attrs.define
class _StreamState:
    """What a stream told us that a resumption needs."""

    last_event_id: str | None = None
    retry: float | None = None


class HttpTransport(Transport):
    """A connection to a remote MCP server. Made by :func:`open_http_transport`."""

    def __init__(
        self, params: HttpParameters, client: httpx2.AsyncClient, nursery: trio.Nursery
    ) -> None:
        self.name = params.label
        self.params = params
        self._client = client
        self._nursery = nursery
        self._timeout = httpx2.Timeout(
            connect=params.timeout,
            read=params.sse_read_timeout,
            write=params.timeout,
            pool=None,
        )
        self._inbound_send, self._inbound_recv = trio.open_memory_channel[
            "bytes | str | BaseException"
        ](_INBOUND_BUFFER)
        self._mode: Literal["streamable-http", "sse"] | None = (
            None if params.transport == "auto" else params.transport
        )
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        self._endpoint: str | None = None
        self._init_id: RequestId | None = None
        self._generation = 0
        self._scopes: set[trio.CancelScope] = set()
        self._expired = False
        self._dropping = False
        self._closed = False

    # -- what the connection learned

    @property
    def mode(self) -> str | None:
        """``"streamable-http"`` or ``"sse"`` once known (after the first POST in auto mode)."""
        return self._mode

    @property
    def session_id(self) -> str | None:
        """The session id the server gave, if any (a stateless server gives none)."""
        return self._session_id

    @property
    def protocol_version(self) -> str | None:
        """The protocol version negotiated in the ``initialize`` this transport carried."""
        return self._protocol_version

    @property
    def endpoint(self) -> str | None:
        """The URL messages are POSTed to (the ``endpoint`` event's, for HTTP+SSE)."""
        return self._endpoint if self._mode == "sse" else self.params.url

    def failure_details(self) -> str:
        """The endpoint, for error messages."""
        return f"url {_safe_url(self.params.url)}"

    @property
    def can_reset_session(self) -> bool:
        """True: a new session can be started after the server forgot ours."""
        return not self._closed

    # -- the interface

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """POST the messages: requests each in a task of their own, the rest in order, here."""
        for out in messages:
            self._check_open()
            message = out.message
            if self._dropping:
                # After a reset, what the old session still had queued is not
                # sent: the new session starts with its initialize.
                if isinstance(message, Request) and message.method == "initialize":
                    self._dropping = False
                else:
                    continue
            if isinstance(message, Request):
                if message.method == "initialize":
                    self._init_id = message.id
                if self._mode == "sse":
                    await self._post_legacy(out)
                else:
                    self._spawn(self._request_task, out)
            elif self._mode == "sse":
                await self._post_legacy(out)
            else:
                await self._post_oneway(out)
                if (
                    isinstance(message, Notification)
                    and message.method == "notifications/initialized"
                    and self.params.open_get_stream
                ):
                    self._spawn(self._listen)

    async def receive(self) -> bytes | str:
        """The next message from any of the server's streams or responses."""
        self._check_open()
        try:
            item = await self._inbound_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError) as exc:
            raise self._closed_error() from exc
        if isinstance(item, BaseException):
            raise item
        return item

    async def reset_session(self) -> None:
        """Forget the expired session: stop its streams, drop its leftovers, await a new one."""
        self._check_open()
        self._generation += 1
        for scope in list(self._scopes):
            scope.cancel()
        self._scopes.clear()
        while True:
            try:
                self._inbound_recv.receive_nowait()
            except trio.WouldBlock:
                break
        self._session_id = None
        self._protocol_version = None
        self._init_id = None
        self._expired = False
        self._dropping = True
        if self._mode == "sse":
            await self._start_legacy()

    # -- helpers

    def _check_open(self) -> None:
        if self._closed:
            raise self._closed_error()

    def _closed_error(self) -> TransportClosedError:
        return TransportClosedError(f"the connection to MCP server {self.name!r} is closed")

    def _spawn(self, function: Any, *args: Any) -> None:
        self._nursery.start_soon(self._guarded, self._generation, function, *args)

    async def _guarded(self, generation: int, function: Any, *args: Any) -> None:
        if generation != self._generation:
            return
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await function(*args)
            except OpexError as exc:
                await self._deliver(exc)
            except httpx2.TransportError as exc:
                await self._deliver(self._network_error(exc, "a request"))
            except Exception as exc:
                logger.exception("HTTP transport task for MCP server %r failed", self.name)
                await self._deliver(
                    TransportBrokenError(
                        f"the HTTP transport to MCP server {self.name!r} failed: "
                        f"{type(exc).__name__}: {exc}"
                    )
                )
            finally:
                self._scopes.discard(scope)

    async def _deliver(self, item: bytes | str | BaseException) -> None:
        # Once closed, nobody reads any more.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._inbound_send.send(item)

    async def _fail_request(self, message: Request, error: OpexError) -> None:
        # The handshake has no caller slot to fail; its failure is the connection's.
        if message.method == "initialize":
            await self._deliver(error)
        else:
            await self._deliver(RequestFailure(message.id, error))

    def _headers(self, accept: str, message: Request | None = None) -> dict[str, str]:
        headers = dict(self.params.headers)
        headers["Accept"] = accept
        if self.params.auth_token is not None:
            headers["Authorization"] = f"Bearer {self.params.auth_token}"
        if self._session_id is not None:
            headers["Mcp-Session-Id"] = self._session_id
        if self._protocol_version is not None and self._mode != "sse":
            headers["MCP-Protocol-Version"] = self._protocol_version
        if (
            message is not None
            and message.method == "tools/call"
            and self.params.execution_id is not None
        ):
            headers[self.params.execution_id_header] = self.params.execution_id
        return headers

    @asynccontextmanager
    async def _stream(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None = None,
    ) -> AsyncIterator[httpx2.Response]:
        if content is not None:
            headers["Content-Type"] = _JSON
        async with self._client.stream(
            method,
            url,
            content=content,
            headers=headers,
            timeout=self._timeout,
            follow_redirects=self.params.follow_redirects,
            auth=self.params.auth if self.params.auth is not None else httpx2.USE_CLIENT_DEFAULT,
        ) as response:
            yield response

    def _network_error(self, exc: BaseException, what: str) -> TransportBrokenError:
        kind = "timed out" if isinstance(exc, httpx2.TimeoutException) else "failed"
        return TransportBrokenError(
            f"MCP server {self.name!r} ({_safe_url(self.params.url)}): {what} {kind}: "
            f"{type(exc).__name__}: {exc}".rstrip(": ")
        )

    async def _body(self, response: httpx2.Response, limit: int) -> bytes:
        """The body, or at most ``limit + 1`` bytes of it."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
        return b"".join(chunks)

    async def _excerpt(self, response: httpx2.Response) -> str:
        try:
            body = await self._body(response, _BODY_EXCERPT)
        except httpx2.HTTPError:
            return ""
        text = body[:_BODY_EXCERPT].decode("utf-8", "replace").strip()
        return f": {text}" if text else ""

    def _status_words(self, response: httpx2.Response) -> str:
        return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()

    async def _auth_error(self, response: httpx2.Response, what: str) -> TransportAuthError:
        return TransportAuthError(
            f"MCP server {self.name!r} refused {what} with {self._status_words(response)}"
            f"{await self._excerpt(response)}"
            + (
                "; check its auth_token"
                if self.params.auth_token is not None
                else "; it needs credentials (auth_token or headers)"
            ),
            server=self.name,
            status=response.status_code,
            www_authenticate=response.headers.get("www-authenticate"),
        )

    def _session_gone(self, sent_session: str | None) -> SessionExpiredError | None:
        """The error for a 404 on ``sent_session``, once per session; ``None`` when stale."""
        if sent_session is None or sent_session != self._session_id or self._expired:
            return None
        self._expired = True
        return self._expired_error(sent_session)

    def _expired_error(self, session: str) -> SessionExpiredError:
        return SessionExpiredError(
            f"MCP server {self.name!r} no longer knows session {session!r} (HTTP 404); "
            "a new session is needed",
            server=self.name,
        )

    def _learn(self, data: str | bytes, want: RequestId | None) -> bool:
        """Whether ``data`` answers request ``want``; learns the negotiated version on the way."""
        if want is None:
            return False
        try:
            value = json.loads(data)
        except ValueError:
            return False
        for item in value if isinstance(value, list) else [value]:
            if (
                isinstance(item, dict)
                and item.get("id") == want
                and ("result" in item or "error" in item)
            ):
                if want == self._init_id:
                    result = item.get("result")
                    version = result.get("protocolVersion") if isinstance(result, dict) else None
                    if isinstance(version, str):
                        self._protocol_version = version
                return True
        return False

    def _too_large(self, size: int | None, head: bytes = b"") -> MessageTooLargeError:
        limit = self.params.max_message_size
        shown = f"{size} bytes" if size is not None else f"over {limit} bytes"
        return MessageTooLargeError(
            f"MCP server {self.name!r} sent a message of {shown}, over the limit of {limit} "
            "bytes; it was discarded",
            size=size if size is not None else limit + 1,
            limit=limit,
            head=head,
        )

    def _events(self) -> SseDecoder:
        return SseDecoder(self.params.max_message_size)

    def _oversized(self, event: SseEvent) -> MessageTooLargeError:
        """The error for an event over the limit; its head names the request it answered."""
        limit = self.params.max_message_size
        return MessageTooLargeError(
            f"a message of {event.size} bytes exceeds the limit of {limit} bytes and was discarded",
            size=event.size,
            limit=limit,
            head=event.data.encode("utf-8")[:256],
        )

    # -- Streamable HTTP

    async def _request_task(self, out: Outgoing) -> None:
        message = out.message
        assert isinstance(message, Request)
        sent_session = self._session_id
        try:
            async with self._stream(
                "POST", self.params.url, self._headers(f"{_JSON}, {_SSE}", message), out.data
            ) as response:
                if (
                    message.method == "initialize"
                    and self._mode is None
                    and response.status_code in _FALLBACK_STATUSES
                ):
                    status = response.status_code
                    await response.aclose()
                    fall_back = True
                else:
                    fall_back = False
                    broken = await self._on_post_response(message, response, sent_session)
        except httpx2.TransportError as exc:
            raise self._network_error(exc, message.method) from exc
        if fall_back:
            await self._fall_back(out, status)
        elif broken is not None:
            # Resumed outside the POST, so its connection goes back to the pool.
            await self._resume(message, broken)

    async def _on_post_response(
        self, message: Request, response: httpx2.Response, sent_session: str | None
    ) -> _StreamState | None:
        """Handle the answer to a POSTed request; the state of a stream to resume, if any."""
        status = response.status_code
        if status in (401, 403):
            raise await self._auth_error(response, message.method)
        body: bytes | None = None
        if status == 400 and sent_session is not None:
            body = await self._body(response, self.params.max_message_size)
        if (status == 404 or _forgot_session(status, body)) and sent_session is not None:
            # Refused, not run: the actor renews the session (unless this one is
            # older than the current) and may send the request again.
            error = self._session_gone(sent_session) or self._expired_error(sent_session)
            await self._deliver(RequestFailure(message.id, error))
            return None
        if status >= 300:
            await self._error_status(message, response, body)
            return None
        if message.method == "initialize":
            if self._mode is None:
                self._mode = "streamable-http"
            session = response.headers.get("mcp-session-id")
            if session is not None:
                if not session or not all(0x21 <= ord(c) <= 0x7E for c in session):
                    raise ProtocolError(
                        f"MCP server {self.name!r} sent an invalid Mcp-Session-Id header"
                    )
                self._session_id = session
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if status in (202, 204):
            return None  # the answer will come on the GET stream
        if content_type == _SSE:
            return await self._read_post_stream(message, response)
        if content_type == _JSON or content_type.endswith("+json"):
            body = await self._body(response, self.params.max_message_size)
            if len(body) > self.params.max_message_size:
                await self._fail_request(message, self._too_large(None))
                return None
            self._learn(body, message.id)
            await self._deliver(body)
            return None
        await self._fail_request(
            message,
            ProtocolError(
                f"MCP server {self.name!r} answered {message.method} with content type "
                f"{content_type or 'none'!r}; expected {_JSON} or {_SSE}",
                request_id=message.id,
            ),
        )
        return None

    async def _error_status(
        self, message: Request, response: httpx2.Response, body: bytes | None = None
    ) -> None:
        if body is None:
            body = await self._body(response, self.params.max_message_size)
        if len(body) <= self.params.max_message_size and self._learn(body, message.id):
            # A JSON-RPC error for this request: that is the server's answer.
            await self._deliver(body)
            return
        text = body[:_BODY_EXCERPT].decode("utf-8", "replace").strip()
        await self._fail_request(
            message,
            TransportBrokenError(
                f"MCP server {self.name!r} answered {message.method} with "
                f"{self._status_words(response)}" + (f": {text}" if text else "")
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
                await self._fail_request(
                    message,
                    TransportBrokenError(
                        f"MCP server {self.name!r} ended the response stream of {message.method} "
                        "without an answer, and the stream cannot be resumed (no event id)"
                    ),
                )
                return
            await trio.sleep(self._retry_delay(state))
            headers = self._headers(_SSE)
            headers["Last-Event-ID"] = state.last_event_id
            sent_session = self._session_id
            try:
                async with self._stream("GET", self.params.url, headers) as response:
                    status = response.status_code
                    if status in (401, 403):
                        raise await self._auth_error(response, "resuming a stream")
                    if status in (400, 404) and sent_session is not None:
                        body = await self._body(response, _BODY_EXCERPT)
                        if status == 404 or _forgot_session(status, body):
                            gone = self._session_gone(sent_session)
                            if gone is not None:
                                raise gone
                            return
                    if status != 200 or not _is_sse(response):
                        await self._fail_request(
                            message,
                            TransportBrokenError(
                                f"MCP server {self.name!r} did not resume the stream of "
                                f"{message.method}: {self._status_words(response)}"
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
                        str(self._network_error(exc, f"resuming the stream of {message.method}"))
                    ) from exc

    def _retry_delay(self, state: _StreamState) -> float:
        return state.retry if state.retry is not None else self.params.reconnect_delay

    async def _consume(
        self, response: httpx2.Response, state: _StreamState, want: RequestId | None
    ) -> bool:
        """Deliver the stream's messages; True once the answer to ``want`` came."""
        decoder = self._events()
        async for chunk in response.aiter_bytes():
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
                too_large = self._oversized(event)
                # The actor fails the request whose id the head names.
                await self._deliver(too_large)
                if want is not None and find_id(too_large.head) == want:
                    return True
                continue
            answered = self._learn(event.data, want)
            await self._deliver(event.data)
            if answered:
                return True
        return False

    async def _listen(self) -> None:
        """The optional GET stream for what the server sends on its own; reopened when it ends."""
        state = _StreamState()
        failures = 0
        while True:
            headers = self._headers(_SSE)
            if state.last_event_id is not None:
                headers["Last-Event-ID"] = state.last_event_id
            sent_session = self._session_id
            try:
                async with self._stream("GET", self.params.url, headers) as response:
                    status = response.status_code
                    if status == 405:
                        logger.debug("MCP server %r offers no GET stream (405)", self.name)
                        return
                    if status in (401, 403):
                        raise await self._auth_error(response, "the GET stream")
                    if status in (400, 404) and sent_session is not None:
                        # The session may be gone; the next POST finds out, with a caller.
                        logger.debug("MCP server %r: GET stream answered %d", self.name, status)
                        return
                    if status != 200 or not _is_sse(response):
                        logger.warning(
                            "MCP server %r answered the GET stream with %s; not listening",
                            self.name,
                            self._status_words(response),
                        )
                        return
                    failures = 0
                    await self._consume(response, state, None)
            except httpx2.TransportError as exc:
                # Refused connections count too: a restarting server comes back.
                failures += 1
                if failures > self.params.max_reconnects:
                    raise TransportBrokenError(
                        str(self._network_error(exc, "the GET stream"))
                    ) from exc
            await trio.sleep(self._retry_delay(state))

    async def _post_oneway(self, out: Outgoing) -> None:
        """POST a notification or a response; the server answers 202 at once."""
        message = out.message
        what = getattr(message, "method", None) or "a response"
        sent_session = self._session_id
        try:
            async with self._stream(
                "POST", self.params.url, self._headers(f"{_JSON}, {_SSE}"), out.data
            ) as response:
                status = response.status_code
                if status in (401, 403):
                    raise await self._auth_error(response, what)
                body: bytes | None = None
                if status == 400 and sent_session is not None:
                    body = await self._body(response, _BODY_EXCERPT)
                if (status == 404 or _forgot_session(status, body)) and sent_session is not None:
                    gone = self._session_gone(sent_session)
                    if gone is not None:
                        raise gone
                    return
                if status >= 300:
                    logger.warning(
                        "MCP server %r rejected %s with %s%s",
                        self.name,
                        what,
                        self._status_words(response),
                        await self._excerpt(response),
                    )
                    return
        except httpx2.TransportError as exc:
            raise self._network_error(exc, f"sending {what}") from exc

    # -- HTTP+SSE (2024-11-05)

    async def _fall_back(self, out: Outgoing, status: int) -> None:
        logger.info(
            "MCP server %r answered the first POST with %d; trying the HTTP+SSE transport",
            self.name,
            status,
        )
        self._mode = "sse"
        try:
            await self._start_legacy()
        except TransportBrokenError as exc:
            raise TransportBrokenError(
                f"MCP server {self.name!r} ({_safe_url(self.params.url)}) speaks neither "
                f"Streamable HTTP (POST answered {status}) nor HTTP+SSE: {exc}"
            ) from exc.__cause__
        await self._post_legacy(out)

    async def _start_legacy(self) -> None:
        self._endpoint = None
        await self._nursery.start(self._legacy_guarded, self._generation)

    async def _legacy_guarded(self, generation: int, *, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            started = False

            def ready() -> None:
                nonlocal started
                started = True
                task_status.started()

            try:
                await self._legacy_stream(ready)
            except trio.TooSlowError:
                error: OpexError = TransportBrokenError(
                    f"MCP server {self.name!r} sent no endpoint event on its SSE stream "
                    f"within {self.params.timeout:g} s"
                )
                if not started:
                    raise error from None
                await self._deliver(error)
            except httpx2.TransportError as exc:
                error = self._network_error(exc, "the SSE stream")
                if not started:
                    raise error from exc
                await self._deliver(error)
            except OpexError as exc:
                if not started:
                    raise
                await self._deliver(exc)
            finally:
                self._scopes.discard(scope)

    async def _legacy_stream(self, ready: Any) -> None:
        url = self.params.url
        with trio.fail_after(self.params.timeout) as deadline:
            async with self._stream("GET", url, self._headers(_SSE)) as response:
                status = response.status_code
                if status in (401, 403):
                    raise await self._auth_error(response, "the SSE stream")
                if status != 200 or not _is_sse(response):
                    raise TransportBrokenError(
                        f"MCP server {self.name!r}: GET {_safe_url(url)} answered "
                        f"{self._status_words(response)} with content type "
                        f"{response.headers.get('content-type', 'none')!r}, not an SSE stream"
                    )
                decoder = self._events()
                async for chunk in response.aiter_bytes():
                    for event in decoder.feed(chunk):
                        if self._endpoint is None:
                            if event.event != "endpoint":
                                continue
                            self._endpoint = self._check_endpoint(event.data.strip())
                            deadline.deadline = math.inf
                            ready()
                            continue
                        if event.event != "message" or not event.data.strip():
                            continue
                        if event.oversized:
                            await self._deliver(self._oversized(event))
                            continue
                        self._learn(event.data, self._init_id)
                        await self._deliver(event.data)
        if self._endpoint is None:
            raise TransportBrokenError(
                f"MCP server {self.name!r}: the SSE stream ended before its endpoint event"
            )
        raise TransportBrokenError(f"MCP server {self.name!r} closed its SSE stream")

    def _check_endpoint(self, data: str) -> str:
        endpoint = urljoin(self.params.url, data)
        if _origin(endpoint) != _origin(self.params.url):
            raise ProtocolError(
                f"MCP server {self.name!r} named an endpoint on another origin "
                f"({_safe_url(endpoint)}); refused, it would receive our credentials"
            )
        return endpoint

    async def _post_legacy(self, out: Outgoing) -> None:
        message = out.message
        what = getattr(message, "method", None) or "a response"
        assert self._endpoint is not None
        try:
            async with self._stream(
                "POST",
                self._endpoint,
                self._headers(_JSON, message if isinstance(message, Request) else None),
                out.data,
            ) as response:
                status = response.status_code
                if status in (401, 403):
                    raise await self._auth_error(response, what)
                if status == 404 and (not self._expired or isinstance(message, Request)):
                    self._expired = True
                    expired = SessionExpiredError(
                        f"MCP server {self.name!r} no longer knows our SSE session (HTTP 404)",
                        server=self.name,
                    )
                    if isinstance(message, Request) and message.method != "initialize":
                        # Refused, not run: the actor may send it again in a new session.
                        await self._deliver(RequestFailure(message.id, expired))
                        return
                    raise expired
                if status >= 300:
                    excerpt = await self._excerpt(response)
                    if isinstance(message, Request):
                        await self._fail_request(
                            message,
                            TransportBrokenError(
                                f"MCP server {self.name!r} answered {what} with "
                                f"{self._status_words(response)}{excerpt}"
                            ),
                        )
                    else:
                        logger.warning(
                            "MCP server %r rejected %s with %s%s",
                            self.name,
                            what,
                            self._status_words(response),
                            excerpt,
                        )
        except httpx2.TransportError as exc:
            raise self._network_error(exc, f"sending {what}") from exc

    # -- closing

    async def shutdown(self) -> None:
        """Stop every stream and end the session with a DELETE (a 405 is fine). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._generation += 1
        for scope in list(self._scopes):
            scope.cancel()
        self._inbound_send.close()
        self._inbound_recv.close()
        if self._session_id is not None and self._mode != "sse" and self.params.terminate_on_close:
            with trio.CancelScope(shield=True), trio.move_on_after(self.params.timeout):
                try:
                    response = await self._client.delete(
                        self.params.url,
                        headers=self._headers(_JSON),
                        timeout=self._timeout,
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


def _forgot_session(status: int, body: bytes | None) -> bool:
    """Whether a 400 says the session id is unknown.

    The specification says 404, but many servers (the reference ones among
    them) answer 400 with an error about the session id; treating that as an
    expired session lets the client recover from their restarts too.
    """
    return status == 400 and body is not None and b"session" in body.lower()


def _is_sse(response: httpx2.Response) -> bool:
    content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    return content_type == _SSE


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
                        await transport._start_legacy()
                    except httpx2.TransportError as exc:
                        raise transport._network_error(exc, "opening the SSE stream") from exc
                yield transport
            finally:
                await transport.shutdown()
                nursery.cancel_scope.cancel()
    finally:
        if own:
            with trio.CancelScope(shield=True):
                await client.aclose()

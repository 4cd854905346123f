"""What the HTTP transports share: one connection's state and the helpers every stream uses.

An :class:`HttpConnection` holds what the messages taught the transport (the
session id, the negotiated version, the mode), the channel every stream
delivers into, and the tasks of the current session. The Streamable HTTP and
HTTP+SSE drivers (:mod:`._streamable_http`, :mod:`._legacy_sse`) and the
public :class:`~opex_trio.transports.http.HttpTransport` work on the same
instance. The headers of a request and the mapping of HTTP failures to the
error tree live here, so both protocols send and fail alike.

A session's tasks run under :meth:`HttpConnection.spawn`: each remembers the
generation it was started in and its cancel scope, so that a reset or a close
stops every stream of the old session at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx2
import trio

from ..errors import (
    MessageTooLargeError,
    OpexError,
    SessionExpiredError,
    TransportAuthError,
    TransportBrokenError,
    TransportClosedError,
)
from ..protocol.headers import standard_headers
from ..protocol.jsonrpc import Notification, Request, RequestId
from ..protocol.modern import PROTOCOL_VERSION_KEY
from ._http_body import close_body_with_response
from ._http_params import HttpParameters, safe_url
from ._sse import SseDecoder, SseEvent
from ._tool_headers import ToolHeaders
from .base import EXECUTION_ID_META, RequestFailure

__all__ = ["BODY_EXCERPT", "JSON", "SSE", "HttpConnection", "forgot_session", "is_sse"]

logger = logging.getLogger("opex_trio.transports.http")

JSON = "application/json"
SSE = "text/event-stream"
BODY_EXCERPT = 300
_INBOUND_BUFFER = 128


class HttpConnection:
    """The state of one connection to a remote MCP server, shared by its drivers."""

    def __init__(
        self, params: HttpParameters, client: httpx2.AsyncClient, nursery: trio.Nursery
    ) -> None:
        self.name = params.label
        self.params = params
        self.client = client
        self.nursery = nursery
        self.timeout = httpx2.Timeout(
            connect=params.timeout,
            read=params.sse_read_timeout,
            write=params.timeout,
            pool=None,
        )
        self.inbound_send, self.inbound_recv = trio.open_memory_channel[
            "bytes | str | BaseException"
        ](_INBOUND_BUFFER)
        self.mode: Literal["streamable-http", "sse"] | None = (
            None if params.transport == "auto" else params.transport
        )
        self.session_id: str | None = None
        self.sessions_seen: set[str] = set()
        """Every session id this connection was given: kept out of messages (see :meth:`redact`)."""
        self.protocol_version: str | None = None
        self.init_id: RequestId | None = None
        self.generation = 0
        self.scopes: set[trio.CancelScope] = set()
        self.expired = False
        self.dropping = False
        self.closed = False
        self.tools = ToolHeaders(self.name)
        """The tools' ``x-mcp-header`` declarations, learned from ``tools/list`` answers."""

    def cancel_session_tasks(self) -> None:
        """Stop every task of the current session; tasks spawned for it later do not start."""
        self.generation += 1
        for scope in list(self.scopes):
            scope.cancel()
        self.scopes.clear()

    def check_open(self) -> None:
        if self.closed:
            raise self.closed_error()

    def closed_error(self) -> TransportClosedError:
        return TransportClosedError(f"the connection to MCP server {self.name!r} is closed")

    def spawn(self, function: Any, *args: Any) -> None:
        """Run ``function`` as a task of the current session; its failure is delivered."""
        self.nursery.start_soon(self._guarded, self.generation, function, *args)

    async def _guarded(self, generation: int, function: Any, *args: Any) -> None:
        if generation != self.generation:
            return
        with trio.CancelScope() as scope:
            self.scopes.add(scope)
            try:
                await function(*args)
            except OpexError as exc:
                await self.deliver(exc)
            except httpx2.TransportError as exc:
                await self.deliver(self.network_error(exc, "a request"))
            except Exception as exc:
                logger.exception("HTTP transport task for MCP server %r failed", self.name)
                await self.deliver(
                    TransportBrokenError(
                        self.redact(
                            f"the HTTP transport to MCP server {self.name!r} failed: "
                            f"{type(exc).__name__}: {exc}"
                        )
                    )
                )
            finally:
                self.scopes.discard(scope)

    async def deliver(self, item: bytes | str | BaseException) -> None:
        # Once closed, nobody reads any more.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.inbound_send.send(item)

    async def fail_request(self, message: Request, error: OpexError) -> None:
        # The handshake has no caller slot to fail; its failure is the connection's.
        if message.method == "initialize":
            await self.deliver(error)
        else:
            await self.deliver(RequestFailure(message.id, error))

    def headers(self, accept: str, message: Request | Notification | None = None) -> dict[str, str]:
        """The headers of a request: the user's, credentials, session, version, method and name."""
        headers = dict(self.params.headers)
        headers["Accept"] = accept
        if self.params.auth_token is not None:
            headers["Authorization"] = f"Bearer {self.params.auth_token}"
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        version = self.protocol_version
        params = message.params if message is not None else None
        meta = params.get("_meta") if isinstance(params, Mapping) else None
        if isinstance(meta, Mapping) and isinstance(meta.get(PROTOCOL_VERSION_KEY), str):
            # A modern request names its own version; the header repeats it.
            version = meta[PROTOCOL_VERSION_KEY]
        if version is not None and self.mode != "sse":
            headers["MCP-Protocol-Version"] = version
        if message is not None and self.mode != "sse":
            # Mcp-Method (and Mcp-Name) let intermediaries route without reading the body.
            headers.update(standard_headers(message.method, message.params))
            if isinstance(message, Request) and message.method == "tools/call":
                headers.update(self.tools.for_call(message.params))
        if isinstance(message, Request) and message.method == "tools/call":
            # A per-call key in the request's _meta wins over the configured id.
            key = meta.get(EXECUTION_ID_META) if isinstance(meta, Mapping) else None
            execution_id = key if isinstance(key, str) else self.params.execution_id
            if execution_id is not None:
                headers[self.params.execution_id_header] = execution_id
        return headers

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None = None,
    ) -> AsyncIterator[httpx2.Response]:
        """Send a request and yield its response, whose body is read in parts."""
        if content is not None:
            headers["Content-Type"] = JSON
        async with self.client.stream(
            method,
            url,
            content=content,
            headers=headers,
            timeout=self.timeout,
            follow_redirects=self.params.follow_redirects,
            auth=self.params.auth if self.params.auth is not None else httpx2.USE_CLIENT_DEFAULT,
        ) as response:
            close_body_with_response(response)
            yield response

    def learn_session(self, session: str) -> None:
        """Take ``session`` as the session id from now on."""
        self.session_id = session
        self.sessions_seen.add(session)

    def redact(self, text: str) -> str:
        """``text`` without any session id this connection was given.

        A session id is a bearer credential for the session, so it stays out of
        errors and logs, even when a server echoes it in an error body.
        """
        for session in self.sessions_seen:
            if session in text:
                text = text.replace(session, "<session id>")
        return text

    def network_error(self, exc: BaseException, what: str) -> TransportBrokenError:
        kind = "timed out" if isinstance(exc, httpx2.TimeoutException) else "failed"
        return TransportBrokenError(
            self.redact(
                f"MCP server {self.name!r} ({safe_url(self.params.url)}): {what} {kind}: "
                f"{type(exc).__name__}: {exc}".rstrip(": ")
            )
        )

    async def body(self, response: httpx2.Response, limit: int) -> bytes:
        """The body, or at most ``limit + 1`` bytes of it."""
        chunks: list[bytes] = []
        size = 0
        # Closed here, not left to the garbage collector: leaving the loop
        # early would otherwise drop two of httpx2's generators unfinished.
        async with contextlib.aclosing(response.aiter_bytes()) as stream:
            async for chunk in stream:
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    break
        return b"".join(chunks)

    async def excerpt(self, response: httpx2.Response) -> str:
        try:
            body = await self.body(response, BODY_EXCERPT)
        except httpx2.HTTPError:
            return ""
        text = self.redact(body[:BODY_EXCERPT].decode("utf-8", "replace").strip())
        return f": {text}" if text else ""

    def status_words(self, response: httpx2.Response) -> str:
        return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()

    async def auth_error(self, response: httpx2.Response, what: str) -> TransportAuthError:
        return TransportAuthError(
            f"MCP server {self.name!r} refused {what} with {self.status_words(response)}"
            f"{await self.excerpt(response)}"
            + (
                "; check its auth_token"
                if self.params.auth_token is not None
                else "; it needs credentials (auth_token or headers)"
            ),
            server=self.name,
            status=response.status_code,
            www_authenticate=response.headers.get("www-authenticate"),
        )

    def session_gone(self, sent_session: str | None) -> SessionExpiredError | None:
        """The error for a 404 on ``sent_session``, once per session; ``None`` when stale."""
        if sent_session is None or sent_session != self.session_id or self.expired:
            return None
        self.expired = True
        return self.expired_error()

    def expired_error(self) -> SessionExpiredError:
        # The id itself is left out: it is a credential for the session.
        return SessionExpiredError(
            f"MCP server {self.name!r} no longer knows our session (HTTP 404); "
            "a new session is needed",
            server=self.name,
        )

    def learn(self, data: str | bytes, want: RequestId | None) -> bool:
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
                if want == self.init_id:
                    result = item.get("result")
                    version = result.get("protocolVersion") if isinstance(result, dict) else None
                    if isinstance(version, str):
                        self.protocol_version = version
                return True
        return False

    def too_large(self, size: int | None, head: bytes = b"") -> MessageTooLargeError:
        limit = self.params.max_message_size
        shown = f"{size} bytes" if size is not None else f"over {limit} bytes"
        return MessageTooLargeError(
            f"MCP server {self.name!r} sent a message of {shown}, over the limit of {limit} "
            "bytes; it was discarded",
            size=size if size is not None else limit + 1,
            limit=limit,
            head=head,
        )

    def events(self) -> SseDecoder:
        return SseDecoder(self.params.max_message_size)

    def oversized(self, event: SseEvent) -> MessageTooLargeError:
        """The error for an event over the limit; its head names the request it answered."""
        limit = self.params.max_message_size
        return MessageTooLargeError(
            f"a message of {event.size} bytes exceeds the limit of {limit} bytes and was discarded",
            size=event.size,
            limit=limit,
            head=event.data.encode("utf-8")[:256],
        )


def forgot_session(status: int, body: bytes | None) -> bool:
    """Whether a 400 says the session id is unknown.

    The specification says 404, but many servers (the reference ones among
    them) answer 400 with an error about the session id; treating that as an
    expired session lets the client recover from their restarts too.
    """
    return status == 400 and body is not None and b"session" in body.lower()


def is_sse(response: httpx2.Response) -> bool:
    """Whether ``response`` is an SSE stream."""
    content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    return content_type == SSE

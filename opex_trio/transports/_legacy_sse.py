"""HTTP+SSE (protocol 2024-11-05): one GET stream carries every server message.

The stream's first event, ``endpoint``, names the URL to POST messages to; an
``endpoint`` on another origin is refused, since it would receive our
credentials. Every answer, and everything the server sends on its own,
arrives on the stream. ``transport="auto"`` comes here when the first POST of
Streamable HTTP is answered 400, 404 or 405 (:meth:`LegacySse.fall_back`).
A 404 to a POST means the server forgot our session.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
import trio

from ..errors import OpexError, ProtocolError, SessionExpiredError, TransportBrokenError
from ..protocol.jsonrpc import Request
from ._http_conn import JSON, SSE, HttpConnection, is_sse
from ._http_params import origin, safe_url
from .base import Outgoing, RequestFailure

__all__ = ["LegacySse"]

logger = logging.getLogger("opex_trio.transports.http")


class LegacySse:
    """The HTTP+SSE driver of one :class:`HttpConnection`."""

    def __init__(self, conn: HttpConnection) -> None:
        self._conn = conn
        self.name = conn.name
        self.params = conn.params
        self.endpoint: str | None = None
        """The URL messages are POSTed to, once the stream named it."""

    async def fall_back(self, out: Outgoing, status: int) -> None:
        """Switch the connection to HTTP+SSE and send ``out`` (the first ``initialize``) there."""
        logger.info(
            "MCP server %r answered the first POST with %d; trying the HTTP+SSE transport",
            self.name,
            status,
        )
        self._conn.mode = "sse"
        try:
            await self.start()
        except TransportBrokenError as exc:
            raise TransportBrokenError(
                f"MCP server {self.name!r} ({safe_url(self.params.url)}) speaks neither "
                f"Streamable HTTP (POST answered {status}) nor HTTP+SSE: {exc}"
            ) from exc.__cause__
        await self.post(out)

    async def start(self) -> None:
        """Open the SSE stream and wait for its ``endpoint`` event."""
        self.endpoint = None
        await self._conn.nursery.start(self._guarded, self._conn.generation)

    async def _guarded(self, generation: int, *, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as scope:
            self._conn.scopes.add(scope)
            started = False

            def ready() -> None:
                nonlocal started
                started = True
                task_status.started()

            try:
                await self._read_stream(ready)
            except trio.TooSlowError:
                error: OpexError = TransportBrokenError(
                    f"MCP server {self.name!r} sent no endpoint event on its SSE stream "
                    f"within {self.params.timeout:g} s"
                )
                if not started:
                    raise error from None
                await self._conn.deliver(error)
            except httpx2.TransportError as exc:
                error = self._conn.network_error(exc, "the SSE stream")
                if not started:
                    raise error from exc
                await self._conn.deliver(error)
            except OpexError as exc:
                if not started:
                    raise
                await self._conn.deliver(exc)
            finally:
                self._conn.scopes.discard(scope)

    async def _read_stream(self, ready: Any) -> None:
        url = self.params.url
        with trio.fail_after(self.params.timeout) as deadline:
            async with self._conn.stream("GET", url, self._conn.headers(SSE)) as response:
                status = response.status_code
                if status in (401, 403):
                    raise await self._conn.auth_error(response, "the SSE stream")
                if status != 200 or not is_sse(response):
                    raise TransportBrokenError(
                        f"MCP server {self.name!r}: GET {safe_url(url)} answered "
                        f"{self._conn.status_words(response)} with content type "
                        f"{response.headers.get('content-type', 'none')!r}, not an SSE stream"
                    )
                decoder = self._conn.events()
                async with contextlib.aclosing(response.aiter_bytes()) as stream:
                    async for chunk in stream:
                        for event in decoder.feed(chunk):
                            if self.endpoint is None:
                                if event.event != "endpoint":
                                    continue
                                self.endpoint = self._check_endpoint(event.data.strip())
                                deadline.deadline = math.inf
                                ready()
                                continue
                            if event.event != "message" or not event.data.strip():
                                continue
                            if event.oversized:
                                await self._conn.deliver(self._conn.oversized(event))
                                continue
                            self._conn.learn(event.data, self._conn.init_id)
                            await self._conn.deliver(event.data)
        if self.endpoint is None:
            raise TransportBrokenError(
                f"MCP server {self.name!r}: the SSE stream ended before its endpoint event"
            )
        raise TransportBrokenError(f"MCP server {self.name!r} closed its SSE stream")

    def _check_endpoint(self, data: str) -> str:
        endpoint = urljoin(self.params.url, data)
        if origin(endpoint) != origin(self.params.url):
            raise ProtocolError(
                f"MCP server {self.name!r} named an endpoint on another origin "
                f"({safe_url(endpoint)}); refused, it would receive our credentials"
            )
        # The endpoint's query names the session: kept out of messages, as a
        # Streamable HTTP session id is.
        for values in parse_qs(urlsplit(endpoint).query).values():
            self._conn.sessions_seen.update(v for v in values if len(v) >= 8)
        return endpoint

    async def post(self, out: Outgoing) -> None:
        """POST one message to the endpoint; the answer comes on the SSE stream."""
        message = out.message
        what = getattr(message, "method", None) or "a response"
        assert self.endpoint is not None
        try:
            async with self._conn.stream(
                "POST",
                self.endpoint,
                self._conn.headers(JSON, message if isinstance(message, Request) else None),
                out.data,
            ) as response:
                status = response.status_code
                if status in (401, 403):
                    raise await self._conn.auth_error(response, what)
                if status == 404 and (not self._conn.expired or isinstance(message, Request)):
                    self._conn.expired = True
                    expired = SessionExpiredError(
                        f"MCP server {self.name!r} no longer knows our SSE session (HTTP 404)",
                        server=self.name,
                    )
                    if isinstance(message, Request) and message.method != "initialize":
                        # Refused, not run: the actor may send it again in a new session.
                        await self._conn.deliver(RequestFailure(message.id, expired))
                        return
                    raise expired
                if status >= 300:
                    excerpt = await self._conn.excerpt(response)
                    if isinstance(message, Request):
                        await self._conn.fail_request(
                            message,
                            TransportBrokenError(
                                f"MCP server {self.name!r} answered {what} with "
                                f"{self._conn.status_words(response)}{excerpt}"
                            ),
                        )
                    else:
                        logger.warning(
                            "MCP server %r rejected %s with %s%s",
                            self.name,
                            what,
                            self._conn.status_words(response),
                            excerpt,
                        )
        except httpx2.TransportError as exc:
            raise self._conn.network_error(exc, f"sending {what}") from exc

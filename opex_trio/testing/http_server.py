"""A real HTTP MCP server on loopback, for tests: Streamable HTTP or the older HTTP+SSE.

:class:`McpHttpServer` serves an :class:`~opex_trio.testing.mcp_server.McpTestServer`
over HTTP/1.1, written with trio and h11, on ``127.0.0.1`` and a free port::

    server = McpHttpServer(builtin_server())
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        ...  # connect to server.url
        nursery.cancel_scope.cancel()

Streamable HTTP (``legacy=False``) serves one endpoint, ``/mcp``: POST for
every client message, GET for the server's own stream, DELETE to end a
session. It can be stateful (``Mcp-Session-Id``) or stateless (then a request
needs no ``initialize`` before it: a client may have made that with an earlier
process behind the same URL), and answer requests with JSON bodies or SSE
streams. Every SSE event carries an id, so a
client can resume a stream with ``Last-Event-ID``; events are kept for that.

HTTP+SSE (``legacy=True``) serves ``GET /sse`` (the stream, starting with the
``endpoint`` event) and ``POST /messages?session_id=...``; a POST to ``/sse``
is answered 405, which is how a client that tries Streamable HTTP first finds
out.

Faults a test can switch on: ``drop_streams`` ends (or aborts) every request's
SSE stream right after its first event, so the client must resume it;
``end_get_streams_after`` ends every GET stream after that many events, so
the client must open it again (with ``Last-Event-ID``);
``expire_after`` forgets every session after that many POSTs (404);
``redirect_to`` answers everything with a 307 to another server, and
``moved`` maps paths to where they moved (308);
``require_token`` answers 401 without the right bearer token; ``intercept``
can answer any request with a status of its choosing. :attr:`McpHttpServer.log`
records every HTTP request (method, path, headers) for assertions.

Messages a request handler sends while it runs (progress, logs, requests to
the client) go on that request's SSE stream, or, when answering with JSON, on
the GET stream, as the specification describes.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import secrets
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import attrs
import h11
import trio

from ..protocol import jsonrpc
from .mcp_server import McpTestServer, _Connection

__all__ = ["HttpRecord", "McpHttpServer"]

_MAX_BODY = 64 * 1024 * 1024


@attrs.frozen
class HttpRecord:
    """One HTTP request the server received. Header names are lower case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def jsonrpc_method(self) -> str | None:
        """The JSON-RPC method in the body, if the body is one request or notification."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value.get("method") if isinstance(value, dict) else None


Intercept = Callable[[HttpRecord], "tuple[int, bytes] | None"]


class _Stream:
    """One SSE stream of a session: a request's (POST) or the standalone GET stream."""

    def __init__(self, key: int, answers: jsonrpc.RequestId | None) -> None:
        self.key = key
        self.answers = answers
        self.send, self.receive = trio.open_memory_channel[tuple[str, bytes]](1000)
        self.history: list[tuple[str, bytes]] = []
        self.answered = False
        self.counter = itertools.count(1)

    def push(self, data: bytes) -> None:
        event_id = f"{self.key}-{next(self.counter)}"
        self.history.append((event_id, data))
        if self.answers is not None and _answers(data, self.answers):
            self.answered = True
        self.send.send_nowait((event_id, data))


class _JsonAnswer:
    """Collects the answer to one request answered with a JSON body."""

    def __init__(self, answers: jsonrpc.RequestId) -> None:
        self.answers = answers
        self.body: bytes | None = None
        self.done = trio.Event()


_Route = _Stream | _JsonAnswer
_route: contextvars.ContextVar[_Route | None] = contextvars.ContextVar("route", default=None)


def _answers(data: bytes, request_id: jsonrpc.RequestId) -> bool:
    try:
        value = json.loads(data)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("id") == request_id and "method" not in value


class _Session:
    def __init__(self, server: McpHttpServer, session_id: str | None) -> None:
        self.id = session_id
        self.server = server
        self.conn = _Connection(server.mcp, self._send_text)
        self.streams: dict[int, _Stream] = {}
        self.keys = itertools.count(1)
        self.get_stream = self.new_stream(None)
        server.mcp._connections.append(self.conn)

    def close(self) -> None:
        if self.conn in self.server.mcp._connections:
            self.server.mcp._connections.remove(self.conn)

    def new_stream(self, answers: jsonrpc.RequestId | None) -> _Stream:
        stream = _Stream(next(self.keys), answers)
        self.streams[stream.key] = stream
        return stream

    async def _send_text(self, data: bytes) -> None:
        route = _route.get()
        if isinstance(route, _JsonAnswer):
            if _answers(data, route.answers):
                route.body = data
                route.done.set()
                return
            route = None
        if route is None:
            route = self.get_stream
        route.push(data)


class McpHttpServer:
    """Serves ``mcp`` over HTTP on 127.0.0.1; see the module docstring for the options."""

    def __init__(
        self,
        mcp: McpTestServer,
        *,
        port: int = 0,
        legacy: bool = False,
        stateful: bool = True,
        response_mode: Literal["json", "sse"] = "sse",
        get_stream: bool = True,
        allow_delete: bool = True,
        retry_ms: int | None = 100,
        drop_streams: Literal["end", "abort"] | None = None,
        end_get_streams_after: int | None = None,
        expire_after: int | None = None,
        redirect_to: str | None = None,
        moved: dict[str, str] | None = None,
        require_token: str | None = None,
        intercept: Intercept | None = None,
        path: str = "/mcp",
    ) -> None:
        self.mcp = mcp
        self.port = port
        self.legacy = legacy
        self.stateful = stateful
        self.response_mode = response_mode
        self.get_stream = get_stream
        self.allow_delete = allow_delete
        self.retry_ms = retry_ms
        self.drop_streams = drop_streams
        self.end_get_streams_after = end_get_streams_after
        self.expire_after = expire_after
        self.redirect_to = redirect_to
        self.moved = dict(moved or {})
        self.require_token = require_token
        self.intercept = intercept
        self.path = "/sse" if legacy else path
        self.log: list[HttpRecord] = []
        self.deleted: list[str] = []
        self.sessions: dict[str | None, _Session] = {}
        self._posts = 0
        self._expired = False
        self._nursery: trio.Nursery | None = None

    @property
    def url(self) -> str:
        """The URL a client connects to (the MCP endpoint, or the SSE URL in legacy mode)."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    def forget_sessions(self) -> None:
        """Forget every session, as a restarted server would: their ids now get 404."""
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()

    def _count_post(self) -> bool:
        """Count a POST; True when it made the server forget its sessions (``expire_after``)."""
        self._posts += 1
        if self.expire_after is not None and not self._expired and self._posts > self.expire_after:
            self._expired = True
            self.forget_sessions()
            return True
        return False

    async def serve(self, *, task_status: trio.TaskStatus[McpHttpServer]) -> None:
        """Listen on 127.0.0.1 and serve until cancelled; reports itself once listening."""
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(trio.serve_listeners, self._serve_connection, listeners)
            task_status.started(self)

    # -- HTTP plumbing

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while True:
                    request = await _next(conn, stream)
                    if not isinstance(request, h11.Request):
                        return
                    body = b""
                    while True:
                        event = await _next(conn, stream)
                        if isinstance(event, h11.Data):
                            body += bytes(event.data)
                            if len(body) > _MAX_BODY:
                                return
                        elif isinstance(event, h11.EndOfMessage):
                            break
                        else:
                            return
                    record = HttpRecord(
                        request.method.decode(),
                        request.target.decode(),
                        {k.decode().lower(): v.decode() for k, v in request.headers},
                        body,
                    )
                    self.log.append(record)
                    keep = await self._handle(_Exchange(conn, stream), record)
                    if not keep or conn.our_state is not h11.DONE:
                        return
                    try:
                        conn.start_next_cycle()
                    except h11.LocalProtocolError:
                        return
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return

    async def _handle(self, ex: _Exchange, record: HttpRecord) -> bool:
        """Answer one request; False when the connection must close after it."""
        if self.intercept is not None:
            override = self.intercept(record)
            if override is not None:
                status, body = override
                await ex.simple(status, body, "application/json")
                return True
        if self.redirect_to is not None:
            await ex.simple(307, b"", extra=[("Location", self.redirect_to + record.path)])
            return True
        new_place = self.moved.get(urlsplit(record.path).path)
        if new_place is not None:
            await ex.simple(308, b"", extra=[("Location", new_place)])
            return True
        if self.require_token is not None and (
            record.headers.get("authorization") != f"Bearer {self.require_token}"
        ):
            await ex.simple(
                401,
                b'{"error": "unauthorized"}',
                "application/json",
                extra=[("WWW-Authenticate", 'Bearer realm="mcp"')],
            )
            return True
        target = urlsplit(record.path)
        if self.legacy:
            if target.path == "/sse" and record.method == "GET":
                return await self._legacy_stream(ex)
            if target.path == "/messages" and record.method == "POST":
                return await self._legacy_post(ex, record, parse_qs(target.query))
            if target.path == "/sse":
                await ex.simple(405, b"Method Not Allowed", extra=[("Allow", "GET")])
                return True
            await ex.simple(404, b"Not Found")
            return True
        if target.path != self.path:
            await ex.simple(404, b"Not Found")
            return True
        if record.method == "POST":
            return await self._post(ex, record)
        if record.method == "GET":
            return await self._get(ex, record)
        if record.method == "DELETE":
            return await self._delete(ex, record)
        await ex.simple(405, b"Method Not Allowed", extra=[("Allow", "GET, POST, DELETE")])
        return True

    # -- Streamable HTTP

    def _session_for(self, record: HttpRecord) -> tuple[_Session | None, int]:
        if not self.stateful:
            session = self.sessions.get(None)
            if session is None:
                session = self.sessions[None] = _Session(self, None)
            return session, 200
        sid = record.headers.get("mcp-session-id")
        if sid is None:
            return None, 400
        found = self.sessions.get(sid)
        return (found, 200) if found is not None else (None, 404)

    async def _post(self, ex: _Exchange, record: HttpRecord) -> bool:
        try:
            value = json.loads(record.body)
        except ValueError:
            await ex.simple(400, _error_body(jsonrpc.PARSE_ERROR, "body is not JSON"))
            return True
        items = value if isinstance(value, list) else [value]
        requests = [
            m for m in items if isinstance(m, dict) and "method" in m and m.get("id") is not None
        ]
        is_init = any(m.get("method") == "initialize" for m in requests)
        self._count_post()
        session: _Session | None
        extra: list[tuple[str, str]] = []
        if is_init and self.stateful:
            sid = secrets.token_hex(16)
            session = self.sessions[sid] = _Session(self, sid)
            extra.append(("Mcp-Session-Id", sid))
        else:
            session, status = self._session_for(record)
            if session is None:
                what = "unknown session" if status == 404 else "missing Mcp-Session-Id"
                await ex.simple(status, _error_body(-32000, what))
                return True
            if session.id is not None:
                extra.append(("Mcp-Session-Id", session.id))
            elif session.conn.version is None:
                # Stateless: take the version the client negotiated, as if initialized.
                offered = record.headers.get("mcp-protocol-version")
                versions = self.mcp.protocol_versions
                session.conn.version = offered if offered in versions else versions[0]
        assert self._nursery is not None
        if not requests:
            await session.conn.handle_text(record.body, self._nursery)
            await ex.simple(202, b"")
            return True
        request_id = requests[0]["id"]
        if self.response_mode == "json":
            answer = _JsonAnswer(request_id)
            token = _route.set(answer)
            try:
                await session.conn.handle_text(record.body, self._nursery)
            finally:
                _route.reset(token)
            await answer.done.wait()
            assert answer.body is not None
            await ex.simple(200, answer.body, "application/json", extra=extra)
            return True
        stream = session.new_stream(request_id)
        token = _route.set(stream)
        try:
            await session.conn.handle_text(record.body, self._nursery)
        finally:
            _route.reset(token)
        return await self._send_stream(ex, stream, extra, replay_after=None, post=True)

    async def _send_stream(
        self,
        ex: _Exchange,
        stream: _Stream,
        extra: list[tuple[str, str]],
        *,
        replay_after: str | None,
        post: bool,
    ) -> bool:
        await ex.start(200, "text/event-stream", [*extra, ("Cache-Control", "no-cache")])
        sent_any = False
        limit = None if post else self.end_get_streams_after
        sent = 0

        async def send_event(event_id: str, data: bytes) -> bool:
            """Send one event; whether the stream is done (its answer, or the GET limit)."""
            nonlocal sent
            await ex.data(_event(event_id, data))
            sent += 1
            answered = stream.answers is not None and _answers(data, stream.answers)
            if answered or (limit is not None and sent >= limit):
                await ex.end()
                return True
            return False

        if replay_after is not None:
            # A resumed stream: first what the client missed, then live events.
            # The channel holds those too; skip them there.
            ids = [event_id for event_id, _ in stream.history]
            start = ids.index(replay_after) + 1 if replay_after in ids else 0
            missed = stream.history[start:]
            skip = {event_id for event_id, _ in stream.history}
            for event_id, data in missed:
                if await send_event(event_id, data):
                    return True
            while True:
                event_id, data = await stream.receive.receive()
                if event_id in skip:
                    continue
                if await send_event(event_id, data):
                    return True
        if post:
            # The priming event: an id (and retry) the client can resume from.
            prime = f"{stream.key}-0"
            stream.history.insert(0, (prime, b""))
            retry = f"retry: {self.retry_ms}\n" if self.retry_ms is not None else ""
            await ex.data(f"id: {prime}\n{retry}data: \n\n".encode())
            sent_any = True
        while True:
            if self.drop_streams is not None and post and sent_any:
                if self.drop_streams == "end":
                    await ex.end()
                    return True
                return False  # abort: close the connection mid-stream
            event_id, data = await stream.receive.receive()
            sent_any = True
            if await send_event(event_id, data):
                return True

    async def _get(self, ex: _Exchange, record: HttpRecord) -> bool:
        if not self.get_stream:
            await ex.simple(405, b"Method Not Allowed", extra=[("Allow", "POST, DELETE")])
            return True
        if "text/event-stream" not in record.headers.get("accept", ""):
            await ex.simple(406, b"Not Acceptable")
            return True
        session, status = self._session_for(record)
        if session is None:
            await ex.simple(status, b"no such session")
            return True
        extra = [("Mcp-Session-Id", session.id)] if session.id is not None else []
        last = record.headers.get("last-event-id")
        if last is not None:
            key = int(last.split("-")[0]) if last.split("-")[0].isdigit() else -1
            stream = session.streams.get(key)
            if stream is None:
                await ex.simple(404, b"unknown event id")
                return True
            return await self._send_stream(ex, stream, extra, replay_after=last, post=False)
        return await self._send_stream(ex, session.get_stream, extra, replay_after=None, post=False)

    async def _delete(self, ex: _Exchange, record: HttpRecord) -> bool:
        if not self.allow_delete:
            await ex.simple(405, b"Method Not Allowed", extra=[("Allow", "GET, POST")])
            return True
        session, status = self._session_for(record)
        if session is None or session.id is None:
            await ex.simple(status if session is None else 405, b"")
            return True
        self.sessions.pop(session.id, None)
        session.close()
        self.deleted.append(session.id)
        await ex.simple(200, b"")
        return True

    # -- HTTP+SSE

    async def _legacy_stream(self, ex: _Exchange) -> bool:
        sid = secrets.token_hex(16)
        session = self.sessions[sid] = _Session(self, sid)
        await ex.start(200, "text/event-stream", [("Cache-Control", "no-cache")])
        await ex.data(f"event: endpoint\ndata: /messages?session_id={sid}\n\n".encode())
        try:
            while True:
                _event_id, data = await session.get_stream.receive.receive()
                await ex.data(b"event: message\ndata: " + data + b"\n\n")
        finally:
            self.sessions.pop(sid, None)
            session.close()

    async def _legacy_post(
        self, ex: _Exchange, record: HttpRecord, query: dict[str, list[str]]
    ) -> bool:
        sid = (query.get("session_id") or [""])[0]
        session = self.sessions.get(sid)
        if session is None:
            await ex.simple(404, b"Could not find session")
            return True
        if self._count_post():
            await ex.simple(404, b"Could not find session")
            return True
        assert self._nursery is not None
        await session.conn.handle_text(record.body, self._nursery)
        await ex.simple(202, b"Accepted", "text/plain")
        return True


def _event(event_id: str, data: bytes) -> bytes:
    return f"event: message\nid: {event_id}\n".encode() + b"data: " + data + b"\n\n"


def _error_body(code: int, message: str) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    ).encode()


async def _next(conn: h11.Connection, stream: trio.SocketStream) -> Any:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(data)
            continue
        return event


class _Exchange:
    """Writes one HTTP response."""

    def __init__(self, conn: h11.Connection, stream: trio.SocketStream) -> None:
        self.conn = conn
        self.stream = stream

    async def _send(self, event: Any) -> None:
        data = self.conn.send(event)
        if data:
            await self.stream.send_all(data)

    async def start(
        self, status: int, content_type: str | None, extra: list[tuple[str, str]] | None = None
    ) -> None:
        headers = [("Content-Type", content_type)] if content_type else []
        headers += extra or []
        if status >= 200 and content_type == "text/event-stream":
            headers.append(("Transfer-Encoding", "chunked"))
        await self._send(h11.Response(status_code=status, headers=headers))

    async def data(self, data: bytes) -> None:
        await self._send(h11.Data(data=data))

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())

    async def simple(
        self,
        status: int,
        body: bytes,
        content_type: str | None = "text/plain",
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        headers = [("Content-Length", str(len(body)))]
        if content_type and body:
            headers.append(("Content-Type", content_type))
        headers += extra or []
        await self._send(h11.Response(status_code=status, headers=headers))
        if body:
            await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())

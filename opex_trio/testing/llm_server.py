"""A scripted OpenAI-compatible chat completions server on 127.0.0.1, for tests.

It is a real HTTP/1.1 server (h11 over trio sockets, keep-alive included) that
listens on a free loopback port for as long as its ``async with`` lasts::

    async with open_llm_server() as server:
        server.push(JSONReply(error_body("slow down", code=429), status=429,
                              headers={"Retry-After": "2"}),
                    JSONReply(completion("hello")))
        async with opex_trio.Client("key", base_url=server.base_url) as client:
            result = await client.chat_completion(model="m", messages=[...])
        assert server.requests[0].headers["authorization"] == "Bearer key"

Each request is answered by the first reply in the queue that :meth:`push`
fills; when the queue is empty, by the ``handler`` (a callable that receives the
:class:`RecordedRequest` and returns a reply, or an awaitable of one), and
without a handler by a short completion (streamed when the request asked for
``"stream": true``). Every request is recorded in :attr:`LLMTestServer.requests`.

Replies:

* :class:`JSONReply`: a status, headers and a JSON body, optionally after a delay
  (a response slower than the client's timeout);
* :class:`SSEReply`: an event stream of chunks, each with its own delay, ended
  by ``data: [DONE]`` or not, and closed cleanly or cut off mid-body;
* :class:`ResetReply`: the connection is reset (TCP RST) without an answer;
* :class:`StallReply`: no answer until the client gives up (or a time passes);
* :class:`RawReply`: bytes written as they are (malformed HTTP), then close.

:func:`completion`, :func:`completion_chunks` and :func:`error_body` build the
JSON bodies these replies carry.

All waiting uses trio's clock, so tests run it in virtual time (pytest-trio's
``autojump_clock``). A handler that raises makes the server answer 500 and is
re-raised when the ``async with`` ends, so a broken test script cannot pass.
"""

from __future__ import annotations

import contextlib
import http
import inspect
import itertools
import json
import math
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs
import h11
import trio

__all__ = [
    "JSONReply",
    "LLMTestServer",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "ResetReply",
    "SSEChunk",
    "SSEReply",
    "StallReply",
    "completion",
    "completion_chunks",
    "error_body",
    "open_llm_server",
]

_MAX_REQUEST_BYTES = 16 * 1024 * 1024


def _headers_field(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


@attrs.frozen
class RecordedRequest:
    """A request the server received.

    ``headers`` maps lower-case names to values (repeated headers joined with
    ``", "``); ``json`` is the decoded body, or ``None`` when the body was empty
    or not JSON; ``received_at`` is ``trio.current_time()`` when the request
    had fully arrived (virtual time under a mock clock).
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = attrs.field(repr=False)
    json: Any = attrs.field(default=None, repr=False, eq=False)
    received_at: float = 0.0


@attrs.frozen
class JSONReply:
    """Answer with ``status``, ``headers`` and ``body`` encoded as JSON.

    ``body`` may also be ``bytes`` or ``str``, sent as they are (a body that is
    not JSON). ``delay`` seconds pass before the response head is sent.
    ``trickle``, when above zero, sends the body one byte at a time, that many
    seconds apart (a server that is slow but never silent for long).
    """

    body: Any = None
    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_headers_field)
    delay: float = 0.0
    trickle: float = 0.0


@attrs.frozen
class SSEChunk:
    """One Server-Sent Event of an :class:`SSEReply`, sent after ``delay`` seconds.

    ``data`` is a dict or list (sent as one ``data:`` line of JSON) or a string
    (sent as the event's data; newlines in it become several ``data:`` lines).
    ``raw`` bytes, when given, are written instead, as they are: comment lines,
    odd framing, a partial event.
    """

    data: Any = None
    delay: float = 0.0
    raw: bytes | None = None

    def encode(self) -> bytes:
        """The bytes this event puts on the wire."""
        if self.raw is not None:
            return self.raw
        return _encode_event(self.data)


def _encode_event(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return "".join(f"data: {line}\n" for line in text.split("\n")).encode() + b"\n"


@attrs.frozen
class SSEReply:
    """Answer with an event stream.

    ``chunks`` are dicts or lists (one JSON event each), strings (event data),
    ``bytes`` (written as they are) or :class:`SSEChunk` (with a delay).
    ``done`` ends the events with ``data: [DONE]``. ``truncate`` then closes
    the connection in the middle of the body (no final empty chunk), the way a
    dropped connection looks to the client; otherwise the body ends cleanly.
    ``trickle``, when above zero, sends the whole body one byte at a time,
    that many seconds apart (each chunk's own delay is then ignored).
    """

    chunks: Sequence[Any] = ()
    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_headers_field)
    done: bool = True
    truncate: bool = False
    delay: float = 0.0
    trickle: float = 0.0


@attrs.frozen
class ResetReply:
    """Reset the connection (TCP RST) after ``delay`` seconds, without an answer."""

    delay: float = 0.0


@attrs.frozen
class StallReply:
    """Send nothing until the client closes the connection, or ``seconds`` pass; then close."""

    seconds: float | None = None


@attrs.frozen
class RawReply:
    """Write ``data`` as it is (malformed HTTP, a partial response), then close the connection."""

    data: bytes = b""
    delay: float = 0.0


Reply: TypeAlias = JSONReply | SSEReply | ResetReply | StallReply | RawReply
"""Any reply the server can give."""
Handler: TypeAlias = Callable[[RecordedRequest], "Reply | Awaitable[Reply]"]


def error_body(
    message: str, *, code: Any = None, type: str | None = None, **extra: Any
) -> dict[str, Any]:
    """An OpenAI-style error body: ``{"error": {"message": ..., "code": ..., "type": ...}}``."""
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error["code"] = code
    if type is not None:
        error["type"] = type
    error.update(extra)
    return {"error": error}


_ids = itertools.count(1)


def completion(
    content: str | None = "Hello from the scripted server.",
    *,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
    model: str = "scripted-model",
    finish_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
    id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``chat.completion`` body with one choice.

    ``tool_calls`` are full OpenAI tool call dicts; ``finish_reason`` defaults
    to ``"tool_calls"`` when there are some, else ``"stop"``. ``extra`` keys go
    into the top level of the body.
    """
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [dict(call) for call in tool_calls]
    body: dict[str, Any] = {
        "id": id or f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": dict(usage)
        if usage is not None
        else {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }
    body.update(extra)
    return body


def completion_chunks(
    pieces: Sequence[str] = ("Hello", " from", " the", " scripted", " server."),
    *,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
    model: str = "scripted-model",
    finish_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
    id: str | None = None,
) -> list[dict[str, Any]]:
    """``chat.completion.chunk`` bodies streaming ``pieces`` of content, the OpenAI way.

    The first chunk carries the role; each of ``tool_calls`` (full tool call
    dicts) becomes a chunk with its id and name and one with its arguments; a
    chunk with the finish reason and a usage chunk close the list.
    """
    chunk_id = id or f"chatcmpl-{next(_ids)}"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks.extend(chunk({"content": piece}) for piece in pieces)
    for index, call in enumerate(tool_calls or ()):
        function = call.get("function", {})
        head = {
            "index": index,
            "id": call.get("id", f"call_{index}"),
            "type": "function",
            "function": {"name": function.get("name", ""), "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [head]}))
        arguments = {"index": index, "function": {"arguments": function.get("arguments", "")}}
        chunks.append(chunk({"tool_calls": [arguments]}))
    chunks.append(chunk({}, finish_reason or ("tool_calls" if tool_calls else "stop")))
    final_usage = (
        dict(usage)
        if usage is not None
        else {"prompt_tokens": 5, "completion_tokens": len(pieces), "total_tokens": 5 + len(pieces)}
    )
    chunks.append({**chunk({}), "choices": [], "usage": final_usage})
    return chunks


def _default_reply(request: RecordedRequest) -> Reply:
    if request.method != "POST" or not request.path.endswith("/chat/completions"):
        return JSONReply(error_body(f"no route for {request.method} {request.path}"), status=404)
    body = request.json if isinstance(request.json, dict) else {}
    model = str(body.get("model", "scripted-model"))
    if body.get("stream"):
        return SSEReply(completion_chunks(model=model))
    return JSONReply(completion(model=model))


class _HandlerFailedError(Exception):
    pass


class LLMTestServer:
    """The running server that :func:`open_llm_server` yields.

    ``base_url`` ends in ``/v1``, ready for a client's ``base_url``.
    ``requests`` lists what arrived, in order; ``handler`` answers when the
    queue is empty (assign it at any time).
    """

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler: Handler | None = handler
        self.requests: list[RecordedRequest] = []
        self.handler_errors: list[BaseException] = []
        self.port = 0
        self.connections = 0
        self._queue: deque[Reply] = deque()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *replies: Reply) -> None:
        """Queue ``replies``; each answers one request, in order, before the handler does."""
        for reply in replies:
            if not isinstance(reply, JSONReply | SSEReply | ResetReply | StallReply | RawReply):
                raise TypeError(f"not a reply: {reply!r}")
            self._queue.append(reply)

    @property
    def pending(self) -> int:
        """How many queued replies have not been used yet."""
        return len(self._queue)

    async def _reply_for(self, request: RecordedRequest) -> Reply:
        if self._queue:
            return self._queue.popleft()
        if self.handler is None:
            return _default_reply(request)
        try:
            reply: object = self.handler(request)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception as exc:  # noqa: BLE001  (reported to the test at exit)
            self.handler_errors.append(exc)
            return JSONReply(error_body(f"test handler raised {exc!r}"), status=500)
        if not isinstance(reply, JSONReply | SSEReply | ResetReply | StallReply | RawReply):
            error = TypeError(f"handler returned {reply!r}, not a reply")
            self.handler_errors.append(error)
            return JSONReply(error_body(str(error)), status=500)
        return reply

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST_BYTES)
        try:
            while True:
                request = await _read_request(stream, conn)
                if request is None:
                    return
                self.requests.append(request)
                reply = await self._reply_for(request)
                if not await _send_reply(stream, conn, reply):
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()


async def _read_request(stream: trio.SocketStream, conn: h11.Connection) -> RecordedRequest | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            headers: dict[str, str] = {}
            for name, value in head.headers:
                key = name.decode("latin-1")
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            raw = bytes(body)
            try:
                decoded = json.loads(raw) if raw else None
            except ValueError:
                decoded = None
            return RecordedRequest(
                method=head.method.decode("ascii"),
                path=head.target.decode("latin-1"),
                headers=headers,
                body=raw,
                json=decoded,
                received_at=trio.current_time(),
            )
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


def _head(
    conn: h11.Connection, status: int, content_type: str, headers: Mapping[str, str], length: int
) -> bytes:
    fields = [("content-type", content_type)]
    if length >= 0:
        fields.append(("content-length", str(length)))
    fields.extend((name, value) for name, value in headers.items())
    try:
        reason = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    data = conn.send(h11.Response(status_code=status, headers=fields, reason=reason))
    assert data is not None
    return data


async def _send_reply(stream: trio.SocketStream, conn: h11.Connection, reply: Reply) -> bool:
    """Send ``reply``; return whether the connection may serve another request."""
    if isinstance(reply, JSONReply):
        if reply.delay:
            await trio.sleep(reply.delay)
        if isinstance(reply.body, bytes | str):
            body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        else:
            body = json.dumps(reply.body, separators=(",", ":")).encode()
        out = _head(conn, reply.status, "application/json", reply.headers, len(body))
        if reply.trickle > 0:
            await stream.send_all(out)
            await _trickle(stream, conn, body, reply.trickle)
            await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
            return True
        out += conn.send(h11.Data(data=body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        await stream.send_all(out)
        return True
    if isinstance(reply, SSEReply):
        return await _send_sse(stream, conn, reply)
    if isinstance(reply, ResetReply):
        if reply.delay:
            await trio.sleep(reply.delay)
        # SO_LINGER with a zero timeout turns close() into a reset.
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    if isinstance(reply, StallReply):
        with trio.move_on_after(math.inf if reply.seconds is None else reply.seconds):
            while await stream.receive_some(65536):
                pass
        return False
    if reply.delay:
        await trio.sleep(reply.delay)
    await stream.send_all(reply.data)
    return False


async def _trickle(
    stream: trio.SocketStream, conn: h11.Connection, body: bytes, interval: float
) -> None:
    for position in range(len(body)):
        await trio.sleep(interval)
        await stream.send_all(conn.send(h11.Data(data=body[position : position + 1])) or b"")


def _sse_payload(item: Any) -> bytes:
    if isinstance(item, SSEChunk):
        return item.encode()
    if isinstance(item, bytes):
        return item
    return _encode_event(item)


async def _send_sse(stream: trio.SocketStream, conn: h11.Connection, reply: SSEReply) -> bool:
    if reply.delay:
        await trio.sleep(reply.delay)
    headers = {"cache-control": "no-cache", **reply.headers}
    pending = _head(conn, reply.status, "text/event-stream", headers, -1)
    if reply.trickle > 0:
        await stream.send_all(pending)
        body = b"".join(_sse_payload(item) for item in reply.chunks)
        if reply.done:
            body += b"data: [DONE]\n\n"
        await _trickle(stream, conn, body, reply.trickle)
        if reply.truncate:
            return False
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
        return True
    # Chunks without a delay go out in one write, as a fast server's would.
    for item in reply.chunks:
        chunk = item if isinstance(item, SSEChunk) else None
        if chunk is not None and chunk.delay:
            if pending:
                await stream.send_all(pending)
                pending = b""
            await trio.sleep(chunk.delay)
        pending += conn.send(h11.Data(data=_sse_payload(item))) or b""
    if reply.done:
        pending += conn.send(h11.Data(data=b"data: [DONE]\n\n")) or b""
    if reply.truncate:
        await stream.send_all(pending)
        return False
    pending += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(pending)
    return True


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


@contextlib.asynccontextmanager
async def open_llm_server(handler: Handler | None = None) -> AsyncIterator[LLMTestServer]:
    """Serve on a free port of 127.0.0.1 until the ``async with`` ends.

    ``handler`` answers requests when no pushed reply is queued. On a normal
    exit, the first exception a handler raised (if any) is raised again.
    """
    server = LLMTestServer(handler)
    try:
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            server.port = listeners[0].socket.getsockname()[1]
            nursery.start_soon(trio.serve_listeners, server._serve, listeners)
            try:
                yield server
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # What the test body raised should reach the test alone, not wrapped in
        # the nursery's group.
        real = [leaf for leaf in _leaves(group) if not isinstance(leaf, trio.Cancelled)]
        if len(real) != 1:
            raise
        raise real[0] from real[0].__cause__
    if server.handler_errors:
        raise _HandlerFailedError(
            f"the test server's handler failed {len(server.handler_errors)} time(s)"
        ) from server.handler_errors[0]

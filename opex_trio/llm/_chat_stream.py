"""A streamed chat completion: :class:`ChatStream`, which :meth:`Client.stream_chat` returns.

Entering its ``async with`` opens the stream through the client's attempt loop
(failures before the first event are retried like a non-streamed call's);
iterating it reads Server-Sent Events, decodes each chunk and hands it to the
:class:`~opex_trio.llm._stream.StreamAssembler`, which yields typed events.
After the first event nothing is retried: a break raises
:class:`~opex_trio.errors.StreamError` with what had arrived.
"""

from __future__ import annotations

import contextlib
import json
import json.scanner
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import httpx2
import trio

from .. import telemetry
from ..errors import APIConnectionError, APITimeoutError, StreamError, UsageError
from ._attempts import finished_event, retrying
from ._errors import body_error, error_from_body, error_from_response, error_from_transport
from ._sse import EventReader, EventTimeoutError
from ._stream import StreamAssembler
from .types import ChatCompletion, StreamEvent

if TYPE_CHECKING:
    from .client import Client

__all__ = ["CLOSE_TIMEOUT", "ChatStream"]

# After [DONE] the body's end is normally already buffered; a server that
# keeps the body open past it gets this long before the connection is dropped.
_DRAIN_TIMEOUT = 1.0
# Closing a response must finish even while the caller is being cancelled.
CLOSE_TIMEOUT = 5.0

# json.loads minus its argument checks: stream events are always str.
_decode = json.JSONDecoder().decode
# The C scanner under it: a chunk that is one JSON value and nothing more (all
# of them, in practice) skips the two Python frames and two regular
# expression matches around it, about a third of json.loads's time on a
# typical chunk; anything else takes the full decoder.
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed types the argument as the scanner
)

# The response, its reader, the first chunk (or "[DONE]") and the events read with it.
_Opened: TypeAlias = "tuple[httpx2.Response, EventReader, Any, list[tuple[str, str]]]"


class ChatStream:
    """A streamed chat completion: an async context manager and an async iterator of events.

    Iterating yields :class:`~opex_trio.llm.types.StreamEvent` objects; when
    the stream has ended properly, :attr:`final` holds the assembled
    :class:`~opex_trio.llm.types.ChatCompletion`. Made by :meth:`Client.stream_chat`.
    """

    def __init__(
        self,
        client: Client,
        http: httpx2.AsyncClient,
        body: bytes,
        headers: Any,
        model: str,
        total_timeout: float | None,
        request_id: int,
    ) -> None:
        self._client = client
        self._http = http
        self._body = body
        self._headers = headers
        self._model = model
        self._total_timeout = total_timeout
        self._response: httpx2.Response | None = None
        self._sse: Any = None
        self._first: Any = None
        self._pending: list[tuple[str, str]] = []
        self._iterator: AsyncGenerator[StreamEvent, None] | None = None
        self._assembler = StreamAssembler()
        self._state: Literal["new", "open", "ended", "closed"] = "new"
        self._final: ChatCompletion | None = None
        self._error: BaseException | None = None
        self._attempts = 0
        self._start = 0.0
        self._first_chunk: float | None = None
        self._observed = False
        self._request_id = request_id

    @property
    def final(self) -> ChatCompletion | None:
        """The assembled completion once the stream has ended properly, else ``None``."""
        return self._final

    @property
    def attempts(self) -> int:
        """How many HTTP attempts it took to open the stream."""
        return self._attempts

    @property
    def response(self) -> httpx2.Response | None:
        """The HTTP response (status, headers) while the stream is open."""
        return self._response

    async def __aenter__(self) -> ChatStream:
        if self._state != "new":
            raise UsageError("a ChatStream can be entered only once")
        self._state = "open"
        client = self._client
        self._observed = client._observed()
        self._start = trio.current_time()
        if self._observed:
            client._emit(
                telemetry.LLMRequestStarted(
                    request_id=self._request_id,
                    model=self._model,
                    stream=True,
                    base_url=client.base_url,
                )
            )
        try:
            (
                (self._response, self._sse, self._first, self._pending),
                self._attempts,
            ) = await retrying(
                client, self._model, self._request_id, self._total_timeout, self._open
            )
        except BaseException as exc:
            self._state = "closed"
            self._error = exc
            self._finished_event()
            raise
        if self._observed:
            self._first_chunk = trio.current_time() - self._start
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        if exc is not None and self._error is None:
            self._error = exc
        await _close(self._iterator, self._response, self._sse)
        self._finished_event()

    def _finished_event(self) -> None:
        if not self._observed:
            return
        self._client._emit(
            finished_event(
                self._request_id,
                self._model,
                True,
                self._start,
                self._attempts,
                completion=self._final,
                error=self._error if self._final is None else None,
                first_chunk=self._first_chunk,
            )
        )

    async def _open(self, attempt: int) -> _Opened:
        # Counted here too, so an end event after a cancellation knows it.
        self._attempts = attempt
        client = self._client
        url = client._url
        gap = client._event_timeout
        # The first event's wait counts from the request, headers included.
        deadline = math.inf if gap is None else trio.current_time() + gap
        request = self._http.build_request(
            "POST",
            client._target,
            content=self._body,
            headers=self._headers,
            **({"timeout": client._stream_timeout} if client._stream_timeout else {}),
        )
        with trio.CancelScope(deadline=deadline) as scope:
            try:
                response = await self._http.send(request, stream=True)
            except httpx2.HTTPError as exc:
                raise error_from_transport(exc, url=url, attempts=attempt) from exc
        if scope.cancelled_caught:
            raise _no_first_event(url, gap, attempt)
        reader: EventReader | None = None
        try:
            if not 200 <= response.status_code < 300:
                await response.aread()
                raise error_from_response(response, attempts=attempt)
            content_type = response.headers.get("content-type", "")
            if not content_type.lower().startswith("text/event-stream"):
                await response.aread()
                try:
                    data: Any = response.json()
                except ValueError:
                    data = response.text
                error = body_error(data)
                if error is not None:
                    raise error_from_body(
                        error,
                        data,
                        headers=response.headers,
                        attempts=attempt,
                        http_status=response.status_code,
                    )
                raise StreamError(
                    f"expected an event stream, got content type {content_type!r}",
                    body=data,
                    attempts=attempt,
                )
            reader = EventReader(response, gap, deadline)
            position = 0
            batch: list[tuple[str, str]] | None = []
            while True:
                try:
                    batch = await reader.read()
                except EventTimeoutError:
                    raise _no_first_event(url, gap, attempt) from None
                if batch is None:
                    raise APIConnectionError(
                        f"{url}: the stream ended before its first event", attempts=attempt
                    )
                position = next((i for i, (_, data) in enumerate(batch) if data), -1)
                if position >= 0:
                    break
            kind, data = batch[position]
            rest = batch[position + 1 :]
            if data == "[DONE]":
                return response, reader, "[DONE]", rest
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise StreamError(
                    f"a stream event is not JSON: {data[:200]!r}",
                    body=data,
                    attempts=attempt,
                ) from exc
            error = body_error(chunk)
            if error is None and kind == "error":
                error = chunk if isinstance(chunk, dict) else {"message": str(chunk)}
            if error is not None:
                # Nothing was delivered yet: an error here is an error status
                # in all but name, and retried like one.
                raise error_from_body(
                    error, chunk, headers=response.headers, attempts=attempt, http_status=200
                )
            return response, reader, chunk, rest
        except httpx2.HTTPError as exc:
            await _close(None, response, reader)
            raise error_from_transport(exc, url=url, attempts=attempt) from exc
        except BaseException:
            await _close(None, response, reader)
            raise

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        if self._iterator is None:
            if self._state != "open":
                raise UsageError("iterate a ChatStream inside its 'async with'")
            self._iterator = self._events()
        return self._iterator

    async def __anext__(self) -> StreamEvent:
        return await self.__aiter__().__anext__()

    async def _events(self) -> AsyncGenerator[StreamEvent, None]:
        # One generator for the whole stream: resuming it per event is cheaper
        # than a fresh coroutine per __anext__ call, which counts per chunk.
        if self._state != "open":
            return
        assembler = self._assembler
        short = assembler.feed_short
        first = self._first
        self._first = None
        if first == "[DONE]":
            await self._end(done=True)
            return
        if first is not None:
            for event in self._feed(first):
                yield event
        reader = self._sse
        batch = self._pending
        self._pending = []
        while True:
            for kind, data in batch:
                if data == "[DONE]":
                    await self._end(done=True)
                    return
                if not data:
                    continue
                try:
                    chunk, end = _scan(data, 0)
                except (StopIteration, ValueError):
                    end = -1
                if end != len(data):
                    # Not one JSON value alone (whitespace around it, or not
                    # JSON at all): the full decoder decides.
                    try:
                        chunk = _decode(data)
                    except ValueError as exc:
                        raise self._fail(
                            StreamError(
                                f"a stream event is not JSON: {data[:200]!r}",
                                partial=assembler.partial(),
                                body=data,
                            )
                        ) from exc
                if kind == "error":
                    chunk = {
                        "error": chunk.get("error", chunk) if isinstance(chunk, dict) else chunk
                    }
                quick = short(chunk)
                if quick is not None:
                    yield quick
                    continue
                try:
                    events = assembler.feed_long(chunk)
                except StreamError as exc:
                    raise self._fail(exc) from None
                for event in events:
                    yield event
            try:
                read = await reader.read()
            except EventTimeoutError as exc:
                raise self._fail(_stalled(self._client._url, exc.gap, assembler)) from None
            except httpx2.HTTPError as exc:
                raise self._fail(_broken(exc, self._client._url, assembler)) from exc
            if read is None:
                await self._end(done=False)
                return
            batch = read

    def _feed(self, chunk: Any) -> list[StreamEvent]:
        try:
            return self._assembler.feed(chunk)
        except StreamError as exc:
            raise self._fail(exc) from None

    def _fail(self, error: StreamError) -> StreamError:
        error.attempts = self._attempts
        self._error = error
        self._state = "ended"
        return error

    async def _end(self, *, done: bool) -> None:
        if done:
            # Read the body's end so the connection can serve the next request.
            with trio.move_on_after(_DRAIN_TIMEOUT), contextlib.suppress(httpx2.HTTPError):
                await self._sse.drain()
        try:
            self._final = self._assembler.check_complete(done)
        except StreamError as exc:
            raise self._fail(exc) from None
        self._state = "ended"

    async def get_final_completion(self) -> ChatCompletion:
        """Read the rest of the stream and return the assembled completion."""
        async for _ in self:
            pass
        if self._final is None:
            raise RuntimeError("the stream did not end properly") from self._error
        return self._final


def _no_first_event(url: str, gap: float | None, attempt: int) -> APITimeoutError:
    return APITimeoutError(
        f"{url}: no event arrived within the event timeout of {gap:g} s", attempts=attempt
    )


def _stalled(url: str, gap: float, assembler: StreamAssembler) -> StreamError:
    return StreamError(
        f"{url}: the stream stalled after {assembler.chunks} chunk(s):"
        f" no event arrived within the event timeout of {gap:g} s",
        partial=assembler.partial(),
    )


def _broken(exc: httpx2.HTTPError, url: str, assembler: StreamAssembler) -> StreamError:
    if isinstance(exc, httpx2.TimeoutException):
        what = "no data arrived within the read timeout"
    elif isinstance(exc, httpx2.RemoteProtocolError):
        what = "the connection closed before the stream ended"
    else:
        what = f"the connection broke ({type(exc).__name__}: {exc})"
    return StreamError(
        f"{url}: the stream broke after {assembler.chunks} chunk(s): {what}",
        partial=assembler.partial(),
    )


async def _close(
    iterator: AsyncGenerator[Any, None] | None, response: httpx2.Response | None, sse: Any
) -> None:
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + CLOSE_TIMEOUT
        if iterator is not None:
            await iterator.aclose()
        if response is not None:
            await response.aclose()
        if sse is not None:
            # httpx2 abandons the connection's own body generator when a reader
            # stops early, and trio reports it as a ResourceWarning when it is
            # collected. With the response closed, reading on ends it at once.
            with contextlib.suppress(httpx2.HTTPError, httpx2.StreamError):
                await sse.drain()
            with contextlib.suppress(httpx2.HTTPError):
                await sse.aclose()

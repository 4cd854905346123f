"""The OpenAI-compatible chat completions client.

:class:`Client` sends ``POST {base_url}/chat/completions`` with httpx2, retries
what :class:`~opex_trio.llm.retry.RetryPolicy` says may be retried, and
returns typed results (:mod:`opex_trio.llm.types`). Every failure is an
:class:`~opex_trio.errors.LLMError` subclass with the httpx2 exception, when
there was one, chained as its cause.

Deadlines: a call's attempts and the waits between them run inside one trio
cancel scope whose deadline is ``total_timeout`` (a client default, or per
call). When the wait before a retry would reach that deadline, or the
deadline of a cancel scope the caller wrapped around the call, the client does
not sleep towards it: it raises :class:`~opex_trio.errors.APITimeoutError` at
once, saying how many attempts were made, with the last error as its cause.
When the deadline passes during an attempt, the attempt is cancelled and the
same error is raised. For a stream, the deadline covers the attempts up to
the first event; reading the rest is bounded by the read timeout between
chunks (and by any cancel scope of the caller's).
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import json
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias, TypeVar

import httpx2
import trio

from .. import telemetry
from .._version import __version__
from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    LLMError,
    StreamError,
    UsageError,
)
from ._errors import body_error, error_from_body, error_from_response, error_from_transport
from ._stream import StreamAssembler
from .retry import RetryPolicy, parse_retry_after
from .types import ChatCompletion, StreamEvent

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "ChatStream", "Client", "EventHook"]

logger = logging.getLogger("opex_trio.llm")

DEFAULT_BASE_URL: Final = "https://openrouter.ai/api/v1"
"""OpenRouter's OpenAI-compatible API, the seed library's default."""

DEFAULT_TIMEOUT: Final = httpx2.Timeout(600.0, connect=10.0)
"""Per-attempt network timeouts: 10 s to connect, 600 s for each read or write.

A non-streamed completion of a slow model can take minutes before its first
byte; the deadline of a whole call is ``total_timeout``.
"""

# After [DONE] the body's end is normally already buffered; a server that
# keeps the body open past it gets this long before the connection is dropped.
_DRAIN_TIMEOUT = 1.0
# Closing a response must finish even while the caller is being cancelled.
_CLOSE_TIMEOUT = 5.0

# json.loads minus its argument checks: stream events are always str.
_decode = json.JSONDecoder().decode

# The request_id of each call's telemetry events.
_request_ids = itertools.count(1)

EventHook: TypeAlias = Callable[[telemetry.TelemetryEvent], object]
"""A callable that receives this client's telemetry events (in the calling task)."""

_T = TypeVar("_T")


class _Unset(enum.Enum):
    UNSET = enum.auto()


_UNSET: Final = _Unset.UNSET


def _header_value(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {type(value).__name__}")
    try:
        value.encode("ascii")
    except UnicodeEncodeError:
        raise ConfigError(f"{name} must be ASCII text to go into an HTTP header") from None
    if "\r" in value or "\n" in value or "\0" in value:
        raise ConfigError(f"{name} must not contain line breaks or NUL characters")
    return value


def _check_timeout(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a number of seconds > 0 or None, got {value!r}")
    return float(value)


def _encode_body(
    model: Any, messages: Any, tools: Any, tool_choice: Any, extra: dict[str, Any], stream: bool
) -> bytes:
    if not isinstance(model, str) or not model:
        raise ConfigError(f"model must be a non-empty string, got {model!r}")
    if not isinstance(messages, list | tuple):
        raise ConfigError(
            f"messages must be a list of message dicts, got {type(messages).__name__}"
        )
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ConfigError(f"messages[{position}] must be a dict, got {type(message).__name__}")
    if "stream" in extra:
        raise ConfigError("pass no 'stream' argument: call stream_chat() for a stream")
    payload: dict[str, Any] = {"model": model, "messages": messages}
    if tools is not None:
        if not isinstance(tools, list | tuple) or not all(isinstance(t, Mapping) for t in tools):
            raise ConfigError("tools must be a list of tool dicts")
        payload["tools"] = tools
    if tool_choice is not None:
        if not isinstance(tool_choice, str | Mapping):
            raise ConfigError(f"tool_choice must be a string or a dict, got {tool_choice!r}")
        payload["tool_choice"] = tool_choice
    payload.update(extra)
    if stream:
        payload["stream"] = True
    try:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the request cannot be encoded as JSON: {exc}") from exc
    return text.encode("utf-8")


class Client:
    """An OpenAI-compatible chat completions client (OpenRouter by default).

    Use it as an async context manager; it owns an ``httpx2.AsyncClient``, or
    borrows ``http_client`` (which it then neither configures nor closes)::

        async with Client(api_key, app_title="My app") as client:
            result = await client.chat_completion(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": "Hi"}],
            )
            print(result.content)

    Args:
        api_key: sent as ``Authorization: Bearer``; ``None`` (or ``""``) sends
            no such header (local servers need none). It appears in no repr,
            log line or error message.
        base_url: the API root; ``/chat/completions`` is appended.
        user_agent: the ``User-Agent`` header (default ``opex-trio/<version>``).
        app_title: sent as ``X-Title`` and ``X-OpenRouter-Title`` (OpenRouter's
            app attribution).
        http_referer: sent as ``HTTP-Referer`` (OpenRouter's app URL).
        headers: further headers for every request.
        timeout: per-attempt network timeouts, in seconds or as an
            ``httpx2.Timeout``; default :data:`DEFAULT_TIMEOUT` (for a borrowed
            client, its own unless given).
        total_timeout: default deadline in seconds of a whole call, attempts
            and backoff included; ``None`` for none.
        retry: the :class:`RetryPolicy`.
        http_client: an ``httpx2.AsyncClient`` to borrow.
        event_hook: called with each telemetry event of this client, besides
            the subscribers of :mod:`opex_trio.telemetry`.

    """

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        user_agent: str | None = None,
        app_title: str | None = None,
        http_referer: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx2.Timeout | None = None,
        total_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        http_client: httpx2.AsyncClient | None = None,
        event_hook: EventHook | None = None,
    ) -> None:
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigError(f"api_key must be a string or None, got {type(api_key).__name__}")
        if not isinstance(base_url, str):
            raise ConfigError(f"base_url must be a string, got {type(base_url).__name__}")
        try:
            url = httpx2.URL(base_url)
        except (httpx2.InvalidURL, TypeError) as exc:
            raise ConfigError(f"base_url {base_url!r} is not a valid URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        if http_client is not None and not isinstance(http_client, httpx2.AsyncClient):
            raise ConfigError(
                f"http_client must be an httpx2.AsyncClient, got {type(http_client).__name__}"
            )
        if timeout is not None and not isinstance(timeout, httpx2.Timeout):
            _check_timeout("timeout", timeout)
        if event_hook is not None and not callable(event_hook):
            raise ConfigError("event_hook must be callable")

        self._base_url = base_url.rstrip("/")
        self._url = self._base_url + "/chat/completions"
        self._app_title = app_title
        self._total_timeout = _check_timeout("total_timeout", total_timeout)
        self._retry = retry if retry is not None else RetryPolicy()
        self._event_hook = event_hook
        self._borrowed = http_client
        self._timeout: httpx2.Timeout = (
            timeout
            if isinstance(timeout, httpx2.Timeout)
            else DEFAULT_TIMEOUT
            if timeout is None
            else httpx2.Timeout(float(timeout))
        )
        self._request_timeout: Any = (
            self._timeout if http_client is not None and timeout is not None else None
        )

        base: dict[str, str] = {
            "User-Agent": _header_value(
                "user_agent", user_agent if user_agent is not None else f"opex-trio/{__version__}"
            ),
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        if app_title is not None:
            base["X-Title"] = base["X-OpenRouter-Title"] = _header_value("app_title", app_title)
        if http_referer is not None:
            base["HTTP-Referer"] = _header_value("http_referer", http_referer)
        for name, value in (headers or {}).items():
            base[_header_value("header name", name)] = _header_value(f"header {name}", value)
        if api_key:
            base["Authorization"] = "Bearer " + _header_value("api_key", api_key)
        self._headers = base
        # Parsed once: httpx2 would parse a string URL again on every request.
        self._target = httpx2.URL(self._url)
        # What each request passes as its headers, set when the client opens:
        # an owned client carries the fixed headers itself.
        self._plain_headers: Any = None
        self._stream_headers: Any = None
        self._http: httpx2.AsyncClient | None = None
        self._state: Literal["new", "open", "closed"] = "new"

    def __repr__(self) -> str:
        title = f", app_title={self._app_title!r}" if self._app_title is not None else ""
        return f"<{type(self).__name__} base_url={self._base_url!r}{title} {self._state}>"

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._base_url

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy."""
        return self._retry

    @property
    def total_timeout(self) -> float | None:
        """The default deadline of a whole call, in seconds."""
        return self._total_timeout

    async def __aenter__(self) -> Client:
        if self._state != "new":
            raise UsageError(f"{self!r} cannot be opened again; make a new Client")
        if self._borrowed is not None:
            self._http = self._borrowed
            self._plain_headers = httpx2.Headers(self._headers)
            self._stream_headers = httpx2.Headers({**self._headers, "Accept": "text/event-stream"})
        else:
            self._http = httpx2.AsyncClient(timeout=self._timeout, headers=self._headers)
            self._plain_headers = None
            self._stream_headers = {"Accept": "text/event-stream"}
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the owned HTTP client (a borrowed one stays open). Closing twice is harmless."""
        http, self._http = self._http, None
        self._state = "closed"
        if http is not None and self._borrowed is None:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + _CLOSE_TIMEOUT
                await http.aclose()

    def _open_http(self) -> httpx2.AsyncClient:
        http = self._http
        if http is None:
            if self._state == "new":
                raise UsageError(f"use 'async with {type(self).__name__}(...)' before calling it")
            raise UsageError(f"{self!r} is closed")
        return http

    def _request_headers(self, base: Any, extra: Mapping[str, str] | None) -> Any:
        if not extra:
            return base
        merged = dict(base or {})
        for name, value in extra.items():
            merged[_header_value("header name", name)] = _header_value(f"header {name}", value)
        return merged

    def _deadline_of(self, total_timeout: float | _Unset | None) -> float | None:
        if total_timeout is _UNSET:
            return self._total_timeout
        return _check_timeout("total_timeout", total_timeout)

    def _emit(self, event: telemetry.TelemetryEvent) -> None:
        hook = self._event_hook
        if hook is not None:
            try:
                hook(event)
            except Exception:
                logger.exception("event hook %r failed on %s", hook, type(event).__name__)
        telemetry.emit(event)

    def _observed(self) -> bool:
        return self._event_hook is not None or telemetry.enabled()

    async def chat_completion(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        total_timeout: float | _Unset | None = _UNSET,
        extra_headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> ChatCompletion:
        """Ask for a chat completion and return it.

        ``messages``, ``tools`` and ``tool_choice`` are plain OpenAI dicts;
        ``extra`` keyword arguments (``temperature``, ``max_tokens``,
        ``provider``, ...) go into the request body as they are.
        ``total_timeout`` overrides the client's deadline for this call.

        Raises an :class:`~opex_trio.errors.APIStatusError` subclass for an
        error status or an error object in the body,
        :class:`~opex_trio.errors.APIConnectionError` or
        :class:`~opex_trio.errors.APITimeoutError` when no answer came, after
        the retries the policy allows.
        """
        http = self._open_http()
        body = _encode_body(model, messages, tools, tool_choice, extra, False)
        headers = self._request_headers(self._plain_headers, extra_headers)
        deadline = self._deadline_of(total_timeout)
        request_id = next(_request_ids)
        if not self._observed():
            result, _ = await self._retrying(
                model,
                request_id,
                deadline,
                lambda attempt: self._post(http, body, headers, attempt),
            )
            return result
        attempts = 0

        async def attempt_once(attempt: int) -> ChatCompletion:
            nonlocal attempts
            attempts = attempt
            return await self._post(http, body, headers, attempt)

        start = trio.current_time()
        self._emit(
            telemetry.LLMRequestStarted(
                request_id=request_id, model=model, stream=False, base_url=self._base_url
            )
        )
        try:
            result, attempts = await self._retrying(model, request_id, deadline, attempt_once)
        except BaseException as exc:
            self._emit(_finished(request_id, model, False, start, attempts, error=exc))
            raise
        self._emit(_finished(request_id, model, False, start, attempts, completion=result))
        return result

    async def _post(
        self, http: httpx2.AsyncClient, body: bytes, headers: Any, attempt: int
    ) -> ChatCompletion:
        try:
            if self._request_timeout is None:
                response = await http.post(self._target, content=body, headers=headers)
            else:
                response = await http.post(
                    self._target, content=body, headers=headers, timeout=self._request_timeout
                )
        except httpx2.HTTPError as exc:
            raise error_from_transport(exc, url=self._url, attempts=attempt) from exc
        if not 200 <= response.status_code < 300:
            raise error_from_response(response, attempts=attempt)
        try:
            data = json.loads(response.content)
        except ValueError as exc:
            raise APIStatusError(
                f"HTTP {response.status_code} with a body that is not JSON: "
                f"{response.text[:200]!r}",
                status=response.status_code,
                body=response.text,
                headers=response.headers,
                attempts=attempt,
            ) from exc
        error = body_error(data)
        if error is not None:
            raise error_from_body(
                error,
                data,
                headers=response.headers,
                attempts=attempt,
                http_status=response.status_code,
            )
        return ChatCompletion.from_dict(data)

    async def _retrying(
        self,
        model: str,
        request_id: int,
        total_timeout: float | None,
        attempt_once: Callable[[int], Awaitable[_T]],
    ) -> tuple[_T, int]:
        """Run ``attempt_once(attempt)`` until it succeeds or the policy gives up.

        Returns the result and the number of attempts made.
        """
        policy = self._retry
        attempt = 0
        deadline = math.inf if total_timeout is None else trio.current_time() + total_timeout
        with trio.CancelScope(deadline=deadline):
            while True:
                attempt += 1
                try:
                    return await attempt_once(attempt), attempt
                except LLMError as error:
                    error.attempts = attempt
                    retry_after = (
                        parse_retry_after(error.headers)
                        if isinstance(error, APIStatusError)
                        else None
                    )
                    delay = policy.next_delay(error, attempt, retry_after)
                    if delay is None:
                        raise
                    # The caller's cancel scopes count too: a sleep that would
                    # end after any deadline is pointless.
                    limit = trio.current_effective_deadline()
                    if trio.current_time() + delay >= limit:
                        raise APITimeoutError(
                            f"gave up after {attempt} attempt(s): the next retry, in {delay:g} s,"
                            f" would come after the call's deadline; last error: {error}",
                            attempts=attempt,
                        ) from error
                    reason = _reason(error)
                    logger.info(
                        "chat completion for %s failed on attempt %d (%s); retrying in %.3f s",
                        model,
                        attempt,
                        reason,
                        delay,
                    )
                    if self._observed():
                        self._emit(
                            telemetry.LLMRetry(
                                request_id=request_id,
                                model=model,
                                attempt=attempt,
                                delay=delay,
                                reason=reason,
                                status=error.status if isinstance(error, APIStatusError) else None,
                            )
                        )
                    await trio.sleep(delay)
        # Only the cancel scope's own deadline ends the loop without a return or raise.
        assert total_timeout is not None
        raise APITimeoutError(
            f"the call's total timeout of {total_timeout:g} s passed during attempt {attempt}",
            attempts=attempt,
        )

    def stream_chat(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        total_timeout: float | _Unset | None = _UNSET,
        extra_headers: Mapping[str, str] | None = None,
        include_usage: bool = True,
        **extra: Any,
    ) -> ChatStream:
        """Ask for a streamed chat completion; use the result with ``async with``.

        ::

            async with client.stream_chat(model=..., messages=...) as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        print(event.text, end="")
            message = stream.final.message

        Arguments are as for :meth:`chat_completion`; ``include_usage`` asks
        for the usage chunk (``stream_options``) unless ``stream_options`` is
        given. Entering the ``async
        with`` sends the request and waits for the first event; failures up to
        then are retried like a non-streamed call's. After that nothing is
        retried: a break or an error chunk raises
        :class:`~opex_trio.errors.StreamError` with what had arrived.
        """
        http = self._open_http()
        if include_usage and "stream_options" not in extra:
            extra["stream_options"] = {"include_usage": True}
        body = _encode_body(model, messages, tools, tool_choice, extra, True)
        headers = self._request_headers(self._stream_headers, extra_headers)
        return ChatStream(
            self, http, body, headers, model, self._deadline_of(total_timeout), next(_request_ids)
        )


def _finished(
    request_id: int,
    model: str,
    stream: bool,
    start: float,
    attempts: int,
    *,
    completion: ChatCompletion | None = None,
    error: BaseException | None = None,
    first_chunk: float | None = None,
) -> telemetry.LLMRequestFinished:
    """The end event of a call that began at ``start`` (trio time)."""
    duration = trio.current_time() - start
    if completion is None:
        if isinstance(error, LLMError):
            attempts = error.attempts
        return telemetry.LLMRequestFinished(
            request_id=request_id,
            model=model,
            stream=stream,
            outcome="incomplete" if error is None else type(error).__name__,
            duration=duration,
            attempts=attempts,
            error=error,
            time_to_first_chunk=first_chunk,
        )
    usage = completion.usage
    return telemetry.LLMRequestFinished(
        request_id=request_id,
        model=model,
        stream=stream,
        outcome="ok",
        duration=duration,
        attempts=attempts,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        response_model=completion.model,
        response_id=completion.id,
        finish_reasons=tuple(c.finish_reason for c in completion.choices if c.finish_reason),
        time_to_first_chunk=first_chunk,
    )


def _reason(error: LLMError) -> str:
    if isinstance(error, APIStatusError):
        return f"status {error.status}"
    cause = error.__cause__
    return type(cause).__name__ if cause is not None else type(error).__name__


_Opened: TypeAlias = "tuple[httpx2.Response, Any, Any]"


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
            (self._response, self._sse, self._first), self._attempts = await client._retrying(
                self._model, self._request_id, self._total_timeout, self._open
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
            _finished(
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

    async def _open(self, attempt: int) -> tuple[httpx2.Response, Any, Any]:
        # Counted here too, so an end event after a cancellation knows it.
        self._attempts = attempt
        client = self._client
        url = client._url
        request = self._http.build_request(
            "POST",
            client._target,
            content=self._body,
            headers=self._headers,
            **({"timeout": client._request_timeout} if client._request_timeout else {}),
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx2.HTTPError as exc:
            raise error_from_transport(exc, url=url, attempts=attempt) from exc
        sse: Any = None
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
            sse = httpx2.EventSource(response).__aiter__()
            while True:
                try:
                    event = await sse.__anext__()
                except StopAsyncIteration:
                    raise APIConnectionError(
                        f"{url}: the stream ended before its first event", attempts=attempt
                    ) from None
                if event.data:
                    break
            if event.data == "[DONE]":
                return response, sse, "[DONE]"
            try:
                chunk = json.loads(event.data)
            except ValueError as exc:
                raise StreamError(
                    f"a stream event is not JSON: {event.data[:200]!r}",
                    body=event.data,
                    attempts=attempt,
                ) from exc
            error = body_error(chunk)
            if error is None and event.event == "error":
                error = chunk if isinstance(chunk, dict) else {"message": str(chunk)}
            if error is not None:
                # Nothing was delivered yet: an error here is an error status
                # in all but name, and retried like one.
                raise error_from_body(
                    error, chunk, headers=response.headers, attempts=attempt, http_status=200
                )
            return response, sse, chunk
        except httpx2.HTTPError as exc:
            await _close(None, response, sse)
            raise error_from_transport(exc, url=url, attempts=attempt) from exc
        except BaseException:
            await _close(None, response, sse)
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
        first = self._first
        self._first = None
        if first == "[DONE]":
            await self._end(done=True)
            return
        if first is not None:
            for event in self._feed(first):
                yield event
        sse = self._sse
        while True:
            try:
                message = await sse.__anext__()
            except StopAsyncIteration:
                await self._end(done=False)
                return
            except httpx2.HTTPError as exc:
                raise self._fail(_broken(exc, self._client._url, assembler)) from exc
            data = message.data
            if data == "[DONE]":
                await self._end(done=True)
                return
            if not data:
                continue
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
            if message.event == "error":
                chunk = {"error": chunk.get("error", chunk) if isinstance(chunk, dict) else chunk}
            try:
                events = assembler.feed(chunk)
            except StreamError as exc:
                raise self._fail(exc) from None
            if len(events) == 1:
                yield events[0]
            else:
                for event in events:
                    yield event

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
                async for _ in self._sse:
                    pass
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
        scope.deadline = trio.current_time() + _CLOSE_TIMEOUT
        if iterator is not None:
            await iterator.aclose()
        if sse is not None:
            with contextlib.suppress(httpx2.HTTPError):
                await sse.aclose()
        if response is not None:
            await response.aclose()

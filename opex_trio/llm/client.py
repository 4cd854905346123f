"""The OpenAI-compatible chat completions client.

:class:`Client` sends ``POST {base_url}/chat/completions`` with httpx2, retries
what :class:`~opex_trio.llm.retry.RetryPolicy` says may be retried, and
returns typed results (:mod:`opex_trio.llm.types`). Every failure is an
:class:`~opex_trio.errors.LLMError` subclass with the httpx2 exception, when
there was one, chained as its cause.

Deadlines: each attempt has its own, by default: ``response_timeout`` for
the whole of a non-streamed response, ``event_timeout`` for each wait for a
stream's next event (the first one counted from the request). An attempt that
runs into its deadline fails with :class:`~opex_trio.errors.APITimeoutError`
and is retried like a network timeout; a stream past its first event raises
:class:`~opex_trio.errors.StreamError` instead. A call's attempts and the
waits between them run inside one trio cancel scope whose deadline is
``total_timeout`` (a client default, or per call). When the wait before a
retry would reach that deadline, or the deadline of a cancel scope the caller
wrapped around the call, the client does not sleep towards it: it raises
:class:`~opex_trio.errors.APITimeoutError` at once, saying how many attempts
were made, with the last error as its cause. When the deadline passes during
an attempt, the attempt is cancelled and the same error is raised. For a
stream, ``total_timeout`` covers the attempts up to the first event.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias, TypeVar

import httpx2
import trio

from .. import telemetry
from .._version import __version__
from ..errors import APIStatusError, APITimeoutError, ConfigError, UsageError
from ._attempts import finished_event, retrying
from ._chat_stream import CLOSE_TIMEOUT, ChatStream
from ._errors import body_error, error_from_body, error_from_response, error_from_transport
from ._request import UNSET as _UNSET
from ._request import Unset as _Unset
from ._request import check_timeout as _check_timeout
from ._request import encode_body as _encode_body
from ._request import header_value as _header_value
from .retry import RetryPolicy
from .types import ChatCompletion

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_EVENT_TIMEOUT",
    "DEFAULT_RESPONSE_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "ChatStream",
    "Client",
    "EventHook",
]

logger = logging.getLogger("opex_trio.llm")

DEFAULT_BASE_URL: Final = "https://openrouter.ai/api/v1"
"""OpenRouter's OpenAI-compatible API, the seed library's default."""

DEFAULT_TIMEOUT: Final = httpx2.Timeout(600.0, connect=10.0)
"""Per-attempt network timeouts: 10 s to connect, 600 s for each read or write.

A non-streamed completion of a slow model can take minutes before its first
byte. These bound each network operation, not an attempt: the deadline of one
attempt is ``response_timeout`` (non-streamed) or ``event_timeout`` (streamed),
the deadline of a whole call is ``total_timeout``.
"""

DEFAULT_RESPONSE_TIMEOUT: Final = 600.0
"""The deadline in seconds of one non-streamed attempt, from the request to the body's end."""

DEFAULT_EVENT_TIMEOUT: Final = 300.0
"""The longest wait in seconds for a stream's next event (the first counted from the request)."""


# The request_id of each call's telemetry events.
_request_ids = itertools.count(1)

EventHook: TypeAlias = Callable[[telemetry.TelemetryEvent], object]
"""A callable that receives this client's telemetry events (in the calling task)."""

_T = TypeVar("_T")


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
        response_timeout: the deadline in seconds of one non-streamed attempt,
            from sending the request to the end of the body (default
            :data:`DEFAULT_RESPONSE_TIMEOUT`); a server that trickles its body
            runs into it. The attempt fails with
            :class:`~opex_trio.errors.APITimeoutError` and is retried like a
            network timeout. ``None`` for none.
        event_timeout: for a stream, the longest wait in seconds for the next
            event, the first one counted from the request (default
            :data:`DEFAULT_EVENT_TIMEOUT`). Before the first event it fails
            the attempt (retried); after it, the stream raises
            :class:`~opex_trio.errors.StreamError`. Time the program spends
            between reading events does not count. ``None`` for none.
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
        response_timeout: float | None = DEFAULT_RESPONSE_TIMEOUT,
        event_timeout: float | None = DEFAULT_EVENT_TIMEOUT,
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
        self._response_timeout = _check_timeout("response_timeout", response_timeout)
        self._event_timeout = _check_timeout("event_timeout", event_timeout)
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
    def response_timeout(self) -> float | None:
        """The deadline of one non-streamed attempt, in seconds."""
        return self._response_timeout

    @property
    def event_timeout(self) -> float | None:
        """The longest wait for a stream's next event, in seconds."""
        return self._event_timeout

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
                scope.deadline = trio.current_time() + CLOSE_TIMEOUT
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
        with ``tools`` and no ``tool_choice``, ``"auto"`` is sent (the API's
        default, which some servers only apply when it is sent);
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
            self._emit(finished_event(request_id, model, False, start, attempts, error=exc))
            raise
        self._emit(finished_event(request_id, model, False, start, attempts, completion=result))
        return result

    async def _post(
        self, http: httpx2.AsyncClient, body: bytes, headers: Any, attempt: int
    ) -> ChatCompletion:
        limit = self._response_timeout
        with trio.CancelScope(
            deadline=math.inf if limit is None else trio.current_time() + limit
        ) as scope:
            try:
                if self._request_timeout is None:
                    response = await http.post(self._target, content=body, headers=headers)
                else:
                    response = await http.post(
                        self._target, content=body, headers=headers, timeout=self._request_timeout
                    )
            except httpx2.HTTPError as exc:
                raise error_from_transport(exc, url=self._url, attempts=attempt) from exc
        if scope.cancelled_caught:
            raise APITimeoutError(
                f"{self._url}: no complete response within the response timeout of {limit:g} s",
                attempts=attempt,
            )
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
        return await retrying(self, model, request_id, total_timeout, attempt_once)

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

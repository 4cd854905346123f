"""OpenTelemetry spans made from opex_trio's telemetry events.

Imported only by :func:`opex_trio.telemetry.instrument`, and only when the
``opentelemetry-api`` package (the ``otel`` extra) is installed: nothing else
in opex_trio imports OpenTelemetry.

Theory of operation
-------------------
:func:`instrument` subscribes one handler. Start events open spans, end events
close them; a start and its end are paired by the LLM call's ``request_id``,
or by a tool call's server, tool and ``call_id``. A span starts at the wall
clock time its start event was emitted and ends ``duration`` seconds later
(the duration the end event reports, in trio time), so span lengths agree with
the events even under a virtual clock. Span events between the two (retries,
state changes) are placed by the trio time that passed since the start.
Spans become children of whatever span is current where the start event is
emitted; they are never made current themselves, because the code they
describe is not run inside them.

The attributes follow the OpenTelemetry semantic conventions for generative
AI (the inference span, the execute-tool span) and, where they apply, those
for MCP. These conventions are still marked as in development.

LLM calls (:class:`~opex_trio.telemetry.LLMRequestStarted` to
:class:`~opex_trio.telemetry.LLMRequestFinished`): a ``chat {model}`` span
of kind ``CLIENT`` with

* ``gen_ai.operation.name`` = ``"chat"``, ``gen_ai.request.model``,
  ``gen_ai.request.stream``, ``gen_ai.provider.name``, ``server.address`` and
  ``server.port`` (from the client's ``base_url``), set when the span starts;
* ``gen_ai.response.model``, ``gen_ai.response.id``,
  ``gen_ai.response.finish_reasons``, ``gen_ai.usage.input_tokens``,
  ``gen_ai.usage.output_tokens``, ``gen_ai.response.time_to_first_chunk``
  (streams) and ``opex_trio.llm.attempts``, set when it ends;
* on failure: status ``ERROR``, ``error.type`` (the exception's class name,
  for example ``AuthenticationError``, ``RateLimitError``,
  ``APITimeoutError``, ``StreamError``, ``Cancelled``),
  ``http.response.status_code`` for an error status, and an ``exception``
  event. A stream left early without an error (outcome ``"incomplete"``) is
  not a failure;
* each retry: a span event ``opex_trio.llm.retry`` with
  ``opex_trio.llm.retry.attempt`` (the attempt that failed),
  ``opex_trio.llm.retry.delay`` (seconds), ``opex_trio.llm.retry.reason`` and
  ``http.response.status_code`` when the attempt got one.

``gen_ai.provider.name`` is the well-known value of the API's host where it
has one (``openai`` for api.openai.com, ``anthropic``, ``groq``,
``deepseek``, ``mistral_ai``, ``x_ai``, ``perplexity``, ``cohere``,
``moonshot_ai``, ``azure.ai.openai``, ``gcp.gemini``, ``gcp.vertex_ai``),
``openrouter`` for OpenRouter, and otherwise ``openai``, the API flavour the
client speaks; ``instrument(provider_name=...)`` overrides it.

Tool calls (:class:`~opex_trio.telemetry.ToolCallStarted` to
:class:`~opex_trio.telemetry.ToolCallFinished`): an ``execute_tool {tool}``
span of kind ``INTERNAL`` with ``gen_ai.operation.name`` =
``"execute_tool"``, ``gen_ai.tool.name``, ``gen_ai.tool.call.id`` and
``gen_ai.tool.type`` (``"extension"`` for an MCP server's tool,
``"function"`` for a custom one). An MCP tool's span also has
``mcp.method.name`` = ``"tools/call"`` and ``opex_trio.mcp.server`` (the
server's id in the session manager). A call whose outcome is not ``"ok"``
gets status ``ERROR`` and ``error.type``: the exception's class name, or the
outcome (``"error"``, ``"timeout"``, ``"cancelled"``) when there is no
exception.

MCP servers (:class:`~opex_trio.telemetry.ServerStateChanged`): a span per
stretch of time a server is not ready. It opens when the server enters
``starting``, ``restarting`` or ``unhealthy`` and is named after that state
and the server (``starting fs``); the states it passes through meanwhile
become span events named after them; it ends when the server is ``ready``
again (status unset), ``stopped`` (unset) or ``failed`` (``ERROR``).
``opex_trio.mcp.server`` names the server, ``opex_trio.mcp.server.restarts``
counts its restarts and ``opex_trio.mcp.server.outcome`` is the state that
ended the span; a change that carries an error adds ``error.type`` to its
span event and an ``exception`` event. A server that stops or fails while no
span is open gets a span of zero length. Supervisor events
(:class:`~opex_trio.telemetry.ChildStateChanged`) make no spans: the session
manager's events already describe its servers.

Closing the subscription ends the spans still open, marked
``opex_trio.incomplete``. So does having more than ``MAX_OPEN`` of one kind
open at once (the oldest is ended), which bounds memory when end events never
come.
"""

from __future__ import annotations

import functools
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Final

import attrs
import trio
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from . import telemetry
from ._version import __version__
from .errors import APIStatusError, ConfigError

__all__ = ["MAX_OPEN", "instrument", "provider_for"]

MAX_OPEN: Final = 10_000
"""How many spans of one kind (LLM calls, tool calls, servers) may be open at once."""

_TRACER_NAME: Final = "opex_trio"

# Well-known gen_ai.provider.name values by API host. A host matches its own
# name, its subdomains, and names that end in "-" and it (Vertex AI's regional
# hosts are us-central1-aiplatform.googleapis.com and the like).
_PROVIDERS: Final = (
    ("api.openai.com", "openai"),
    ("openai.azure.com", "azure.ai.openai"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.cohere.com", "cohere"),
    ("api.cohere.ai", "cohere"),
    ("api.moonshot.ai", "moonshot_ai"),
    ("openrouter.ai", "openrouter"),
)

_SERVER_OPENING: Final = frozenset({"starting", "restarting", "unhealthy"})


@functools.lru_cache(maxsize=64)
def _endpoint(base_url: str) -> tuple[str | None, int | None]:
    try:
        parts = urllib.parse.urlsplit(base_url)
        port = parts.port
    except ValueError:
        return None, None
    host = parts.hostname
    if host is None:
        return None, None
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return host, port


def provider_for(base_url: str) -> str:
    """The ``gen_ai.provider.name`` for an API at ``base_url`` (``"openai"`` when unknown)."""
    host, _ = _endpoint(base_url)
    if host is not None:
        host = host.lower()
        for suffix, name in _PROVIDERS:
            if host == suffix or host.endswith(("." + suffix, "-" + suffix)):
                return name
    return "openai"


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:
        # Emitted outside trio.run: there is no trio clock to follow.
        return time.monotonic()


def _seconds_to_ns(seconds: float) -> int:
    return round(seconds * 1e9)


def _error_type(error: BaseException | None, fallback: str) -> str:
    return type(error).__name__ if error is not None else fallback


@attrs.define
class _Open:
    """A span opened by a start event, and where it began on both clocks."""

    span: Span
    start_ns: int
    start_clock: float

    def at(self, clock: float) -> int:
        """The wall clock timestamp (ns) of trio time ``clock``."""
        return self.start_ns + _seconds_to_ns(clock - self.start_clock)

    def after(self, seconds: float) -> int:
        """The wall clock timestamp (ns) ``seconds`` after the start."""
        return self.start_ns + _seconds_to_ns(seconds)


def _end_incomplete(record: _Open, end_time: int | None = None) -> None:
    record.span.set_attribute("opex_trio.incomplete", True)
    record.span.end(end_time=end_time)


class _Spans:
    """The subscribed handler: turns events into spans (see the module docstring)."""

    def __init__(self, tracer: trace.Tracer, provider_name: str | None) -> None:
        self._tracer = tracer
        self._provider_name = provider_name
        self._llm: dict[int, _Open] = {}
        self._tools: dict[tuple[str | None, str, str | None], list[_Open]] = {}
        self._tool_count = 0
        self._servers: dict[str, _Open] = {}
        self._dispatch: dict[type[telemetry.TelemetryEvent], Callable[[Any], None]] = {
            telemetry.LLMRequestStarted: self._llm_started,
            telemetry.LLMRetry: self._llm_retry,
            telemetry.LLMRequestFinished: self._llm_finished,
            telemetry.ToolCallStarted: self._tool_started,
            telemetry.ToolCallFinished: self._tool_finished,
            telemetry.ServerStateChanged: self._server_changed,
        }

    def __call__(self, event: telemetry.TelemetryEvent) -> None:
        handle = self._dispatch.get(type(event))
        if handle is not None:
            handle(event)

    def _open(self, name: str, kind: SpanKind, attributes: dict[str, AttributeValue]) -> _Open:
        start_ns = time.time_ns()
        span = self._tracer.start_span(name, kind=kind, attributes=attributes, start_time=start_ns)
        return _Open(span, start_ns, _now())

    # -- LLM calls

    def _llm_started(self, event: telemetry.LLMRequestStarted) -> None:
        host, port = _endpoint(event.base_url)
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self._provider_name or provider_for(event.base_url),
            "gen_ai.request.model": event.model,
            "gen_ai.request.stream": event.stream,
        }
        if host is not None:
            attributes["server.address"] = host
            if port is not None:
                attributes["server.port"] = port
        if len(self._llm) >= MAX_OPEN:
            _end_incomplete(self._llm.pop(next(iter(self._llm))))
        self._llm[event.request_id] = self._open(f"chat {event.model}", SpanKind.CLIENT, attributes)

    def _llm_retry(self, event: telemetry.LLMRetry) -> None:
        record = self._llm.get(event.request_id)
        if record is None:
            return
        attributes: dict[str, AttributeValue] = {
            "opex_trio.llm.retry.attempt": event.attempt,
            "opex_trio.llm.retry.delay": event.delay,
            "opex_trio.llm.retry.reason": event.reason,
        }
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        record.span.add_event("opex_trio.llm.retry", attributes, timestamp=record.at(_now()))

    def _llm_finished(self, event: telemetry.LLMRequestFinished) -> None:
        record = self._llm.pop(event.request_id, None)
        if record is None:
            return
        span = record.span
        end_time = record.after(event.duration)
        if span.is_recording():
            attributes: dict[str, AttributeValue] = {"opex_trio.llm.attempts": event.attempts}
            if event.response_model is not None:
                attributes["gen_ai.response.model"] = event.response_model
            if event.response_id is not None:
                attributes["gen_ai.response.id"] = event.response_id
            if event.finish_reasons:
                attributes["gen_ai.response.finish_reasons"] = event.finish_reasons
            if event.prompt_tokens is not None:
                attributes["gen_ai.usage.input_tokens"] = event.prompt_tokens
            if event.completion_tokens is not None:
                attributes["gen_ai.usage.output_tokens"] = event.completion_tokens
            if event.time_to_first_chunk is not None:
                attributes["gen_ai.response.time_to_first_chunk"] = event.time_to_first_chunk
            if event.outcome not in ("ok", "incomplete"):
                error = event.error
                attributes["error.type"] = _error_type(error, event.outcome)
                if isinstance(error, APIStatusError):
                    attributes["http.response.status_code"] = error.status
                span.set_status(Status(StatusCode.ERROR, str(error) if error else event.outcome))
                if error is not None:
                    span.record_exception(error, timestamp=end_time)
            span.set_attributes(attributes)
        span.end(end_time=end_time)

    # -- tool calls

    def _tool_started(self, event: telemetry.ToolCallStarted) -> None:
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": event.tool,
            "gen_ai.tool.type": "function" if event.server is None else "extension",
        }
        if event.call_id is not None:
            attributes["gen_ai.tool.call.id"] = event.call_id
        if event.server is not None:
            attributes["mcp.method.name"] = "tools/call"
            attributes["opex_trio.mcp.server"] = event.server
        if self._tool_count >= MAX_OPEN:
            self._evict_tool()
        key = (event.server, event.tool, event.call_id)
        self._tools.setdefault(key, []).append(
            self._open(f"execute_tool {event.tool}", SpanKind.INTERNAL, attributes)
        )
        self._tool_count += 1

    def _evict_tool(self) -> None:
        key = next(iter(self._tools))
        waiting = self._tools[key]
        _end_incomplete(waiting.pop(0))
        self._tool_count -= 1
        if not waiting:
            del self._tools[key]

    def _tool_finished(self, event: telemetry.ToolCallFinished) -> None:
        key = (event.server, event.tool, event.call_id)
        waiting = self._tools.get(key)
        if not waiting:
            return
        # Calls under one key (no call_id, or a reused one) end in the order they began.
        record = waiting.pop(0)
        self._tool_count -= 1
        if not waiting:
            del self._tools[key]
        span = record.span
        end_time = record.after(event.duration)
        if event.outcome != "ok" and span.is_recording():
            error = event.error
            span.set_attribute("error.type", _error_type(error, event.outcome))
            span.set_status(Status(StatusCode.ERROR, str(error) if error else event.outcome))
            if error is not None:
                span.record_exception(error, timestamp=end_time)
        span.end(end_time=end_time)

    # -- MCP servers

    def _server_changed(self, event: telemetry.ServerStateChanged) -> None:
        record = self._servers.get(event.server)
        state = event.state
        if record is None:
            if state in _SERVER_OPENING:
                if len(self._servers) >= MAX_OPEN:
                    _end_incomplete(self._servers.pop(next(iter(self._servers))))
                self._servers[event.server] = self._open(
                    f"{state} {event.server}",
                    SpanKind.INTERNAL,
                    {
                        "opex_trio.mcp.server": event.server,
                        "opex_trio.mcp.server.restarts": event.restarts,
                    },
                )
                self._server_error(self._servers[event.server], event)
            elif state in ("stopped", "failed"):
                record = self._open(
                    f"{state} {event.server}",
                    SpanKind.INTERNAL,
                    {"opex_trio.mcp.server": event.server},
                )
                self._server_end(record, event)
            return
        if state in _SERVER_OPENING:
            if record.span.is_recording():
                attributes: dict[str, AttributeValue] = {
                    "opex_trio.mcp.server.restarts": event.restarts
                }
                if event.previous is not None:
                    attributes["opex_trio.mcp.server.previous"] = event.previous
                if event.error is not None:
                    attributes["error.type"] = type(event.error).__name__
                record.span.add_event(state, attributes, timestamp=record.at(_now()))
                self._server_error(record, event)
            return
        del self._servers[event.server]
        self._server_end(record, event)

    def _server_error(self, record: _Open, event: telemetry.ServerStateChanged) -> None:
        if event.error is not None and record.span.is_recording():
            record.span.record_exception(event.error, timestamp=record.at(_now()))

    def _server_end(self, record: _Open, event: telemetry.ServerStateChanged) -> None:
        span = record.span
        end_time = record.at(_now())
        if span.is_recording():
            span.set_attribute("opex_trio.mcp.server.outcome", event.state)
            span.set_attribute("opex_trio.mcp.server.restarts", event.restarts)
            if event.state == "failed":
                error = event.error
                span.set_attribute("error.type", _error_type(error, "failed"))
                span.set_status(
                    Status(StatusCode.ERROR, str(error) if error else "the server failed")
                )
                if error is not None:
                    span.record_exception(error, timestamp=end_time)
        span.end(end_time=end_time)

    # -- closing

    def close(self) -> None:
        """End every span still open, marked incomplete."""
        llm, self._llm = self._llm, {}
        tools, self._tools = self._tools, {}
        servers, self._servers = self._servers, {}
        self._tool_count = 0
        for record in llm.values():
            _end_incomplete(record)
        for waiting in tools.values():
            for record in waiting:
                _end_incomplete(record)
        for record in servers.values():
            _end_incomplete(record, record.at(_now()))


def instrument(
    tracer_provider: trace.TracerProvider | None = None, *, provider_name: str | None = None
) -> telemetry.Subscription:
    """Subscribe a handler that makes spans; see :func:`opex_trio.telemetry.instrument`."""
    if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
        raise ConfigError(
            "tracer_provider must be an opentelemetry.trace.TracerProvider or None,"
            f" got {type(tracer_provider).__name__}"
        )
    if provider_name is not None and (not isinstance(provider_name, str) or not provider_name):
        raise ConfigError(
            f"provider_name must be a non-empty string or None, got {provider_name!r}"
        )
    tracer = trace.get_tracer(_TRACER_NAME, __version__, tracer_provider=tracer_provider)
    spans = _Spans(tracer, provider_name)
    return telemetry.subscribe(spans, on_close=spans.close)

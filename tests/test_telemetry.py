"""Telemetry: subscriptions, event streams, the cost of not listening, OpenTelemetry spans.

The span tests record with the OpenTelemetry SDK's in-memory exporter (the
SDK is in the ``test`` extra) and skip, saying so, where it is missing. LLM
spans come from real calls to the scripted server on loopback, server spans
from a real :class:`SessionManager` serving an in-process MCP server; tool
call events are emitted directly, as the chat loop emits them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import trio
from trio.testing import MockClock

from opex_trio import telemetry
from opex_trio.errors import (
    AuthenticationError,
    ConfigError,
    ServerUnavailableError,
)
from opex_trio.llm import Client, RetryPolicy
from opex_trio.mcp.manager import ServerOptions, SessionManager
from opex_trio.supervision import RestartPolicy
from opex_trio.telemetry import (
    LLMRequestFinished,
    LLMRequestStarted,
    LLMRetry,
    ServerStateChanged,
    TelemetryEvent,
    ToolCallFinished,
    ToolCallStarted,
)
from opex_trio.testing.llm_server import (
    JSONReply,
    LLMTestServer,
    SSEChunk,
    SSEReply,
    completion_chunks,
    error_body,
    open_llm_server,
)
from opex_trio.testing.mcp_server import builtin_server

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

BOUND = 60
USER = [{"role": "user", "content": "Hi"}]


@pytest.fixture
async def llm_server() -> AsyncIterator[LLMTestServer]:
    async with open_llm_server() as server:
        yield server


def make_client(server: LLMTestServer, **kwargs: Any) -> Client:
    kwargs.setdefault("retry", RetryPolicy(jitter=0))
    return Client("sk-test-key", base_url=server.base_url, **kwargs)


def started(name: str = "t") -> ToolCallStarted:
    return ToolCallStarted(tool=name, server=None)


@pytest.fixture(autouse=True)
def no_leftover_subscribers() -> Iterator[None]:
    assert not telemetry.enabled(), "a subscription leaked from an earlier test"
    yield
    assert not telemetry.enabled(), "this test leaked a subscription"


# --- subscribe()


def test_subscribers_get_events_until_they_unsubscribe() -> None:
    seen: list[TelemetryEvent] = []
    telemetry.emit(started("before"))
    with telemetry.subscribe(seen.append) as subscription:
        assert telemetry.enabled()
        telemetry.emit(started("during"))
    assert subscription.closed
    telemetry.emit(started("after"))
    assert seen == [started("during")]


def test_a_handler_subscribed_twice_gets_each_event_twice_until_one_closes() -> None:
    seen: list[TelemetryEvent] = []
    first = telemetry.subscribe(seen.append)
    second = telemetry.subscribe(seen.append)
    telemetry.emit(started("a"))
    first.close()
    first.close()
    telemetry.emit(started("b"))
    assert telemetry.enabled()
    second.close()
    assert seen == [started("a"), started("a"), started("b")]


def test_a_raising_handler_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[TelemetryEvent] = []

    def broken(event: TelemetryEvent) -> None:
        raise RuntimeError("handler bug")

    with telemetry.subscribe(broken), telemetry.subscribe(seen.append):
        telemetry.emit(started())
    assert seen == [started()]
    [record] = [r for r in caplog.records if r.name == "opex_trio.telemetry"]
    assert "ToolCallStarted" in record.getMessage()
    assert record.exc_info is not None
    assert "handler bug" in str(record.exc_info[1])


def test_on_close_runs_once() -> None:
    closed: list[bool] = []
    subscription = telemetry.subscribe(lambda event: None, on_close=lambda: closed.append(True))
    subscription.close()
    subscription.close()
    assert closed == [True]


def test_bad_subscriptions_are_refused() -> None:
    with pytest.raises(ConfigError, match="handler must be callable"):
        telemetry.subscribe("print")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="on_close"):
        telemetry.subscribe(print, on_close=42)  # type: ignore[arg-type]


# --- open_stream()


async def test_a_stream_delivers_the_chosen_event_types_to_a_consumer_task() -> None:
    received: list[TelemetryEvent] = []

    async def consume(events: trio.MemoryReceiveChannel[TelemetryEvent]) -> None:
        received.extend([event async for event in events])

    finished = ToolCallFinished(tool="t", server=None, outcome="ok", duration=0.5)
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            with telemetry.open_stream(event_types=(ToolCallFinished,)) as events:
                nursery.start_soon(consume, events)
                telemetry.emit(started())
                telemetry.emit(finished)
                await trio.sleep(0)
            # Leaving the `with` closed the sending side: the consumer's loop ends.
    assert received == [finished]


@pytest.mark.parametrize(
    ("drop", "kept"), [("oldest", ["c", "d", "e"]), ("newest", ["a", "b", "c"])]
)
async def test_a_full_stream_drops_events_instead_of_blocking(
    drop: Any, kept: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    with telemetry.open_stream(max_buffer=3, drop=drop) as events:
        for name in "abcde":
            telemetry.emit(started(name))
    names = []
    async for event in events:
        assert isinstance(event, ToolCallStarted)
        names.append(event.tool)
    assert names == kept
    warnings = [r for r in caplog.records if "telemetry stream is full" in r.getMessage()]
    assert len(warnings) == 1
    assert f"dropping the {drop} events" in warnings[0].getMessage()


async def test_a_consumer_that_closes_its_end_early_breaks_nothing() -> None:
    with telemetry.open_stream(max_buffer=1) as events:
        await events.aclose()
        telemetry.emit(started("a"))
        telemetry.emit(started("b"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_buffer": 0}, "max_buffer"),
        ({"max_buffer": 2.5}, "max_buffer"),
        ({"max_buffer": True}, "max_buffer"),
        ({"drop": "middle"}, "drop"),
        ({"event_types": str}, "event_types"),
        ({"event_types": ()}, "event_types"),
    ],
)
def test_bad_stream_arguments_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match), telemetry.open_stream(**kwargs):
        pass


# --- correlation and cost in the LLM client


async def test_an_llm_call_s_events_share_one_request_id_and_calls_differ(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(JSONReply(error_body("slow down"), status=429))
    seen: list[TelemetryEvent] = []
    with trio.fail_after(BOUND), telemetry.subscribe(seen.append):
        async with make_client(llm_server) as client:
            await client.chat_completion(model="m", messages=USER)
            async with client.stream_chat(model="m", messages=USER) as stream:
                await stream.get_final_completion()
    kinds = [type(e) for e in seen]
    assert kinds == [
        LLMRequestStarted,
        LLMRetry,
        LLMRequestFinished,
        LLMRequestStarted,
        LLMRequestFinished,
    ]
    ids = [e.request_id for e in seen]  # type: ignore[attr-defined]
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] == ids[4] != ids[0]


async def test_a_cancelled_call_still_ends(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(JSONReply(error_body("slow down"), status=429), JSONReply(delay=100))
    seen: list[TelemetryEvent] = []
    with trio.fail_after(BOUND), telemetry.subscribe(seen.append):
        async with make_client(llm_server) as client:
            with trio.move_on_after(8):
                await client.chat_completion(model="m", messages=USER)
    finished = seen[-1]
    assert isinstance(finished, LLMRequestFinished)
    assert finished.outcome == "Cancelled"
    assert finished.attempts == 2
    assert finished.duration == 8.0
    assert isinstance(finished.error, trio.Cancelled)


async def test_nothing_is_built_when_nobody_listens(
    autojump_clock: MockClock, llm_server: LLMTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an event was built with nobody listening")

    for name in ("LLMRequestStarted", "LLMRetry", "LLMRequestFinished"):
        monkeypatch.setattr(telemetry, name, refuse)
    llm_server.push(JSONReply(error_body("slow down"), status=429))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            assert (await client.chat_completion(model="m", messages=USER)).content
            async with client.stream_chat(model="m", messages=USER) as stream:
                assert (await stream.get_final_completion()).content


# --- without OpenTelemetry


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=BOUND, check=False
    )


def test_importing_and_using_telemetry_never_imports_opentelemetry() -> None:
    result = run_python(
        "import sys, opex_trio\n"
        "from opex_trio import telemetry\n"
        "with telemetry.subscribe(print), telemetry.open_stream():\n"
        "    telemetry.emit(telemetry.ToolCallStarted(tool='t', server=None))\n"
        "loaded = [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "assert not loaded, loaded\n"
    )
    assert result.returncode == 0, result.stderr


def test_instrument_without_opentelemetry_names_the_extra() -> None:
    # None in sys.modules makes every import of the package fail, as when it
    # is not installed.
    result = run_python(
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "from opex_trio import telemetry\n"
        "from opex_trio.errors import ConfigError\n"
        "try:\n"
        "    telemetry.instrument()\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
        "assert not telemetry.enabled()\n"
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'opex_trio[otel]'" in result.stdout


# --- OpenTelemetry spans


class Recorder:
    """An SDK tracer provider whose finished spans are kept in memory."""

    def __init__(self) -> None:
        sdk_trace = pytest.importorskip(
            "opentelemetry.sdk.trace",
            reason="the span tests need opentelemetry-sdk (in the test extra)",
        )
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        self.exporter: InMemorySpanExporter = InMemorySpanExporter()
        self.provider: TracerProvider = sdk_trace.TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def one(self, name: str) -> ReadableSpan:
        matching = [s for s in self.spans() if s.name == name]
        assert len(matching) == 1, [s.name for s in self.spans()]
        return matching[0]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    # Made by a fixture, not in a test's body, so that a missing SDK skips the
    # test with its reason (a skip raised inside trio.run loses it).
    made = Recorder()
    yield made
    made.provider.shutdown()


@pytest.fixture
def otel(recorder: Recorder) -> Iterator[Recorder]:
    with telemetry.instrument(recorder.provider):
        yield recorder


def length(span: ReadableSpan) -> int:
    assert span.start_time is not None and span.end_time is not None
    return span.end_time - span.start_time


def attrs_of(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_an_llm_call_is_a_chat_client_span(
    autojump_clock: MockClock, llm_server: LLMTestServer, otel: Recorder
) -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    llm_server.push(
        JSONReply(
            {
                "id": "chatcmpl-42",
                "model": "m-2024",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
            },
            delay=2.5,
        )
    )
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            await client.chat_completion(model="m", messages=USER)
    span = otel.one("chat m")
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    port = int(llm_server.base_url.rsplit(":", 1)[1].split("/")[0])
    assert attrs_of(span) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "m",
        "gen_ai.request.stream": False,
        "server.address": "127.0.0.1",
        "server.port": port,
        "gen_ai.response.model": "m-2024",
        "gen_ai.response.id": "chatcmpl-42",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 3,
        "opex_trio.llm.attempts": 1,
    }
    assert length(span) == 2_500_000_000
    assert span.events == ()


async def test_retries_are_span_events_at_their_time(
    autojump_clock: MockClock, llm_server: LLMTestServer, otel: Recorder
) -> None:
    llm_server.push(JSONReply(error_body("slow down"), status=429))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            await client.chat_completion(model="m", messages=USER)
    span = otel.one("chat m")
    [retry] = span.events
    assert retry.name == "opex_trio.llm.retry"
    assert dict(retry.attributes or {}) == {
        "opex_trio.llm.retry.attempt": 1,
        "opex_trio.llm.retry.delay": 5.0,
        "opex_trio.llm.retry.reason": "status 429",
        "http.response.status_code": 429,
    }
    assert retry.timestamp == span.start_time
    assert length(span) == 5_000_000_000
    assert attrs_of(span)["opex_trio.llm.attempts"] == 2
    assert "error.type" not in attrs_of(span)


async def test_a_refused_key_makes_an_error_span(
    autojump_clock: MockClock, llm_server: LLMTestServer, otel: Recorder
) -> None:
    from opentelemetry.trace import StatusCode

    llm_server.push(JSONReply(error_body("invalid key"), status=401))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(AuthenticationError):
                await client.chat_completion(model="m", messages=USER)
    span = otel.one("chat m")
    assert span.status.status_code == StatusCode.ERROR
    assert "invalid key" in (span.status.description or "")
    attributes = attrs_of(span)
    assert attributes["error.type"] == "AuthenticationError"
    assert attributes["http.response.status_code"] == 401
    assert "gen_ai.usage.input_tokens" not in attributes
    [exception] = span.events
    assert exception.name == "exception"
    assert str(dict(exception.attributes or {})["exception.type"]).endswith(".AuthenticationError")


async def test_a_stream_span_has_its_time_to_first_chunk(
    autojump_clock: MockClock, llm_server: LLMTestServer, otel: Recorder
) -> None:
    # Five chunks (role, two pieces, finish reason, usage), half a second apart.
    chunks = completion_chunks(["a", "b"], model="m")
    llm_server.push(SSEReply([SSEChunk(c, delay=0.5) for c in chunks]))
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            await stream.get_final_completion()
    span = otel.one("chat m")
    attributes = attrs_of(span)
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.time_to_first_chunk"] == 0.5
    assert attributes["gen_ai.usage.output_tokens"] == 2
    assert length(span) == 2_500_000_000


async def test_the_provider_name_can_be_given(
    autojump_clock: MockClock, llm_server: LLMTestServer, recorder: Recorder
) -> None:
    with trio.fail_after(BOUND), telemetry.instrument(recorder.provider, provider_name="llama.cpp"):
        async with make_client(llm_server) as client:
            await client.chat_completion(model="m", messages=USER)
    assert attrs_of(recorder.one("chat m"))["gen_ai.provider.name"] == "llama.cpp"


@pytest.mark.parametrize(
    ("base_url", "provider"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://my-deployment.openai.azure.com/openai", "azure.ai.openai"),
        ("https://us-central1-aiplatform.googleapis.com/v1", "gcp.vertex_ai"),
        ("https://generativelanguage.googleapis.com/v1beta/openai", "gcp.gemini"),
        ("https://API.Mistral.AI/v1", "mistral_ai"),
        ("http://127.0.0.1:8080/v1", "openai"),
        ("https://notopenai.com/v1", "openai"),
        ("https://evilapi.openai.com.example/v1", "openai"),
    ],
)
def test_the_provider_name_follows_the_host(base_url: str, provider: str) -> None:
    pytest.importorskip("opentelemetry.trace", reason="needs opentelemetry-api (the otel extra)")
    from opex_trio._otel import provider_for

    assert provider_for(base_url) == provider


def test_instrument_refuses_bad_arguments() -> None:
    pytest.importorskip("opentelemetry.trace", reason="needs opentelemetry-api (the otel extra)")
    with pytest.raises(ConfigError, match="tracer_provider"):
        telemetry.instrument("provider")
    with pytest.raises(ConfigError, match="provider_name"):
        telemetry.instrument(provider_name="")


async def test_a_tool_call_is_an_execute_tool_span(
    autojump_clock: MockClock, otel: Recorder
) -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    telemetry.emit(ToolCallStarted(tool="read_file", server="fs", call_id="call_1"))
    await trio.sleep(1.25)
    telemetry.emit(
        ToolCallFinished(
            tool="read_file", server="fs", outcome="ok", duration=1.25, call_id="call_1"
        )
    )
    span = otel.one("execute_tool read_file")
    assert span.kind == SpanKind.INTERNAL
    assert span.status.status_code == StatusCode.UNSET
    assert attrs_of(span) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "read_file",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.type": "extension",
        "mcp.method.name": "tools/call",
        "opex_trio.mcp.server": "fs",
    }
    assert length(span) == 1_250_000_000


async def test_a_failed_custom_tool_call_is_an_error_span(
    autojump_clock: MockClock, otel: Recorder
) -> None:
    from opentelemetry.trace import StatusCode

    telemetry.emit(ToolCallStarted(tool="lookup", server=None, call_id="c"))
    telemetry.emit(
        ToolCallFinished(
            tool="lookup",
            server=None,
            outcome="error",
            duration=0.0,
            call_id="c",
            error=ValueError("no such row"),
        )
    )
    telemetry.emit(ToolCallStarted(tool="lookup", server=None, call_id="d"))
    telemetry.emit(
        ToolCallFinished(tool="lookup", server=None, outcome="timeout", duration=0.0, call_id="d")
    )
    failed, timed_out = otel.spans()
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.status.description == "no such row"
    assert attrs_of(failed)["error.type"] == "ValueError"
    assert attrs_of(failed)["gen_ai.tool.type"] == "function"
    assert "opex_trio.mcp.server" not in attrs_of(failed)
    assert [e.name for e in failed.events] == ["exception"]
    assert attrs_of(timed_out)["error.type"] == "timeout"
    assert timed_out.events == ()


async def test_tool_spans_pair_by_call_and_nest_in_the_current_span(
    autojump_clock: MockClock, otel: Recorder
) -> None:
    tracer = otel.provider.get_tracer("test")
    with tracer.start_as_current_span("conversation") as parent:
        telemetry.emit(ToolCallStarted(tool="t", server="s", call_id="a"))
        await trio.sleep(1)
        telemetry.emit(ToolCallStarted(tool="t", server="s", call_id="b"))
        await trio.sleep(1)
        telemetry.emit(
            ToolCallFinished(tool="t", server="s", outcome="ok", duration=2, call_id="a")
        )
        # An end without a start (or a second end) makes no span.
        telemetry.emit(
            ToolCallFinished(tool="t", server="s", outcome="ok", duration=2, call_id="a")
        )
        await trio.sleep(1)
        telemetry.emit(
            ToolCallFinished(tool="t", server="s", outcome="ok", duration=2, call_id="b")
        )
    a, b, conversation = otel.spans()
    assert conversation.name == "conversation"
    assert [attrs_of(s)["gen_ai.tool.call.id"] for s in (a, b)] == ["a", "b"]
    # Each span starts at the wall clock time of its start event and lasts
    # what its end event says (here in virtual time).
    assert a.start_time is not None and b.start_time is not None
    assert b.start_time > a.start_time
    assert length(a) == length(b) == 2_000_000_000
    for span in (a, b):
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id


async def test_closing_the_instrumentation_ends_open_spans(
    autojump_clock: MockClock, recorder: Recorder
) -> None:
    with telemetry.instrument(recorder.provider):
        telemetry.emit(ToolCallStarted(tool="t", server=None, call_id="x"))
    [span] = recorder.spans()
    assert attrs_of(span)["opex_trio.incomplete"] is True
    telemetry.emit(ToolCallFinished(tool="t", server=None, outcome="ok", duration=1, call_id="x"))
    assert len(recorder.spans()) == 1


async def test_server_state_changes_make_spans(autojump_clock: MockClock, otel: Recorder) -> None:
    from opentelemetry.trace import StatusCode

    options = ServerOptions(
        health=None,
        restart=RestartPolicy(backoff_initial=1, backoff_factor=2, jitter=0, max_restarts=5),
    )
    seen: list[TelemetryEvent] = []
    with trio.fail_after(BOUND), telemetry.subscribe(seen.append):
        async with trio.open_nursery() as nursery, SessionManager() as mcp:
            sid = await mcp.add_server(
                builtin_server().in_process(nursery, refuse_first=2), name="flaky", options=options
            )
            await mcp.wait_ready(sid)
            await mcp.remove_server(sid)
            nursery.cancel_scope.cancel()
    states = [e.state for e in seen if isinstance(e, ServerStateChanged)]
    assert states == ["starting", "restarting", "ready", "stopped"]
    starting = otel.one("starting flaky")
    # Two refused connections: waits of 1 and 2 seconds before it was ready.
    assert length(starting) == 3_000_000_000
    assert starting.status.status_code == StatusCode.UNSET
    assert attrs_of(starting) == {
        "opex_trio.mcp.server": "flaky",
        "opex_trio.mcp.server.restarts": 2,
        "opex_trio.mcp.server.outcome": "ready",
    }
    assert [e.name for e in starting.events] == ["restarting", "exception"]
    restarting = starting.events[0]
    assert dict(restarting.attributes or {})["error.type"] == "TransportBrokenError"
    assert restarting.timestamp == starting.start_time
    stopped = otel.one("stopped flaky")
    assert length(stopped) == 0
    assert attrs_of(stopped)["opex_trio.mcp.server.outcome"] == "stopped"


async def test_a_server_that_fails_ends_its_span_in_error(
    autojump_clock: MockClock, otel: Recorder
) -> None:
    from opentelemetry.trace import StatusCode

    options = ServerOptions(
        health=None,
        restart=RestartPolicy(backoff_initial=1, jitter=0, max_restarts=2, within=30),
    )
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery, SessionManager() as mcp:
            sid = await mcp.add_server(
                builtin_server().in_process(nursery, refuse_first=1000), name="bad", options=options
            )
            with pytest.raises(ServerUnavailableError):
                await mcp.wait_ready(sid)
            nursery.cancel_scope.cancel()
    span = otel.one("starting bad")
    assert span.status.status_code == StatusCode.ERROR
    attributes = attrs_of(span)
    assert attributes["opex_trio.mcp.server.outcome"] == "failed"
    assert attributes["error.type"] == "SupervisionError"
    assert span.events[-1].name == "exception"

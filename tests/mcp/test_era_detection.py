"""Era detection by default, against real processes: its cost, its memory, and a bound run out.

The default client options detect the era. A legacy server that never answers
the probe costs the probe bound once per transport factory; a second client of
the same HTTP origin skips the probe; a remembered era that no longer holds is
detected again; a modern server too slow for the bound is still opened modern.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import SimpleNamespace

import pytest
import trio

from opex_trio.mcp._eras import ERAS
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.protocol.jsonrpc import Request
from opex_trio.protocol.versions import Era
from opex_trio.transports.base import Outgoing, Transport
from opex_trio.transports.http import HttpParameters, HttpTransport, open_http_transport
from opex_trio.transports.stdio import StdioParameters, open_stdio_transport
from tests.transports.support import peers
from tests.transports.test_interop import everything

from .support import BOUND, test_server_params

Factory = Callable[[], AbstractAsyncContextManager[Transport]]


def recording(
    open_transport: Factory, methods: list[str], sent: Callable[[str], object] | None = None
) -> Factory:
    """A factory whose transports note the method of every request they send (and tell ``sent``)."""

    @asynccontextmanager
    async def factory() -> AsyncIterator[Transport]:
        async with open_transport() as transport:
            send = transport.send

            async def noting(messages: Sequence[Outgoing]) -> None:
                for out in messages:
                    if isinstance(out.message, Request):
                        methods.append(out.message.method)
                        if sent is not None:
                            sent(out.message.method)
                await send(messages)

            transport.send = noting  # type: ignore[method-assign]
            yield transport

    return factory


def stdio(params: StdioParameters) -> Factory:
    return lambda: open_stdio_transport(params)


def test_the_default_is_to_detect() -> None:
    assert ClientOptions().era is None


async def test_a_silent_legacy_server_costs_the_probe_bound_once_per_factory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="opex_trio.mcp")
    methods: list[str] = []
    factory = recording(stdio(test_server_params("--silent-to", "server/discover")), methods)
    options = ClientOptions(probe_timeout=0.5)
    with trio.fail_after(BOUND):
        for attempt in range(2):
            async with McpClient(factory, name="silent", options=options) as client:
                assert client.features is not None and client.features.era is Era.LEGACY
                assert (await client.call_tool("echo", {"message": "m"})).text == "m"
            if attempt == 0:
                assert methods[:2] == ["server/discover", "initialize"]
                methods.clear()
    # The second process of the same factory was not probed.
    assert methods[0] == "initialize" and "server/discover" not in methods
    waited = [r for r in caplog.records if "no answer to server/discover" in r.getMessage()]
    assert len(waited) == 1


async def test_a_modern_server_slower_than_the_probe_bound_is_still_opened_modern() -> None:
    located = peers()
    argv = located.sdk_server_command("stdio")
    params = StdioParameters(argv[0], tuple(argv[1:]), name="slow-sdk")
    methods: list[str] = []
    # The interpreter alone takes longer to start than this bound.
    options = ClientOptions(probe_timeout=0.001)
    with trio.fail_after(BOUND):
        async with McpClient(recording(stdio(params), methods), options=options) as client:
            assert methods[:2] == ["server/discover", "initialize"]
            assert client.features is not None and client.features.era is Era.MODERN
            assert (await client.call_tool("add", {"a": 1, "b": 2})).text == "3"


async def test_a_second_client_of_the_same_origin_skips_the_probe() -> None:
    with trio.fail_after(BOUND):
        async with everything("streamableHttp") as url:
            params = HttpParameters(url, name="everything-http")
            for expected in (["server/discover", "initialize"], ["initialize"]):
                methods: list[str] = []
                # A new factory each time: only the origin is shared.
                factory = recording(lambda: open_http_transport(params), methods)
                async with McpClient(factory, name="everything-http") as client:
                    assert client.features is not None and client.features.era is Era.LEGACY
                    await client.list_tools()
                assert methods[: len(expected)] == expected


async def test_a_remembered_era_that_no_longer_holds_is_detected_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="opex_trio.mcp")
    with trio.fail_after(BOUND):
        async with everything("streamableHttp") as url:
            params = HttpParameters(url, name="replaced")
            # As if a modern server had answered at this origin before.
            ERAS.remember(None, SimpleNamespace(params=params), Era.MODERN)
            methods: list[str] = []
            factory = recording(lambda: open_http_transport(params), methods)
            async with McpClient(factory, name="replaced") as client:
                assert client.features is not None and client.features.era is Era.LEGACY
                assert (await client.call_tool("echo", {"message": "x"})).text.endswith("x")
            assert ERAS.recall(None, SimpleNamespace(params=params)) is Era.LEGACY
    assert "initialize" in methods
    assert any("detecting it again" in r.getMessage() for r in caplog.records)


async def test_a_pinned_era_is_never_remembered_or_looked_up() -> None:
    methods: list[str] = []
    factory = recording(stdio(test_server_params()), methods)
    with trio.fail_after(BOUND):
        async with McpClient(factory, options=ClientOptions(era=Era.LEGACY)) as client:
            assert client.features is not None and client.features.era is Era.LEGACY
    assert methods[0] == "initialize"
    assert ERAS.recall(factory, None) is None


async def test_a_legacy_http_sse_server_is_reached_after_the_probe_and_initialize() -> None:
    """Modern request first, then initialize, then the old HTTP+SSE transport."""
    with trio.fail_after(BOUND):
        async with everything("sse") as url:
            params = HttpParameters(url, name="everything-sse")
            methods: list[str] = []
            factory = recording(lambda: open_http_transport(params), methods)
            async with McpClient(factory, name="everything-sse") as client:
                transport = client.transport
                assert isinstance(transport, HttpTransport) and transport.mode == "sse"
                assert client.features is not None and client.features.era is Era.LEGACY
                assert (await client.call_tool("echo", {"message": "old"})).text.endswith("old")
    assert methods[:2] == ["server/discover", "initialize"]

"""The modern era against the official SDK server: listen delivery, the registry's ttl, health.

The server is ``tests/peers/sdk_server.py`` (the ``mcp`` 2.3 SDK) in its
default (dual-era) mode and with ``--modern-only``; its ``grow`` tool adds a
tool and, when asked, says the tool list changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from opex_trio.mcp._server_run import _probe
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.mcp.manager import SessionManager
from opex_trio.mcp.options import HealthCheck, ServerOptions
from opex_trio.protocol.session import ListChanged
from opex_trio.protocol.versions import Era
from opex_trio.transports.http import HttpParameters, open_http_transport
from opex_trio.transports.stdio import StdioParameters, open_stdio_transport
from tests.transports.support import peers
from tests.transports.test_interop import first_line, running, wait_listening

from .support import BOUND
from .test_era_detection import recording


def sdk_argv(transport: str, *flags: str) -> list[str]:
    return [*peers().sdk_server_command(transport), *flags]


def sdk_stdio(*flags: str) -> McpClient:
    argv = sdk_argv("stdio", *flags)
    params = StdioParameters(argv[0], tuple(argv[1:]), name="sdk")
    return McpClient(lambda: open_stdio_transport(params), name="sdk")


@asynccontextmanager
async def sdk_http(*flags: str) -> AsyncIterator[str]:
    async with running(sdk_argv("streamable-http", *flags)) as process:
        url = (await first_line(process)).removeprefix("listening on ").strip()
        await wait_listening(int(url.rsplit(":", 1)[1].split("/")[0]))
        yield url


async def _grow_and_hear(client: McpClient, name: str) -> None:
    # Over HTTP the listen stream and a call travel apart, and a change made
    # before the server took in the stream reaches nobody (there is no
    # replay); so grow again until a change is heard, each a change of its own.
    grown: list[str] = []
    async with client.subscribe() as notices:
        heard = None
        while heard is None:
            grown.append(f"{name}_{len(grown)}")
            assert (await client.call_tool("grow", {"name": grown[-1]})).text == grown[-1]
            with trio.move_on_after(5):
                async for notice in notices:
                    if isinstance(notice, ListChanged) and notice.kind == "tools":
                        heard = notice
                        break
    assert heard.subscription_id is not None  # it came on the listen stream
    assert set(grown) <= {t.name for t in await client.list_tools()}


@pytest.mark.parametrize("flags", [(), ("--modern-only",)], ids=["dual-era", "modern-only"])
async def test_a_tools_list_change_reaches_subscribers_over_stdio(flags: tuple[str, ...]) -> None:
    with trio.fail_after(BOUND):
        async with sdk_stdio(*flags) as client:
            assert client.features is not None and client.features.era is Era.MODERN
            await _grow_and_hear(client, "grown_stdio")


@pytest.mark.parametrize("flags", [(), ("--modern-only",)], ids=["dual-era", "modern-only"])
async def test_a_tools_list_change_reaches_subscribers_over_http(flags: tuple[str, ...]) -> None:
    with trio.fail_after(BOUND):
        async with sdk_http(*flags) as url:
            params = HttpParameters(url, name="sdk-http")
            async with McpClient(lambda: open_http_transport(params), name="sdk-http") as client:
                assert client.features is not None and client.features.era is Era.MODERN
                await _grow_and_hear(client, "grown_http")


async def test_a_modern_only_server_refuses_a_pinned_legacy_client_by_naming_versions() -> None:
    # The pinned legacy client is refused with -32022 and, as the spec allows,
    # moves to the version the refusal names.
    argv = sdk_argv("stdio", "--modern-only")
    params = StdioParameters(argv[0], tuple(argv[1:]), name="sdk")
    options = ClientOptions(era=Era.LEGACY)
    with trio.fail_after(BOUND):
        async with McpClient(lambda: open_stdio_transport(params), options=options) as client:
            assert client.features is not None and client.features.era is Era.MODERN


def _manager_config(*flags: str) -> dict[str, object]:
    argv = sdk_argv("stdio", *flags)
    return {"command": argv[0], "args": argv[1:]}


async def test_a_tool_list_with_ttl_zero_is_listed_again_at_each_use() -> None:
    with trio.fail_after(BOUND):
        async with SessionManager() as manager:
            sid = await manager.add_server(
                _manager_config("--tools-ttl-ms", "0"), name="sdk", wait=True, timeout=BOUND
            )
            # A change the server does not announce: only the ttl brings it in.
            await manager.call_tool(sid, "grow", {"name": "quiet", "notify": False})
            assert "quiet" in {r.tool.name for r in (await manager.fresh_tools(sid)).values()}
            entry = manager._servers[sid]
            manager.tools()
            assert entry.stale.is_set()  # the use asked for a reload in the background


async def test_a_fresh_tool_list_is_not_listed_again_until_its_ttl_passes() -> None:
    with trio.fail_after(BOUND):
        async with SessionManager() as manager:
            sid = await manager.add_server(
                _manager_config("--tools-ttl-ms", "3600000"), name="sdk", wait=True, timeout=BOUND
            )
            await manager.call_tool(sid, "grow", {"name": "quiet", "notify": False})
            names = {r.tool.name for r in (await manager.fresh_tools(sid)).values()}
            assert "quiet" not in names and "grow" in names
            entry = manager._servers[sid]
            manager.tools()
            assert not entry.stale.is_set()
            # Asked for, the list is loaded again whatever its ttl says.
            await manager.refresh_tools(sid)
            assert "quiet" in {r.tool.name for r in manager.tools().values()}


async def test_the_health_check_of_a_modern_only_server_needs_no_ping() -> None:
    methods: list[str] = []
    argv = sdk_argv("stdio", "--modern-only")
    params = StdioParameters(argv[0], tuple(argv[1:]), name="sdk")
    factory = recording(lambda: open_stdio_transport(params), methods)
    with trio.fail_after(BOUND):
        async with McpClient(factory, name="sdk") as client:
            assert client.features is not None and not client.features.ping
            assert await _probe(client, HealthCheck(interval=1, timeout=BOUND))
    # One discovery opened the session, the other was the check.
    assert "ping" not in methods and methods.count("server/discover") == 2


async def test_a_manager_health_check_keeps_a_modern_only_server_ready() -> None:
    methods: list[str] = []
    checked = trio.Semaphore(0, max_value=1_000)

    def sent(method: str) -> None:
        if method == "server/discover":
            checked.release()

    argv = sdk_argv("stdio", "--modern-only")
    params = StdioParameters(argv[0], tuple(argv[1:]), name="sdk")
    factory = recording(lambda: open_stdio_transport(params), methods, sent)
    options = ServerOptions(health=HealthCheck(interval=0.1, timeout=BOUND, failures=1))
    with trio.fail_after(BOUND):
        async with SessionManager(options=options) as manager:
            sid = await manager.add_server(factory, name="sdk", wait=True, timeout=BOUND)
            events = manager.events()
            await checked.acquire()  # the opening's discovery
            for _ in range(3):  # three health checks, each answered
                await checked.acquire()
            status = manager.status(sid)
            assert (status.state, status.restarts) == ("ready", 0)
            with pytest.raises(trio.WouldBlock):
                events.receive_nowait()
    assert "ping" not in methods

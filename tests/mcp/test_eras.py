"""One client, two eras: detection against a real legacy server process, and a pinned era."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import trio

from opex_trio.errors import McpError, ProtocolError
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.mcp.manager import SessionManager
from opex_trio.mcp.options import ServerOptions
from opex_trio.protocol.versions import LATEST_LEGACY_VERSION, Era
from opex_trio.transports.base import Transport
from opex_trio.transports.http import HttpParameters, open_http_transport
from opex_trio.transports.stdio import StdioParameters, open_stdio_transport
from tests.transports.support import peers
from tests.transports.test_interop import first_line, running, wait_listening

from .support import BOUND, stdio_client, test_server_params


async def test_detection_falls_back_to_initialize_for_a_legacy_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="opex_trio.mcp")
    with trio.fail_after(BOUND):
        client = stdio_client(test_server_params(), ClientOptions(era=None))
        async with client:
            assert client.features is not None and client.features.era is Era.LEGACY
            assert client.protocol_version == LATEST_LEGACY_VERSION
            result = await client.call_tool("echo", {"message": "still legacy"})
            assert result.text == "still legacy"
    assert any("speaks the legacy protocol" in r.getMessage() for r in caplog.records)


async def test_a_pinned_modern_era_does_not_fall_back() -> None:
    with trio.fail_after(BOUND):
        client = stdio_client(test_server_params(), ClientOptions(era=Era.MODERN))
        with pytest.raises(McpError) as info:
            async with client:
                pass  # pragma: no cover - the server cannot open a modern session
        assert info.value.method == "server/discover"
        assert info.value.server == client.name


# -- real peers: the official SDK server (both eras) and a legacy npm server


def _stdio(argv: list[str], name: str, options: ClientOptions) -> McpClient:
    params = StdioParameters(argv[0], tuple(argv[1:]), name=name)

    def factory() -> AbstractAsyncContextManager[Transport]:
        return open_stdio_transport(params)

    return McpClient(factory, name=name, options=options)


@pytest.mark.parametrize(
    ("era", "opened"), [(None, Era.MODERN), (Era.MODERN, Era.MODERN), (Era.LEGACY, Era.LEGACY)]
)
async def test_the_sdk_server_over_stdio_in_each_era(era: Era | None, opened: Era) -> None:
    located = peers()
    with trio.fail_after(BOUND):
        async with _stdio(
            located.sdk_server_command("stdio"), "sdk", ClientOptions(era=era)
        ) as client:
            assert client.features is not None and client.features.era is opened
            assert client.server_info.name == "opex-trio-sdk-peer"
            assert (await client.call_tool("add", {"a": 2, "b": 40})).text == "42"
            failed = await client.call_tool("fail", {"message": "on purpose"})
            assert failed.is_error and "on purpose" in failed.text
            read = await client.read_resource("peer://greeting")
            assert read.contents[0].text == "hello"  # type: ignore[union-attr]


async def test_the_sdk_server_over_streamable_http_is_detected_as_modern() -> None:
    located = peers()
    with trio.fail_after(BOUND):
        async with running(located.sdk_server_command("streamable-http")) as process:
            line = await first_line(process)
            url = line.removeprefix("listening on ").strip()
            await wait_listening(int(url.rsplit(":", 1)[1].split("/")[0]))
            params = HttpParameters(url, name="sdk-http")

            def factory() -> AbstractAsyncContextManager[Transport]:
                return open_http_transport(params)

            options = ClientOptions(era=None)
            async with McpClient(factory, name="sdk-http", options=options) as client:
                assert client.features is not None and client.features.era is Era.MODERN
                assert (await client.call_tool("echo", {"message": "über"})).text == "über"


async def test_a_legacy_npm_server_is_detected_as_legacy() -> None:
    located = peers()
    with trio.fail_after(BOUND):
        async with _stdio(
            located.everything_stdio_command(), "everything", ClientOptions(era=None)
        ) as client:
            assert client.features is not None and client.features.era is Era.LEGACY
            assert (await client.call_tool("echo", {"message": "hi"})).text.endswith("hi")


async def test_ping_works_in_the_modern_era_without_a_ping_method() -> None:
    located = peers()
    with trio.fail_after(BOUND):
        async with _stdio(
            located.sdk_server_command("stdio"), "sdk", ClientOptions(era=Era.MODERN)
        ) as client:
            assert client.features is not None and not client.features.ping
            await client.ping(timeout=30)
            with pytest.raises(ProtocolError, match="ping does not exist"):
                await client.request("ping")


async def test_a_modern_session_listens_for_the_list_changes_the_server_offers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    located = peers()
    caplog.set_level("DEBUG", logger="opex_trio.mcp")
    with trio.fail_after(BOUND):
        async with _stdio(
            located.sdk_server_command("stdio"), "sdk", ClientOptions(era=Era.MODERN)
        ) as client:
            assert client.capabilities.list_changed("tools")
            # A request answered after the listen request shows the server took it in.
            assert (await client.call_tool("echo", {"message": "after"})).text == "after"
    messages = [r.getMessage() for r in caplog.records]
    # The stream was asked for what the server offers, and the server did not refuse it.
    listening = [m for m in messages if "listening for" in m]
    assert len(listening) == 1
    assert all(k in listening[0] for k in ("tools_list_changed=True", "prompts_list_changed=True"))
    assert not [m for m in messages if "subscriptions/listen failed" in m]


async def _http_url(process: trio.Process) -> str:
    line = await first_line(process)
    url = line.removeprefix("listening on ").strip()
    await wait_listening(int(url.rsplit(":", 1)[1].split("/")[0]))
    return url


async def test_one_manager_serves_both_eras_side_by_side() -> None:
    """The SDK server (stdio, HTTP), FastMCP over HTTP and a legacy npm server, each detected."""
    located = peers()
    fastmcp = [
        located.sdk_server_command("stdio")[0],
        str(Path(__file__).with_name("fastmcp_server.py")),
    ]
    options = ServerOptions(client=ClientOptions(era=None))
    with trio.fail_after(BOUND * 2):
        async with (
            running(located.sdk_server_command("streamable-http")) as sdk_http,
            running(fastmcp) as fast,
        ):
            sdk_url, fast_url = await _http_url(sdk_http), await _http_url(fast)
            async with SessionManager(options=options) as manager:
                sdk_argv = located.sdk_server_command("stdio")
                everything = located.everything_stdio_command()
                ids = {
                    "sdk-stdio": {"command": sdk_argv[0], "args": sdk_argv[1:]},
                    "sdk-http": {"url": sdk_url},
                    "fastmcp": {"url": fast_url},
                    "everything": {"command": everything[0], "args": everything[1:]},
                }
                for name, config in ids.items():
                    await manager.add_server(config, name=name)
                await manager.wait_ready(*ids, timeout=BOUND)
                eras = {s.id: s.protocol_version for s in manager.servers()}
                assert eras["sdk-stdio"] == eras["sdk-http"] == eras["fastmcp"] == "2026-07-28"
                assert eras["everything"] in ("2025-11-25", "2025-06-18", "2025-03-26")
                added = await manager.call_tool("sdk-stdio", "add", {"a": 1, "b": 2})
                assert added.text == "3"
                assert (await manager.call_tool("sdk-http", "echo", {"message": "e"})).text == "e"
                product = await manager.call_tool("fastmcp", "multiply", {"a": 6, "b": 7})
                assert product.text == "42"
                echoed = await manager.call_tool("everything", "echo", {"message": "hi"})
                assert echoed.text.endswith("hi")

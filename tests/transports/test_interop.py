"""Interop with real MCP servers over HTTP: server-everything (streamableHttp, sse) and the official SDK.

The servers are installed by the test setup (``python3 -m nox -s peers``); the
``peers`` locator in ``tests/peers`` finds them. Without them the tests skip,
or fail under ``OPEX_REQUIRE_PEERS=1``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import trio

from opex_trio.errors import McpError
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.protocol.types import CreateMessageParams, ProgressParams
from opex_trio.transports.base import Transport
from opex_trio.transports.http import HttpParameters, HttpTransport, open_http_transport
from tests.transports.support import peers

pytestmark = pytest.mark.peers

BOUND = 120  # a cold Node or Python start on a loaded two-core machine takes seconds


@asynccontextmanager
async def running(
    argv: list[str], env: dict[str, str] | None = None
) -> AsyncIterator[trio.Process]:
    process = await trio.lowlevel.open_process(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        with trio.CancelScope(shield=True):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with trio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            assert process.stdout is not None
            await process.stdout.aclose()


async def wait_listening(port: int) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.05)
            continue
        await stream.aclose()
        return


async def first_line(process: trio.Process) -> str:
    assert process.stdout is not None
    data = b""
    while b"\n" not in data:
        chunk = await process.stdout.receive_some(4096)
        if not chunk:
            raise AssertionError(f"the server exited before printing its URL: {data!r}")
        data += chunk
    return data.split(b"\n", 1)[0].decode()


def client_for(params: HttpParameters, options: ClientOptions | None = None) -> McpClient:
    def factory() -> AbstractAsyncContextManager[Transport]:
        return open_http_transport(params)

    return McpClient(factory, name=params.label, options=options)


async def sampling(params: CreateMessageParams) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": {"type": "text", "text": "sampled by opex"},
        "model": "test-model",
    }


@asynccontextmanager
async def everything(mode: str) -> AsyncIterator[str]:
    located = peers()
    argv = located.everything_command(mode)
    port = located.free_port()
    async with running(argv, located.everything_env(port)):
        await wait_listening(port)
        yield located.everything_url(mode, port)


@pytest.mark.parametrize("mode", ["streamableHttp", "sse"])
async def test_server_everything_over_http(mode: str) -> None:
    seen: list[ProgressParams] = []
    options = ClientOptions(sampling_handler=sampling)
    with trio.fail_after(BOUND):
        async with (
            everything(mode) as url,
            client_for(HttpParameters(url, name=f"everything-{mode}"), options) as client,
        ):
            transport = client.transport
            assert isinstance(transport, HttpTransport)
            assert transport.mode == ("sse" if mode == "sse" else "streamable-http")
            result = await client.call_tool("echo", {"message": "über"})
            assert "über" in result.text
            result = await client.call_tool(
                "trigger-long-running-operation",
                {"duration": 0.3, "steps": 3},
                progress=seen.append,
            )
            assert "completed" in result.text
            # Tools that need sampling are registered once the client said it can.
            while "trigger-sampling-request" not in {t.name for t in await client.list_tools()}:
                await trio.sleep(0.05)
            result = await client.call_tool("trigger-sampling-request", {"prompt": "hi"})
            assert "sampled by opex" in result.text
            # Newer SDKs answer an unknown tool with an error result, older with an error.
            try:
                unknown = await client.call_tool("no-such-tool-here")
            except McpError:
                pass
            else:
                assert unknown.is_error
    assert [p.progress for p in seen] == [1, 2, 3]


async def test_the_official_python_sdk_server_over_streamable_http() -> None:
    located = peers()
    seen: list[ProgressParams] = []
    with trio.fail_after(BOUND):
        async with running(located.sdk_server_command("streamable-http")) as process:
            line = await first_line(process)
            assert line.startswith("listening on "), line
            url = line.removeprefix("listening on ").strip()
            # The URL is printed before the server accepts connections.
            await wait_listening(int(url.rsplit(":", 1)[1].split("/")[0]))
            async with client_for(HttpParameters(url, name="sdk")) as client:
                assert client.server_info.name == "opex-trio-sdk-peer"
                names = {t.name for t in await client.list_tools()}
                assert {"add", "echo", "progress", "fail"} <= names
                added = await client.call_tool("add", {"a": 2, "b": 40})
                assert added.text == "42"
                done = await client.call_tool("progress", {"steps": 3}, progress=seen.append)
                assert done.text == "done"
                failed = await client.call_tool("fail", {"message": "on purpose"})
                assert failed.is_error and "on purpose" in failed.text
                read = await client.read_resource("peer://greeting")
                assert read.contents[0].text == "hello"  # type: ignore[union-attr]
    assert [p.progress for p in seen] == [1, 2, 3]


async def test_server_everything_restarted_mid_session_gets_a_new_session() -> None:
    located = peers()
    port = located.free_port()
    argv = located.everything_command("streamableHttp")
    url = located.everything_url("streamableHttp", port)
    params = HttpParameters(url, name="restarting", reconnect_delay=0.2, max_reconnects=100)
    with trio.fail_after(BOUND):
        async with running(argv, located.everything_env(port)) as first:
            await wait_listening(port)
            async with client_for(params) as client:
                transport = client.transport
                assert isinstance(transport, HttpTransport)
                old_session = transport.session_id
                assert "a" in (await client.call_tool("echo", {"message": "a"})).text
                os.killpg(first.pid, signal.SIGKILL)
                await first.wait()
                async with running(argv, located.everything_env(port)):
                    await wait_listening(port)
                    # The restarted server does not know our session and refuses
                    # the call without running it, so it is sent again in a new
                    # session; the calls after it run there too.
                    assert "b" in (await client.call_tool("echo", {"message": "b"})).text
                    assert "c" in (await client.call_tool("echo", {"message": "c"})).text
                    assert transport.session_id not in (None, old_session)

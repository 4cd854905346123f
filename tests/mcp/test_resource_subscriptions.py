"""Resource subscriptions outlive the connection: a restart, a renewed session, both eras.

Against real servers: ``server-everything`` (legacy era, ``resources/subscribe``)
over stdio, whose process the test kills, and over Streamable HTTP, whose
session the test ends behind the client's back; the official SDK's server
(modern era, ``subscriptions/listen``) over stdio. Each time the update of
the subscribed resource must come, after the restart or renewal, on the
stream the program opened before it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
import trio

from opex_trio.errors import McpError
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.mcp.manager import ResourceUpdate, ServerOptions, SessionManager
from opex_trio.protocol.versions import Era
from opex_trio.supervision import RestartPolicy
from opex_trio.transports.base import Transport
from opex_trio.transports.http import HttpTransport
from opex_trio.transports.memory import memory_pair
from opex_trio.transports.stdio import StdioTransport
from tests.transports.support import peers
from tests.transports.test_interop import first_line, running, wait_listening

BOUND = 120  # cold Node and Python starts on a loaded two-core machine take seconds

PATIENT = RestartPolicy(
    backoff_initial=0.05, backoff_max=0.5, jitter=0, max_restarts=1000, within=60
)


def options(era: Era | None = None) -> ServerOptions:
    return ServerOptions(restart=PATIENT, health=None, client=ClientOptions(era=era))


async def wait_for(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds (the caller's ``fail_after`` bounds the wait)."""
    while not condition():
        await trio.sleep(0.01)


def drain(channel: trio.MemoryReceiveChannel[ResourceUpdate]) -> list[ResourceUpdate]:
    out = []
    while True:
        try:
            out.append(channel.receive_nowait())
        except trio.WouldBlock:
            return out


async def kill_and_wait_for_restart(mcp: SessionManager, sid: str) -> None:
    old = mcp.client(sid)
    transport = old.transport
    assert isinstance(transport, StdioTransport)
    os.kill(transport.pid, signal.SIGKILL)
    await wait_for(
        lambda: (
            mcp.status(sid).state == "ready"
            and mcp.status(sid).restarts >= 1
            and mcp.client(sid) is not old
        )
    )


@pytest.mark.peers
async def test_a_legacy_subscription_is_restored_after_a_restart_over_stdio() -> None:
    argv = peers().everything_stdio_command()
    with trio.fail_after(BOUND):
        async with SessionManager(options=options()) as mcp:
            sid = await mcp.add_server(
                {"command": argv[0], "args": argv[1:]}, name="everything", wait=True, timeout=BOUND
            )
            assert mcp.client(sid).features is not None
            assert mcp.client(sid).features.era is Era.LEGACY  # type: ignore[union-attr]
            updates = mcp.resource_updates()
            await wait_for(lambda: bool(mcp.resources(sid)))
            uri = mcp.resources(sid)[0].uri
            await mcp.subscribe_resource(sid, uri)
            assert mcp.client(sid).subscribed_resources == (uri,)
            # The server sends the updates of what this session subscribed to.
            await mcp.call_tool(sid, "toggle-subscriber-updates")
            assert await updates.receive() == ResourceUpdate(sid, uri)

            await kill_and_wait_for_restart(mcp, sid)
            # A new process, which knows nothing of the subscription unless asked again.
            assert mcp.client(sid).subscribed_resources == (uri,)
            drain(updates)
            await mcp.call_tool(sid, "toggle-subscriber-updates")
            assert await updates.receive() == ResourceUpdate(sid, uri)

            await mcp.unsubscribe_resource(sid, uri)
            assert mcp.client(sid).subscribed_resources == ()
            await kill_and_wait_for_restart(mcp, sid)
            assert mcp.client(sid).subscribed_resources == ()


@pytest.mark.peers
async def test_a_legacy_subscription_is_restored_in_a_renewed_http_session() -> None:
    located = peers()
    port = located.free_port()
    argv = located.everything_command("streamableHttp")
    url = located.everything_url("streamableHttp", port)
    with trio.fail_after(BOUND):
        async with running(argv, located.everything_env(port)):
            await wait_listening(port)
            async with SessionManager(options=options()) as mcp:
                sid = await mcp.add_server(
                    {"type": "streamable-http", "url": url},
                    name="everything",
                    wait=True,
                    timeout=BOUND,
                )
                client = mcp.client(sid)
                transport = client.transport
                assert isinstance(transport, HttpTransport)
                updates = mcp.resource_updates()
                await wait_for(lambda: bool(mcp.resources(sid)))
                uri = mcp.resources(sid)[0].uri
                await mcp.subscribe_resource(sid, uri)
                first = transport.session_id
                assert first is not None
                # The server ends the session behind the client's back, as an
                # expiry would: the next call meets the refusal.
                async with httpx2.AsyncClient() as http:
                    response = await http.delete(
                        url,
                        headers={
                            "mcp-session-id": first,
                            "mcp-protocol-version": client.protocol_version or "",
                        },
                    )
                assert response.status_code < 300, response.text
                # Refused, so sent again in the new session, after the subscription.
                await mcp.call_tool(sid, "toggle-subscriber-updates")
                assert await updates.receive() == ResourceUpdate(sid, uri)
                # Renewed in place: the same client, no restart.
                assert transport.session_id not in (None, first)
                assert mcp.client(sid) is client and mcp.status(sid).restarts == 0


@pytest.mark.peers
async def test_a_modern_subscription_listens_and_is_restored_after_a_restart() -> None:
    argv = peers().sdk_server_command("stdio")
    uri, other = "peer://greeting", "peer://other"
    with trio.fail_after(BOUND):
        async with SessionManager(options=options(Era.MODERN)) as mcp:
            sid = await mcp.add_server(
                {"command": argv[0], "args": argv[1:]}, name="sdk", wait=True, timeout=BOUND
            )
            features = mcp.client(sid).features
            assert features is not None and features.era is Era.MODERN
            updates = mcp.resource_updates()
            # The modern era has no resources/subscribe: the URI joins the listen filter.
            await mcp.subscribe_resource(sid, uri)
            await mcp.call_tool(sid, "touch", {"uri": uri})
            assert await updates.receive() == ResourceUpdate(sid, uri)

            await kill_and_wait_for_restart(mcp, sid)
            assert mcp.client(sid).subscribed_resources == (uri,)
            drain(updates)
            await mcp.call_tool(sid, "touch", {"uri": uri})
            assert await updates.receive() == ResourceUpdate(sid, uri)

            # Unsubscribed: the URI leaves the filter. On stdio the answers come
            # in order, so the first update seen after touching both is the other's.
            await mcp.unsubscribe_resource(sid, uri)
            await mcp.subscribe_resource(sid, other)
            assert mcp.client(sid).subscribed_resources == (other,)
            await mcp.call_tool(sid, "touch", {"uri": uri})
            await mcp.call_tool(sid, "touch", {"uri": other})
            assert await updates.receive() == ResourceUpdate(sid, other)


@pytest.mark.peers
async def test_a_modern_subscription_over_streamable_http_closes_the_streams_it_replaces(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="opex_trio")
    argv = peers().sdk_server_command("streamable-http")
    uri, other = "peer://greeting", "peer://other"
    with trio.fail_after(BOUND):
        async with running(argv) as process:
            url = (await first_line(process)).removeprefix("listening on ").strip()
            await wait_listening(int(url.rsplit(":", 1)[1].split("/")[0]))
            async with SessionManager(options=options(Era.MODERN)) as mcp:
                sid = await mcp.add_server(
                    {"type": "streamable-http", "url": url}, name="sdk", wait=True, timeout=BOUND
                )
                updates = mcp.resource_updates()
                await mcp.subscribe_resource(sid, uri)
                await mcp.call_tool(sid, "touch", {"uri": uri})
                assert await updates.receive() == ResourceUpdate(sid, uri)
                # Each change of the filter replaces the listen stream; the old
                # one is closed, which is how HTTP cancels in the modern era.
                await mcp.unsubscribe_resource(sid, uri)
                await mcp.subscribe_resource(sid, other)
                await mcp.call_tool(sid, "touch", {"uri": uri})
                await mcp.call_tool(sid, "touch", {"uri": other})
                assert await updates.receive() == ResourceUpdate(sid, other)
    # No notifications/cancelled was POSTed, which a server without sessions refuses.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_refused_modern_subscription_is_forgotten_and_the_old_filter_listened_again() -> (
    None
):
    """A scripted modern server refuses the listen stream that adds a URI.

    No real server refuses one on demand, so this unit test of the client
    scripts the server over the in-memory transport.
    """
    transport, end = memory_pair("scripted")
    listens: list[dict[str, Any]] = []

    async def serve() -> None:
        while True:
            try:
                message = json.loads(await end.receive())
            except trio.EndOfChannel:
                return  # the client closed
            for item in message if isinstance(message, list) else [message]:
                method, rid = item.get("method"), item.get("id")
                if method == "server/discover":
                    result = {
                        "supportedVersions": ["2026-07-28"],
                        "capabilities": {"resources": {"subscribe": True, "listChanged": True}},
                        "_meta": {
                            "io.modelcontextprotocol/serverInfo": {"name": "s", "version": "1"}
                        },
                    }
                    await end.send(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}))
                elif method == "subscriptions/listen":
                    wanted = item["params"]["notifications"]
                    listens.append(wanted)
                    if "resourceSubscriptions" in wanted:
                        error = {"code": -32603, "message": "no room for more subscriptions"}
                        reply = {"jsonrpc": "2.0", "id": rid, "error": error}
                    else:
                        reply = {
                            "jsonrpc": "2.0",
                            "method": "notifications/subscriptions/acknowledged",
                            "params": {
                                "_meta": {"io.modelcontextprotocol/subscriptionId": rid},
                                "notifications": wanted,
                            },
                        }
                    await end.send(json.dumps(reply))

    @asynccontextmanager
    async def factory() -> AsyncIterator[Transport]:
        async with transport:
            yield transport

    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            options = ClientOptions(era=Era.MODERN)
            async with McpClient(factory, name="scripted", options=options) as client:
                await wait_for(lambda: len(listens) == 1)
                with pytest.raises(McpError, match="no room"):
                    await client.subscribe_resource("peer://x")
                assert client.subscribed_resources == ()
                # Listening again for the list changes alone, as before.
                await wait_for(lambda: len(listens) == 3)
                assert listens[2] == listens[0] == {"resourcesListChanged": True}
            nursery.cancel_scope.cancel()

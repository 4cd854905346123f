"""Remote servers under the session manager: Streamable HTTP, HTTP+SSE and WebSocket.

The manager promises the same for a server behind a URL as for a local
process (tests/mcp/test_manager.py): it starts from the seed's dicts and from
``mcpServers`` entries, reports states and events, restarts a server that
went away or stopped answering, keeps one registry and reloads it after every
new session. Here each promise is checked against real loopback servers
(:class:`McpHttpServer`, :class:`McpWebSocketServer`) that a test stops and
starts again on the same port, and against ``server-everything`` as a real
process.

Every wait is for something that happens (a request the server received, a
state event); none is a fixed sleep, and no assertion reads the clock.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from opex_trio import telemetry
from opex_trio.errors import (
    HealthCheckError,
    ServerUnavailableError,
    SessionExpiredError,
    SupervisionError,
    TransportAuthError,
    TransportBrokenError,
    TransportError,
)
from opex_trio.mcp.config import parse_server, server_id
from opex_trio.mcp.manager import HealthCheck, ServerOptions, SessionManager
from opex_trio.protocol.jsonrpc import Request
from opex_trio.protocol.versions import LATEST_LEGACY_VERSION
from opex_trio.supervision import RestartPolicy
from opex_trio.telemetry import ServerStateChanged, TelemetryEvent
from opex_trio.testing.http_server import HttpRecord, McpHttpServer
from opex_trio.testing.mcp_server import McpTestServer, builtin_server
from opex_trio.testing.ws_server import McpWebSocketServer
from opex_trio.transports.http import HttpParameters, HttpTransport
from opex_trio.transports.websocket import WebSocketTransport
from tests.transports.support import peers
from tests.transports.test_interop import running, wait_listening

BOUND = 60
PEER_BOUND = 120  # a cold Node start on a loaded two-core machine takes seconds
TOKEN = "tok-3b9f1c2e7a6d54f0"
WRONG_TOKEN = "tok-00wrong11c0ffee"
KINDS = ("http", "http-stateless", "sse", "websocket")
# What the "type" of an mcpServers entry says for each kind.
ENTRY_TYPES = {"http": "http", "http-stateless": "streamable-http", "sse": "sse"}

# Patient enough to wait out a server that is down for a while, fast to come back.
PATIENT = RestartPolicy(
    backoff_initial=0.05, backoff_max=0.5, jitter=0, max_restarts=1000, within=60
)


# Gives up after one restart.
GIVE_UP = RestartPolicy(backoff_initial=0.01, jitter=0, max_restarts=1, within=60)


def options(**kwargs: Any) -> ServerOptions:
    kwargs.setdefault("restart", PATIENT)
    kwargs.setdefault("health", None)
    return ServerOptions(**kwargs)


class Loopback:
    """A loopback MCP server of one kind that a test can stop and start again on its port."""

    def __init__(self, kind: str, nursery: trio.Nursery, **server_options: Any) -> None:
        self.kind = kind
        self.nursery = nursery
        self.server_options = server_options
        self.port = 0
        self.server: McpHttpServer | McpWebSocketServer | None = None
        self._scope: trio.CancelScope | None = None
        self._stopped: trio.Event | None = None

    async def start(self, mcp: McpTestServer | None = None) -> None:
        """Serve ``mcp`` (a fresh built-in server by default) on the port used before."""
        while True:
            try:
                await self._start(mcp or builtin_server())
            except* OSError as group:
                # Listeners reuse the address, so the port is free at once; only a
                # client's connection that happened to get it as its own local port
                # can hold it, and only until that connection fails.
                if self.port == 0 or any(
                    getattr(exc, "errno", None) != errno.EADDRINUSE for exc in group.exceptions
                ):
                    raise
            else:
                return
            await trio.sleep(0.05)

    async def _start(self, mcp: McpTestServer) -> None:
        server: McpHttpServer | McpWebSocketServer
        if self.kind == "websocket":
            server = McpWebSocketServer(mcp, port=self.port, **self.server_options)
        else:
            server = McpHttpServer(
                mcp,
                port=self.port,
                legacy=self.kind == "sse",
                stateful=self.kind != "http-stateless",
                **self.server_options,
            )
        scope = trio.CancelScope()
        stopped = trio.Event()

        async def run(*, task_status: trio.TaskStatus[Any]) -> None:
            try:
                with scope:
                    await server.serve(task_status=task_status)
            finally:
                stopped.set()

        await self.nursery.start(run)
        self.server, self._scope, self._stopped = server, scope, stopped
        self.port = server.port

    async def stop(self) -> None:
        """Stop serving: the listener and every open connection close."""
        assert self._scope is not None and self._stopped is not None
        self._scope.cancel()
        await self._stopped.wait()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def mcp(self) -> McpTestServer:
        assert self.server is not None
        return self.server.mcp

    @property
    def http(self) -> McpHttpServer:
        assert isinstance(self.server, McpHttpServer)
        return self.server


async def wait_for(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds (the caller's ``fail_after`` bounds the wait)."""
    while not condition():
        await trio.sleep(0.01)


def received_call(server: McpTestServer, tool: str) -> bool:
    """Whether ``server`` has received a ``tools/call`` of ``tool``."""
    return any(
        isinstance(r, Request) and r.method == "tools/call" and (r.params or {}).get("name") == tool
        for r in server.requests
    )


async def states_of(events: trio.MemoryReceiveChannel[ServerStateChanged], until: str) -> list[str]:
    seen = []
    async for event in events:
        seen.append(event.state)
        if event.state == until:
            return seen
    return seen


def drain(events: trio.MemoryReceiveChannel[ServerStateChanged]) -> list[str]:
    """The states of the events already waiting, without waiting for more."""
    seen = []
    while True:
        try:
            seen.append(events.receive_nowait().state)
        except (trio.WouldBlock, trio.EndOfChannel):
            return seen


def posts(server: McpHttpServer, method: str) -> list[HttpRecord]:
    return [r for r in server.log if r.method == "POST" and r.jsonrpc_method == method]


def seed_config(url: str) -> dict[str, Any]:
    return {"url": url, "auth_token": TOKEN, "execution_id": "exec-7"}


def mcp_servers_entry(kind: str, url: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "url": url,
        "headers": {"Authorization": f"Bearer {TOKEN}", "X-Tenant": "acme"},
    }
    if kind in ENTRY_TYPES:
        entry["type"] = ENTRY_TYPES[kind]
    return entry


# -- starting, calling, reporting


@pytest.mark.parametrize("style", ["seed", "mcpServers"])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_remote_server_is_managed_like_a_local_one(kind: str, style: str) -> None:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            loop = Loopback(kind, nursery, require_token=TOKEN)
            await loop.start()
            async with SessionManager(options=options()) as mcp:
                events = mcp.events()
                if style == "seed":
                    config = seed_config(loop.url)
                    sid = await mcp.add_server(config)
                    # The id is derived from the URL, the same in every process.
                    assert sid == server_id(parse_server(config))
                    assert sid.startswith("127-0-0-1-")
                else:
                    sid = await mcp.add_server(mcp_servers_entry(kind, loop.url), name="remote")
                    assert sid == "remote"
                await mcp.wait_ready(sid, timeout=BOUND)
                assert await states_of(events, "ready") == ["starting", "ready"]

                (status,) = mcp.servers()
                assert (status.id, status.state, status.restarts) == (sid, "ready", 0)
                assert status.last_error is None
                assert status.protocol_version == LATEST_LEGACY_VERSION
                assert status.server_info is not None
                assert status.server_info.name == "opex-test-server"
                assert {"echo", "add", "sleep", "add_tool"} <= set(status.tools)

                # One server: its tools keep their own names in the registry.
                registry = mcp.tools(sid)
                assert set(registry) == set(status.tools)
                assert registry["echo"].server == sid and registry["echo"].tool.name == "echo"
                assert (await mcp.call("echo", {"message": "über"})).text == "über"
                added = await mcp.call_tool(sid, "add", {"a": 2, "b": 40})
                assert added.structured_content == {"sum": 42}

                transport = mcp.client(sid).transport
                if kind == "websocket":
                    assert isinstance(transport, WebSocketTransport)
                    assert transport.subprotocol == "mcp"
                else:
                    assert isinstance(transport, HttpTransport)
                    assert transport.mode == ("sse" if kind == "sse" else "streamable-http")
            assert mcp.servers()[0].state == "stopped"
            assert drain(events) == ["stopped"]
            nursery.cancel_scope.cancel()

    if kind == "websocket":
        assert isinstance(loop.server, McpWebSocketServer)
        (handshake,) = loop.server.request_headers
        assert handshake["authorization"] == f"Bearer {TOKEN}"
        if style == "seed":
            # One handshake carries every call, so the execution id goes there.
            assert handshake["execution-id"] == "exec-7"
        else:
            assert handshake["x-tenant"] == "acme"
        return
    log = loop.http.log
    assert log and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in log)
    calls = posts(loop.http, "tools/call")
    assert len(calls) == 2
    if style == "seed":
        assert all(r.headers["execution-id"] == "exec-7" for r in calls)
        assert not any("execution-id" in r.headers for r in posts(loop.http, "tools/list"))
    else:
        assert all(r.headers["x-tenant"] == "acme" for r in log)


# -- the server goes away and comes back


@pytest.mark.parametrize("kind", KINDS)
async def test_the_server_goes_away_mid_call_and_comes_back_with_a_fresh_registry(
    kind: str,
) -> None:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            loop = Loopback(kind, nursery)
            await loop.start()
            async with SessionManager(options=options()) as mcp:
                sid = await mcp.add_server(
                    {"url": loop.url}, name="remote", wait=True, timeout=BOUND
                )
                await mcp.call_tool(sid, "add_tool", {"name": "ephemeral"})
                await wait_for(lambda: "ephemeral" in mcp.tools())
                events = mcp.events()
                errors: list[BaseException] = []

                async def call_in_flight() -> None:
                    try:
                        await mcp.call_tool(sid, "sleep", {"seconds": 600})
                    except TransportError as exc:
                        errors.append(exc)

                async with trio.open_nursery() as calls:
                    calls.start_soon(call_in_flight)
                    await wait_for(lambda: received_call(loop.mcp, "sleep"))
                    await loop.stop()
                # Broken by the peer, not closed by us; never sent again (it has side effects).
                (error,) = errors
                assert isinstance(error, TransportBrokenError), repr(error)
                assert await states_of(events, "restarting") == ["restarting"]
                status = mcp.status(sid)
                assert status.state == "restarting"
                assert isinstance(status.last_error, TransportBrokenError)
                # The last known tools stay registered while the server is away.
                assert "ephemeral" in mcp.tools()

                # A new server process on the same port, which never had that tool.
                await loop.start()
                assert await states_of(events, "ready") == ["ready"]
                assert (await mcp.call_tool(sid, "echo", {"message": "back"})).text == "back"
                assert "ephemeral" not in mcp.tools()
                assert "echo" in mcp.tools()
                status = mcp.status(sid)
                assert status.state == "ready" and status.restarts >= 1
                assert status.server_info is not None
                assert status.protocol_version == LATEST_LEGACY_VERSION
                assert not received_call(loop.mcp, "sleep")
            nursery.cancel_scope.cancel()


# -- health checks


def muted(server: McpTestServer) -> Callable[[], None]:
    """Make ``server`` able to fall silent: the function returned starts the silence.

    While silent the server takes requests and answers none, as a wedged
    server does; its connections stay open. The silence ends by itself once
    two pings went unanswered, so the connection that replaces the wedged one
    is answered without a race against the test.
    """
    answer = server.dispatch
    state = {"silent": False, "pings": 0}

    async def dispatch(request: Request, conn: Any) -> Any:
        if state["silent"]:
            if request.method == "ping":
                state["pings"] += 1
                if state["pings"] >= 2:
                    state["silent"] = False
            await trio.sleep_forever()
        return await answer(request, conn)

    server.dispatch = dispatch  # type: ignore[method-assign]

    def start() -> None:
        state["silent"] = True

    return start


@pytest.mark.parametrize("kind", KINDS)
async def test_an_alive_but_silent_remote_server_is_restarted_by_the_health_check(
    kind: str,
) -> None:
    server = builtin_server()
    fall_silent = muted(server)
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            loop = Loopback(kind, nursery)
            await loop.start(server)
            async with SessionManager() as mcp:
                sid = await mcp.add_server(
                    {"url": loop.url},
                    name="quiet",
                    options=options(health=HealthCheck(interval=0.2, timeout=1.5, failures=2)),
                    wait=True,
                    timeout=BOUND,
                )
                assert (await mcp.call_tool(sid, "echo", {"message": "before"})).text == "before"
                first = mcp.client(sid)
                events = mcp.events()
                fall_silent()
                seen = await states_of(events, "restarting")
                assert seen[-2:] == ["unhealthy", "restarting"]
                assert isinstance(mcp.status(sid).last_error, HealthCheckError)
                assert await states_of(events, "ready") == ["ready"]
                # A new connection, and it answers.
                assert mcp.client(sid) is not first
                assert (await mcp.call_tool(sid, "echo", {"message": "after"})).text == "after"
                assert mcp.status(sid).restarts >= 1
            nursery.cancel_scope.cancel()


# -- the registry follows the server


@pytest.mark.parametrize("kind", KINDS)
async def test_list_changed_sent_outside_any_call_refreshes_the_registry(kind: str) -> None:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            loop = Loopback(kind, nursery)
            await loop.start()
            async with SessionManager(options=options()) as mcp:
                sid = await mcp.add_server(
                    {"url": loop.url}, name="remote", wait=True, timeout=BOUND
                )
                assert "fresh" not in mcp.tools()
                # Sent by the server on its own, outside any request: Streamable HTTP
                # carries it on the GET stream, HTTP+SSE on its one SSE stream.
                loop.mcp.add_tool("fresh", lambda args, ctx: "fresh answer")
                await loop.mcp.notify_all("notifications/tools/list_changed")
                await wait_for(lambda: "fresh" in mcp.tools())
                if kind != "websocket":
                    (session,) = loop.http.sessions.values()
                    carried = [data for _, data in session.get_stream.history]
                    assert any(b"notifications/tools/list_changed" in d for d in carried)
                assert (await mcp.call("fresh")).text == "fresh answer"
                loop.mcp.remove_tool("echo")
                await loop.mcp.notify_all("notifications/tools/list_changed")
                await wait_for(lambda: "echo" not in mcp.tools())
                assert "echo" not in mcp.status(sid).tools
            nursery.cancel_scope.cancel()


# -- credentials


@pytest.mark.parametrize("style", ["seed", "mcpServers"])
@pytest.mark.parametrize("kind", KINDS)
async def test_the_token_reaches_the_server_and_nothing_else(
    kind: str, style: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[TelemetryEvent] = []
    with trio.fail_after(BOUND), telemetry.subscribe(seen.append):
        async with trio.open_nursery() as nursery:
            loop = Loopback(kind, nursery, require_token=TOKEN)
            await loop.start()
            config = seed_config(loop.url) if style == "seed" else mcp_servers_entry(kind, loop.url)
            async with SessionManager(options=options()) as mcp:
                events = mcp.events()
                sid = await mcp.add_server(config, name="remote", wait=True, timeout=BOUND)
                assert (await mcp.call_tool(sid, "echo", {"message": "a"})).text == "a"
                # A failure and a restart: errors get logged and reported on the way.
                await loop.stop()
                await states_of(events, "restarting")
                failed = repr(mcp.servers())
                await loop.start()
                await states_of(events, "ready")
                assert (await mcp.call_tool(sid, "echo", {"message": "b"})).text == "b"
                if kind in ("http", "sse"):
                    # No listing of resources or prompts in flight (they follow a
                    # restart), so the next call is the one that finds out.
                    await mcp.refresh_listings(sid)
                    # A forgotten session, renewed in place.
                    loop.http.forget_sessions()
                    assert (await mcp.call_tool(sid, "echo", {"message": "c"})).text == "c"
                # A server that refuses the token it is given, until it is given up on.
                refused = await mcp.add_server(
                    {**config, "auth_token": WRONG_TOKEN}
                    if style == "seed"
                    else {**config, "headers": {"Authorization": f"Bearer {WRONG_TOKEN}"}},
                    name="refused",
                    options=options(restart=GIVE_UP),
                )
                with pytest.raises(ServerUnavailableError) as info:
                    await mcp.wait_ready(refused, timeout=BOUND)
                gave_up = mcp.status(refused).last_error
                assert isinstance(gave_up, SupervisionError)
                assert isinstance(gave_up.__cause__, TransportAuthError)
                reports = [
                    repr(mcp.servers()),
                    failed,
                    repr(mcp.status(sid).last_error),
                    repr(info.value),
                    str(info.value),
                    repr(gave_up.__cause__),
                ]
            nursery.cancel_scope.cancel()
    reports.append(repr(parse_server(config)))
    reports.extend(repr(event) for event in seen)
    assert any(isinstance(e, ServerStateChanged) and e.state == "restarting" for e in seen)
    assert any(isinstance(e, ServerStateChanged) and e.state == "failed" for e in seen)
    # The transports' and HTTP client's own debug logs were captured too.
    assert ("trio-websocket" if kind == "websocket" else "httpcore2.http11") in {
        r.name for r in caplog.records
    }
    for text in [*reports, caplog.text]:
        assert TOKEN not in text and WRONG_TOKEN not in text
    sent = {f"Bearer {TOKEN}", f"Bearer {WRONG_TOKEN}"}
    if kind == "websocket":
        assert isinstance(loop.server, McpWebSocketServer)
        assert {h["authorization"] for h in loop.server.request_headers} == sent
    else:
        assert {r.headers["authorization"] for r in loop.http.log} == sent
        calls = posts(loop.http, "tools/call")
        assert calls and all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in calls)
        if style == "seed":
            assert all(r.headers["execution-id"] == "exec-7" for r in calls)


# -- a session the server forgot


def gated_initialize(server: McpTestServer) -> trio.Event:
    """Hold every ``initialize`` after the first until the returned event is set."""
    answer = server.dispatch
    gate = trio.Event()
    seen = 0

    async def dispatch(request: Request, conn: Any) -> Any:
        nonlocal seen
        if request.method == "initialize":
            seen += 1
            if seen > 1:
                await gate.wait()
        return await answer(request, conn)

    server.dispatch = dispatch  # type: ignore[method-assign]
    return gate


def initializations(server: McpTestServer) -> int:
    return sum(1 for r in server.requests if r.method == "initialize")


@pytest.mark.parametrize("kind", ["http", "sse"])
async def test_a_forgotten_session_is_renewed_in_place_and_calls_wait_for_it(
    kind: str,
) -> None:
    server = builtin_server()
    gate = gated_initialize(server)
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            loop = Loopback(kind, nursery)
            await loop.start(server)
            async with SessionManager(options=options()) as mcp:
                sid = await mcp.add_server(
                    {"url": loop.url}, name="remote", wait=True, timeout=BOUND
                )
                client = mcp.client(sid)
                events = mcp.events()
                # A tool the server has without saying so: only a reload finds it.
                server.add_tool("late", lambda args, ctx: "late answer")
                loop.http.forget_sessions()
                # A notification meets the 404, so the renewal starts with no call waiting.
                await client.notify("notifications/roots/list_changed")
                await wait_for(lambda: initializations(server) == 2)
                assert (client.connected, client.available) == (False, True)
                # What the server said in its last handshake, while the next is held.
                status = mcp.status(sid)
                assert status.protocol_version == LATEST_LEGACY_VERSION
                assert status.server_info is not None
                answers: list[str] = []

                async def call() -> None:
                    result = await mcp.call_tool(sid, "echo", {"message": "held"})
                    answers.append(result.text)

                async with trio.open_nursery() as calls:
                    calls.start_soon(call)
                    await trio.testing.wait_all_tasks_blocked()
                    assert answers == []
                    gate.set()
                assert answers == ["held"]
                # Renewed in place: the same actor, no restart, no state change.
                assert mcp.client(sid) is client and client.connected
                status = mcp.status(sid)
                assert (status.state, status.restarts) == ("ready", 0)
                assert drain(events) == []
                # The new session's tools were loaded.
                await wait_for(lambda: "late" in mcp.tools())
                assert (await mcp.call("late")).text == "late answer"
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("kind", ["http", "sse"])
async def test_an_expired_session_fails_the_calls_in_flight_and_the_next_call_works(
    kind: str,
) -> None:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            loop = Loopback(kind, nursery)
            await loop.start()
            async with SessionManager(options=options()) as mcp:
                sid = await mcp.add_server(
                    {"url": loop.url}, name="remote", wait=True, timeout=BOUND
                )
                # No listing of resources or prompts in flight (they follow
                # "ready"), so the echo below is the call that finds out.
                await mcp.refresh_listings(sid)
                client = mcp.client(sid)
                events = mcp.events()
                errors: list[BaseException] = []

                async def call_in_flight() -> None:
                    try:
                        await mcp.call_tool(sid, "sleep", {"seconds": 600})
                    except TransportError as exc:
                        errors.append(exc)

                async with trio.open_nursery() as calls:
                    calls.start_soon(call_in_flight)
                    await wait_for(lambda: received_call(loop.mcp, "sleep"))
                    loop.http.forget_sessions()
                    # This call finds out: the server refused it without running it,
                    # so it is sent again in the new session.
                    result = await mcp.call_tool(sid, "echo", {"message": "after"})
                    assert result.text == "after"
                # The call in flight may have run: it fails, and is not sent again.
                (error,) = errors
                assert isinstance(error, SessionExpiredError), repr(error)
                assert initializations(loop.mcp) == 2
                ran = [
                    (r.params or {}).get("name")
                    for r in loop.mcp.requests
                    if r.method == "tools/call"
                ]
                assert ran == ["sleep", "echo"]
                # The same actor: no restart, no state change.
                assert mcp.client(sid) is client
                status = mcp.status(sid)
                assert (status.state, status.restarts, status.last_error) == ("ready", 0, None)
                assert drain(events) == []
                assert (await mcp.call_tool(sid, "echo", {"message": "again"})).text == "again"
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("kind", ["http", "http-stateless"])
async def test_a_server_restarted_at_once_behind_its_url_is_no_crash(kind: str) -> None:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            loop = Loopback(kind, nursery)
            await loop.start()
            async with SessionManager(options=options()) as mcp:
                # Patient resumption: the broken streams wait for the new process
                # instead of giving up on the connection, however slow the machine.
                params = HttpParameters(loop.url, max_reconnects=1000, reconnect_delay=0.05)
                sid = await mcp.add_server(params, name="remote", wait=True, timeout=BOUND)
                await mcp.call_tool(sid, "add_tool", {"name": "ephemeral"})
                await wait_for(lambda: "ephemeral" in mcp.tools())
                events = mcp.events()
                errors: list[BaseException] = []

                async def call_in_flight() -> None:
                    try:
                        await mcp.call_tool(sid, "sleep", {"seconds": 600})
                    except TransportError as exc:
                        errors.append(exc)

                async with trio.open_nursery() as calls:
                    calls.start_soon(call_in_flight)
                    await wait_for(lambda: received_call(loop.mcp, "sleep"))
                    # A new process behind the same URL before the client noticed.
                    await loop.stop()
                    await loop.start()
                    result = await mcp.call_tool(sid, "echo", {"message": "after"})
                    assert result.text == "after"
                (error,) = errors
                assert isinstance(error, TransportError), repr(error)
                status = mcp.status(sid)
                assert (status.state, status.restarts) == ("ready", 0)
                assert drain(events) == []
                if kind == "http":
                    # A new session, so the new process's tools.
                    assert isinstance(error, SessionExpiredError), repr(error)
                    await wait_for(lambda: "ephemeral" not in mcp.tools())
                # Without sessions there is nothing to lose: calls simply go on.
                assert (await mcp.call("echo", {"message": "again"})).text == "again"
            nursery.cancel_scope.cancel()


# -- a real peer


@pytest.mark.peers
async def test_server_everything_under_the_manager_survives_a_restart_of_its_process() -> None:
    located = peers()
    port = located.free_port()
    argv = located.everything_command("streamableHttp")
    env = located.everything_env(port)
    url = located.everything_url("streamableHttp", port)
    errors: list[BaseException] = []
    progressed = trio.Event()
    call_ended = trio.Event()
    with trio.fail_after(PEER_BOUND):
        async with trio.open_nursery() as nursery, SessionManager(options=options()) as mcp:
            async with running(argv, env) as first:
                await wait_listening(port)
                sid = await mcp.add_server(
                    {"type": "streamable-http", "url": url},
                    name="everything",
                    wait=True,
                    timeout=PEER_BOUND,
                )
                status = mcp.status(sid)
                assert status.server_info is not None and status.protocol_version is not None
                assert {"echo", "get-sum", "trigger-long-running-operation"} <= set(status.tools)
                assert "before" in (await mcp.call("echo", {"message": "before"})).text

                async def call_in_flight() -> None:
                    try:
                        await mcp.call_tool(
                            sid,
                            "trigger-long-running-operation",
                            {"duration": 600, "steps": 600},
                            progress=lambda _: progressed.set(),
                        )
                    except TransportError as exc:
                        errors.append(exc)
                    finally:
                        call_ended.set()

                nursery.start_soon(call_in_flight)
                # The first progress notification: the call is running on the server.
                await progressed.wait()
                os.killpg(first.pid, signal.SIGKILL)
                await first.wait()
            # At once a new process on the same port. The actor either notices the
            # broken connection and is restarted, or meets the new process first
            # and opens a new session; either way calls work again.
            async with running(argv, env):
                await wait_listening(port)
                await call_ended.wait()
                (error,) = errors
                assert isinstance(error, TransportError), repr(error)
                result = await mcp.call_tool(sid, "echo", {"message": "after"}, timeout=PEER_BOUND)
                assert "after" in result.text
                assert mcp.status(sid).state == "ready"
                assert "echo" in mcp.tools()
                added = await mcp.call("get-sum", {"a": 2, "b": 40})
                assert "42" in added.text

"""The session manager: supervised servers, health checks, reconnection, the registry.

Timing rules (backoff, health checks, deadlines) are checked in virtual time
against in-process servers; faults are provoked for real against server
processes, with generous bounds.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

from opex_trio.errors import (
    ConfigError,
    HealthCheckError,
    ServerExitedError,
    ServerUnavailableError,
    TransportBrokenError,
)
from opex_trio.mcp.manager import HealthCheck, ServerOptions, SessionManager
from opex_trio.protocol.types import ProgressParams
from opex_trio.supervision import RestartPolicy
from opex_trio.telemetry import ServerStateChanged
from opex_trio.testing.mcp_server import McpTestServer, ToolContext, builtin_server
from opex_trio.transports.base import Transport
from opex_trio.transports.memory import memory_pair
from tests.mcp.support import BOUND, LeakCheck, test_server_params

# A call that runs until it is stopped and reports progress from its first moment.
LONG_CALL = ("progress", {"steps": 10**6})
FAST = RestartPolicy(backoff_initial=0.05, backoff_max=0.2, jitter=0, max_restarts=3, within=30)


def options(**kwargs: Any) -> ServerOptions:
    kwargs.setdefault("restart", FAST)
    kwargs.setdefault("health", None)
    return ServerOptions(**kwargs)


async def states_of(events: trio.MemoryReceiveChannel[ServerStateChanged], until: str) -> list[str]:
    seen = []
    async for event in events:
        seen.append(event.state)
        if event.state == until:
            return seen
    return seen


# -- virtual time


async def test_backoff_between_reconnections_is_exact(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery, SessionManager() as mcp:
        events = mcp.events()
        start = trio.current_time()
        sid = await mcp.add_server(
            builtin_server().in_process(nursery, refuse_first=3),
            name="flaky",
            options=options(
                restart=RestartPolicy(backoff_initial=1, backoff_factor=2, jitter=0, max_restarts=5)
            ),
        )
        assert await states_of(events, "ready") == ["starting", "restarting", "ready"]
        # Three refused connections: waits of 1, 2 and 4 seconds.
        assert trio.current_time() - start == 7
        assert mcp.status(sid).restarts == 3
        assert (await mcp.call_tool(sid, "echo", {"message": "hi"})).text == "hi"
        nursery.cancel_scope.cancel()


async def test_restart_intensity_ends_in_failed_and_others_go_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trio.open_nursery() as nursery, SessionManager() as mcp:
        bad = await mcp.add_server(
            builtin_server().in_process(nursery, refuse_first=1000), name="bad", options=options()
        )
        good = await mcp.add_server(builtin_server().in_process(nursery), name="good")
        with pytest.raises(ServerUnavailableError) as info:
            await mcp.wait_ready(bad)
        assert info.value.state == "failed"
        assert mcp.status(bad).state == "failed"
        assert "refused connection" in repr(mcp.status(bad).last_error.__cause__)  # type: ignore[union-attr]
        await mcp.wait_ready(good)
        assert (await mcp.call_tool(good, "add", {"a": 1, "b": 2})).structured_content == {"sum": 3}
        with pytest.raises(ServerUnavailableError, match="failed"):
            await mcp.call_tool(bad, "echo", {"message": "x"})
        nursery.cancel_scope.cancel()


async def test_a_call_waits_for_a_restarting_server_within_its_deadline(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trio.open_nursery() as nursery, SessionManager() as mcp:
        sid = await mcp.add_server(
            builtin_server().in_process(nursery, refuse_first=2),
            name="slow",
            options=options(restart=RestartPolicy(backoff_initial=10, jitter=0)),
        )
        start = trio.current_time()
        with pytest.raises(ServerUnavailableError) as info:
            await mcp.call_tool(sid, "echo", {"message": "x"}, timeout=5)
        assert trio.current_time() - start == 5
        assert info.value.state == "restarting"
        # A call with room to wait gets its answer once the server is back (10 + 20 s).
        result = await mcp.call_tool(sid, "echo", {"message": "late"}, timeout=60)
        assert result.text == "late"
        assert trio.current_time() - start == 30
        nursery.cancel_scope.cancel()


async def test_a_silent_server_fails_its_health_checks_and_is_restarted(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = builtin_server()
    silent = False
    answer = server.dispatch

    async def dispatch(request: Any, conn: Any) -> Any:
        if silent:
            await trio.sleep_forever()
        return await answer(request, conn)

    server.dispatch = dispatch  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery, SessionManager() as mcp:
        events = mcp.events()
        sid = await mcp.add_server(
            server.in_process(nursery),
            name="quiet",
            options=options(health=HealthCheck(interval=10, timeout=2, failures=2)),
        )
        assert await states_of(events, "ready") == ["starting", "ready"]
        silent = True
        start = trio.current_time()
        assert await states_of(events, "restarting") == ["unhealthy", "restarting"]
        # Two checks: each 10 s after the last, each given 2 s to answer.
        assert trio.current_time() - start == 24
        assert isinstance(mcp.status(sid).last_error, HealthCheckError)
        silent = False
        assert await states_of(events, "ready") == ["ready"]
        assert (await mcp.call_tool(sid, "echo", {"message": "back"})).text == "back"
        nursery.cancel_scope.cancel()


async def test_idempotent_calls_are_resent_after_a_crash_and_others_are_not(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = McpTestServer("crashy")
    calls = {"lookup": 0, "charge": 0}
    ends: list[Any] = []

    async def crash_once(name: str, args: Any, ctx: ToolContext) -> str:
        calls[name] += 1
        if calls[name] == 1:
            for end in ends:
                await end.aclose()  # the connection dies mid-call
            await trio.sleep_forever()
        return f"{name} done"

    server.add_tool(
        "lookup", lambda a, c: crash_once("lookup", a, c), annotations={"readOnlyHint": True}
    )
    server.add_tool("charge", lambda a, c: crash_once("charge", a, c))

    async with trio.open_nursery() as nursery, SessionManager() as mcp:

        @asynccontextmanager
        async def factory() -> AsyncIterator[Transport]:
            transport, end = memory_pair("crashy")
            ends.clear()
            ends.append(end)
            nursery.start_soon(server.serve_memory, end)
            async with transport:
                yield transport

        sid = await mcp.add_server(factory, name="crashy", options=options(resend_idempotent=True))
        assert (await mcp.call_tool(sid, "lookup")).text == "lookup done"
        assert calls["lookup"] == 2
        with pytest.raises(TransportBrokenError):
            await mcp.call_tool(sid, "charge")
        assert calls["charge"] == 1  # never sent twice
        await mcp.wait_ready(sid)
        assert (await mcp.call_tool(sid, "charge")).text == "charge done"
        nursery.cancel_scope.cancel()


async def test_registry_names_filters_and_list_changes(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery, SessionManager() as mcp:
        a = await mcp.add_server(builtin_server().in_process(nursery), name="a")
        b = await mcp.add_server(
            builtin_server().in_process(nursery),
            name="b",
            options=options(allow_tools=["echo", "add*"], deny_tools=["add_tool"]),
        )
        await mcp.wait_ready()
        registry = mcp.tools()
        assert set(mcp.tools(b)) == {"b__echo", "b__add"}
        # Tools both servers offer get the server prefix; the others keep their names.
        assert registry["a__echo"].server == "a" and registry["a__echo"].tool.name == "echo"
        assert registry["sleep"].server == "a"
        assert mcp.registry_name("b", "add") == "b__add"
        assert (await mcp.call("b__add", {"a": 2, "b": 3})).structured_content == {"sum": 5}
        with pytest.raises(ConfigError, match="no tool named 'nope'"):
            await mcp.call("nope")
        await mcp.call_tool(a, "add_tool", {"name": "fresh"})
        with trio.fail_after(5):
            while "fresh" not in mcp.tools():
                await trio.sleep(0.01)
        assert mcp.tools()["fresh"].server == "a"
        nursery.cancel_scope.cancel()


async def test_bad_input_is_a_clear_error() -> None:
    async with SessionManager() as mcp:
        with pytest.raises(ConfigError, match="needs 'command'"):
            await mcp.add_server({"nothing": 1})
        with pytest.raises(ServerUnavailableError, match="no MCP server 'ghost'"):
            await mcp.call_tool("ghost", "x")
        with pytest.raises(ConfigError, match="needs a name"):
            await mcp.add_server(lambda: None)  # type: ignore[arg-type, return-value]
        with pytest.raises(ConfigError, match=r"HealthCheck\.failures"):
            HealthCheck(failures=0)


# -- real processes


async def test_kill_9_mid_call_then_the_server_comes_back_with_a_fresh_registry() -> None:
    leaks = LeakCheck()
    with trio.fail_after(BOUND):
        async with SessionManager(options=options()) as mcp:
            sid = await mcp.add_server(test_server_params(name="victim"), wait=True, timeout=BOUND)
            await mcp.call_tool(sid, "add_tool", {"name": "ephemeral"})
            while "ephemeral" not in mcp.tools():
                await trio.sleep(0.02)
            pid = int((await mcp.call_tool(sid, "pid")).text)
            leaks.watch(pid)
            events = mcp.events()
            # The first progress report says the call runs on the server: kill it then.
            running = trio.Event()

            async def kill_when_running() -> None:
                await running.wait()
                os.kill(pid, signal.SIGKILL)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(kill_when_running)
                with pytest.raises(ServerExitedError) as info:
                    await mcp.call_tool(sid, *LONG_CALL, progress=lambda _: running.set())
            assert info.value.returncode == -signal.SIGKILL
            assert await states_of(events, "ready") == ["restarting", "ready"]
            assert mcp.status(sid).restarts == 1
            # The new process never had the tool added to the old one.
            assert "ephemeral" not in mcp.tools()
            new_pid = int((await mcp.call_tool(sid, "pid")).text)
            assert new_pid != pid
            leaks.watch(new_pid)
    leaks.assert_clean()


async def test_a_server_that_crashes_at_start_fails_alone() -> None:
    leaks = LeakCheck()
    with trio.fail_after(BOUND):
        async with SessionManager(options=options()) as mcp:
            bad = await mcp.add_server(test_server_params("--crash-at-start", name="bad"))
            good = await mcp.add_server(test_server_params(name="good"))
            with pytest.raises(ServerUnavailableError) as info:
                await mcp.wait_ready(bad, timeout=BOUND)
            assert info.value.state == "failed"
            status = mcp.status(bad)
            assert status.restarts == 3
            assert "crashing at start on purpose" in str(status.last_error.__cause__)  # type: ignore[union-attr]
            await mcp.wait_ready(good, timeout=BOUND)
            assert (await mcp.call_tool(good, "echo", {"message": "fine"})).text == "fine"
            leaks.watch(int((await mcp.call_tool(good, "pid")).text))
    leaks.assert_clean()


async def test_an_alive_but_silent_process_is_restarted_by_the_health_check() -> None:
    with trio.fail_after(BOUND):
        async with SessionManager() as mcp:
            events = mcp.events()
            sid = await mcp.add_server(
                # The era probe, initialize, tools/list, the three listings (resources,
                # templates, prompts) and one tool call get answers, then silence (a
                # restart is not probed again: its era is remembered).
                test_server_params("--silent-after", "7", name="mute"),
                options=options(health=HealthCheck(interval=0.3, timeout=0.5, failures=2)),
            )
            assert await states_of(events, "ready") == ["starting", "ready"]
            first_pid = int((await mcp.call_tool(sid, "pid")).text)
            assert await states_of(events, "restarting") == ["unhealthy", "restarting"]
            assert await states_of(events, "ready") == ["ready"]
            assert int((await mcp.call_tool(sid, "pid")).text) != first_pid
            assert isinstance(mcp.status(sid).last_error, HealthCheckError)


async def test_twenty_servers_start_at_once() -> None:
    leaks = LeakCheck()
    with trio.fail_after(BOUND * 2):
        async with SessionManager(options=options()) as mcp:
            ids = [await mcp.add_server(test_server_params(name=f"s{i}")) for i in range(20)]
            await mcp.wait_ready(timeout=BOUND * 2)
            assert [s.state for s in mcp.servers()] == ["ready"] * 20
            pids: dict[str, int] = {}

            async def ask(sid: str) -> None:
                pids[sid] = int((await mcp.call_tool(sid, "pid")).text)

            async with trio.open_nursery() as nursery:
                for sid in ids:
                    nursery.start_soon(ask, sid)
            assert len(set(pids.values())) == 20
            for pid in pids.values():
                leaks.watch(pid)
            assert len(mcp.tools()) == 20 * len(mcp.status("s0").tools)
    leaks.assert_clean()


async def test_remove_server_during_a_call() -> None:
    leaks = LeakCheck()
    with trio.fail_after(BOUND):
        async with SessionManager(options=options()) as mcp:
            sid = await mcp.add_server(test_server_params(name="goner"), wait=True, timeout=BOUND)
            leaks.watch(int((await mcp.call_tool(sid, "pid")).text))
            errors: list[BaseException] = []
            running = trio.Event()

            async def call() -> None:
                try:
                    await mcp.call_tool(sid, *LONG_CALL, progress=lambda _: running.set())
                except ServerUnavailableError as exc:
                    errors.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call)
                await running.wait()
                await mcp.remove_server(sid)
            assert len(errors) == 1 and "removed" in str(errors[0])
            assert [s.id for s in mcp.servers()] == []
            assert mcp.tools() == {}
    leaks.assert_clean()


async def test_cancelling_the_manager_mid_everything_leaves_nothing() -> None:
    leaks = LeakCheck()
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as outer:
            # Cancel once every call runs on its server (its first progress report).
            running: set[str] = set()
            all_running = trio.Event()

            def report(sid: str) -> Callable[[ProgressParams], None]:
                def seen(params: ProgressParams) -> None:
                    running.add(sid)
                    if len(running) == 4:
                        all_running.set()

                return seen

            async def run() -> None:
                async with SessionManager(options=options()) as mcp:
                    ids = [
                        await mcp.add_server(test_server_params("--grandchild", name=f"g{i}"))
                        for i in range(4)
                    ]
                    await mcp.add_server(test_server_params("--crash-at-start", name="crashing"))
                    await mcp.wait_ready(*ids, timeout=BOUND)
                    for sid in ids:
                        leaks.watch(int((await mcp.call_tool(sid, "pid")).text))
                    async with trio.open_nursery() as calls:
                        for sid in ids:
                            call = partial(mcp.call_tool, sid, *LONG_CALL, progress=report(sid))
                            calls.start_soon(call)

            outer.start_soon(run)
            await all_running.wait()
            outer.cancel_scope.cancel()
    assert len(leaks.pgids) == 4
    leaks.assert_clean()

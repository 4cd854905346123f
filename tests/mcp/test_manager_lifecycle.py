"""The session manager's public calls as a user meets them: one exception per call.

An exception of the program's own block, a cancellation while calls run, a
cancelled removal, subscriptions that come and go: each with 1, 2 and 8
servers (or calls) at once, in virtual time against in-process servers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from opex_trio.agent.chat import Chat
from opex_trio.errors import OpexError, ServerUnavailableError
from opex_trio.llm import Client
from opex_trio.mcp.manager import ServerOptions, SessionManager
from opex_trio.protocol.types import ProgressParams
from opex_trio.telemetry import ServerStateChanged
from opex_trio.testing.mcp_server import builtin_server
from opex_trio.transports.base import Transport

COUNTS = [1, 2, 8]


class Boom(Exception):
    pass


def own_error(kind: str) -> Exception:
    """The program's own exception: a plain one, or a group the program made itself."""
    if kind == "group":
        return ExceptionGroup("the program's own group", [Boom("one"), KeyError("two")])
    return Boom("the program's own error")


def quiet() -> ServerOptions:
    return ServerOptions(health=None)


async def add_servers(mcp: SessionManager, nursery: trio.Nursery, count: int) -> list[str]:
    ids = [
        await mcp.add_server(builtin_server().in_process(nursery), name=f"s{i}", options=quiet())
        for i in range(count)
    ]
    await mcp.wait_ready()
    return ids


class Running:
    """Progress callbacks that tell when ``count`` calls are running on their servers."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.seen: set[str] = set()
        self.all_running = trio.Event()

    def callback(self, key: str) -> Any:
        def report(params: ProgressParams) -> None:
            self.seen.add(key)
            if len(self.seen) == self.count:
                self.all_running.set()

        return report


def start_calls(
    mcp: SessionManager, nursery: trio.Nursery, ids: list[str], running: Running
) -> list[BaseException]:
    """Start a long call on each server in ``nursery``; their errors are kept, not raised."""
    errors: list[BaseException] = []

    async def call(sid: str) -> None:
        try:
            await mcp.call_tool(sid, "progress", {"steps": 10**6}, progress=running.callback(sid))
        except OpexError as exc:
            errors.append(exc)

    for sid in ids:
        nursery.start_soon(call, sid)
    return errors


@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("cancelled", [False, True], ids=["plain", "while-cancelled"])
@pytest.mark.parametrize("error", ["plain", "group"])
async def test_an_exception_of_the_block_comes_back_unchanged(
    autojump_clock: Any, count: int, cancelled: bool, error: str
) -> None:
    boom = own_error(error)
    running = Running(count)

    async def block(nursery: trio.Nursery) -> list[BaseException]:
        with trio.CancelScope() as outer:
            async with SessionManager() as mcp:
                ids = await add_servers(mcp, nursery, count)
                errors = start_calls(mcp, nursery, ids, running)
                await running.all_running.wait()
                if cancelled:
                    # The servers stop while a cancellation arrives from outside.
                    outer.cancel()
                raise boom
        return errors

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            with pytest.raises(type(boom)) as info:
                await block(nursery)
            nursery.cancel_scope.cancel()
    if isinstance(boom, ExceptionGroup) and cancelled:
        # The program's own cancelled scope rebuilds any group that passes it
        # (trio strips Cancelled that way): a copy, with the very same leaves.
        assert isinstance(info.value, ExceptionGroup)
        assert info.value.message == boom.message
        assert all(a is b for a, b in zip(info.value.exceptions, boom.exceptions, strict=True))
    else:
        assert info.value is boom
    assert boom.__context__ is None and not getattr(boom, "__notes__", None)


@pytest.mark.parametrize("count", COUNTS)
async def test_cancelling_a_call_and_the_manager_is_one_plain_cancelled(
    autojump_clock: Any, count: int
) -> None:
    running = Running(count)
    caught: list[BaseException] = []
    scope = trio.CancelScope()

    async def user(nursery: trio.Nursery) -> None:
        with scope:
            try:
                async with SessionManager() as mcp:
                    ids = await add_servers(mcp, nursery, count)
                    start_calls(mcp, nursery, ids[1:], running)
                    await mcp.call_tool(
                        ids[0], "progress", {"steps": 10**6}, progress=running.callback(ids[0])
                    )
            except trio.Cancelled as exc:
                caught.append(exc)
                raise
            raise AssertionError("the call returned although it was cancelled")

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def run_user() -> None:
                await user(nursery)
                done.set()

            nursery.start_soon(run_user)
            await running.all_running.wait()
            scope.cancel()
            await done.wait()
            nursery.cancel_scope.cancel()
    assert len(caught) == 1 and type(caught[0]) is trio.Cancelled
    assert scope.cancelled_caught


async def test_closed_subscriptions_are_dropped_and_not_written_to(autojump_clock: Any) -> None:
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery, SessionManager() as mcp:
            live = mcp.events()
            for _ in range(1000):
                mcp.events().close()
            # The manager's own list of subscribers, since nothing public shows it:
            # at most the one closed since the last look is left.
            assert len(mcp._streams) <= 2
            closed = [mcp.events() for _ in range(1000)]
            for channel in closed:
                channel.close()
            sid = await mcp.add_server(
                builtin_server().in_process(nursery), name="s", options=quiet()
            )
            assert [(e.server, e.state) for e in (await live.receive(), await live.receive())] == [
                (sid, "starting"),
                (sid, "ready"),
            ]
            assert len(mcp._streams) == 1
            # A subscriber that has not read yet is kept.
            slow = mcp.events(max_buffer=1)
            await mcp.remove_server(sid)
            assert len(mcp._streams) == 2
            assert (await slow.receive()).state == "stopped"
            nursery.cancel_scope.cancel()
        # Closing the manager ends the live subscriptions; a new one is ended at once.
        assert [e.state async for e in live] == ["stopped"]
        assert [e async for e in mcp.events()] == []


async def test_a_cancelled_remove_server_leaves_nothing_listed(autojump_clock: Any) -> None:
    slow_close_started = trio.Event()

    @asynccontextmanager
    async def slow_to_close(nursery: trio.Nursery) -> AsyncIterator[Transport]:
        async with builtin_server().in_process(nursery)() as transport:
            try:
                yield transport
            finally:
                # Closing takes a while: the removal waits here when it is cancelled.
                slow_close_started.set()
                with trio.CancelScope(shield=True):
                    await trio.sleep(50)

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery, SessionManager() as mcp:
            sid = await mcp.add_server(
                lambda: slow_to_close(nursery), name="slow", options=quiet(), wait=True
            )
            other = await mcp.add_server(
                builtin_server().in_process(nursery), name="other", options=quiet(), wait=True
            )
            chat = Chat(Client("k", base_url="http://127.0.0.1:9"), mcp=mcp)
            assert {ref.server for ref in chat.tool_index().values()} == {sid, other}
            events = mcp.events()
            with trio.move_on_after(10) as scope:
                await mcp.remove_server(sid)
            assert scope.cancelled_caught and slow_close_started.is_set()
            assert [s.id for s in mcp.servers()] == [other]
            assert all(t.server == other for t in mcp.tools().values())
            assert {ref.server for ref in chat.tool_index().values()} == {other}
            with pytest.raises(ServerUnavailableError):
                await mcp.call_tool(sid, "echo", {"message": "x"})
            # The id can be used again at once: the new server starts once the
            # old one has ended, and nothing the old one does reaches it.
            again = await mcp.add_server(
                builtin_server().in_process(nursery), name=sid, options=quiet(), wait=True
            )
            assert again == sid
            await trio.sleep(100)
            assert mcp.status(sid).state == "ready"
            assert {t.server for t in mcp.tools().values()} == {sid, other}
            assert [(e.server, e.state) for e in drain(events)] == [
                (sid, "stopped"),
                (sid, "starting"),
                (sid, "ready"),
            ]
            nursery.cancel_scope.cancel()


def drain(channel: trio.MemoryReceiveChannel[ServerStateChanged]) -> list[ServerStateChanged]:
    found = []
    while True:
        try:
            found.append(channel.receive_nowait())
        except trio.WouldBlock:
            return found

"""Errors keep no caller alive: each caller raises its own instance, and what is kept
(a server's last error, events) carries no frames, so a dead connection is freed once
it is replaced. Checked with weak references against real server processes."""

from __future__ import annotations

import gc
import os
import signal
import weakref
from typing import Any

import pytest
import trio

from opex_trio.errors import ServerExitedError
from opex_trio.mcp.manager import ServerOptions, SessionManager
from opex_trio.supervision import RestartPolicy
from opex_trio.telemetry import ServerStateChanged
from tests.mcp.support import BOUND, stdio_client, test_server_params

CALLERS = 20


class Payload:
    """What a caller holds while it waits: 1 MiB, weakly referenceable."""

    def __init__(self) -> None:
        self.data = bytearray(1 << 20)


def frames_in(error: BaseException | None) -> int:
    """Traceback entries anywhere in ``error``'s chain of causes and contexts."""
    count = 0
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        tb = error.__traceback__
        while tb is not None:
            count += 1
            tb = tb.tb_next
        error = error.__cause__ or error.__context__
    return count


async def test_a_crash_with_many_callers_in_flight_keeps_none_of_them_alive() -> None:
    refs: list[weakref.ref[Payload]] = []
    seen: set[tuple[type[BaseException], str, int | None]] = set()
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params()) as client:
            pid = client.transport.pid  # type: ignore[union-attr]
            running: set[int] = set()
            all_running = trio.Event()

            async def caller(i: int) -> None:
                payload = Payload()
                refs.append(weakref.ref(payload))

                def on_progress(_: Any) -> None:
                    running.add(i)
                    if len(running) == CALLERS:
                        all_running.set()

                try:
                    await client.call_tool(
                        "progress", {"steps": 10**6}, timeout=None, progress=on_progress
                    )
                except ServerExitedError as exc:
                    seen.add((type(exc), str(exc), exc.returncode))
                assert len(payload.data) == 1 << 20

            async with trio.open_nursery() as nursery:
                for i in range(CALLERS):
                    nursery.start_soon(caller, i)
                await all_running.wait()
                os.kill(pid, signal.SIGKILL)

            # Every caller read the same error...
            assert len(seen) == 1
            ((kind, message, returncode),) = seen
            assert kind is ServerExitedError and returncode == -signal.SIGKILL
            assert "'test-server'" in message
            # ...and, with the client still open and its error kept, none of
            # the callers' frames or what they held is alive.
            gc.collect()
            assert len(refs) == CALLERS
            assert [r for r in refs if r() is not None] == []

            # Later calls raise the same error, each its own instance.
            with pytest.raises(ServerExitedError) as first:
                await client.call_tool("echo", {"message": "a"})
            with pytest.raises(ServerExitedError) as second:
                await client.call_tool("echo", {"message": "b"})
            assert first.value is not second.value and first.value is not client.error
            assert str(first.value) == str(second.value) == message
            assert first.value.__cause__ is second.value.__cause__
            assert first.value.stderr_tail == second.value.stderr_tail


async def test_a_replaced_connection_leaves_nothing_behind() -> None:
    fast = RestartPolicy(backoff_initial=0.05, backoff_max=0.2, jitter=0, within=30)
    with trio.fail_after(BOUND):
        async with SessionManager(options=ServerOptions(health=None, restart=fast)) as mcp:
            events = mcp.events()
            sid = await mcp.add_server(test_server_params(), name="srv", wait=True)
            old_client = mcp.client(sid)
            old_transport = old_client.transport
            assert old_transport is not None
            client_ref = weakref.ref(old_client)
            transport_ref = weakref.ref(old_transport)
            pid = old_transport.pid  # type: ignore[attr-defined]
            del old_client, old_transport

            payload = Payload()
            payload_ref = weakref.ref(payload)

            running = trio.Event()

            async def call_with(held: Payload) -> None:
                with pytest.raises(ServerExitedError):
                    await mcp.call_tool(
                        sid,
                        "progress",
                        {"steps": 10**6},
                        timeout=None,
                        progress=lambda _: running.set(),
                    )
                assert held.data

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call_with, payload)
                await running.wait()
                os.kill(pid, signal.SIGKILL)
            del payload

            carried: list[BaseException] = []
            states: list[str] = []
            async for event in events:
                assert isinstance(event, ServerStateChanged)
                states.append(event.state)
                if event.error is not None:
                    carried.append(event.error)
                if event.state == "ready" and "restarting" in states:
                    break
            assert mcp.client(sid).connected
            assert carried, "the restart was reported with its error"
            last = mcp.status(sid).last_error
            # What a user reads is kept: type, message, exit status, stderr tail...
            assert isinstance(last, ServerExitedError)
            assert last.returncode == -signal.SIGKILL and "'test-server'" in str(last)
            assert isinstance(last.stderr_tail, tuple)
            # ...without any frame, so nothing the failed attempt held stays alive.
            assert [frames_in(e) for e in [last, *carried]] == [0] * (len(carried) + 1)
            del carried, last
            gc.collect()
            assert payload_ref() is None
            assert transport_ref() is None
            assert client_ref() is None

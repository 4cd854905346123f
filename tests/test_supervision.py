"""Tests of the Supervisor: its events, leaving its block, bad input, in virtual time."""

from __future__ import annotations

import functools
import logging
import math

import pytest
import trio
import trio.testing

from opex_trio import telemetry
from opex_trio.errors import ConfigError, SupervisionError, UsageError
from opex_trio.supervision import (
    ChildHandle,
    ChildStateChanged,
    Supervisor,
)
from tests.supervision_support import EXACT, Boom, Recorder, policy, summary

# Events


async def test_event_order_is_exact_on_every_channel(autojump_clock: trio.abc.Clock) -> None:
    async def child(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep(1)
        task_status.started()
        await trio.sleep(2)
        raise Boom("once")

    seen_by_callback: list[ChildStateChanged] = []
    seen_by_telemetry: list[telemetry.TelemetryEvent] = []
    streamed: list[ChildStateChanged] = []
    p = policy(restart="always", max_restarts=1, within=100.0)

    async def read(stream: trio.MemoryReceiveChannel[ChildStateChanged]) -> None:
        with stream:
            streamed.extend([event async for event in stream])

    with telemetry.subscribe(seen_by_telemetry.append):
        async with (
            trio.open_nursery() as readers,
            Supervisor("top", policy=p, on_event=seen_by_callback.append) as sup,
        ):
            readers.start_soon(read, sup.events())
            handle = await sup.start(child, name="c")
            with pytest.raises(SupervisionError) as info:
                await handle.wait()
    first_error = info.value.__cause__
    assert isinstance(first_error, Boom)
    assert summary(seen_by_callback) == [
        ("c", None, "starting", 0, None, 0),
        ("c", "starting", "running", 0, None, 1),
        ("c", "running", "restarting", 1, 1, 3),
        ("c", "restarting", "starting", 1, None, 4),
        ("c", "starting", "running", 1, None, 5),
        ("c", "running", "failed", 1, None, 7),
    ]
    assert all(e.supervisor == "top" for e in seen_by_callback)
    assert seen_by_callback[2].error is not None
    assert seen_by_callback[2].error is not first_error
    assert seen_by_callback[-1].error is handle.error
    assert streamed == seen_by_callback
    assert seen_by_telemetry == seen_by_callback


async def test_events_stream_drops_oldest_and_ends_on_close(
    autojump_clock: trio.abc.Clock,
) -> None:
    child = Recorder([(1, "fail")] * 3 + [(math.inf, "")])
    async with Supervisor(policy=EXACT) as sup:
        stream = sup.events(max_buffer=3)
        everything = sup.events(max_buffer=math.inf)
        sup.start_soon(child, name="c")
        await trio.sleep(100)
    # nobody read while 10 events happened: the last 3 are kept
    kept = [(e.previous, e.state) async for e in stream]
    assert kept == [("restarting", "starting"), ("starting", "running"), ("running", "stopped")]
    assert len([e async for e in everything]) == 12


async def test_closed_event_stream_unsubscribes(autojump_clock: trio.abc.Clock) -> None:
    async with Supervisor() as sup:
        stream = sup.events(max_buffer=1)
        assert len(sup._streams) == 1
        stream.close()
        sup.start_soon(Recorder())
        assert sup._streams == []
        await trio.sleep(1)
    late = sup.events()
    assert [e async for e in late] == []


async def test_failing_event_handler_is_logged_and_ignored(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    def bad_handler(event: ChildStateChanged) -> None:
        raise ValueError("handler bug")

    child = Recorder([(1, "fail"), (math.inf, "")])
    with caplog.at_level(logging.ERROR, logger="opex_trio.supervision"):
        async with Supervisor("s", policy=EXACT, on_event=bad_handler) as sup:
            handle = sup.start_soon(child)
            await trio.sleep(10)
            assert handle.state == "running"
            assert child.calls == [0, 2]
    assert "on_event handler of supervisor 's' failed" in caplog.text


# Lifetime: leaving the block


async def test_leaving_the_block_cancels_every_child(autojump_clock: trio.abc.Clock) -> None:
    children = [Recorder() for _ in range(3)]
    async with Supervisor() as sup:
        handles = [sup.start_soon(child) for child in children]
        backing_off = sup.start_soon(
            Recorder([(1, "fail")]), policy=policy(backoff_initial=50, backoff_max=50)
        )
        await trio.sleep(10)
        assert backing_off.state == "restarting"
    assert trio.current_time() == 10
    assert [child.finished for child in children] == [[10]] * 3
    assert [h.state for h in (*handles, backing_off)] == ["stopped"] * 4
    assert sup.children == ()
    with pytest.raises(UsageError, match="not open"):
        sup.start_soon(Recorder())


async def test_cancelling_the_supervisor_leaves_no_running_task(
    autojump_clock: trio.abc.Clock,
) -> None:
    flags: list[str] = []

    async def child(
        tag: str, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            flags.append(tag)

    with trio.move_on_after(7) as scope:
        async with Supervisor() as sup:
            first = await sup.start(child, "a")
            second = sup.start_soon(functools.partial(child, "b"))
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() == 7
    assert sorted(flags) == ["a", "b"]
    assert first.state == second.state == "stopped"
    assert first.last_error is None


async def test_body_exception_propagates_bare_and_cancels_children(
    autojump_clock: trio.abc.Clock,
) -> None:
    child = Recorder()
    handles: list[ChildHandle] = []

    async def body() -> None:
        async with Supervisor() as sup:
            handles.append(sup.start_soon(child))
            await trio.sleep(2)
            raise Boom("from the body")

    with pytest.raises(Boom, match="from the body") as info:
        await body()
    assert not isinstance(info.value, BaseExceptionGroup)
    assert child.finished == [2]
    assert handles[0].state == "stopped"


async def test_body_exception_group_propagates_unchanged(autojump_clock: trio.abc.Clock) -> None:
    group = ExceptionGroup("mine", [Boom("a"), Boom("b")])

    async def body() -> None:
        async with Supervisor() as sup:
            sup.start_soon(Recorder())
            raise group

    with pytest.raises(ExceptionGroup) as info:
        await body()
    assert info.value is group


@pytest.mark.parametrize("count", [1, 2, 8])
@pytest.mark.parametrize("cancelled", [False, True], ids=["plain", "while-cancelled"])
async def test_body_exception_comes_back_bare_while_a_cancellation_arrives(
    autojump_clock: trio.abc.Clock, count: int, cancelled: bool
) -> None:
    # Children that take a while to stop: the outside cancellation reaches them
    # while the block's own exception is on its way out.
    async def slow_to_stop() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(1)

    boom = Boom("from the body")

    async def body() -> None:
        with trio.CancelScope() as outer:
            async with Supervisor() as sup:
                for _ in range(count):
                    sup.start_soon(slow_to_stop)
                await trio.sleep(1)
                if cancelled:
                    outer.cancel()
                raise boom

    with pytest.raises(Boom) as info:
        await body()
    assert info.value is boom
    assert not getattr(boom, "__notes__", None)
    assert trio.current_time() == 2


async def test_outside_cancellation_is_not_swallowed(autojump_clock: trio.abc.Clock) -> None:
    reached_after: list[bool] = []
    with trio.CancelScope() as outer:
        async with Supervisor() as sup:
            sup.start_soon(Recorder())
            outer.cancel()
            await trio.sleep(1)
            reached_after.append(True)
        reached_after.append(True)
    assert outer.cancelled_caught
    assert reached_after == []


async def test_keyboard_interrupt_in_a_child_is_not_swallowed(
    autojump_clock: trio.abc.Clock,
) -> None:
    sibling = Recorder()

    async def interrupted() -> None:
        await trio.sleep(3)
        raise KeyboardInterrupt

    handles: list[ChildHandle] = []

    async def body() -> None:
        async with Supervisor() as sup:
            sup.start_soon(sibling)
            handles.append(sup.start_soon(interrupted))
            await trio.sleep_forever()

    with pytest.raises(KeyboardInterrupt):
        await body()
    assert trio.current_time() == 3
    assert sibling.finished == [3]
    assert handles[0].state == "stopped"


async def test_keyboard_interrupt_inside_a_child_group_is_not_swallowed(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def interrupted() -> None:
        await trio.sleep(1)
        raise KeyboardInterrupt

    async def with_nursery() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(interrupted)
            await trio.sleep(2)
            raise Boom

    async def body() -> None:
        async with Supervisor() as sup:
            sup.start_soon(with_nursery)
            await trio.sleep_forever()

    # One exception per call: the interrupt comes out bare, not in a group.
    with pytest.raises(KeyboardInterrupt):
        await body()
    assert trio.current_time() == 1


async def test_child_swallowing_cancellation_is_not_restarted(
    autojump_clock: trio.abc.Clock,
) -> None:
    runs: list[float] = []

    async def stubborn() -> None:
        runs.append(trio.current_time())
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            return  # wrong, but must not bring the child back

    async with Supervisor(policy=policy(restart="always")) as sup:
        handle = sup.start_soon(stubborn)
        await trio.sleep(1)
    assert runs == [0]
    assert handle.state == "stopped"


async def test_child_error_during_cancellation_is_contained(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def messy() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            try:
                await trio.sleep_forever()
            finally:
                raise Boom("cleanup failed")

    async with Supervisor() as sup:
        handle = sup.start_soon(messy)
        await trio.sleep(1)
    assert handle.state == "stopped"
    assert isinstance(handle.last_error, ExceptionGroup)
    assert handle.last_error.subgroup(Boom) is not None


async def test_a_child_can_stop_itself(autojump_clock: trio.abc.Clock) -> None:
    handles: list[ChildHandle] = []
    done: list[float] = []

    async def quitter() -> None:
        await trio.sleep(2)
        try:
            await handles[0].stop()
        finally:
            done.append(trio.current_time())

    async with Supervisor() as sup:
        handles.append(sup.start_soon(quitter))
        assert await handles[0].wait() == "stopped"
    assert done == [2]


# Bad input


def test_bad_supervisor_arguments() -> None:
    with pytest.raises(ConfigError, match="name"):
        Supervisor(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="policy"):
        Supervisor(policy={"restart": "never"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="on_event"):
        Supervisor(on_event="print")  # type: ignore[arg-type]


async def test_bad_child_arguments(autojump_clock: trio.abc.Clock) -> None:
    async def child() -> None:
        await trio.sleep_forever()

    sup = Supervisor()
    with pytest.raises(UsageError, match="not open"):
        sup.start_soon(child)
    async with sup:
        coroutine = child()
        with pytest.raises(ConfigError, match="coroutine object"):
            sup.start_soon(coroutine)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="async function"):
            sup.start_soon(42)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="name"):
            sup.start_soon(child, name=1)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="policy"):
            await sup.start(child, policy="never")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="max_buffer"):
            sup.events(max_buffer=0)
        with pytest.raises(UsageError, match="only once"):
            await sup.__aenter__()
        assert sup.children == ()


async def test_names_and_reprs(autojump_clock: trio.abc.Clock) -> None:
    async def worker(n: int) -> None:
        await trio.sleep_forever()

    async with Supervisor("pool") as sup:
        a = sup.start_soon(worker, 1)
        b = sup.start_soon(functools.partial(worker, 2))
        c = sup.start_soon(worker, 3, name="third")
        assert a.name == b.name == worker.__qualname__
        assert c.name == "third"
        assert sup.name == "pool"
        assert sup.children == (a, b, c)
        assert repr(c) == "<ChildHandle 'third' starting restarts=0>"
        assert repr(sup) == "<Supervisor 'pool' children=3>"
        assert not c.finished

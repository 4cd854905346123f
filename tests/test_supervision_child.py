"""Tests of a supervised child's life: stop, forced restart and the started protocol, in virtual time."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from opex_trio.errors import SupervisionError
from opex_trio.supervision import (
    Supervisor,
)
from tests.supervision_support import EXACT, Boom, Recorder, collect, policy, state, summary

# Stop and forced restart


async def test_stop_is_graceful_and_not_a_failure(autojump_clock: trio.abc.Clock) -> None:
    child = Recorder()
    async with Supervisor(policy=policy(restart="always")) as sup:
        events = collect(sup)
        handle = sup.start_soon(child, name="c")
        await trio.sleep(5)
        assert await handle.stop() == "stopped"
        assert child.finished == [5]
        assert handle.state == "stopped"
        assert handle.last_error is None
        assert handle.restarts == 0
        assert sup.children == ()
        await trio.sleep(100)
        assert child.calls == [0]
        # stopping again, waiting, and restart() on a finished child change nothing
        handle.stop_nowait()
        handle.restart()
        assert await handle.stop() == "stopped"
        assert await handle.wait() == "stopped"
    assert summary(events) == [
        ("c", None, "starting", 0, None, 0),
        ("c", "starting", "running", 0, None, 0),
        ("c", "running", "stopped", 0, None, 5),
    ]


async def test_stop_during_backoff(autojump_clock: trio.abc.Clock) -> None:
    child = Recorder([(1, "fail")])
    async with Supervisor(policy=policy(backoff_initial=4.0)) as sup:
        handle = sup.start_soon(child)
        await trio.sleep(2)
        assert handle.state == "restarting"
        assert await handle.stop() == "stopped"
        assert trio.current_time() == 2
        assert child.calls == [0]
        assert isinstance(handle.last_error, Boom)


async def test_stop_before_the_child_ran(autojump_clock: trio.abc.Clock) -> None:
    child = Recorder()
    async with Supervisor() as sup:
        handle = sup.start_soon(child)
        handle.stop_nowait()
        assert await handle.wait() == "stopped"
    assert child.calls == []


async def test_stop_of_a_done_child_returns_done(autojump_clock: trio.abc.Clock) -> None:
    async with Supervisor() as sup:
        handle = sup.start_soon(Recorder([(1, "return")]), policy=policy(restart="on_failure"))
        await trio.sleep(2)
        assert await handle.stop() == "done"


async def test_forced_restart_counts_and_backs_off(autojump_clock: trio.abc.Clock) -> None:
    starts: list[float] = []
    cleanups: list[float] = []

    async def service(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        try:
            await trio.sleep(1)
            task_status.started(len(starts))
            await trio.sleep_forever()
        finally:
            cleanups.append(trio.current_time())

    async with Supervisor(policy=policy(restart="always")) as sup:
        events = collect(sup)
        handle = await sup.start(service, name="svc")
        assert handle.value == 1
        await trio.sleep(9)
        handle.restart()
        assert handle.state == "running"  # restart() only asks
        await trio.sleep(0.5)
        assert state(handle) == "restarting"
        assert cleanups == [10]
        assert await handle.wait_running() == "running"
        assert trio.current_time() == 12  # 1 s backoff + 1 s startup
        assert handle.value == 2
        assert handle.restarts == 1
        assert handle.last_error is None
        # a second forced restart backs off longer, as restarts in a row do
        handle.restart()
        await trio.sleep(0.5)
        assert await handle.wait_running() == "running"
        assert trio.current_time() == 15
        assert handle.restarts == 2
    assert starts == [0, 11, 14]
    assert [e.state for e in events] == [
        "starting",
        "running",
        "restarting",
        "starting",
        "running",
        "restarting",
        "starting",
        "running",
        "stopped",
    ]
    restarting = [e for e in events if e.state == "restarting"]
    assert [(e.error, e.delay, e.restarts) for e in restarting] == [(None, 1, 1), (None, 2, 2)]


async def test_forced_restart_during_backoff_starts_at_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    child = Recorder([(1, "fail"), (math.inf, "")])
    async with Supervisor(policy=policy(backoff_initial=10.0, backoff_max=10.0)) as sup:
        handle = sup.start_soon(child)
        await trio.sleep(3)
        assert handle.state == "restarting"
        handle.restart()
        await trio.sleep(1)
        assert child.calls == [0, 3]
        assert state(handle) == "running"
        assert handle.restarts == 1


async def test_restart_before_the_child_ran_counts_without_calling_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    child = Recorder()
    async with Supervisor(policy=EXACT) as sup:
        handle = sup.start_soon(child)
        handle.restart()
        await trio.sleep(5)
        assert child.calls == [1]
        assert handle.restarts == 1


async def test_a_stale_task_status_changes_nothing(autojump_clock: trio.abc.Clock) -> None:
    statuses: list[trio.TaskStatus[str]] = []

    async def child(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        statuses.append(task_status)
        await trio.sleep(1)
        if len(statuses) == 1:
            raise Boom
        task_status.started("second")
        await trio.sleep_forever()

    async with Supervisor(policy=EXACT) as sup:
        handle = await sup.start(child)
        assert trio.current_time() == 3
        assert handle.value == "second"
        assert "task status of supervised child" in repr(statuses[0])
        statuses[0].started("stale")
        assert handle.value == "second"
        assert handle.state == "running"


async def test_forced_restarts_reach_the_intensity(autojump_clock: trio.abc.Clock) -> None:
    child = Recorder()
    async with Supervisor(policy=policy(max_restarts=1, within=60.0)) as sup:
        handle = sup.start_soon(child)
        await trio.sleep(5)
        handle.restart()
        await trio.sleep(5)
        assert handle.state == "running"
        handle.restart()
        with pytest.raises(SupervisionError) as info:
            await handle.wait()
        assert info.value.__cause__ is None
        assert trio.current_time() == 10
        assert child.calls == [0, 6]


async def test_forced_restart_overrides_never(autojump_clock: trio.abc.Clock) -> None:
    child = Recorder()
    async with Supervisor(policy=policy(restart="never")) as sup:
        handle = sup.start_soon(child)
        await trio.sleep(1)
        handle.restart()
        await trio.sleep(5)
        assert child.calls == [0, 2]
        assert handle.state == "running"


# The started protocol


async def test_start_waits_for_started(autojump_clock: trio.abc.Clock) -> None:
    async def server(
        port: int, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await trio.sleep(2.5)
        task_status.started(f"listening on {port}")
        await trio.sleep_forever()

    async with Supervisor() as sup:
        handle = await sup.start(server, 8080, name="server")
        assert trio.current_time() == 2.5
        assert handle.state == "running"
        assert handle.value == "listening on 8080"
        assert await handle.wait_running() == "running"
        assert trio.current_time() == 2.5


async def test_restart_waits_for_started_again(autojump_clock: trio.abc.Clock) -> None:
    runs: list[float] = []

    async def flaky(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        runs.append(trio.current_time())
        await trio.sleep(2)
        task_status.started(len(runs))
        await trio.sleep(3)
        raise Boom

    async with Supervisor(policy=policy(restart="on_failure")) as sup:
        handle = await sup.start(flaky)
        assert trio.current_time() == 2
        await trio.sleep(3.5)
        assert handle.state == "restarting"
        await trio.sleep(1)
        assert state(handle) == "starting"
        assert await handle.wait_running() == "running"
        assert trio.current_time() == 8
        assert handle.value == 2


async def test_failures_before_started_are_retried(autojump_clock: trio.abc.Clock) -> None:
    attempts: list[float] = []

    async def warming(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        attempts.append(trio.current_time())
        await trio.sleep(1)
        if len(attempts) < 3:
            raise Boom(f"attempt {len(attempts)}")
        task_status.started()
        await trio.sleep_forever()

    async with Supervisor(policy=policy(restart="on_failure")) as sup:
        handle = await sup.start(warming)
        # attempts at 0, 2 (after 1 s backoff) and 5 (after 2 s); ready at 6
        assert attempts == [0, 2, 5]
        assert trio.current_time() == 6
        assert handle.restarts == 2
        assert isinstance(handle.last_error, Boom)


async def test_start_raises_once_the_intensity_is_reached(autojump_clock: trio.abc.Clock) -> None:
    errors: list[Boom] = []

    async def broken(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep(1)
        errors.append(Boom(f"attempt {len(errors)}"))
        raise errors[-1]

    async with Supervisor(policy=policy(max_restarts=2, within=100.0)) as sup:
        with pytest.raises(SupervisionError) as info:
            await sup.start(broken, name="broken")
        assert trio.current_time() == 1 + 1 + 1 + 2 + 1
        assert info.value.__cause__ is errors[-1]
        assert len(errors) == 3
        assert sup.children == ()


async def test_returning_before_started_is_a_failure(autojump_clock: trio.abc.Clock) -> None:
    async def forgetful(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep(1)

    async with Supervisor(policy=policy(restart="on_failure", max_restarts=0)) as sup:
        with pytest.raises(SupervisionError) as info:
            await sup.start(forgetful)
        assert isinstance(info.value.__cause__, RuntimeError)
        assert "without calling task_status.started()" in str(info.value.__cause__)


async def test_start_timeout_is_a_failure(autojump_clock: trio.abc.Clock) -> None:
    attempts: list[float] = []

    async def hung(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        attempts.append(trio.current_time())
        if len(attempts) < 2:
            await trio.sleep_forever()
        await trio.sleep(1)
        task_status.started()
        # the start timeout no longer applies once started
        await trio.sleep(100)
        raise Boom

    p = policy(start_timeout=5.0, restart="on_failure", max_restarts=1)
    async with Supervisor(policy=p) as sup:
        handle = await sup.start(hung)
        assert attempts == [0, 6]
        assert trio.current_time() == 7
        assert isinstance(handle.last_error, TimeoutError)
        assert "within 5.0 seconds" in str(handle.last_error)
        await trio.sleep(50)
        assert handle.state == "running"


async def test_stopped_before_ready_returns_a_stopped_handle(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def never_ready(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep_forever()

    async with Supervisor() as sup:
        events = collect(sup)

        async def stop_it() -> None:
            await trio.sleep(3)
            sup.children[0].stop_nowait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_it)
            handle = await sup.start(never_ready)
        assert handle.state == "stopped"
        assert handle.last_error is None
        assert trio.current_time() == 3
    assert [e.state for e in events] == ["starting", "stopped"]


async def test_child_returning_early_when_stopped_has_not_failed(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def polite(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            return  # leaves without started(), because it was asked to
        task_status.started()

    async with Supervisor() as sup:

        async def stop_it() -> None:
            await trio.sleep(1)
            assert await sup.children[0].stop() == "stopped"

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_it)
            handle = await sup.start(polite)
        assert handle.state == "stopped"
        assert handle.last_error is None
        assert handle.restarts == 0


async def test_cancelled_start_stops_the_child(autojump_clock: trio.abc.Clock) -> None:
    cleaned: list[float] = []

    async def slow(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await trio.sleep(10)
            task_status.started()
        finally:
            cleaned.append(trio.current_time())

    async with Supervisor() as sup:
        with trio.move_on_after(4):
            await sup.start(slow)
        await trio.sleep(0.5)
        assert cleaned == [4]
        assert sup.children == ()


async def test_started_twice_is_an_error(autojump_clock: trio.abc.Clock) -> None:
    async def twice(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        task_status.started()

    async with Supervisor(policy=policy(restart="never")) as sup:
        # the second call raises before start() even sees the first
        with pytest.raises(SupervisionError) as info:
            await sup.start(twice)
        assert isinstance(info.value.__cause__, RuntimeError)
        assert "twice" in str(info.value.__cause__)


# Bad input


async def test_a_sync_function_fails_like_any_child(autojump_clock: trio.abc.Clock) -> None:
    def not_async() -> None:
        pass

    async with Supervisor(policy=policy(restart="never")) as sup:
        handle = sup.start_soon(not_async)  # type: ignore[arg-type]
        with pytest.raises(SupervisionError) as info:
            await handle.wait()
        assert isinstance(info.value.__cause__, TypeError)

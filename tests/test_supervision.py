"""Tests of opex_trio.supervision, all in virtual time (pytest-trio's autojump_clock)."""

from __future__ import annotations

import functools
import logging
import math
import random
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from opex_trio import telemetry
from opex_trio.errors import ConfigError, SupervisionError, UsageError
from opex_trio.supervision import (
    ChildHandle,
    ChildStateChanged,
    RestartPolicy,
    Supervisor,
)

# Exact policies: no jitter, roomy intensity unless a test narrows it.
EXACT = RestartPolicy(
    backoff_initial=1.0,
    backoff_factor=2.0,
    backoff_max=5.0,
    jitter=0.0,
    max_restarts=100,
    within=1000.0,
    reset_after=None,
)


def policy(**changes: Any) -> RestartPolicy:
    return attrs.evolve(EXACT, **changes)


class Boom(Exception):
    pass


@attrs.define
class Recorder:
    """A child whose runs are scripted: each run sleeps, then fails or returns."""

    script: list[tuple[float, str]] = attrs.field(factory=list)
    calls: list[float] = attrs.field(factory=list)
    finished: list[float] = attrs.field(factory=list)
    errors: list[Boom] = attrs.field(factory=list)

    async def __call__(self) -> str:
        index = len(self.calls)
        self.calls.append(trio.current_time())
        try:
            sleep, outcome = self.script[index] if index < len(self.script) else (math.inf, "")
            await trio.sleep(sleep)
            if outcome == "fail":
                error = Boom(f"run {index}")
                self.errors.append(error)
                raise error
            return f"result {index}"
        finally:
            self.finished.append(trio.current_time())


def collect(sup: Supervisor) -> list[ChildStateChanged]:
    events: list[ChildStateChanged] = []
    sup._on_event = events.append
    return events


def state(handle: ChildHandle) -> str:
    # A plain call, so that type narrowing of handle.state does not outlive an await.
    return handle.state


def summary(events: list[ChildStateChanged]) -> list[tuple[Any, ...]]:
    return [(e.child, e.previous, e.state, e.restarts, e.delay, e.time) for e in events]


# Backoff


async def test_backoff_sequence_is_exact_and_capped(autojump_clock: trio.abc.Clock) -> None:
    child = Recorder([(0, "fail")] * 6 + [(math.inf, "")])
    async with Supervisor("sup", policy=EXACT) as sup:
        events = collect(sup)
        handle = sup.start_soon(child, name="c")
        await trio.sleep(100)
        assert child.calls == [0, 1, 3, 7, 12, 17, 22]
        assert handle.state == "running"
        assert handle.restarts == 6
        assert isinstance(handle.last_error, Boom)
        assert handle.last_error is child.errors[-1]
        delays = [e.delay for e in events if e.state == "restarting"]
        assert delays == [1, 2, 4, 5, 5, 5]
    assert handle.state == "stopped"


async def test_always_restarts_after_normal_return(autojump_clock: trio.abc.Clock) -> None:
    child = Recorder([(0.5, "return")] * 3 + [(math.inf, "")])
    async with Supervisor(policy=policy(restart="always")) as sup:
        handle = sup.start_soon(child)
        await trio.sleep(100)
        assert child.calls == [0, 1.5, 4, 8.5]
        assert handle.restarts == 3
        assert handle.last_error is None
        assert handle.state == "running"


async def test_reset_after_a_healthy_run_resets_backoff(autojump_clock: trio.abc.Clock) -> None:
    # Each run is healthy for 10 s, then fails.
    child = Recorder([(10, "fail")] * 4 + [(math.inf, "")])
    async with Supervisor(policy=policy(reset_after=10.0)) as sup:
        sup.start_soon(child)
        await trio.sleep(1000)
    assert child.calls == [0, 11, 22, 33, 44]

    child = Recorder([(10, "fail")] * 4 + [(math.inf, "")])
    began = trio.current_time()
    async with Supervisor(policy=policy(reset_after=10.5)) as sup:
        sup.start_soon(child)
        await trio.sleep(1000)
    assert [t - began for t in child.calls] == [0, 11, 23, 37, 52]


async def test_reset_after_counts_only_running_time(autojump_clock: trio.abc.Clock) -> None:
    # 3 s of startup then 2 s running: 2 s < reset_after, so no reset.
    calls: list[float] = []

    async def slow_start(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        calls.append(trio.current_time())
        await trio.sleep(3)
        task_status.started()
        if len(calls) < 4:
            await trio.sleep(2)
            raise Boom
        await trio.sleep_forever()

    async with Supervisor(policy=policy(reset_after=4.0)) as sup:
        await sup.start(slow_start)
        await trio.sleep(100)
    assert calls == [0, 6, 13, 22]


async def test_jitter_uses_the_injected_rng_and_only_lengthens(
    autojump_clock: trio.abc.Clock,
) -> None:
    jittery = policy(jitter=0.5, backoff_max=100.0)
    child = Recorder([(0, "fail")] * 4 + [(math.inf, "")])
    async with Supervisor(policy=jittery, rng=random.Random(7)) as sup:
        events = collect(sup)
        sup.start_soon(child)
        await trio.sleep(1000)
    reference = random.Random(7)
    expected = [jittery.delay(n, reference) for n in range(4)]
    delays = [e.delay for e in events if e.state == "restarting"]
    assert delays == expected
    for n, delay in enumerate(expected):
        assert jittery.base_delay(n) <= delay <= jittery.base_delay(n) * 1.5
    assert len({d / jittery.base_delay(n) for n, d in enumerate(expected)}) > 1
    times = [0.0]
    for delay in expected:
        times.append(times[-1] + delay)
    assert child.calls == pytest.approx(times, abs=1e-9)


def test_base_delay_overflow_is_capped() -> None:
    assert RestartPolicy(backoff_max=30.0).base_delay(10_000) == 30.0
    assert RestartPolicy(backoff_max=math.inf).base_delay(10_000) == math.inf
    assert RestartPolicy(backoff_max=math.inf, jitter=0.5).delay(10_000) == math.inf
    assert RestartPolicy(backoff_initial=0.0).delay(3) == 0.0


@pytest.mark.fuzz
@given(
    initial=st.floats(min_value=0, max_value=1e6),
    factor=st.floats(min_value=1, max_value=1e3),
    cap_extra=st.floats(min_value=0, max_value=1e6) | st.just(math.inf),
    jitter=st.floats(min_value=0, max_value=10),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_properties(
    initial: float, factor: float, cap_extra: float, jitter: float, seed: int
) -> None:
    p = RestartPolicy(
        backoff_initial=initial,
        backoff_factor=factor,
        backoff_max=initial + cap_extra,
        jitter=jitter,
    )
    rng = random.Random(seed)
    previous = 0.0
    for n in range(64):
        base = p.base_delay(n)
        assert base >= previous
        assert base <= p.backoff_max
        assert base >= min(initial, p.backoff_max)
        delay = p.delay(n, rng)
        assert base <= delay
        # A relative tolerance of a few ulps: base + base * jitter * r and
        # base * (1 + jitter) round differently.
        assert delay <= base * (1 + jitter) * (1 + 1e-12) or math.isinf(base)
        previous = base


# Intensity


async def test_intensity_reached_fails_with_cause_and_siblings_live_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    crashing = Recorder([(0, "fail")] * 10)
    sibling_ticks: list[float] = []

    async def sibling() -> None:
        while True:
            sibling_ticks.append(trio.current_time())
            await trio.sleep(10)

    async with Supervisor(policy=policy(max_restarts=2, within=10.0)) as sup:
        events = collect(sup)
        other = sup.start_soon(sibling)
        handle = sup.start_soon(crashing, name="crashing")
        # failures at 0, 1 and 3: the third restart within 10 s is one too many
        with pytest.raises(SupervisionError) as info:
            await handle.wait()
        assert trio.current_time() == 3
        assert crashing.calls == [0, 1, 3]
        error = info.value
        assert error.name == "crashing"
        assert error.restarts == 2
        assert error.__cause__ is crashing.errors[-1]
        assert handle.error is not None
        assert handle.error.__cause__ is crashing.errors[-1]
        assert handle.state == "failed"
        assert handle.restarts == 2
        assert handle.last_error is crashing.errors[-1]
        assert await handle.wait_running() == "failed"
        assert sup.children == (other,)
        failed = [e for e in events if e.state == "failed"]
        assert len(failed) == 1
        assert failed[0].error is handle.error
        # the supervisor and the sibling go on
        await trio.sleep(25)
        assert sibling_ticks == [0, 10, 20]
        assert other.state == "running"
        late = sup.start_soon(Recorder(), name="late")
        await trio.sleep(1)
        assert late.state == "running"
    assert other.state == "stopped"


async def test_intensity_window_slides(autojump_clock: trio.abc.Clock) -> None:
    # Failures 6 s apart never put two restarts within 5 s.
    child = Recorder([(5, "fail")] * 20 + [(math.inf, "")])
    async with Supervisor(policy=policy(max_restarts=1, within=5.0, backoff_max=1.0)) as sup:
        handle = sup.start_soon(child)
        await trio.sleep(200)
        assert handle.state == "running"
        assert handle.restarts == 20


async def test_intensity_window_is_inclusive(autojump_clock: trio.abc.Clock) -> None:
    # Restarts at exactly `within` seconds apart still count together (OTP's rule).
    child = Recorder([(0, "fail"), (0, "fail"), (0, "fail")])
    p = policy(max_restarts=1, within=1.0, backoff_initial=1.0, backoff_factor=1.0)
    async with Supervisor(policy=p) as sup:
        handle = sup.start_soon(child)
        with pytest.raises(SupervisionError):
            await handle.wait()
        assert trio.current_time() == 1
        assert child.calls == [0, 1]


async def test_max_restarts_zero_fails_on_first_failure(autojump_clock: trio.abc.Clock) -> None:
    child = Recorder([(2, "fail")])
    async with Supervisor(policy=policy(max_restarts=0)) as sup:
        handle = sup.start_soon(child)
        with pytest.raises(SupervisionError) as info:
            await handle.wait()
        assert trio.current_time() == 2
        assert info.value.restarts == 0
        assert info.value.__cause__ is child.errors[0]


# Restart modes


async def test_on_failure_stops_after_normal_return(autojump_clock: trio.abc.Clock) -> None:
    child = Recorder([(1, "fail"), (1, "fail"), (1, "return")])
    async with Supervisor(policy=policy(restart="on_failure")) as sup:
        events = collect(sup)
        handle = sup.start_soon(child, name="job")
        assert await handle.wait() == "done"
        assert trio.current_time() == 6
        assert handle.result == "result 2"
        assert child.calls == [0, 2, 5]
        assert handle.restarts == 2
        assert sup.children == ()
    assert handle.state == "done"
    assert events[-1].state == "done"
    assert events[-1].previous == "running"


async def test_never_policy_fails_at_first_failure(autojump_clock: trio.abc.Clock) -> None:
    child = Recorder([(1, "fail")])
    async with Supervisor(policy=policy(restart="never")) as sup:
        handle = sup.start_soon(child, name="once")
        with pytest.raises(SupervisionError, match="'never'") as info:
            await handle.wait()
        assert info.value.__cause__ is child.errors[0]
        assert info.value.restarts == 0
        assert child.calls == [0]


async def test_never_policy_done_after_normal_return(autojump_clock: trio.abc.Clock) -> None:
    child = Recorder([(1, "return")])
    async with Supervisor() as sup:
        handle = sup.start_soon(child, policy=policy(restart="never"))
        assert await handle.wait() == "done"
        assert handle.result == "result 0"
        assert handle.error is None


async def test_per_child_policy_overrides_the_default(autojump_clock: trio.abc.Clock) -> None:
    async with Supervisor(policy=policy(restart="never")) as sup:
        handle = sup.start_soon(Recorder([(1, "return")]), policy=policy(restart="on_failure"))
        assert handle.policy.restart == "on_failure"
        assert sup.policy.restart == "never"
        assert await handle.wait() == "done"


async def test_child_exception_group_is_a_failure(autojump_clock: trio.abc.Clock) -> None:
    async def with_nursery() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await trio.sleep(1)
            raise Boom("inner")

    async with Supervisor(policy=policy(restart="never")) as sup:
        handle = sup.start_soon(with_nursery)
        with pytest.raises(SupervisionError) as info:
            await handle.wait()
        cause = info.value.__cause__
        assert isinstance(cause, ExceptionGroup)
        assert cause.subgroup(Boom) is not None


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


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("restart", "sometimes"),
        ("backoff_initial", -1.0),
        ("backoff_initial", math.inf),
        ("backoff_initial", math.nan),
        ("backoff_initial", "1"),
        ("backoff_factor", 0.5),
        ("backoff_max", -1.0),
        ("jitter", -0.1),
        ("jitter", True),
        ("max_restarts", -1),
        ("max_restarts", 1.5),
        ("within", 0.0),
        ("reset_after", -1.0),
        ("start_timeout", 0.0),
    ],
)
def test_bad_policy_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"RestartPolicy.{field}"):
        RestartPolicy(**{field: value})


def test_backoff_max_below_initial_is_rejected() -> None:
    with pytest.raises(ConfigError, match="backoff_max"):
        RestartPolicy(backoff_initial=10.0, backoff_max=5.0)
    with pytest.raises(ConfigError, match="restart number"):
        RestartPolicy().base_delay(-1)


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


async def test_a_sync_function_fails_like_any_child(autojump_clock: trio.abc.Clock) -> None:
    def not_async() -> None:
        pass

    async with Supervisor(policy=policy(restart="never")) as sup:
        handle = sup.start_soon(not_async)  # type: ignore[arg-type]
        with pytest.raises(SupervisionError) as info:
            await handle.wait()
        assert isinstance(info.value.__cause__, TypeError)


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

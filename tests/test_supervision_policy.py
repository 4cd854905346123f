"""Tests of the restart policy: backoff, restart intensity and restart modes, in virtual time."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from opex_trio.errors import ConfigError, SupervisionError
from opex_trio.supervision import (
    RestartPolicy,
    Supervisor,
)
from tests.supervision_support import EXACT, Boom, Recorder, collect, policy

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

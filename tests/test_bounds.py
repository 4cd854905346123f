"""The bound every trio test runs under (tests/conftest.py) ends a test that would never end."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests import conftest
from tests.conftest import OverranBoundError, bounded_trio_run


def test_a_wait_that_never_ends_fails_in_virtual_time() -> None:
    with pytest.raises(OverranBoundError, match="virtual time"):
        bounded_trio_run(trio.sleep_forever, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_loop_that_never_waits_fails_in_real_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Its tasks never all wait, so the virtual clock never moves: only real time ends it.
    monkeypatch.setattr(conftest, "REAL_TIME_BOUND", 0.5)
    spins = 0

    async def spin() -> None:
        nonlocal spins
        while True:
            spins += 1
            await trio.lowlevel.checkpoint()

    with pytest.raises(OverranBoundError, match=r"within 0\.5 seconds:"):
        bounded_trio_run(spin, clock=trio.testing.MockClock(autojump_threshold=0))
    assert spins > 0


def test_a_real_time_wait_fails_at_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "REAL_TIME_BOUND", 0.2)
    with pytest.raises(OverranBoundError, match=r"within 0\.2 seconds:"):
        bounded_trio_run(trio.sleep_forever)


def test_a_test_that_ends_returns_its_value() -> None:
    async def answer() -> int:
        await trio.sleep(10)
        return 42

    assert bounded_trio_run(answer, clock=trio.testing.MockClock(autojump_threshold=0)) == 42


async def test_every_trio_test_gets_the_bound(request: pytest.FixtureRequest) -> None:
    trio_tests = [item for item in request.session.items if item.get_closest_marker("trio")]
    assert request.node in trio_tests
    for item in trio_tests:
        marker = item.get_closest_marker("trio")
        assert marker is not None and marker.kwargs.get("run") is bounded_trio_run, item.nodeid

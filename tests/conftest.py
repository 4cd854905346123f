"""Shared test setup: hypothesis profiles and fixtures that locate the real peers.

Hypothesis: ``HYPOTHESIS_PROFILE=fuzz`` (the nox ``fuzz`` session) runs every
property with a large budget and no deadline. Without it, properties run at
Hypothesis's default budget, also without a deadline.

Peers: the fixtures below return argv lists or paths from the ``peers`` module
(``tests/peers/__init__.py``). A test that uses one is marked ``peers``; when the
peer is not installed the test skips, or fails under ``OPEX_REQUIRE_PEERS=1``.

Bounds: every trio test, fixtures included, runs under one ``trio.fail_after``
(see :func:`bounded_trio_run`), so a bug that makes a test wait forever fails
that test instead of stalling the run. The bound is on the test's own clock: in
virtual time (``autojump_clock``) a wait that never ends jumps straight to it.
``pytest-timeout`` (``timeout`` in pyproject.toml) is the backstop for what a
trio deadline cannot reach: synchronous tests and a loop stuck outside trio.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, settings

from tests import peers

settings.register_profile(
    "fuzz",
    max_examples=5_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
# No per-example deadline in the normal run either: on a loaded two-core
# machine a heavy example can take longer than the default 200 ms, and a
# timing failure there would say nothing about the code.
settings.register_profile("default-no-deadline", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default-no-deadline"))


PEER_FIXTURES = frozenset(
    {
        "node22",
        "everything_stdio_command",
        "filesystem_command",
        "time_server_command",
        "conformance_command",
        "peers_python",
        "sdk_server_command",
    }
)


# Seconds a trio test may take, fixtures included. Real time: generous, so that a
# loaded two-core machine never trips it, and below pytest-timeout's backstop so
# that trio's own cancellation cleans up (processes, sockets) before that fires.
# Virtual time: a day, longer than any schedule a test drives (restart backoff,
# health checks, retry waits), and reached at once by a wait that never ends.
REAL_TIME_BOUND = 300.0
VIRTUAL_TIME_BOUND = 86_400.0


class OverranBoundError(AssertionError):
    """A test overran the bound every test runs under (see :data:`REAL_TIME_BOUND`)."""


class _RealTimeGuard(trio.abc.Instrument):
    """Cancels the test's scope once real time passes the bound, whatever its clock says.

    A virtual clock only jumps when every task waits, so a test whose tasks never
    stop running (a restart loop with no delay, say) would never reach a bound in
    virtual time. The scheduler calls this hook on every pass, so the check is
    one clock read a pass.
    """

    def __init__(self, scope: trio.CancelScope, bound: float) -> None:
        self.scope = scope
        self.deadline = time.monotonic() + bound
        self.fired = False

    def before_io_wait(self, timeout: float) -> None:
        if not self.fired and time.monotonic() > self.deadline:
            self.fired = True
            self.scope.cancel()


def bounded_trio_run(
    fn: Callable[[], Awaitable[Any]],
    *,
    clock: trio.abc.Clock | None = None,
    instruments: Sequence[trio.abc.Instrument] = (),
) -> Any:
    """``trio.run`` with the whole test (fixtures too) bounded in its own time and in real time.

    pytest-trio calls the ``run`` of a test's ``trio`` marker with the test and
    its clock; :func:`pytest_collection_modifyitems` gives every trio test this
    one.
    """
    real_bound = REAL_TIME_BOUND
    own_bound = real_bound if clock is None else VIRTUAL_TIME_BOUND
    scope = trio.CancelScope()
    guard = _RealTimeGuard(scope, real_bound)

    async def bounded() -> Any:
        # The bound on the test's own clock; in virtual time a wait that never ends
        # reaches it at once.
        scope.deadline = trio.current_time() + own_bound
        with scope:
            return await fn()
        if guard.fired or clock is None:
            within = f"{real_bound:g} seconds"
        else:
            within = f"{own_bound:g} seconds of virtual time"
        raise OverranBoundError(
            f"the test did not end within {within}: it waits for something that never "
            "happens, or loops without end"
        )

    return trio.run(bounded, clock=clock, instruments=[*instruments, guard])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark peer tests with ``peers`` (so ``-m "not peers"`` works); bound every trio test."""
    for item in items:
        if PEER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.peers)
        if item.get_closest_marker("trio") is not None:
            # First, so that pytest-trio takes this ``run`` over the one its trio
            # mode marked the test with.
            item.add_marker(pytest.mark.trio(run=bounded_trio_run), append=False)


@pytest.fixture(autouse=True)
def _fresh_era_memory() -> None:
    """Each test detects eras afresh: the memory is per process, and ports get reused."""
    from opex_trio.mcp._eras import ERAS

    ERAS.clear()


@pytest.fixture
def node22() -> str:
    """Path of a Node.js 22 or newer."""
    return peers.node22()


@pytest.fixture
def everything_stdio_command() -> list[str]:
    """Argv that starts ``@modelcontextprotocol/server-everything`` over stdio."""
    return peers.everything_stdio_command()


@pytest.fixture
def filesystem_command(tmp_path: os.PathLike[str]) -> list[str]:
    """Argv that starts ``server-filesystem`` over stdio, allowed only ``tmp_path``."""
    return peers.filesystem_command(tmp_path)


@pytest.fixture
def time_server_command() -> list[str]:
    """Argv that starts ``mcp-server-time`` over stdio (local timezone UTC)."""
    return peers.time_server_command()


@pytest.fixture
def conformance_command() -> list[str]:
    """Argv prefix of the official MCP conformance suite."""
    return peers.conformance_command()


@pytest.fixture
def peers_python() -> str:
    """The Python of the peers venv (the official ``mcp`` SDK is importable there)."""
    return peers.peers_python()


@pytest.fixture
def sdk_server_command() -> list[str]:
    """Argv that starts the official-SDK peer server over Streamable HTTP (it prints its URL)."""
    return peers.sdk_server_command("streamable-http")

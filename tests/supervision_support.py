"""Helpers shared by the tests of opex_trio.supervision (the test_supervision*.py files)."""

from __future__ import annotations

import math
from typing import Any

import attrs
import trio

from opex_trio.supervision import ChildHandle, ChildStateChanged, RestartPolicy, Supervisor

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

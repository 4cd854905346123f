"""Every transport passes the same contract check (opex_trio.testing.contract)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import pytest
import trio
import trio.testing

from opex_trio.testing.contract import CHECKS
from opex_trio.transports.base import Transport
from tests.transports.support import KINDS, make_subject


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("kind", KINDS)
async def test_transport_contract(kind: str, check: str, nursery: trio.Nursery) -> None:
    subject = await make_subject(kind, nursery)
    await CHECKS[check](subject)
    nursery.cancel_scope.cancel()


async def test_the_cancellation_check_still_checks_a_transport_that_starts_slowly(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A transport that leaks a task is caught however long it takes to connect."""
    subject = await make_subject("memory", nursery)

    @asynccontextmanager
    async def slow_and_leaky() -> AsyncIterator[Transport]:
        await trio.sleep(5.0)  # longer than any fixed pause before the cancellation
        nursery.start_soon(trio.sleep_forever, name="opex_trio.transports.leaked")
        async with subject.factory() as transport:
            yield transport

    with pytest.raises(AssertionError, match=r"opex_trio\.transports\.leaked"):
        await CHECKS["cancellation"](attrs.evolve(subject, factory=slow_and_leaky))
    nursery.cancel_scope.cancel()

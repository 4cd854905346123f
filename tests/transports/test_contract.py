"""Every transport passes the same contract check (opex_trio.testing.contract)."""

from __future__ import annotations

import pytest
import trio

from opex_trio.testing.contract import CHECKS
from tests.transports.support import KINDS, make_subject


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("kind", KINDS)
async def test_transport_contract(kind: str, check: str, nursery: trio.Nursery) -> None:
    subject = await make_subject(kind, nursery)
    await CHECKS[check](subject)
    nursery.cancel_scope.cancel()

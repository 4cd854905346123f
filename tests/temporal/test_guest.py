"""Trio in guest mode inside asyncio: jobs, their errors, cancellation both ways, shutdown."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

pytest.importorskip("temporalio", reason="the 'temporal' extra is not installed")

from opex_trio.errors import UsageError
from opex_trio.temporal._guest import TrioGuest

CALLER = contextvars.ContextVar[str]("caller", default="none")


class Resources:
    def __init__(self) -> None:
        self.closed = False


def guest_with(log: list[str]) -> TrioGuest[Resources]:
    @asynccontextmanager
    async def open_resources() -> AsyncIterator[Resources]:
        resources = Resources()
        log.append("opened")
        try:
            yield resources
        finally:
            # Closing may await, as a SessionManager stopping its servers does.
            with trio.CancelScope(shield=True):
                await trio.sleep(0.01)
            resources.closed = True
            log.append("closed")

    return TrioGuest(open_resources)


def test_jobs_run_in_trio_with_the_callers_context_and_errors_pass_unchanged() -> None:
    log: list[str] = []

    async def main() -> None:
        guest = guest_with(log)
        await guest.start()

        async def job(resources: Resources) -> str:
            await trio.sleep(0)
            trio.lowlevel.current_task()  # raises outside trio
            return f"{CALLER.get()} {resources.closed}"

        CALLER.set("activity")
        assert await guest.run(job) == "activity False"

        async def fail(resources: Resources) -> None:
            raise KeyError("mine")

        with pytest.raises(KeyError, match="mine"):
            await guest.run(fail)
        resources = guest.resources
        await guest.stop()
        assert resources.closed
        with pytest.raises(UsageError, match="not running"):
            await guest.run(job)

    asyncio.run(main())
    assert log == ["opened", "closed"]


def test_cancelling_the_asyncio_caller_cancels_the_trio_job_and_waits_for_it() -> None:
    async def main() -> None:
        guest = guest_with([])
        await guest.start()
        started = asyncio.Event()
        unwound: list[str] = []

        async def hang(resources: Resources) -> None:
            started.set()
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await trio.sleep(0.01)  # cleanup that awaits, as a cancelled MCP call does
                unwound.append("done")

        task = asyncio.create_task(guest.run(hang))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The caller saw the cancellation only after the trio side unwound.
        assert unwound == ["done"]
        await guest.stop()

    asyncio.run(main())


def test_stopping_cancels_running_jobs_and_their_callers_see_it() -> None:
    async def main() -> None:
        guest = guest_with([])
        await guest.start()
        started = asyncio.Event()

        async def hang(resources: Resources) -> None:
            started.set()
            await trio.sleep_forever()

        task = asyncio.create_task(guest.run(hang))
        await started.wait()
        await guest.stop()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_failure_to_open_the_resources_is_raised_by_start() -> None:
    fail = True

    @asynccontextmanager
    async def broken() -> AsyncIterator[None]:
        await trio.sleep(0)
        if fail:  # a server that cannot start
            raise OSError("no such server")
        yield

    async def main() -> None:
        guest = TrioGuest(broken)
        with pytest.raises(OSError, match="no such server"):
            await guest.start()

    asyncio.run(main())

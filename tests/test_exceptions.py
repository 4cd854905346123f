"""one_exception: whatever group escapes becomes the one exception a caller would catch."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from opex_trio._exceptions import one_exception


class Boom(Exception):
    pass


async def test_a_lone_error_comes_back_as_itself_with_its_own_context() -> None:
    try:
        raise KeyError("before")
    except KeyError as earlier:
        boom = Boom("inside")
        boom.__context__ = earlier
    with pytest.raises(Boom) as info, one_exception():
        async with trio.open_nursery():
            raise boom
    assert info.value is boom
    assert isinstance(boom.__context__, KeyError)


async def test_several_errors_raise_one_and_name_the_others() -> None:
    errors = [Boom("one"), Boom("two")]

    async def fail(exc: Exception) -> None:
        raise exc

    async def both() -> None:
        with one_exception():
            async with trio.open_nursery() as nursery:
                for exc in errors:
                    nursery.start_soon(fail, exc)

    with pytest.raises(Boom) as info:
        await both()
    chosen = info.value
    (other,) = [e for e in errors if e is not chosen]
    assert chosen.__notes__ == [f"raised together with Boom: {other}"]


async def test_interrupts_win_over_errors_and_errors_over_cancellation() -> None:
    group: Any = BaseExceptionGroup("g", [Boom("x"), KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt), one_exception():
        raise group


async def test_only_cancellations_are_one_cancelled_the_scope_catches() -> None:
    caught: list[BaseException] = []
    with trio.CancelScope() as scope:
        try:
            with one_exception():
                async with trio.open_nursery() as nursery:
                    for _ in range(3):
                        nursery.start_soon(trio.sleep_forever)
                    await trio.sleep(0)
                    scope.cancel()
                    await trio.sleep_forever()
        except trio.Cancelled as exc:
            caught.append(exc)
            raise
    assert scope.cancelled_caught
    assert len(caught) == 1


async def test_the_blocks_own_group_comes_back_whole() -> None:
    mine = ExceptionGroup("mine", [Boom("one"), KeyError("two")])
    raised: list[BaseException] = []

    async def block() -> None:
        with one_exception(raised):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep_forever)
                try:
                    raise mine
                except BaseException as exc:
                    raised.append(exc)
                    raise
                finally:
                    nursery.cancel_scope.cancel()

    with pytest.raises(ExceptionGroup) as info:
        await block()
    # Trio's scope hands back a rebuilt copy; the block's own object is what comes out.
    assert info.value is mine

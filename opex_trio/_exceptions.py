"""Unwrapping trio's exception groups at our public boundaries, and copying errors.

Trio wraps whatever escapes a nursery in an :class:`ExceptionGroup` (strict
exception groups). Our context managers own nurseries, but a user who writes
``async with client:`` and raises ``ValueError`` inside, or whose server fails
to start, should see that one exception, not a group around it. Where exactly
one real exception is inside, :func:`unwrap_single` raises it alone; groups
with several real exceptions stay groups, since choosing one would hide the
others.

An error that several callers raise, or that is kept for later, is copied
first. Raising an exception appends the frames it passes through to its
``__traceback__``, and frames keep their locals alive: one instance raised in
every caller of a dead connection kept all of those callers' frames (and what
they referenced) for as long as the instance lived. :func:`copy_error` gives
each caller its own instance; :func:`detached` makes the copy that is stored
(a server's last error, an event): the same type, message, attributes and
cause, with no frames anywhere in its chain.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import trio

__all__ = [
    "copy_error",
    "detached",
    "leaves",
    "one_exception",
    "raise_unchanged",
    "unwrap_single",
]

E = TypeVar("E", bound=BaseException)


def copy_error(error: E) -> E:
    """A new instance of ``error``: same type, message, attributes and cause; no traceback."""
    try:
        new = copy.copy(error)
    except Exception:  # noqa: BLE001 - an __init__ that cannot be called again with .args
        new = type(error).__new__(type(error))
        new.args = error.args
        if hasattr(error, "__dict__"):
            new.__dict__.update(error.__dict__)
    new.__cause__ = error.__cause__
    new.__context__ = error.__context__
    new.__suppress_context__ = error.__suppress_context__
    new.__traceback__ = None
    return new


def detached(error: E) -> E:
    """A copy of ``error`` to keep: no traceback in it or in its causes, no implicit context."""
    if isinstance(error, BaseExceptionGroup):
        new: BaseException = error.derive([detached(e) for e in error.exceptions])
        new.__cause__ = error.__cause__
        new.__suppress_context__ = error.__suppress_context__
    else:
        new = copy_error(error)
    if new.__cause__ is not None:
        new.__cause__ = detached(new.__cause__)
    new.__context__ = None
    new.__traceback__ = None
    return new  # type: ignore[return-value]


def leaves(group: BaseException) -> list[BaseException]:
    """The non-group exceptions inside ``group`` (or ``[group]`` when it is not a group)."""
    if isinstance(group, BaseExceptionGroup):
        return [leaf for inner in group.exceptions for leaf in leaves(inner)]
    return [group]


@contextmanager
def unwrap_single() -> Iterator[None]:
    """Re-raise a group holding one real exception (besides ``Cancelled``) as that exception."""
    try:
        yield
    except BaseExceptionGroup as group:
        found = leaves(group)
        real = [e for e in found if not isinstance(e, trio.Cancelled)]
        # ``from <its own cause>`` keeps the exception's cause and hides the group.
        if len(real) == 1:
            raise real[0] from real[0].__cause__
        if not real and len(found) == 1:
            raise found[0] from found[0].__cause__
        raise


def _rank(exc: BaseException) -> int:
    # KeyboardInterrupt and SystemExit first, then errors, then cancellation.
    if isinstance(exc, trio.Cancelled):
        return 2
    return 1 if isinstance(exc, Exception) else 0


def raise_unchanged(exc: BaseException) -> NoReturn:
    """Raise ``exc`` again with its own cause and context, not the group it was found in."""
    cause, context, suppress = exc.__cause__, exc.__context__, exc.__suppress_context__
    try:
        raise exc
    finally:
        exc.__cause__, exc.__context__, exc.__suppress_context__ = cause, context, suppress


def _is_copy_of(member: BaseException, target: BaseException) -> bool:
    # Trio's cancel scopes rebuild the groups they pass (to strip Cancelled),
    # so a group of the caller's own comes back as a copy with the same leaves.
    if member is target:
        return True
    if type(member) is not type(target) or not isinstance(member, BaseExceptionGroup):
        return False
    assert isinstance(target, BaseExceptionGroup)
    mine, theirs = leaves(member), leaves(target)
    return (
        member.message == target.message
        and len(mine) == len(theirs)
        and all(a is b for a, b in zip(mine, theirs, strict=True))
    )


def _holds(group: BaseExceptionGroup[BaseException], target: BaseException) -> bool:
    return any(
        _is_copy_of(member, target)
        or (isinstance(member, BaseExceptionGroup) and _holds(member, target))
        for member in group.exceptions
    )


@contextmanager
def one_exception(raised_by_block: Sequence[BaseException] = ()) -> Iterator[None]:
    """Re-raise whatever group escapes as the one exception a caller would catch.

    ``raised_by_block`` holds what the caller's own code raised inside (the
    caller fills it while the context runs): when that very object is in the
    group and is not a cancellation, it is raised as it is, even if it is a
    group of the caller's own. Otherwise the first
    ``KeyboardInterrupt``/``SystemExit``, else the first error, else the first
    ``Cancelled``, raised as the object it is. Other errors in the group are
    named in a note on it rather than lost without a word.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        for own in raised_by_block:
            # The block's own group may arrive as it is (an inner boundary already
            # unwrapped it) or inside the group a nursery made around it.
            if not isinstance(own, trio.Cancelled) and (
                _is_copy_of(group, own) or _holds(group, own)
            ):
                raise_unchanged(own)
        found = sorted(leaves(group), key=_rank)
        chosen = found[0]
        others = [e for e in found[1:] if not isinstance(e, trio.Cancelled) and e is not chosen]
        if others:
            named = "; ".join(f"{type(e).__name__}: {e}" for e in others[:5])
            more = f" and {len(others) - 5} more" if len(others) > 5 else ""
            chosen.add_note(f"raised together with {named}{more}")
        raise_unchanged(chosen)

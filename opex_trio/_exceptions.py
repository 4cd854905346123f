"""Unwrapping trio's exception groups at our public boundaries.

Trio wraps whatever escapes a nursery in an :class:`ExceptionGroup` (strict
exception groups). Our context managers own nurseries, but a user who writes
``async with client:`` and raises ``ValueError`` inside, or whose server fails
to start, should see that one exception, not a group around it. Where exactly
one real exception is inside, :func:`unwrap_single` raises it alone; groups
with several real exceptions stay groups, since choosing one would hide the
others.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

__all__ = ["leaves", "unwrap_single"]


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

"""Request metadata that the calls made in one context carry, without passing it through.

Code that runs tool calls on behalf of something larger (a durable run's step)
sets the ``_meta`` every ``tools/call`` made inside a block should carry::

    with call_meta({EXECUTION_ID_META: key}):
        await chat_step(...)  # any SessionManager.call_tool in here sends it

It is a context variable, so it follows the task that set it (and the tasks it
starts), never a concurrent one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ..transports.base import EXECUTION_ID_META

__all__ = ["EXECUTION_ID_META", "call_meta", "current_call_meta"]

_META: ContextVar[Mapping[str, Any] | None] = ContextVar("opex_trio_call_meta", default=None)


@contextmanager
def call_meta(meta: Mapping[str, Any]) -> Iterator[None]:
    """Make every tool call in the block carry ``meta`` in its request ``_meta``."""
    token = _META.set(dict(meta))
    try:
        yield
    finally:
        _META.reset(token)


def current_call_meta() -> Mapping[str, Any] | None:
    """The ``_meta`` set by the innermost :func:`call_meta` of this context, if any."""
    return _META.get()

"""Response bodies whose iterators are closed with the response.

httpx2's default transport reads a response body through a generator of the
connection (httpcore2's) inside a generator of its own; when a reader stops
before the end (an SSE stream left once its answer came, an error body read
only in part), the outer generator is closed but the inner one is abandoned
unfinished. Trio reports every such generator as a ``ResourceWarning`` when
the garbage collector finds it: two per request in a user's program, an
error under ``-W error``. :func:`close_body_with_response` wraps the
connection's stream so that closing the response closes every iterator taken
from it, at once and in the task that closes it.

The wrapping reaches into two private attributes of httpx2; where they are
absent (another transport, another release) the response is left as it is.
"""

from __future__ import annotations

from typing import Any

import httpx2

__all__ = ["close_body_with_response"]


class _ClosingBody:
    """A connection-level body stream that closes the iterators it handed out."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._iterators: list[Any] = []

    def __aiter__(self) -> Any:
        iterator = self._stream.__aiter__()
        self._iterators.append(iterator)
        return iterator

    async def aclose(self) -> None:
        iterators, self._iterators = self._iterators, []
        try:
            for iterator in iterators:
                close = getattr(iterator, "aclose", None)
                if close is not None:
                    await close()
        finally:
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                await close()


def close_body_with_response(response: httpx2.Response) -> None:
    """Make closing ``response`` close every iterator over its body."""
    outer = getattr(response.stream, "_stream", None)  # the client's timing wrapper
    inner = getattr(outer, "_httpcore_stream", None)  # the default transport's body
    if inner is not None and not isinstance(inner, _ClosingBody):
        outer._httpcore_stream = _ClosingBody(inner)  # type: ignore[union-attr]

r"""Reading a chat completion's Server-Sent Events, with a deadline between events.

Theory of operation
-------------------

:class:`EventReader` reads the response body piece by piece (each piece is
what one read of the connection gave), splits it into lines and gathers the
lines into events as the SSE format says: ``data:`` lines accumulate, a blank
line ends the event, ``event:`` names it, lines starting with ``:`` are
comments, ``id:`` and ``retry:`` are read and dropped (a chat completion is
never resumed). Lines end in ``\n``, ``\r\n`` or ``\r``.

:meth:`EventReader.read` returns the events one piece completed, often
none (a piece may end mid-line) and often many (a fast server's events arrive
together). Work per event is a few string operations on lines already split
in bulk; the stream's per-chunk cost is this, the JSON decoding and the
assembler, so nothing here runs per byte in Python.

The deadline: each read of the body is bounded by ``gap`` seconds counted
from the moment the reader last completed an event (or from the start); a
server that sends bytes but never finishes an event (one byte a second, or
keep-alive comments only) runs into it as surely as one that sends nothing.
Time the caller spends between reads is not counted: the clock restarts when
the next read begins after an event. One cancel scope per read of the
connection, not per event.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import AsyncIterator

import httpx2
import trio

__all__ = ["EventReader", "EventTimeoutError"]

# The SSE default event type; named events ("error") are compared with it.
MESSAGE = "message"


class EventTimeoutError(Exception):
    """No event completed within the reader's ``gap`` (internal; the stream maps it)."""

    def __init__(self, gap: float) -> None:
        super().__init__(f"no event arrived within {gap:g} s")
        self.gap = gap


class EventReader:
    """Turns a streamed response body into ``(event type, data)`` pairs.

    ``gap`` is the longest wait in seconds for the next event, ``None`` for no
    limit; ``deadline`` (trio time), when given, is the first event's.
    """

    __slots__ = (
        "_chunks",
        "_data",
        "_deadline",
        "_decode",
        "_ended",
        "_event",
        "_fresh",
        "_gap",
        "_parts",
        "_started",
    )

    def __init__(
        self, response: httpx2.Response, gap: float | None, deadline: float | None = None
    ) -> None:
        self._chunks: AsyncIterator[bytes] = response.aiter_bytes()
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        # The unfinished line, in pieces (joined once its end arrives).
        self._parts: list[str] = []
        self._data: list[str] = []
        self._event = MESSAGE
        self._gap = gap
        self._deadline = math.inf if deadline is None else deadline
        # Whether the deadline restarts at the next read: at the start (unless
        # the first deadline is given), and after a read that completed an event.
        self._fresh = deadline is None
        self._started = False
        self._ended = False

    async def read(self) -> list[tuple[str, str]] | None:
        """The events the next piece of the body completes; ``None`` at the body's end.

        Raises :class:`EventTimeoutError` when the deadline passes, and what
        httpx2 raises when the connection breaks.
        """
        if self._ended:
            return None
        gap = self._gap
        if gap is None:
            try:
                raw = await self._chunks.__anext__()
            except StopAsyncIteration:
                return self._finish()
        else:
            if self._fresh:
                self._deadline = trio.current_time() + gap
                self._fresh = False
            with trio.CancelScope(deadline=self._deadline) as scope:
                try:
                    raw = await self._chunks.__anext__()
                except StopAsyncIteration:
                    return self._finish()
            if scope.cancelled_caught:
                raise EventTimeoutError(gap)
        events = self._feed(self._decode(raw))
        if events:
            self._fresh = True
        return events

    def _finish(self) -> list[tuple[str, str]] | None:
        self._ended = True
        text = self._decode(b"", True)
        if self._parts and self._parts[-1] == "\r":
            # A "\r" held back for a "\n" that never came ended its line.
            text += "\n"
        # An event without its blank line is incomplete and dropped, as the
        # SSE rules say; so is a line without its end.
        return self._feed(text) or None

    def _feed(self, text: str) -> list[tuple[str, str]]:
        if not self._started:
            if not text:
                return []
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        parts = self._parts
        if "\n" not in text and "\r" not in text:
            if text:
                parts.append(text)
            return []
        if parts:
            parts.append(text)
            text = "".join(parts)
            parts.clear()
        if "\r" in text:
            if text[-1] == "\r":
                # A "\n" may follow in the next piece: the two end one line.
                parts.append("\r")
                text = text[:-1]
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        tail = lines.pop()
        if tail:
            if parts:
                parts.insert(0, tail)
            else:
                parts.append(tail)
        events: list[tuple[str, str]] = []
        data = self._data
        for line in lines:
            if line:
                if line[:5] == "data:":
                    data.append(line[6:] if line[5:6] == " " else line[5:])
                elif line[0] != ":":
                    field, _, value = line.partition(":")
                    if value[:1] == " ":
                        value = value[1:]
                    if field == "data":
                        data.append(value)
                    elif field == "event":
                        self._event = value or MESSAGE
            else:
                if data:
                    events.append((self._event, data[0] if len(data) == 1 else "\n".join(data)))
                    data.clear()
                self._event = MESSAGE
        return events

    async def drain(self) -> None:
        """Read the rest of the body (so the connection can be used again)."""
        async for _ in self._chunks:
            pass

    async def aclose(self) -> None:
        """Stop reading the body."""
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()

"""An incremental Server-Sent Events parser with a size limit per event.

It follows the WHATWG event-stream rules (lines end with CRLF, LF or CR; a
blank line dispatches; ``data`` lines join with LF; ``id`` and ``retry``
update the stream's state even on events without data, which are reported
too, with empty ``data``) and never holds more
than the limit of one event: the data of an event over the limit is dropped
as it arrives, keeping only its first bytes, so the request it answered can
still be named and failed while the stream goes on. httpx2's own parser
bounds events only in newer releases and raises at the first oversized one,
which would end the stream.
"""

from __future__ import annotations

import attrs

__all__ = ["SseDecoder", "SseEvent"]

_HEAD = 256


@attrs.frozen
class SseEvent:
    """One dispatched event. ``size`` over the limit means ``data`` holds only its head."""

    event: str
    data: str
    id: str | None
    retry: int | None
    size: int
    oversized: bool = False


class SseDecoder:
    """Feed bytes, get :class:`SseEvent` objects; ``max_event_size`` bounds one event's data."""

    def __init__(self, max_event_size: int) -> None:
        self.max_event_size = max_event_size
        self.last_event_id: str | None = None
        self._pending = b""
        self._skipping_line = False
        self._line_head = b""
        self._started = False
        self._reset()

    def _reset(self) -> None:
        self._event = ""
        self._data: list[bytes] = []
        self._size = 0
        self._oversized = False
        self._head = b""
        self._retry: int | None = None
        self._has_id = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Parse ``chunk``; return the events it completed."""
        if not self._started:
            if not chunk:
                return []
            self._started = True
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        data = self._pending + chunk
        events: list[SseEvent] = []
        start = 0
        while True:
            cr = data.find(b"\r", start)
            lf = data.find(b"\n", start)
            ends = [i for i in (cr, lf) if i >= 0]
            if not ends:
                break
            end = min(ends)
            if data[end : end + 1] == b"\r":
                if end + 1 == len(data):
                    break  # a CR at the end: wait to see whether LF follows
                after = end + 2 if data[end + 1 : end + 2] == b"\n" else end + 1
            else:
                after = end + 1
            line = data[start:end]
            if self._skipping_line:
                line = self._line_head
                self._skipping_line = False
                self._line_head = b""
                self._note_oversized(len(line) + 1)
            event = self._line(line)
            if event is not None:
                events.append(event)
            start = after
        rest = data[start:]
        if len(rest) > self.max_event_size + 64:
            # A line without end beyond any event's limit: keep its head only.
            if not self._skipping_line:
                self._skipping_line = True
                self._line_head = rest[: _HEAD + 16]
            self._size += len(rest)
            rest = b""
        self._pending = rest
        return events

    def end(self) -> list[SseEvent]:
        """The stream ended: a final CR still ends its line; an unfinished event is dropped."""
        if self._pending.endswith(b"\r"):
            return self.feed(b"\n")
        return []

    def _note_oversized(self, size: int) -> None:
        self._size += size
        self._oversized = True

    def _line(self, raw: bytes) -> SseEvent | None:
        if not raw:
            return self._dispatch()
        if raw.startswith(b":"):
            return None
        name, colon, value = raw.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._size += len(value) + 1
            if self._oversized or self._size > self.max_event_size:
                if not self._oversized:
                    self._head = b"\n".join(self._data)[:_HEAD]
                    self._data = []
                    self._oversized = True
                if len(self._head) < _HEAD:
                    self._head = (self._head + value)[:_HEAD]
            else:
                self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
                self._has_id = True
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data and not self._oversized and self._retry is None and not self._has_id:
            self._reset()
            return None
        payload = self._head if self._oversized else b"\n".join(self._data)
        event = SseEvent(
            event=self._event or "message",
            data=payload.decode("utf-8", "replace"),
            id=self.last_event_id,
            retry=self._retry,
            size=max(self._size - 1, 0),
            oversized=self._oversized,
        )
        self._reset()
        return event

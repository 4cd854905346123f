"""Newline-delimited framing for the stdio transport, with a size limit.

Theory of operation
-------------------
MCP over stdio sends one JSON-RPC message per line, UTF-8, with no embedded
newline. :class:`LineFramer` is fed whatever bytes the pipe gave and returns
the complete lines found so far; a partial line waits in the buffer for the
next feed.

A peer that never sends a newline must not make us buffer without end, so the
framer has a limit. When the bytes of the current line pass it, the framer
switches to *discarding*: it drops everything up to the next newline, then
goes back to normal, and reports the oversized line once as a
:class:`~opex_trio.errors.MessageTooLargeError` in the output list, where the
line would have been. The connection therefore recovers by itself, and the
caller decides whether an oversized message is fatal.
"""

from __future__ import annotations

from ..errors import MessageTooLargeError

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "LineFramer"]

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
"""Default limit for one message: 64 MiB.

Real tool results are large: a file read whole, a screenshot, a query's rows.
64 MiB takes a 20 MiB file even as base64 text (a third larger) with room to
spare, while one runaway message from a broken server still costs at most
that much memory per connection, never all of it."""

_HEAD = 256


class LineFramer:
    """Split a byte stream into lines of at most ``max_size`` bytes (newline excluded)."""

    __slots__ = ("_buffer", "_discarded", "_discarding", "_head", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_size <= 0:
            raise ValueError(f"max_size must be positive, got {max_size}")
        self.max_size = max_size
        self._buffer = bytearray()
        self._discarding = False
        self._discarded = 0
        self._head = b""

    def feed(self, data: bytes) -> list[bytes | MessageTooLargeError]:
        """Take more bytes; return the lines they complete, in order.

        Blank lines (and a carriage return before the newline) are dropped. An oversized
        line comes out as a :class:`MessageTooLargeError` in its place.
        """
        if not self._discarding and not self._buffer and b"\r" not in data:
            # The common case, in bulk: whole lines, none too large, no carriage return.
            lines = data.split(b"\n")
            if max(map(len, lines)) <= self.max_size:
                rest = lines.pop()
                if rest:
                    self._buffer += rest
                return [line for line in lines if line and not line.isspace()]
        out: list[bytes | MessageTooLargeError] = []
        start = 0
        end = len(data)
        while start < end:
            nl = data.find(b"\n", start)
            if self._discarding:
                if nl < 0:
                    self._discarded += end - start
                    return out
                self._discarded += nl - start
                out.append(self._too_large(self._discarded, self._head))
                self._discarding = False
                self._discarded = 0
                start = nl + 1
                continue
            if nl < 0:
                self._buffer += data[start:end]
                if len(self._buffer) > self.max_size:
                    self._discarding = True
                    self._discarded = len(self._buffer)
                    self._head = bytes(self._buffer[:_HEAD])
                    self._buffer.clear()
                return out
            if self._buffer:
                self._buffer += data[start:nl]
                line = bytes(self._buffer)
                self._buffer.clear()
            else:
                line = data[start:nl]
            start = nl + 1
            # The limit counts the raw line, so it holds the same however the
            # bytes were split into chunks.
            if len(line) > self.max_size:
                out.append(self._too_large(len(line), line[:_HEAD]))
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.strip():
                out.append(line)
        return out

    def pending(self) -> int:
        """How many bytes of an unfinished line are buffered (or were discarded so far)."""
        return self._discarded if self._discarding else len(self._buffer)

    def _too_large(self, size: int, head: bytes) -> MessageTooLargeError:
        return MessageTooLargeError(
            f"a message of {size} bytes exceeds the limit of {self.max_size} bytes "
            "and was discarded",
            size=size,
            limit=self.max_size,
            head=head,
        )

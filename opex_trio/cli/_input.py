"""Lines from stdin, read without blocking trio and without a thread.

The reader waits for the descriptor to be readable (trio's epoll or kqueue),
then reads what is there, so a Ctrl-C or a cancellation can end the wait at
any moment. It never switches stdin to non-blocking mode: on a terminal, stdin
and stdout share one open file, and a non-blocking stdout could fail a write.
Descriptors the system cannot poll (regular files, ``/dev/null``) are always
ready, so they are read directly.
"""

from __future__ import annotations

import os

import trio

_READ_SIZE = 65536


class LineReader:
    """Reads ``fd`` line by line; :meth:`readline` returns ``None`` at end of input."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self._buffer = b""
        self._eof = False
        self._pollable = True

    async def _read_some(self) -> bytes:
        if self._pollable:
            try:
                await trio.lowlevel.wait_readable(self.fd)
            except OSError:
                # epoll refuses regular files and /dev/null: they never block.
                self._pollable = False
        if not self._pollable:
            await trio.lowlevel.checkpoint()
        try:
            return os.read(self.fd, _READ_SIZE)
        except OSError:
            return b""

    async def readline(self) -> str | None:
        """The next line without its line break, or ``None`` when the input has ended."""
        while b"\n" not in self._buffer and not self._eof:
            data = await self._read_some()
            if not data:
                self._eof = True
            self._buffer += data
        if not self._buffer:
            return None
        line, _, rest = self._buffer.partition(b"\n")
        self._buffer = rest
        return line.decode("utf-8", "replace").rstrip("\r")

"""Running ``opex-trio`` in a real pseudo-terminal, and reading the screen it leaves.

The command is the session leader of a new pty (its controlling terminal), so
the kernel does what a terminal emulator would make it do: Ctrl-C typed on the
master is a SIGINT for the command's process group, a new window size is a
SIGWINCH, and what the command writes passes the terminal's line discipline.

:class:`Screen` is a small terminal emulator: enough of VT100 for what the
command and GNU readline write (printable text with wrapping at the last
column, CR, LF, backspace, erasing in line, cursor movement), so that tests
can assert on the lines a person would see, not on escape sequences.
"""

from __future__ import annotations

import codecs
import errno
import fcntl
import os
import re
import signal
import struct
import termios
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import trio

from tests.cli.support import BOUND, CLI, cli_env

_CSI = re.compile(r"\x1b\[([?>=]?)([0-9;]*)([ -/]*)([@-~])")
_OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


class Screen:
    """The text a terminal of ``columns`` columns shows (scrollback included)."""

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.rows: list[list[str]] = [[]]
        self.row = 0
        self.col = 0
        self.wrapped_lines = 0
        self._pending = ""

    def resize(self, columns: int) -> None:
        """The window changed (lines already drawn stay as they are, as in xterm)."""
        self.columns = columns

    def _put(self, char: str) -> None:
        if self.col >= self.columns:
            # Autowrap: the character goes to the next line.
            self.wrapped_lines += 1
            self._line_feed()
            self.col = 0
        line = self.rows[self.row]
        while len(line) < self.col:
            line.append(" ")
        if self.col < len(line):
            line[self.col] = char
        else:
            line.append(char)
        self.col += 1

    def _line_feed(self) -> None:
        self.row += 1
        while len(self.rows) <= self.row:
            self.rows.append([])

    def feed(self, text: str) -> None:
        """Apply what the program wrote."""
        text = self._pending + text
        self._pending = ""
        i = 0
        while i < len(text):
            char = text[i]
            if char == "\x1b":
                osc = _OSC.match(text, i)
                if osc:
                    i = osc.end()
                    continue
                csi = _CSI.match(text, i)
                if csi:
                    self._csi(csi.group(1), csi.group(2), csi.group(4))
                    i = csi.end()
                    continue
                if i + 1 < len(text) and text[i + 1] not in "[]":
                    i += 2  # a two-character escape (ESC =, ESC >, ...)
                    continue
                # An unfinished sequence: wait for the rest.
                self._pending = text[i:]
                return
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self._line_feed()
            elif char == "\b":
                self.col = max(self.col - 1, 0)
            elif char == "\t":
                self.col = min((self.col // 8 + 1) * 8, self.columns - 1)
            elif char >= " ":
                self._put(char)
            i += 1

    def _csi(self, private: str, params: str, final: str) -> None:
        if private:
            return  # modes such as bracketed paste: nothing to show
        numbers = [int(p) if p else 0 for p in params.split(";")] if params else []
        n = numbers[0] if numbers and numbers[0] else 1
        line = self.rows[self.row]
        if final == "K":
            mode = numbers[0] if numbers else 0
            if mode == 0:
                del line[self.col :]
            elif mode == 1:
                for k in range(min(self.col + 1, len(line))):
                    line[k] = " "
            else:
                line.clear()
        elif final == "A":
            self.row = max(self.row - n, 0)
        elif final == "B":
            self.row += n
            while len(self.rows) <= self.row:
                self.rows.append([])
        elif final == "C":
            self.col = min(self.col + n, self.columns - 1)
        elif final == "D":
            self.col = max(self.col - n, 0)
        elif final == "G":
            self.col = min(n - 1, self.columns - 1)
        elif final == "J":
            del self.rows[self.row + 1 :]
            del line[self.col :]
        elif final == "P":
            del line[self.col : self.col + n]
        elif final == "@":
            line[self.col : self.col] = [" "] * n

    def lines(self) -> list[str]:
        """Every line, right-trimmed, without the empty ones at the end."""
        text = ["".join(row).rstrip() for row in self.rows]
        while text and not text[-1]:
            text.pop()
        return text

    def text(self) -> str:
        """The screen as one string."""
        return "\n".join(self.lines())


def _set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _take_terminal() -> None:
    # Runs in the child, after setsid(): the pty on stdin becomes its controlling terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A command running in a pseudo-terminal, and the screen it drew."""

    def __init__(self, process: trio.Process, master: int, columns: int) -> None:
        self.process = process
        self.master = master
        self.screen = Screen(columns)
        self.raw = ""
        self.closed = False
        self._changed = trio.Event()

    async def _read(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            try:
                await trio.lowlevel.wait_readable(self.master)
            except trio.ClosedResourceError:
                break  # hung up by the test
            try:
                data = os.read(self.master, 65536)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                break
            text = decoder.decode(data)
            self.raw += text
            self.screen.feed(text)
            self._notify()
        self.closed = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(
        self, check: Callable[[], bool], what: str, *, bound: float = BOUND
    ) -> None:
        """Wait until ``check()`` holds, re-checking at every output."""
        with trio.fail_after(bound):
            while not check():
                if self.closed:
                    assert check(), (
                        f"the terminal closed before {what}; screen:\n{self.screen.text()}"
                    )
                    return
                with trio.move_on_after(1.0):
                    await self._changed.wait()

    async def wait_for(self, text: str, *, bound: float = BOUND) -> None:
        """Wait until ``text`` is on the screen."""
        await self.wait_until(lambda: text in self.screen.text(), repr(text), bound=bound)

    def type(self, keys: str) -> None:
        """Type ``keys`` (``\\r`` is Enter, ``\\x03`` Ctrl-C, ``\\x04`` Ctrl-D)."""
        os.write(self.master, keys.encode())

    def hang_up(self) -> None:
        """Close the terminal, as closing its window does: the kernel sends SIGHUP."""
        trio.lowlevel.notify_closing(self.master)
        os.close(self.master)
        self.master = -1

    def resize(self, columns: int, rows: int = 24) -> None:
        """Change the window's size; the kernel sends the command SIGWINCH."""
        _set_size(self.master, rows, columns)
        self.screen.resize(columns)

    async def wait(self, bound: float = BOUND) -> int:
        """Wait for the exit status."""
        with trio.fail_after(bound):
            return await self.process.wait()


@asynccontextmanager
async def open_terminal(
    *args: str,
    columns: int = 80,
    rows: int = 24,
    env: Mapping[str, str] | None = None,
    stdout: int | None = None,
) -> AsyncIterator[Terminal]:
    """Run ``opex-trio ARGS`` in a new pty of ``columns`` x ``rows``.

    ``stdout`` sends the command's stdout elsewhere (a file), as ``> file``
    does; stdin and stderr stay on the terminal.
    """
    master, slave = os.openpty()
    _set_size(slave, rows, columns)
    environ = dict(env) if env is not None else cli_env()
    environ.setdefault("TERM", "xterm")
    try:
        process = await trio.lowlevel.open_process(
            [*CLI, *args],
            stdin=slave,
            stdout=slave if stdout is None else stdout,
            stderr=slave,
            env=environ,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    terminal = Terminal(process, master, columns)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(terminal._read)
            try:
                yield terminal
            finally:
                await _end(process)
                nursery.cancel_scope.cancel()
    finally:
        await _end(process)
        if terminal.master >= 0:
            os.close(terminal.master)


async def _end(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(30):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()

"""What the command shows: the answer on stdout, everything else on stderr.

The model's text goes to stdout as it streams, so ``opex-trio run ... > file``
keeps only the answer. Notices, tool calls, progress and the chat prompt go to
stderr. On a terminal, progress and the servers' start-up are one line redrawn
in place, cut to the terminal's width (measured at every redraw, and again
when the terminal says it was resized); elsewhere they are a line now and
then, so logs stay readable.

Writing to a reader that went away (``| head``) raises :class:`OutputClosed`,
which ends the command quietly. A closed stderr is not worth dying for: what
would have gone there is dropped.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import unicodedata
from collections.abc import Mapping
from typing import Any, TextIO

import trio

from ..agent.chat import ToolProgress, ToolResult

__all__ = ["OutputClosed", "Ui", "fit", "progress_text"]

_BAR_WIDTH = 20
_LINE_PROGRESS_INTERVAL = 1.0
_ARGUMENTS_CHARS = 100
_DEFAULT_COLUMNS = 80
_ECHO_ROOM = 3
# The peer went away (a pipe) or the terminal hung up.
_GONE = (errno.EPIPE, errno.EIO, errno.ENXIO)


class OutputClosed(Exception):
    """The reader of the command's output went away (a closed pipe or terminal)."""


def _short_json(value: Mapping[str, Any] | None, limit: int = _ARGUMENTS_CHARS) -> str:
    if value is None:
        return "(arguments that are not a JSON object)"
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: float) -> str:
    return f"{value:g}"


def _columns_of(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Cc", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def fit(text: str, columns: int) -> str:
    """``text`` cut to at most ``columns`` terminal columns (wide characters count two)."""
    used = 0
    for index, char in enumerate(text):
        used += _columns_of(char)
        if used > columns:
            return text[:index]
    return text


def progress_text(
    name: str, progress: float, total: float | None, message: str | None, *, bar: bool
) -> str:
    """One line for a progress report: a bar when the total is known and ``bar`` is set."""
    parts = [f"[progress] {name}"]
    if total is not None and total > 0:
        fraction = min(max(progress / total, 0.0), 1.0)
        if bar:
            filled = round(fraction * _BAR_WIDTH)
            parts.append("[" + "#" * filled + "-" * (_BAR_WIDTH - filled) + "]")
        parts.append(f"{_number(progress)}/{_number(total)} ({fraction:.0%})")
    else:
        parts.append(_number(progress))
    if message:
        parts.append(message)
    return " ".join(parts)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:
        return False


class Ui:
    """Writes the command's output; ``out`` gets answers, ``err`` the rest."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.err_tty = _isatty(self.err)
        self.out_tty = _isatty(self.out)
        self._err_gone = False
        self._out_midline = False
        self._prompt_open = False
        self._status = ""
        self._last_line_progress: dict[str, float] = {}
        self._running: dict[str, tuple[str, float]] = {}

    # -- writing

    def _write_err(self, text: str) -> None:
        if self._err_gone:
            return
        try:
            self.err.write(text)
            self.err.flush()
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            self._err_gone = True

    def _write_out(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except OSError as exc:
            if exc.errno in _GONE:
                raise OutputClosed(str(exc)) from exc
            raise

    def columns(self) -> int:
        """The width of the terminal stderr shows on."""
        try:
            return os.get_terminal_size(self.err.fileno()).columns or _DEFAULT_COLUMNS
        except (OSError, ValueError):
            return _DEFAULT_COLUMNS

    # -- stderr

    def notice(self, text: str) -> None:
        """A line of information: which model, a cancelled turn."""
        self._line(f"opex-trio: {text}")

    def line(self, text: str) -> None:
        """A line on stderr as it is: a question's details, what was asked and answered."""
        self._line(text)

    def error(self, text: str) -> None:
        """The one line that says what failed."""
        self._line(f"opex-trio: error: {text}")

    def after_signal(self) -> None:
        """Make sure what follows a Ctrl-C (or another signal) starts a line of its own.

        A terminal echoes ``^C`` where the cursor is: after text, a line break
        ends that line; at the start of a line, the echo is erased instead, so
        no blank line is left behind.
        """
        if self._status:
            # Clearing the status line erases the ^C on it too.
            self._clear_status()
        elif self._prompt_open or (self._out_midline and self.out_tty):
            self._write_err("\n")
            if self.out_tty:
                self._out_midline = False
        elif self.err_tty:
            self._write_err("\r\x1b[K")
        self._prompt_open = False

    def _line(self, text: str) -> None:
        self._clear_status()
        self._end_out_line()
        self._write_err(text + "\n")

    def _clear_status(self) -> None:
        if self._status:
            # Only ever shown on a terminal: erase the whole line.
            self._write_err("\r\x1b[K")
            self._status = ""

    def _show_status(self, text: str) -> None:
        self._end_out_line()
        # Room is left at the end for the "^C" a terminal echoes after the
        # line: were it to wrap, erasing the line would leave half of it.
        fitted = fit(text, max(self.columns() - _ECHO_ROOM, 1))
        self._write_err("\r" + fitted + "\x1b[K")
        self._status = text

    def resized(self) -> None:
        """The terminal changed its size: draw the status line again, fitted to it."""
        if self._status:
            self._show_status(self._status)

    def status(self, text: str) -> None:
        """Show ``text`` in place of the previous status (on a terminal only)."""
        if self.err_tty:
            self._show_status(text)

    # -- stdout

    def text(self, delta: str) -> None:
        """A piece of the answer, shown as it comes."""
        if not delta:
            return
        self._clear_status()
        self._write_out(delta)
        self._out_midline = not delta.endswith("\n")

    def end_answer(self) -> None:
        """End the answer's line."""
        self._end_out_line()

    def prompt(self, text: str) -> None:
        """Ask for input on the terminal (stderr): the user's Enter ends the line."""
        self.before_prompt()
        self._write_err(text)
        self._prompt_open = True

    def before_prompt(self) -> None:
        """Make room for a prompt that another part draws (line editing)."""
        self._clear_status()
        self._end_out_line()
        self._prompt_open = True

    def line_entered(self) -> None:
        """The user ended the prompt's line."""
        self._prompt_open = False

    def print(self, text: str) -> None:
        """A line on stdout."""
        self._clear_status()
        self._end_out_line()
        self._write_out(text + "\n")

    def _end_out_line(self) -> None:
        if self._out_midline:
            self._out_midline = False
            self._write_out("\n")

    # -- tools

    def tool_started(
        self, tool_call_id: str, name: str, arguments: Mapping[str, Any] | None
    ) -> None:
        """A tool call began."""
        self._running[tool_call_id] = (name, trio.current_time())
        self._line(f"[tool] {name} {_short_json(arguments)}")

    def tool_finished(self, result: ToolResult) -> None:
        """A tool call ended: its outcome and how long it took."""
        self._running.pop(result.tool_call_id, None)
        self._last_line_progress.pop(result.tool_call_id, None)
        line = f"[tool] {result.name} {result.outcome} in {result.duration:.2f} s"
        if result.is_error:
            first = next((part for part in result.content.splitlines() if part.strip()), "")
            if first:
                line += f": {first[:200]}"
        self._line(line)

    def tools_cancelled(self) -> None:
        """End the line of every tool call still running: it was cancelled."""
        now = trio.current_time()
        for name, started in self._running.values():
            self._line(f"[tool] {name} cancelled after {now - started:.2f} s")
        self._running.clear()
        self._last_line_progress.clear()

    def tool_progress(self, event: ToolProgress) -> None:
        """A running tool call reported progress."""
        self.progress(event.tool_call_id, event.name, event.progress, event.total, event.message)

    def progress(
        self, key: str, name: str, progress: float, total: float | None, message: str | None
    ) -> None:
        """Show a progress report: redrawn in place on a terminal, else at most a line a second."""
        if self.err_tty:
            self._show_status(progress_text(name, progress, total, message, bar=True))
            return
        now = trio.current_time()
        last = self._last_line_progress.get(key)
        if last is not None and now - last < _LINE_PROGRESS_INTERVAL:
            return
        self._last_line_progress[key] = now
        self._line(progress_text(name, progress, total, message, bar=False))

    def clear_progress(self) -> None:
        """Remove the status line, if one is shown."""
        self._clear_status()

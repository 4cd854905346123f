"""What the command shows: the answer on stdout, everything else on stderr.

The model's text goes to stdout as it streams, so ``opex-trio run ... > file``
keeps only the answer. Notices, tool calls and progress go to stderr. On a
terminal, progress is one line redrawn in place (a bar when the server gives a
total); elsewhere it is a line now and then, so logs stay readable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import trio

from ..agent.chat import ToolProgress, ToolResult

_BAR_WIDTH = 20
_LINE_PROGRESS_INTERVAL = 1.0
_ARGUMENTS_CHARS = 100


def _short_json(value: Mapping[str, Any] | None, limit: int = _ARGUMENTS_CHARS) -> str:
    if value is None:
        return "(arguments that are not a JSON object)"
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: float) -> str:
    return f"{value:g}"


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


class Ui:
    """Writes the command's output; ``out`` gets answers, ``err`` the rest."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.err_tty = self.err.isatty()
        self._out_midline = False
        self._status = ""
        self._last_line_progress: dict[str, float] = {}

    # -- stderr

    def notice(self, text: str) -> None:
        """A line of information: which model, a cancelled turn."""
        self._line(f"opex-trio: {text}")

    def after_ctrl_c(self) -> None:
        """Start a fresh line after the ``^C`` a terminal echoes."""
        if self._status:
            # Clearing the progress line erases the ^C on it too.
            self._clear_status()
            return
        self._end_out_line()
        if self.err_tty:
            self.err.write("\n")
            self.err.flush()

    def error(self, text: str) -> None:
        """The one line that says what failed."""
        self._line(f"opex-trio: error: {text}")

    def _line(self, text: str) -> None:
        self._clear_status()
        self._end_out_line()
        print(text, file=self.err, flush=True)

    def _clear_status(self) -> None:
        if self._status:
            # Only ever shown on a terminal: erase the whole line.
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._status = ""

    def _show_status(self, text: str) -> None:
        self._end_out_line()
        width = 200
        text = text[:width]
        padding = " " * max(len(self._status) - len(text), 0)
        self.err.write("\r" + text + padding)
        self.err.flush()
        self._status = text

    # -- stdout

    def text(self, delta: str) -> None:
        """A piece of the answer, shown as it comes."""
        if not delta:
            return
        self._clear_status()
        self.out.write(delta)
        self.out.flush()
        self._out_midline = not delta.endswith("\n")

    def end_answer(self) -> None:
        """End the answer's line."""
        self._end_out_line()

    def prompt(self, text: str) -> None:
        """Ask for input on a terminal (the user's Enter ends the line)."""
        self._clear_status()
        self._end_out_line()
        self.out.write(text)
        self.out.flush()

    def print(self, text: str) -> None:
        """A line on stdout."""
        self._clear_status()
        self._end_out_line()
        print(text, file=self.out, flush=True)

    def _end_out_line(self) -> None:
        if self._out_midline:
            self.out.write("\n")
            self.out.flush()
            self._out_midline = False

    # -- tools

    def tool_started(self, name: str, arguments: Mapping[str, Any] | None) -> None:
        """A tool call began."""
        self._line(f"[tool] {name} {_short_json(arguments)}")

    def tool_finished(self, result: ToolResult) -> None:
        """A tool call ended: its outcome and how long it took."""
        self._last_line_progress.pop(result.tool_call_id, None)
        line = f"[tool] {result.name} {result.outcome} in {result.duration:.2f} s"
        if result.is_error:
            first = next((part for part in result.content.splitlines() if part.strip()), "")
            if first:
                line += f": {first[:200]}"
        self._line(line)

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
        """Remove the progress line, if one is shown."""
        self._clear_status()

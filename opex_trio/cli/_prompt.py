"""The chat's input: a prompt with line editing and a history on a terminal, plain lines otherwise.

On a terminal, lines are read with the standard library's :mod:`readline`
(arrow keys, Ctrl-A/E, Ctrl-R, ...) in a worker thread, so trio goes on
running, and the history is kept across sessions in the user's state folder
(``$XDG_STATE_HOME/opex-trio/history``, by default
``~/.local/state/opex-trio/history``).

The prompt belongs on the terminal, never in the answer: ``input()`` draws it
on file descriptor 1 and edits only where that is a terminal, so while a line
is read with stdout sent elsewhere (``chat > answers.txt``), descriptor 1
points at the terminal (stderr's, or ``/dev/tty``) and is put back after.

A Ctrl-C or SIGTERM at the prompt cancels the command: the reading thread is
abandoned (a thread cannot be interrupted), and the terminal's settings and
descriptor 1 are restored at once, before the command says anything more.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import termios
from pathlib import Path
from types import ModuleType

import trio

from ._input import LineReader
from ._ui import Ui

__all__ = ["LinePrompt", "history_path"]

logger = logging.getLogger("opex_trio.cli")

HISTORY_LENGTH = 1000
PROMPT = "> "


def history_path(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """Where the chat's history is kept: the user's state folder (XDG), ``opex-trio/history``."""
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME", "").strip()
    base = Path(state) if state and os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "opex-trio" / "history"


def _load_readline() -> ModuleType | None:
    try:
        import readline
    except ImportError:
        return None
    return readline


class LinePrompt:
    """Reads the user's lines: :meth:`readline` returns ``None`` at the end of input."""

    def __init__(self, ui: Ui, fd: int = 0) -> None:
        self.ui = ui
        self.fd = fd
        self.interactive = os.isatty(fd)
        self._readline = _load_readline() if self.interactive else None
        self._terminal_fd: int | None = None
        self._opened: int | None = None
        self._history: Path | None = None
        if self._readline is not None:
            self._terminal_fd = self._find_terminal()
            if self._terminal_fd is None:
                self._readline = None
            else:
                self._open_history()
        self._lines = LineReader(fd)
        self._last: str | None = None

    def _find_terminal(self) -> int | None:
        for fd in (1, 2):
            if os.isatty(fd):
                return fd
        try:
            self._opened = os.open("/dev/tty", os.O_WRONLY | os.O_NOCTTY)
        except OSError:
            return None
        return self._opened

    def close(self) -> None:
        """Close the terminal this prompt opened, if it opened one."""
        if self._opened is not None:
            os.close(self._opened)
            self._opened = None

    def _open_history(self) -> None:
        assert self._readline is not None
        path = history_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
            self._readline.read_history_file(str(path))
            self._readline.set_history_length(HISTORY_LENGTH)
            if self._readline.get_current_history_length() > HISTORY_LENGTH:
                self._readline.write_history_file(str(path))
        except OSError as exc:
            # Editing works without a history; say why only when asked (-v).
            logger.info("chat history %s is not used: %s", path, exc)
            return
        self._history = path

    async def readline(self) -> str | None:
        """The next line, or ``None`` when the input has ended (Ctrl-D)."""
        if not self.interactive:
            return await self._lines.readline()
        if self._readline is None:
            self.ui.prompt(PROMPT)
            line = await self._lines.readline()
        else:
            self.ui.before_prompt()
            line = await self._edited_line()
        if line is None:
            self.ui.after_signal()
        else:
            self.ui.line_entered()
        return line

    async def _edited_line(self) -> str | None:
        assert self._readline is not None
        assert self._terminal_fd is not None
        settings = termios.tcgetattr(self.fd)
        saved_stdout = None
        if self._terminal_fd != 1:
            sys.stdout.flush()
            saved_stdout = os.dup(1)
            os.dup2(self._terminal_fd, 1)
        try:
            line = await trio.to_thread.run_sync(self._read_blocking, abandon_on_cancel=True)
        finally:
            if saved_stdout is not None:
                os.dup2(saved_stdout, 1)
                os.close(saved_stdout)
            # The abandoned reader leaves the terminal as line editing set it.
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, settings)
        if line is not None:
            self._remember(line)
        return line

    def _read_blocking(self) -> str | None:
        try:
            return input(PROMPT)
        except EOFError:
            return None

    def _remember(self, line: str) -> None:
        assert self._readline is not None
        # input() adds each line to the history, but not the same line twice running.
        if self._history is None or not line.strip() or line == self._last:
            return
        self._last = line
        try:
            self._readline.append_history_file(1, str(self._history))
        except OSError as exc:
            logger.info("chat history %s not written: %s", self._history, exc)
            self._history = None

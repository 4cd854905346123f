"""The stdio transport: an MCP server as a local child process.

Theory of operation
-------------------
The server is spawned with trio in a new session, hence a new process group
whose id is its pid, so that everything it starts (``npx`` starts a shell that
starts node, ``uvx`` starts Python) can be signalled as one. Messages are
newline-delimited JSON on the child's stdin and stdout; :class:`LineFramer`
splits stdout into lines and enforces the size limit.

The end of a server is seen in two ways. Usually its stdout reaches end of
file. But a process it started (a backgrounded child, a shell's job) may
still hold stdout open after the server itself exited, so a third task waits
for the server process: once it has exited and everything it wrote before
has been read, :meth:`StdioTransport.receive` raises
:class:`~opex_trio.errors.ServerExitedError` with the exit status and the last
stderr lines, and the group is stopped as below.

stderr is read by its own task for the whole life of the process, so a server
that floods stderr never blocks on a full pipe. Each line goes to the
``opex_trio.transports.stdio`` logger at DEBUG level and the last lines are
kept for error messages.

The child does not inherit the parent's environment (API keys live there):
it gets :data:`SAFE_ENV_VARS` from the parent, plus the config's ``env``.

Shutdown, whether the ``async with`` ends normally, by an error or by
cancellation, runs shielded and is bounded by the graces: close stdin (a
well-behaved server exits on end of input), wait ``close_grace``, send SIGTERM
to the group, wait ``term_grace``, send SIGKILL to the group, and reap the
child. The group is checked, not just the child, so a grandchild that outlives
its parent is still found and stopped.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import select
import shutil
import struct
import subprocess
import termios
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from .._process import OutputTail, terminate_group
from ..errors import (
    ConfigError,
    MessageTooLargeError,
    ServerExitedError,
    TransportBrokenError,
    TransportClosedError,
)
from ..protocol.framing import DEFAULT_MAX_MESSAGE_SIZE, LineFramer
from .base import Outgoing, Transport

__all__ = [
    "SAFE_ENV_VARS",
    "StdioParameters",
    "StdioTransport",
    "build_environment",
    "normalize_env",
    "open_stdio_transport",
]

logger = logging.getLogger("opex_trio.transports.stdio")

SAFE_ENV_VARS: tuple[str, ...] = (
    "HOME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "LOGNAME",
    "PATH",
    "SHELL",
    "SSL_CERT_DIR",
    "SSL_CERT_FILE",
    "TEMP",
    "TERM",
    "TMP",
    "TMPDIR",
    "TZ",
    "USER",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
)
"""Variables a stdio server inherits from the parent by default: enough to find
programs, caches and certificates, and none that usually hold secrets."""

_READ_SIZE = 65536


def normalize_env(env: Any, *, where: str = "env") -> dict[str, str]:
    """Accept an environment as a dict, or as a list of name/value pairs, and return a dict.

    Pairs may be two-item lists or tuples, or ``{"name": ..., "value": ...}``
    objects. Names and values must be strings; :class:`ConfigError` names the
    entry that is not.
    """
    if env is None:
        return {}
    items: Iterable[tuple[Any, Any]]
    if isinstance(env, Mapping):
        items = env.items()
    elif isinstance(env, list | tuple):
        pairs: list[tuple[Any, Any]] = []
        for i, entry in enumerate(env):
            if isinstance(entry, Mapping) and set(entry) >= {"name", "value"}:
                pairs.append((entry["name"], entry["value"]))
            elif isinstance(entry, list | tuple) and len(entry) == 2:
                pairs.append((entry[0], entry[1]))
            else:
                raise ConfigError(
                    f"{where}[{i}] must be a [name, value] pair or a "
                    f'{{"name": ..., "value": ...}} object, got {entry!r}'
                )
        items = pairs
    else:
        raise ConfigError(
            f"{where} must be an object or a list of name/value pairs, got {type(env).__name__}"
        )
    out: dict[str, str] = {}
    for name, value in items:
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise ConfigError(f"{where}: invalid variable name {name!r}")
        if not isinstance(value, str):
            raise ConfigError(
                f"{where}[{name!r}] must be a string, got {type(value).__name__} {value!r}"
            )
        if "\0" in value:
            raise ConfigError(f"{where}[{name!r}] contains a NUL character")
        out[name] = value
    return out


def build_environment(
    env: Mapping[str, str],
    inherit: bool | Sequence[str] = False,
    parent: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a server gets: the safe parent variables, then ``env`` on top.

    ``inherit=True`` passes the whole parent environment (opt-in); a sequence
    of names passes those in addition to :data:`SAFE_ENV_VARS`.
    """
    parent = os.environ if parent is None else parent
    if inherit is True:
        base = dict(parent)
    else:
        names = set(SAFE_ENV_VARS)
        if inherit:
            names.update(inherit)
        base = {k: v for k, v in parent.items() if k in names}
    base.update(env)
    return base


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigError(f"args must be a list of strings, got the string {value!r}")
    return tuple(value)


def _inherit(value: bool | Iterable[str]) -> bool | tuple[str, ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        raise ConfigError(f"inherit_env must be a bool or a list of names, got {value!r}")
    return tuple(value)


@attrs.frozen
class StdioParameters:
    """How to start and stop a stdio MCP server.

    ``env`` accepts a dict or a list of name/value pairs. ``inherit_env``:
    ``False`` passes only :data:`SAFE_ENV_VARS`, a list of names adds those,
    ``True`` passes everything. ``close_grace`` is how long the server gets to
    exit after its stdin closes, ``term_grace`` how long after SIGTERM, before
    SIGKILL. ``max_message_size`` bounds one message in bytes.
    """

    command: str = attrs.field()
    args: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    env: Mapping[str, str] = attrs.field(factory=dict, converter=normalize_env)
    cwd: str | None = None
    inherit_env: bool | tuple[str, ...] = attrs.field(default=False, converter=_inherit)
    name: str | None = None
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    stderr_lines: int = 50
    close_grace: float = 2.0
    term_grace: float = 2.0

    @command.validator
    def _check_command(self, attribute: Any, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"command must be a non-empty string, got {value!r}")

    @args.validator
    def _check_args(self, attribute: Any, value: tuple[Any, ...]) -> None:
        for i, arg in enumerate(value):
            if not isinstance(arg, str):
                raise ConfigError(f"args[{i}] must be a string, got {type(arg).__name__} {arg!r}")

    @property
    def label(self) -> str:
        """The server's name, or its command when it has none."""
        return self.name or os.path.basename(self.command)


class StdioTransport(Transport):
    """A running stdio server. Made by :func:`open_stdio_transport`; do not build it directly."""

    def __init__(self, process: trio.Process, params: StdioParameters) -> None:
        self.name = params.label
        self.params = params
        self.process = process
        assert process.stdin is not None
        assert process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._framer = LineFramer(params.max_message_size)
        self._lines: collections.deque[bytes | MessageTooLargeError] = collections.deque()
        self._stderr = OutputTail(f"{self.name} stderr", params.stderr_lines, logger)
        self._eof = False
        self._closed = False
        # Set once the server process exited although its stdout stays open.
        self._exited_early = False
        self._reading = False
        self._stdout_fd = process.stdout.fileno() if hasattr(process.stdout, "fileno") else -1

    @property
    def pid(self) -> int:
        """The server's pid, which is also its process group id."""
        return self.process.pid

    @property
    def stderr_tail(self) -> tuple[str, ...]:
        """The last lines the server wrote to stderr."""
        return tuple(self._stderr.lines)

    @property
    def returncode(self) -> int | None:
        """The exit status once the server exited (negative: killed by that signal)."""
        return self.process.poll()

    def failure_details(self) -> str:
        """The exit status and last stderr lines, for error messages."""
        parts = []
        if self.returncode is not None:
            parts.append(f"exit status {self.returncode}")
        if self._stderr.lines:
            parts.append("stderr: " + " | ".join(self._stderr.lines))
        return "; ".join(parts)

    def _exited(self, what: str) -> ServerExitedError:
        return ServerExitedError(
            f"MCP server {self.name!r} {what}",
            server=self.name,
            returncode=self.returncode,
            stderr_tail=self.stderr_tail,
        )

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """Write the messages, one per line, in a single write."""
        if self._closed:
            raise TransportClosedError(f"the connection to MCP server {self.name!r} is closed")
        if len(messages) == 1:
            data = messages[0].data + b"\n"
        else:
            data = b"".join([m.data + b"\n" for m in messages])
        try:
            await self._stdin.send_all(data)
        except trio.ClosedResourceError as exc:
            raise TransportClosedError(
                f"the connection to MCP server {self.name!r} is closed"
            ) from exc
        except (trio.BrokenResourceError, OSError) as exc:
            await self._settle()
            raise self._exited("closed its stdin (it has probably exited)") from exc

    async def receive(self) -> bytes | str:
        """The next line from the server's stdout."""
        while not self._lines:
            if self._closed:
                raise TransportClosedError(f"the connection to MCP server {self.name!r} is closed")
            if self._eof:
                raise self._exited("closed its stdout")
            if self._exited_early and not self._unread():
                raise await self._left_behind()
            self._reading = True
            try:
                data = await self._stdout.receive_some(_READ_SIZE)
            except trio.ClosedResourceError as exc:
                if self._exited_early and not self._closed:
                    raise await self._left_behind() from None
                raise TransportClosedError(
                    f"the connection to MCP server {self.name!r} is closed"
                ) from exc
            except (trio.BrokenResourceError, OSError) as exc:
                self._eof = True
                await self._settle()
                raise self._exited("broke its stdout") from exc
            finally:
                self._reading = False
            if not data:
                self._eof = True
                await self._settle()
                raise self._exited("exited" if self.returncode is not None else "closed stdout")
            self._lines.extend(self._framer.feed(bytes(data)))
        item = self._lines.popleft()
        if isinstance(item, MessageTooLargeError):
            raise item
        return item

    async def watch_exit(self) -> None:
        """Wait for the server process to exit; then end the connection even if stdout stays open.

        What the server wrote before it exited is still read: the reader is
        woken only when nothing is left unread, and otherwise stops by itself
        once it has read the rest (see :meth:`receive`).
        """
        await self.process.wait()
        # A process's files are closed before its parent can reap it, so when
        # no writer is left the reader meets end of file by itself.
        if self._closed or self._eof or not self._stdout_held():
            return
        self._exited_early = True
        if self._reading and not self._unread():
            # The reader waits on a pipe that another process keeps open: closing
            # our end wakes it, and it raises the server's exit.
            self._stdout_fd = -1
            await self._stdout.aclose()

    def _stdout_held(self) -> bool:
        """Whether some process still has the write end of the stdout pipe open."""
        if self._stdout_fd < 0:
            return False
        poller = select.poll()
        poller.register(self._stdout_fd, select.POLLIN)
        # A pipe reports POLLHUP once every writer has closed it.
        return not any(events & select.POLLHUP for _, events in poller.poll(0))

    def _unread(self) -> int:
        """Bytes waiting in the stdout pipe (0 once our end is closed)."""
        if self._stdout_fd < 0:
            return 0
        try:
            raw = fcntl.ioctl(self._stdout_fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        count: int = struct.unpack("i", raw)[0]
        return count

    async def _left_behind(self) -> ServerExitedError:
        self._eof = True
        await self._settle()
        return self._exited("exited; a process it started still holds its stdout open")

    async def _settle(self) -> None:
        # Give a dying server a moment to be reaped, so errors can carry its
        # exit status and final stderr lines.
        with trio.move_on_after(0.5):
            await self.process.wait()
        # Let the stderr task read the server's last words.
        await trio.lowlevel.checkpoint()

    async def drain_stderr(self) -> None:
        """Read stderr until it closes, logging each line and keeping the last ones."""
        assert self.process.stderr is not None
        await self._stderr.drain(self.process.stderr)

    async def shutdown(self) -> None:
        """Stop the server and everything it started; see the module docstring. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            with contextlib.suppress(trio.BrokenResourceError, OSError):
                await self._stdin.aclose()
            with trio.move_on_after(self.params.close_grace):
                await self.process.wait()
            await terminate_group(
                self.process,
                term_grace=self.params.term_grace,
                label=f"MCP server {self.name!r}",
                logger=logger,
            )
            await self._stdout.aclose()
            # A process that left the group may still hold stderr open; read
            # what is already there, then stop waiting for it.
            with trio.move_on_after(0.25):
                await self._stderr.done.wait()
            assert self.process.stderr is not None
            await self.process.stderr.aclose()


def _resolve_command(params: StdioParameters, env: Mapping[str, str]) -> str:
    if params.cwd is not None and not os.path.isdir(params.cwd):
        raise ConfigError(
            f"MCP server {params.label!r}: cwd {params.cwd!r} is not an existing directory"
        )
    command = params.command
    if os.sep in command:
        path = command if os.path.isabs(command) else os.path.join(params.cwd or ".", command)
        if not os.path.exists(path):
            raise ConfigError(f"MCP server {params.label!r}: command {command!r} does not exist")
        return command
    found = shutil.which(command, path=env.get("PATH", os.defpath))
    if found is None:
        raise ConfigError(
            f"MCP server {params.label!r}: command {command!r} was not found on PATH "
            f"({env.get('PATH', '')!r})"
        )
    return found


@asynccontextmanager
async def open_stdio_transport(params: StdioParameters) -> AsyncIterator[StdioTransport]:
    """Start the server and yield its transport; stop it (and its group) on exit."""
    env = build_environment(params.env, params.inherit_env)
    argv = [_resolve_command(params, env), *params.args]
    try:
        process = await trio.lowlevel.open_process(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=params.cwd,
            start_new_session=True,
        )
    except PermissionError as exc:
        raise ConfigError(
            f"MCP server {params.label!r}: command {params.command!r} is not executable"
        ) from exc
    except OSError as exc:
        raise TransportBrokenError(
            f"MCP server {params.label!r} could not be started: {exc}"
        ) from exc
    transport = StdioTransport(process, params)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(transport.drain_stderr)
            nursery.start_soon(transport.watch_exit)
            try:
                yield transport
            finally:
                await transport.shutdown()
    finally:
        # Reached also when the nursery could not even start (cancelled at once).
        await transport.shutdown()

"""The MCP servers of a command: where their configurations come from, and starting them.

Every server runs under one :class:`~opex_trio.mcp.manager.SessionManager`;
they start in parallel. The command waits until each is ready, or has failed
its first start (then the supervisor would retry it, but a command line wants
to know at once), or the start timeout passes. While it waits, a callback
sees every change, so the screen can say which servers are still starting.

A server given with ``--server`` is named after its package or command
(``uvx mcp-server-time`` is ``mcp-server-time``); only when two would share a
name does it get the library's id, which adds a short hash of its command.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import attrs
import trio

from ..errors import ConfigError
from ..mcp.config import (
    ServerConfig,
    load_config,
    parse_server,
    server_from_command,
    server_id,
)
from ..mcp.manager import ServerOptions, ServerStatus, SessionManager
from ..transports.stdio import StdioParameters
from ._errors import EXIT_FAILURE, EXIT_USAGE, CliError, describe, one_line, status_of

_URL_SCHEMES = ("http://", "https://", "ws://", "wss://")


def server_configs(config_file: str | None, servers: Sequence[str]) -> dict[str, ServerConfig]:
    """The servers of ``--mcp-config FILE`` (in file order), then those of each ``--server``.

    A ``--server`` value is a command line (a stdio server) or an ``http(s)://``
    or ``ws(s)://`` URL (a remote one).
    """
    configs: dict[str, ServerConfig] = {}
    if config_file:
        configs.update(load_config(config_file))
    given: dict[str, ServerConfig] = {}
    for value in servers:
        text = value.strip()
        if text.startswith(_URL_SCHEMES):
            config: ServerConfig = parse_server({"url": text}, where=f"--server {text!r}")
        else:
            config = server_from_command(text)
        sid = server_id(config)
        if sid in given or sid in configs:
            raise ConfigError(f"--server {value!r} is given twice")
        given[sid] = config
    plain = {sid: plain_name(config) for sid, config in given.items()}
    taken = [*configs, *plain.values()]
    for sid, config in given.items():
        name = plain[sid]
        configs[name if taken.count(name) == 1 else sid] = config
    return configs


# Commands that run a package or script named by their first plain argument.
_LAUNCHERS = frozenset(
    {"npx", "pnpx", "bunx", "uvx", "pipx", "node", "deno", "bun", "python", "python3", "uv"}
)


_GENERIC_SCRIPTS = frozenset({"index", "main", "server", "cli", "__main__"})
_BUILD_FOLDERS = frozenset({"dist", "build", "lib", "src", "bin", "out"})


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower()[:40]


def plain_name(config: ServerConfig) -> str:
    """A short readable name for a server given by ``--server``.

    A launcher's package or script (``npx -y @scope/server-x`` is ``server-x``,
    ``python -m pkg.server`` is ``pkg-server``), else the command's own name
    (``mcp-server-time``), or a URL's host and port.
    """
    if isinstance(config, StdioParameters):
        command = os.path.basename(config.command)
        label = command
        if re.sub(r"[0-9.]+$", "", command) in _LAUNCHERS:
            target = next((a for a in config.args if not a.startswith("-")), command)
            parts = [p for p in target.split("/") if p]
            # @scope/name@version: the name; a script file: without its extension.
            label = re.sub(r"\.(?:m?js|ts|py)$", "", parts[-1].split("@", 1)[0] if parts else "")
            if label in _GENERIC_SCRIPTS:
                # .../server-everything/dist/index.js: the package's folder says more.
                folders = [p for p in parts[:-1] if p not in _BUILD_FOLDERS]
                label = folders[-1] if folders else label
            label = label or command
        return _slug(label) or "server"
    url = str(getattr(config, "url", "server"))
    return _slug(re.sub(r"^[a-z]+://", "", url).split("/", 1)[0]) or "server"


def find_server(names: Sequence[str], wanted: str) -> str | None:
    """The server ``wanted`` names: its exact name, or the one name it begins.

    ``None`` when none matches; :class:`CliError` when several begin with it.
    """
    if wanted in names:
        return wanted
    matches = [name for name in names if name.startswith(wanted)] if wanted else []
    if len(matches) > 1:
        raise CliError(
            f"MCP server {wanted!r} is ambiguous: it begins {', '.join(map(repr, matches))}",
            EXIT_USAGE,
        )
    return matches[0] if matches else None


class InvalidOutput(logging.Handler):
    """Remembers the first message each server sent that is not MCP.

    The MCP client skips such a message and logs it; a server that only ever
    sends those never finishes its handshake, and this is the reason to give.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.first: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if "invalid message" not in str(record.msg) or not isinstance(args, tuple):
            return
        if len(args) >= 2 and isinstance(args[0], str):
            self.first.setdefault(args[0], str(args[1]))


@contextmanager
def watch_invalid_output() -> Iterator[InvalidOutput]:
    """Collect the servers' invalid messages for as long as the ``with`` lasts."""
    handler = InvalidOutput()
    mcp_logger = logging.getLogger("opex_trio.mcp")
    mcp_logger.addHandler(handler)
    try:
        yield handler
    finally:
        mcp_logger.removeHandler(handler)


@attrs.frozen
class Started:
    """How the start of one server went: its status, and whether it came up."""

    status: ServerStatus
    ready: bool

    @property
    def error(self) -> BaseException | None:
        """What kept it from starting."""
        return self.status.last_error


def _settled(status: ServerStatus) -> bool:
    return status.state in ("ready", "unhealthy", "restarting", "failed", "stopped")


async def start_servers(
    mcp: SessionManager,
    configs: Mapping[str, ServerConfig],
    *,
    options: ServerOptions | None = None,
) -> None:
    """Add every server to ``mcp``; they start in the background, in parallel."""
    for name, config in configs.items():
        await mcp.add_server(config, name=name, options=options)


def ready(status: ServerStatus) -> bool:
    """Whether a server has started and offers its tools."""
    return status.state in ("ready", "unhealthy")


async def wait_started(
    mcp: SessionManager,
    *,
    timeout: float | None,
    on_change: Callable[[Sequence[ServerStatus]], object] | None = None,
) -> list[Started]:
    """Wait until every server is ready or has failed to start; report each, in order.

    ``on_change`` sees the servers' states at the start and after every change.
    """
    deadline = math.inf if timeout is None else trio.current_time() + timeout
    events = mcp.events()
    with events, trio.move_on_at(deadline):
        while True:
            servers = mcp.servers()
            if on_change is not None:
                on_change(servers)
            if all(_settled(s) for s in servers):
                break
            await events.receive()
    return [Started(s, ready(s)) for s in mcp.servers()]


def check_started(
    started: Sequence[Started],
    timeout: float | None,
    invalid_output: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`CliError` (one line) for the first server that did not start.

    ``invalid_output`` maps a server to the first message it sent that is not
    MCP: the likely reason it never finished starting.
    """
    for entry in started:
        if entry.ready:
            continue
        status = entry.status
        name = f"MCP server {status.id!r}"
        if status.state == "starting":
            invalid = (invalid_output or {}).get(status.id)
            why = f": what it sent is not MCP: {invalid}" if invalid else ""
            raise CliError(
                f"{name} did not start within {timeout or 0:g} s{why} (see --start-timeout)",
                EXIT_FAILURE,
            )
        error = entry.error
        why = describe(error) if error is not None else status.state
        code = status_of(error) if error is not None else EXIT_FAILURE
        raise CliError(
            one_line(f"{name} did not start: {why.removeprefix(name + ' ')}"),
            EXIT_USAGE if code == EXIT_USAGE else EXIT_FAILURE,
        )

"""The MCP servers of a command: where their configurations come from, and starting them.

Every server runs under one :class:`~opex_trio.mcp.manager.SessionManager`;
they start in parallel. The command waits until each is ready, or has failed
its first start (then the supervisor would retry it, but a command line wants
to know at once), or the start timeout passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import attrs
import trio

from ..errors import ConfigError
from ..mcp.config import ServerConfig, load_config, parse_server, server_from_command, server_id
from ..mcp.manager import ServerOptions, ServerStatus, SessionManager
from ._errors import EXIT_FAILURE, EXIT_USAGE, CliError, describe, status_of

_URL_SCHEMES = ("http://", "https://", "ws://", "wss://")


def server_configs(config_file: str | None, servers: Sequence[str]) -> dict[str, ServerConfig]:
    """The servers of ``--mcp-config FILE`` (in file order), then those of each ``--server``.

    A ``--server`` value is a command line (a stdio server) or an ``http(s)://``
    or ``ws(s)://`` URL (a remote one).
    """
    configs: dict[str, ServerConfig] = {}
    if config_file:
        configs.update(load_config(config_file))
    for value in servers:
        text = value.strip()
        if text.startswith(_URL_SCHEMES):
            config: ServerConfig = parse_server({"url": text}, where=f"--server {text!r}")
        else:
            config = server_from_command(text)
        sid = server_id(config)
        if sid in configs:
            raise ConfigError(f"--server {value!r} is given twice")
        configs[sid] = config
    return configs


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


async def wait_started(mcp: SessionManager, *, timeout: float | None) -> list[Started]:
    """Wait until every server is ready or has failed to start; report each, in order."""
    deadline = math.inf if timeout is None else trio.current_time() + timeout
    events = mcp.events()
    with events, trio.move_on_at(deadline):
        while not all(_settled(s) for s in mcp.servers()):
            await events.receive()
    return [Started(s, s.state in ("ready", "unhealthy")) for s in mcp.servers()]


def check_started(started: Sequence[Started], timeout: float | None) -> None:
    """Raise :class:`CliError` (one line) for the first server that did not start."""
    for entry in started:
        if entry.ready:
            continue
        status = entry.status
        if status.state == "starting":
            raise CliError(
                f"MCP server {status.id!r} did not start within {timeout or 0:g} s "
                "(see --start-timeout)",
                EXIT_FAILURE,
            )
        error = entry.error
        why = describe(error) if error is not None else status.state
        code = status_of(error) if error is not None else EXIT_FAILURE
        raise CliError(
            f"MCP server {status.id!r} did not start: {why}",
            EXIT_USAGE if code == EXIT_USAGE else EXIT_FAILURE,
        )

"""What the session manager is told about each server, and what it tells back.

:class:`ServerOptions` (with :class:`HealthCheck`) says how one server is run;
:class:`ServerStatus`, :class:`RegisteredTool` and :class:`ResourceUpdate` are the values
:class:`~opex_trio.mcp.manager.SessionManager` hands out; :data:`ServerState`
names where a server is; :func:`transport_factory` opens a connection for a
typed configuration. Values only: nothing here opens a connection until a
factory is called.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Literal

import attrs

from ..errors import ConfigError
from ..protocol.types import Implementation, Tool
from ..supervision import RestartPolicy
from ..transports.base import Transport
from ..transports.http import HttpParameters, open_http_transport
from ..transports.stdio import StdioParameters, open_stdio_transport
from ..transports.websocket import WebSocketParameters, open_websocket_transport
from .client import ClientOptions
from .config import ServerConfig
from .output_schema import OutputValidation, require_output_validation

__all__ = [
    "FINAL_STATES",
    "HealthCheck",
    "RegisteredTool",
    "ResourceUpdate",
    "ServerOptions",
    "ServerState",
    "ServerStatus",
    "transport_factory",
]

ServerState = Literal["starting", "ready", "unhealthy", "restarting", "failed", "stopped"]
"""Where a managed server is: ``"starting"`` (first connection), ``"ready"``,
``"unhealthy"`` (a health check failed; still serving), ``"restarting"``
(after a failure, during backoff and reconnection), and the final
``"failed"`` (restart intensity reached) and ``"stopped"`` (removed or the
manager closed)."""


FINAL_STATES: frozenset[str] = frozenset({"failed", "stopped"})
"""The states a server never leaves."""


@attrs.frozen
class HealthCheck:
    """How a server's health is checked.

    Every ``interval`` seconds the server is pinged (a cheap request where the
    protocol version has no ping), with ``timeout`` seconds to answer; after
    ``failures`` failed checks in a row it is restarted.
    """

    interval: float = 30.0
    timeout: float = 10.0
    failures: int = 2

    def __attrs_post_init__(self) -> None:
        if not self.interval > 0 or not self.timeout > 0:
            raise ConfigError(
                f"HealthCheck interval and timeout must be positive, got {self.interval!r} "
                f"and {self.timeout!r}"
            )
        if isinstance(self.failures, bool) or not isinstance(self.failures, int):
            raise ConfigError(f"HealthCheck.failures must be an int, got {self.failures!r}")
        if self.failures < 1:
            raise ConfigError(f"HealthCheck.failures must be at least 1, got {self.failures!r}")


def _patterns(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _deny_patterns(value: Iterable[str] | None) -> tuple[str, ...]:
    return _patterns(value) or ()


def _default_restart() -> RestartPolicy:
    return RestartPolicy(backoff_initial=0.5, backoff_max=30.0)


@attrs.frozen(kw_only=True)
class ServerOptions:
    """How the manager runs one server.

    ``allow_tools`` and ``deny_tools`` are glob patterns on the server's own
    tool names (``None`` allows all; deny wins). ``call_timeout`` is the
    default deadline of a tool call, waiting for the server included.
    ``resend_idempotent`` lets a call whose server died mid-call be sent again
    after the restart, but only for tools annotated read-only or idempotent.
    ``validate_output`` says what a result whose ``structuredContent`` does not
    match the tool's ``outputSchema`` becomes: ``"error"`` (a tool error that
    tells the model why), ``"warn"`` (logged, passed on) or ``"off"``; the
    default, ``None``, is ``"error"`` when ``jsonschema`` (the ``schema``
    extra) is installed and ``"off"`` otherwise.
    """

    client: ClientOptions = attrs.field(factory=ClientOptions)
    restart: RestartPolicy = attrs.field(factory=_default_restart)
    health: HealthCheck | None = attrs.field(factory=HealthCheck)
    allow_tools: tuple[str, ...] | None = attrs.field(default=None, converter=_patterns)
    deny_tools: tuple[str, ...] = attrs.field(default=(), converter=_deny_patterns)
    call_timeout: float | None = 60.0
    resend_idempotent: bool = False
    validate_output: OutputValidation | None = None

    def __attrs_post_init__(self) -> None:
        if self.validate_output not in (None, "error", "warn", "off"):
            raise ConfigError(
                f"validate_output must be 'error', 'warn', 'off' or None, "
                f"got {self.validate_output!r}"
            )
        if self.validate_output in ("error", "warn"):
            require_output_validation(f"validate_output={self.validate_output!r}")

    def allows(self, tool_name: str) -> bool:
        """Whether the filters let ``tool_name`` through."""
        if any(fnmatch.fnmatchcase(tool_name, p) for p in self.deny_tools):
            return False
        if self.allow_tools is None:
            return True
        return any(fnmatch.fnmatchcase(tool_name, p) for p in self.allow_tools)


@attrs.frozen
class ServerStatus:
    """A snapshot of one managed server.

    ``protocol_version`` and ``server_info`` are those of the server's latest
    handshake (``None`` before the first); like ``tools``, they are kept while
    the server restarts.
    """

    id: str
    state: ServerState
    protocol_version: str | None
    server_info: Implementation | None
    last_error: BaseException | None
    restarts: int
    tools: tuple[str, ...]
    """The server's own names of the tools it offers through the filters."""
    instructions: str | None = None
    """The server's instructions for the model, from its latest handshake."""
    runs_tasks: bool = False
    """Whether the server declared, in its latest handshake, that it runs tool calls as tasks."""
    left_out: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    """Tools the server offers that are not in the registry, by name, with the reason.

    Today: a tool whose input schema declares a JSON Schema dialect this client
    does not support (see :mod:`opex_trio.protocol.dialects`). It is not offered
    to a model, since its arguments cannot be read by the dialect's rules (the
    specification asks for an error saying so, not a guess); calling it with
    :meth:`~opex_trio.mcp.manager.SessionManager.call_tool` still works, and
    the server checks the arguments.
    """


@attrs.frozen
class RegisteredTool:
    """A tool in the registry: its registry name, its server, and its definition."""

    name: str
    server: str
    tool: Tool


@attrs.frozen
class ResourceUpdate:
    """A resource a server was asked to watch changed (``notifications/resources/updated``).

    ``server`` is the server's id in the manager; read the resource again to
    see what changed.
    """

    server: str
    uri: str


def transport_factory(
    config: ServerConfig, name: str
) -> Callable[[], AbstractAsyncContextManager[Transport]]:
    """The function that opens a fresh connection for ``config``."""
    if isinstance(config, StdioParameters):
        params = config if config.name else attrs.evolve(config, name=name)
        return lambda: open_stdio_transport(params)
    if isinstance(config, HttpParameters):
        http = config if config.name else attrs.evolve(config, name=name)
        return lambda: open_http_transport(http)
    if isinstance(config, WebSocketParameters):
        ws = config if config.name else attrs.evolve(config, name=name)
        return lambda: open_websocket_transport(ws)
    raise ConfigError(f"server {name!r}: unsupported configuration {type(config).__name__}")

"""Server configurations: the seed's dicts, the common ``mcpServers`` file, typed classes.

A server is configured by one of the transport parameter classes
(:class:`~opex_trio.transports.stdio.StdioParameters` for a local process, the
HTTP and WebSocket ones for remote servers). This module turns the dict forms
people already have into those classes:

* the seed's dicts: ``{"command", "args", "env"}`` for a local server and
  ``{"url", "auth_token", "execution_id"}`` for a remote one;
* the ``mcpServers`` JSON file that Claude Desktop, Cursor and others use:
  ``{"mcpServers": {"name": {"command", "args", "env", "cwd"}}}`` or
  ``{"name": {"url", "headers"}}``. VS Code's ``"servers"`` key is accepted
  too, and ``"disabled": true`` skips a server.

A remote server that uses OAuth gets an ``"oauth"`` object (or the same keys
at the top of its entry): ``client_id`` (a pre-registration; without one the
client registers itself), ``client_secret_env`` (the name of the environment
variable holding the secret, never the secret itself), ``scopes`` (a list or
a space-separated string), ``grant`` (``"authorization_code"``, the default,
or ``"client_credentials"``), ``client_metadata_url`` and ``redirect_port``
(the loopback port of the login callback; a free one by default).

Every error is a :class:`~opex_trio.errors.ConfigError` that names the file
(when there is one), the server and the field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

from ..auth import (
    AuthorizationCode,
    ClientCredentials,
    ClientIdentity,
    LoopbackRedirect,
    OAuth,
    OAuthConfig,
)
from ..auth.config import Grant
from ..errors import ConfigError
from ..transports.http import HttpParameters
from ..transports.stdio import StdioParameters, normalize_env
from ..transports.websocket import WebSocketParameters

__all__ = [
    "ServerConfig",
    "from_config",
    "load_config",
    "parse_server",
    "server_from_command",
    "server_id",
]

logger = logging.getLogger("opex_trio.mcp.config")

ServerConfig: TypeAlias = StdioParameters | HttpParameters | WebSocketParameters
"""A typed server configuration: one of the transport parameter classes."""

# Keys other tools put in the same file; accepted and ignored.
_FOREIGN_KEYS = frozenset(
    {
        "alwaysAllow",
        "autoApprove",
        "description",
        "disabled",
        "envFile",
        "icon",
        "name",
        "timeout",
        "transportType",
        "type",
    }
)
_STDIO_KEYS = frozenset({"command", "args", "env", "cwd", "inherit_env"})

_REMOTE_KEYS = frozenset(
    {"url", "headers", "auth_token", "execution_id", "execution_id_header", "transport", "oauth"}
    | {"client_id", "client_secret_env", "scopes"}
)
_OAUTH_KEYS = frozenset(
    {"client_id", "client_secret_env", "scopes", "grant", "client_metadata_url", "redirect_port"}
)
# How the "type" field of mcpServers files names the HTTP transports.
_HTTP_TYPES = {
    "http": "streamable-http",
    "streamable-http": "streamable-http",
    "streamableHttp": "streamable-http",
    "sse": "sse",
}


def _check_str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings, got {value!r}")
    return value


def parse_server(data: Any, *, name: str | None = None, where: str | None = None) -> ServerConfig:
    """Turn one server's dict into its typed configuration.

    ``where`` prefixes error messages (for example ``"servers.json: mcpServers.fs"``).
    A typed configuration passes through unchanged.
    """
    where = where or (f"server {name!r}" if name else "server config")
    if isinstance(data, StdioParameters | HttpParameters | WebSocketParameters):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be an object, got {type(data).__name__}")
    if "command" in data and "url" in data:
        raise ConfigError(f"{where} has both 'command' and 'url'; a server is one or the other")
    if "command" in data:
        return _parse_stdio(data, name, where)
    if "url" in data:
        return _parse_remote(data, name, where)
    raise ConfigError(
        f"{where} needs 'command' (a local server) or 'url' (a remote server); "
        f"it has {sorted(data) or 'no fields'}"
    )


def _parse_stdio(data: Mapping[str, Any], name: str | None, where: str) -> StdioParameters:
    unknown = set(data) - _STDIO_KEYS - _FOREIGN_KEYS
    if unknown:
        # Other tools add their own keys to these files; they are not ours to reject.
        logger.debug("%s: ignoring unknown fields %s", where, sorted(unknown))
    command = data["command"]
    if not isinstance(command, str) or not command.strip():
        raise ConfigError(f"{where}.command must be a non-empty string, got {command!r}")
    args = _check_str_list(data.get("args", []), f"{where}.args")
    cwd = data.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ConfigError(f"{where}.cwd must be a string, got {cwd!r}")
    try:
        return StdioParameters(
            command,
            args,
            env=normalize_env(data.get("env"), where=f"{where}.env"),
            cwd=os.path.expanduser(cwd) if cwd else None,
            inherit_env=data.get("inherit_env", False),
            name=name,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _parse_remote(
    data: Mapping[str, Any], name: str | None, where: str
) -> HttpParameters | WebSocketParameters:
    url = data["url"]
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}.url must be a non-empty string, got {url!r}")
    unknown = set(data) - _REMOTE_KEYS - _FOREIGN_KEYS
    if unknown:
        logger.debug("%s: ignoring unknown fields %s", where, sorted(unknown))
    headers = data.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConfigError(f"{where}.headers must be an object of strings")
    for key in ("auth_token", "execution_id", "execution_id_header"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{where}.{key} must be a string, got {type(data[key]).__name__}")
    auth = _parse_oauth(data, name, where)
    try:
        if url.startswith(("ws://", "wss://")):
            return WebSocketParameters(
                url,
                auth_token=data.get("auth_token"),
                headers=headers,
                execution_id=data.get("execution_id"),
                execution_id_header=data.get("execution_id_header", "Execution-Id"),
                auth=auth,
                name=name,
            )
        kind = data.get("transport") or data.get("type") or "auto"
        mode = "auto" if kind == "auto" else _HTTP_TYPES.get(kind)
        if mode is None:
            raise ConfigError(
                f"type {kind!r} is not a remote transport; use one of "
                f"{', '.join(sorted(_HTTP_TYPES))}"
            )
        return HttpParameters(
            url,
            auth_token=data.get("auth_token"),
            execution_id=data.get("execution_id"),
            execution_id_header=data.get("execution_id_header", "Execution-Id"),
            headers=headers,
            transport=mode,  # type: ignore[arg-type]
            auth=auth,
            name=name,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _parse_oauth(data: Mapping[str, Any], name: str | None, where: str) -> OAuth | None:
    """The OAuth client a remote entry asks for, or ``None``."""
    section: Any = data.get("oauth")
    flat = {key: data[key] for key in _OAUTH_KEYS if key in data}
    if section is None and not flat:
        return None
    if section is True:
        section = {}
    if not isinstance(section, Mapping) and section is not None:
        raise ConfigError(f"{where}.oauth must be an object or true, got {section!r}")
    settings = {**flat, **(section or {})}
    where = f"{where}.oauth" if section is not None else where
    unknown = set(settings) - _OAUTH_KEYS
    if unknown:
        raise ConfigError(f"{where} has unknown fields {sorted(unknown)}")
    for key in ("client_id", "client_secret_env", "client_metadata_url", "grant"):
        if key in settings and not isinstance(settings[key], str):
            raise ConfigError(f"{where}.{key} must be a string")
    secret = None
    variable = settings.get("client_secret_env")
    if variable is not None:
        secret = os.environ.get(variable)
        if not secret:
            raise ConfigError(
                f"{where}.client_secret_env names {variable!r}, which is not set in the environment"
            )
    scopes = settings.get("scopes")
    if isinstance(scopes, str):
        scopes = scopes.split()
    if scopes is not None and (
        not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)
    ):
        raise ConfigError(f"{where}.scopes must be a list of strings or a string")
    port = settings.get("redirect_port", 0)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
        raise ConfigError(f"{where}.redirect_port must be a port number, got {port!r}")
    kind = settings.get("grant", "authorization_code")
    grant: Grant
    if kind == "authorization_code":
        grant = AuthorizationCode(LoopbackRedirect(port=port))
    elif kind == "client_credentials":
        if settings.get("client_id") is None or secret is None:
            raise ConfigError(f"{where}: the client_credentials grant needs client_id and a secret")
        grant = ClientCredentials()
    else:
        raise ConfigError(
            f"{where}.grant must be 'authorization_code' or 'client_credentials', got {kind!r}"
        )
    identity = ClientIdentity(
        client_id=settings.get("client_id"),
        client_secret=secret,
        client_metadata_url=settings.get("client_metadata_url"),
    )
    return OAuth(OAuthConfig(grant=grant, client=identity, scopes=scopes), name=name)


def from_config(data: Any, *, source: str = "config") -> dict[str, ServerConfig]:
    """The servers of an ``mcpServers`` object, by name, in file order (disabled ones skipped)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must hold a JSON object, got {type(data).__name__}")
    key = "mcpServers" if "mcpServers" in data else "servers" if "servers" in data else None
    if key is None:
        raise ConfigError(f"{source} has no 'mcpServers' object")
    servers = data[key]
    if not isinstance(servers, Mapping):
        raise ConfigError(f"{source}: '{key}' must be an object, got {type(servers).__name__}")
    out: dict[str, ServerConfig] = {}
    for name, entry in servers.items():
        where = f"{source}: {key}.{name}"
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{source}: server names must be non-empty strings, got {name!r}")
        if isinstance(entry, Mapping) and entry.get("disabled") is True:
            continue
        out[name] = parse_server(entry, name=name, where=where)
    return out


def load_config(path: str | os.PathLike[str]) -> dict[str, ServerConfig]:
    """Read an ``mcpServers`` JSON file; errors name the file, the line and the field."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(file)!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(file)!r} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(file)!r} is not UTF-8: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"config file {str(file)!r} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}"
        ) from None
    return from_config(data, source=str(file))


def server_from_command(command_line: str, *, name: str | None = None) -> StdioParameters:
    """A stdio server from a shell-like command line (``"uvx mcp-server-time"``)."""
    try:
        argv = shlex.split(command_line)
    except ValueError as exc:
        raise ConfigError(f"server command {command_line!r} cannot be parsed: {exc}") from None
    if not argv:
        raise ConfigError("server command is empty")
    return _parse_stdio({"command": argv[0], "args": argv[1:]}, name, "server command")


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower()
    return slug[:40] or "server"


def server_id(config: ServerConfig) -> str:
    """A stable id for a configuration: its name, or a readable slug plus a short hash.

    The same configuration always gives the same id, in every process, so ids
    survive restarts and can key caches.
    """
    name = getattr(config, "name", None)
    if name:
        return str(name)
    if isinstance(config, StdioParameters):
        words = [os.path.basename(config.command), *config.args]
        # The first argument that is not a flag is usually the package
        # (npx -y @scope/server-x, uvx mcp-server-time); else the command.
        label = next((w for w in config.args if not w.startswith("-")), words[0])
        label = label.rsplit("/", 1)[-1].split("@", 1)[0] or words[0]
        identity: Any = {
            "command": config.command,
            "args": list(config.args),
            "env": dict(config.env),
            "cwd": config.cwd,
        }
    else:
        url = str(getattr(config, "url", "server"))
        label = re.sub(r"^[a-z]+://", "", url).split("/", 1)[0]
        identity = {"url": url}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:6]
    return f"{_slug(label)}-{digest}"

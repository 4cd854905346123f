"""How to reach a remote MCP server over HTTP: the parameters and their checks.

The values end up in URLs and headers, so each is checked once, when the
parameters are built, with an error that names the field (never a secret's
value). The URL helpers here also keep credentials out of error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs
import httpx2

from ..errors import ConfigError
from ..protocol.framing import DEFAULT_MAX_MESSAGE_SIZE
from ._params import (
    check_execution_id,
    check_header_name,
    check_token,
    normalize_headers,
    redacted_headers,
)

__all__ = ["HttpMode", "HttpParameters", "origin", "safe_url"]

HttpMode = Literal["auto", "streamable-http", "sse"]
"""Which HTTP transport to speak: detect, Streamable HTTP, or the older HTTP+SSE."""

# Header names a user may not set through ``headers``: the transport owns them.
_RESERVED_HEADERS = frozenset(
    {"accept", "content-type", "content-length", "mcp-session-id", "mcp-protocol-version", "host"}
)


def _normalize_headers(value: Any) -> dict[str, str]:
    return normalize_headers(value, _RESERVED_HEADERS)


def _check_url(url: Any, what: str = "url") -> str:
    if not isinstance(url, str):
        raise ConfigError(f"{what} must be a string, got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be an http:// or https:// URL, got {safe_url(url)!r}")
    return url


def safe_url(url: str) -> str:
    """``url`` without user info, query or fragment, which may hold credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else "<invalid URL>"


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _positive(name: str) -> Any:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")

    return check


@attrs.frozen
class HttpParameters:
    """How to reach a remote MCP server over HTTP.

    ``url`` is the MCP endpoint (Streamable HTTP) or the SSE URL of an older
    server. ``auth_token`` is sent as ``Authorization: Bearer`` to that
    origin only. ``execution_id`` is sent with every ``tools/call`` in the
    header named ``execution_id_header``. ``headers`` are added to every
    request. ``timeout`` bounds connecting, writing and the wait for a free
    connection; ``sse_read_timeout`` is the longest silence tolerated while a
    response or stream is being read (``None``: no limit). Request deadlines
    are not set here: each call has its own.

    ``transport`` picks the protocol: ``"auto"`` tries Streamable HTTP and
    falls back to HTTP+SSE, the other two force one. ``http_client`` borrows
    an :class:`httpx2.AsyncClient` (it is not closed); by default the
    transport makes its own. ``reconnect_delay`` is the pause before resuming
    a stream when the server gave no ``retry:``; ``max_reconnects`` bounds the
    attempts in a row. ``open_get_stream`` opens the optional stream for
    messages the server sends on its own; ``terminate_on_close`` sends the
    DELETE that ends the session. ``auth`` is an :class:`httpx2.Auth` applied
    to every request, such as :class:`opex_trio.auth.OAuth` (which then owns the
    ``Authorization`` header).
    """

    url: str = attrs.field(validator=lambda i, a, v: _check_url(v))
    auth_token: str | None = attrs.field(default=None, repr=False, validator=check_token)
    execution_id: str | None = attrs.field(default=None, validator=check_execution_id)
    execution_id_header: str = attrs.field(default="Execution-Id", validator=check_header_name)
    headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=_normalize_headers, repr=redacted_headers
    )
    timeout: float = attrs.field(default=30.0, validator=_positive("timeout"))
    sse_read_timeout: float | None = attrs.field(
        default=300.0, validator=_positive("sse_read_timeout")
    )
    transport: HttpMode = attrs.field(default="auto")
    max_message_size: int = attrs.field(default=DEFAULT_MAX_MESSAGE_SIZE)
    http_client: httpx2.AsyncClient | None = attrs.field(default=None, repr=False, eq=False)
    auth: httpx2.Auth | None = attrs.field(default=None, repr=False, eq=False)
    name: str | None = None
    follow_redirects: bool = True
    reconnect_delay: float = attrs.field(default=1.0, validator=_positive("reconnect_delay"))
    max_reconnects: int = 5
    open_get_stream: bool = True
    terminate_on_close: bool = True
    max_connections: int = 100

    @transport.validator
    def _check_transport(self, attribute: Any, value: Any) -> None:
        if value not in ("auto", "streamable-http", "sse"):
            raise ConfigError(
                f"transport must be 'auto', 'streamable-http' or 'sse', got {value!r}"
            )

    @max_message_size.validator
    def _check_size(self, attribute: Any, value: Any) -> None:
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"max_message_size must be a positive integer, got {value!r}")

    @property
    def label(self) -> str:
        """The server's name, or the host of its URL when it has none."""
        return self.name or urlsplit(self.url).hostname or "http"

"""What an MCP client is configured with, and what it delivers to subscribers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from ..errors import ConfigError
from ..protocol.session import (
    ListChanged,
    LogReceived,
    NotificationReceived,
    ProgressReceived,
    ResourceUpdated,
)
from ..protocol.types import (
    CreateMessageParams,
    CreateMessageResult,
    ElicitParams,
    ElicitResult,
    Implementation,
    LoggingMessageParams,
    ProgressParams,
    Root,
)
from ..protocol.versions import LATEST_LEGACY_VERSION, LATEST_VERSION, Era

__all__ = [
    "LOG_LEVELS",
    "ClientOptions",
    "ElicitationHandler",
    "Notice",
    "ProgressCallback",
    "RequestingServer",
    "RootsProvider",
    "SamplingHandler",
    "SessionRenewed",
]


@attrs.frozen
class RequestingServer:
    """Which server sent a request to the client: to show a person who asks.

    ``name`` is the client's name for the server (the manager's server id);
    ``server_info`` and ``protocol_version`` are what its handshake said.
    """

    name: str
    server_info: Implementation | None = None
    protocol_version: str | None = None


ProgressCallback: TypeAlias = Callable[[ProgressParams], object]
"""Called with each progress notification of a call; may be sync or async."""
SamplingHandler: TypeAlias = (
    Callable[[CreateMessageParams], Awaitable[CreateMessageResult | Mapping[str, Any]]]
    | Callable[
        [CreateMessageParams, RequestingServer], Awaitable[CreateMessageResult | Mapping[str, Any]]
    ]
)
"""Answers ``sampling/createMessage``; given the :class:`RequestingServer` too if it takes two."""
ElicitationHandler: TypeAlias = (
    Callable[[ElicitParams], Awaitable[ElicitResult | Mapping[str, Any]]]
    | Callable[[ElicitParams, RequestingServer], Awaitable[ElicitResult | Mapping[str, Any]]]
)
"""Answers ``elicitation/create``; given the :class:`RequestingServer` too if it takes two."""
RootsProvider: TypeAlias = (
    Sequence[str | Root | Mapping[str, Any]]
    | Callable[[], Awaitable[Sequence[str | Root | Mapping[str, Any]]]]
    | Callable[[RequestingServer], Awaitable[Sequence[str | Root | Mapping[str, Any]]]]
)
"""The roots to answer ``roots/list`` with: a fixed list, or an async function returning one
(given the :class:`RequestingServer` if it takes an argument). Each root is a ``file://``
URI string, a :class:`~opex_trio.protocol.types.Root` or a mapping with a ``"uri"``."""


@attrs.frozen
class SessionRenewed:
    """The server forgot our session, and the actor opened a new one in its place.

    Delivered to subscribers once the new session is open. The server may be
    a new process with other tools, resources or prompts, so a subscriber that
    keeps lists of them reloads them.
    """


Notice: TypeAlias = (
    LogReceived
    | ListChanged
    | ResourceUpdated
    | ProgressReceived
    | NotificationReceived
    | SessionRenewed
)
"""A notification event delivered to subscribers, or :class:`SessionRenewed`."""

ELICITATION_MODES = ("form", "url")
"""The elicitation modes of the protocol."""

SAMPLING_FEATURES = ("tools", "context")
"""What a sampling handler may do beyond plain messages: tool use, and ``includeContext``."""

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}
"""The MCP log levels, and the Python logging level each is logged at."""


def checked_roots(roots: Any) -> list[dict[str, Any]]:
    """``roots`` as ``roots/list`` sends them; :class:`ConfigError` unless each is a file:// URI.

    A root is a URI string, a :class:`~opex_trio.protocol.types.Root`, or a
    ``{"uri": ..., "name": ...}`` mapping.
    """
    if isinstance(roots, str | bytes | Mapping) or not isinstance(roots, Sequence):
        raise ConfigError(f"roots must be a list of roots, got {type(roots).__name__}")
    listed = []
    for root in roots:
        item = root.to_dict() if isinstance(root, Root) else root
        if isinstance(item, str):
            item = {"uri": item}
        uri = item.get("uri") if isinstance(item, Mapping) else None
        if not isinstance(uri, str) or not uri.startswith("file://"):
            raise ConfigError(
                "a root must be a file:// URI (the protocol allows no other), given as a"
                f" string, a Root or a mapping with a 'uri'; got {root!r}"
            )
        listed.append(dict(item))
    return listed


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _optional_str_tuple(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _str_tuple(value)


@attrs.frozen
class ClientOptions:
    """How an :class:`~opex_trio.mcp.client.McpClient` behaves; every field has a sensible default.

    ``request_timeout`` is the default deadline of one request in seconds
    (``None``: no deadline), ``init_timeout`` that of the handshake. Declare
    ``roots``, ``sampling_handler`` or ``elicitation_handler`` to answer those
    server requests; the matching capability is declared only then.
    ``elicitation_modes`` are the modes the elicitation handler can do:
    ``"form"`` (fields the person fills in) and ``"url"`` (a page the person
    opens); only these are declared, and a request in another mode is refused.
    ``sampling_features`` are what the sampling handler can do beyond plain
    messages: ``"tools"`` (tool use, SEP-1577) and ``"context"``
    (``includeContext``); ``None`` takes them from the handler's own
    ``sampling_features`` attribute (the stock
    :func:`~opex_trio.agent.sampling.sampling_handler` says ``("tools",)``), and
    a request with ``tools`` or ``toolChoice`` the client did not declare is
    refused with invalid params.
    ``on_log`` receives the server's log messages (they also go to the
    ``opex_trio.mcp`` logger). ``mailbox_size`` bounds the queue of messages
    waiting for the writer.

    ``era`` is the protocol era to speak: ``None`` (the default) detects it
    per server: a ``server/discover`` probe first (over HTTP, a 4xx answer
    without a modern error means legacy), and ``initialize`` offering
    ``protocol_version`` when the server is legacy or says nothing within
    ``probe_timeout`` seconds. A server that turns out modern after all (its
    ``DiscoverResult`` comes late, or it refuses ``initialize`` naming a
    modern version) is opened in the modern era. What detection finds is
    remembered for the transport factory and the HTTP origin, so the next
    connection skips the probe (see :mod:`opex_trio.mcp._eras`).
    ``Era.LEGACY`` pins the ``initialize`` handshake; ``Era.MODERN`` pins
    per-request ``_meta`` naming ``modern_version``, opened with
    ``server/discover``.

    With ``reset_on_progress``, a request's timeout is an idle deadline: each
    progress notification of the request restarts it, and ``max_total_timeout``
    (``None``: no bound) bounds the whole request. A call can choose otherwise.
    """

    client_info: Implementation | None = None
    protocol_version: str = LATEST_LEGACY_VERSION
    request_timeout: float | None = 60.0
    init_timeout: float = 30.0
    roots: RootsProvider | None = attrs.field(default=None)
    sampling_handler: SamplingHandler | None = None
    elicitation_handler: ElicitationHandler | None = None
    on_log: Callable[[LoggingMessageParams], object] | None = None
    mailbox_size: int = 256
    era: Era | None = None
    modern_version: str = LATEST_VERSION
    probe_timeout: float = 5.0
    elicitation_modes: tuple[str, ...] = attrs.field(default=("form",), converter=_str_tuple)
    reset_on_progress: bool = False
    max_total_timeout: float | None = None
    sampling_features: tuple[str, ...] | None = attrs.field(
        default=None, converter=_optional_str_tuple
    )

    def declared_sampling(self) -> tuple[str, ...]:
        """The sampling features declared: none without a handler."""
        if self.sampling_handler is None:
            return ()
        if self.sampling_features is not None:
            return self.sampling_features
        said = getattr(self.sampling_handler, "sampling_features", ())
        return tuple(f for f in said if f in SAMPLING_FEATURES)

    def capabilities(self) -> dict[str, Any]:
        """The client capabilities object these options declare."""
        caps: dict[str, Any] = {}
        if self.roots is not None:
            caps["roots"] = {"listChanged": True}
        if self.sampling_handler is not None:
            caps["sampling"] = {feature: {} for feature in self.declared_sampling()}
        if self.elicitation_handler is not None:
            caps["elicitation"] = {mode: {} for mode in self.elicitation_modes}
        return caps

    @roots.validator
    def _check_roots(self, _: Any, roots: RootsProvider | None) -> None:
        if roots is not None and not callable(roots):
            checked_roots(roots)

    @sampling_features.validator
    def _check_sampling(self, _: Any, features: tuple[str, ...] | None) -> None:
        unknown = [f for f in features or () if f not in SAMPLING_FEATURES]
        if unknown:
            raise ConfigError(
                f"sampling_features must be some of {', '.join(SAMPLING_FEATURES)}, "
                f"got {features!r}"
            )

    @elicitation_modes.validator
    def _check_modes(self, _: Any, modes: tuple[str, ...]) -> None:
        unknown = [m for m in modes if m not in ELICITATION_MODES]
        if unknown or not modes:
            raise ConfigError(
                f"elicitation_modes must be some of {', '.join(ELICITATION_MODES)}, got {modes!r}"
            )

"""What an MCP client is configured with, and what it delivers to subscribers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

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
    "RootsProvider",
    "SamplingHandler",
    "SessionRenewed",
]

ProgressCallback: TypeAlias = Callable[[ProgressParams], object]
"""Called with each progress notification of a call; may be sync or async."""
SamplingHandler: TypeAlias = Callable[
    [CreateMessageParams], Awaitable[CreateMessageResult | Mapping[str, Any]]
]
"""Answers ``sampling/createMessage``."""
ElicitationHandler: TypeAlias = Callable[
    [ElicitParams], Awaitable[ElicitResult | Mapping[str, Any]]
]
"""Answers ``elicitation/create``."""
RootsProvider: TypeAlias = (
    Sequence[Root | Mapping[str, Any]] | Callable[[], Awaitable[Sequence[Root | Mapping[str, Any]]]]
)
"""The roots to answer ``roots/list`` with: a fixed list, or an async function returning one."""


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


@attrs.frozen
class ClientOptions:
    """How an :class:`~opex_trio.mcp.client.McpClient` behaves; every field has a sensible default.

    ``request_timeout`` is the default deadline of one request in seconds
    (``None``: no deadline), ``init_timeout`` that of the handshake. Declare
    ``roots``, ``sampling_handler`` or ``elicitation_handler`` to answer those
    server requests; the matching capability is declared only then.
    ``on_log`` receives the server's log messages (they also go to the
    ``opex_trio.mcp`` logger). ``mailbox_size`` bounds the queue of messages
    waiting for the writer.

    ``era`` is the protocol era to speak: ``Era.LEGACY`` (an ``initialize``
    handshake offering ``protocol_version``; the default), ``Era.MODERN``
    (per-request ``_meta`` naming ``modern_version``, opened with
    ``server/discover``), or ``None`` to detect it per server: a
    ``server/discover`` probe first, and ``initialize`` when the server is
    legacy or says nothing within ``probe_timeout`` seconds (a server that
    turns out modern after all, refusing ``initialize`` with a modern
    version, is opened in the modern era).
    """

    client_info: Implementation | None = None
    protocol_version: str = LATEST_LEGACY_VERSION
    request_timeout: float | None = 60.0
    init_timeout: float = 30.0
    roots: RootsProvider | None = None
    sampling_handler: SamplingHandler | None = None
    elicitation_handler: ElicitationHandler | None = None
    on_log: Callable[[LoggingMessageParams], object] | None = None
    mailbox_size: int = 256
    era: Era | None = Era.LEGACY
    modern_version: str = LATEST_VERSION
    probe_timeout: float = 10.0

    def capabilities(self) -> dict[str, Any]:
        """The client capabilities object these options declare."""
        caps: dict[str, Any] = {}
        if self.roots is not None:
            caps["roots"] = {"listChanged": True}
        if self.sampling_handler is not None:
            caps["sampling"] = {}
        if self.elicitation_handler is not None:
            caps["elicitation"] = {"form": {}, "url": {}}
        return caps

"""How a session of the legacy era (2024-11-05 up to 2025-11-25) opens.

The client sends ``initialize`` offering one version; the server answers with
the version it will speak, which must be one this client speaks; the client
then sends ``notifications/initialized``. The version holds for the whole
session. :mod:`.session` decides when this era applies; this module only
knows its handshake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import VersionNegotiationError
from .events import HandshakeComplete
from .jsonrpc import Notification, Request
from .types import InitializeResult
from .versions import LEGACY_VERSIONS, Era, features

if TYPE_CHECKING:
    from .session import ClientSession

__all__ = ["LegacyOpening"]


class LegacyOpening:
    """The legacy handshake: ``initialize`` then ``notifications/initialized``."""

    era = Era.LEGACY

    def __init__(self, offered: str) -> None:
        self.offered = offered

    def first_request(self, session: ClientSession) -> Request:
        """The ``initialize`` request offering :attr:`offered`."""
        return Request(
            session.next_id(),
            "initialize",
            {
                "protocolVersion": self.offered,
                "capabilities": dict(session.capabilities),
                "clientInfo": session.client_info.to_dict(),
            },
        )

    def on_result(self, session: ClientSession, result: Mapping[str, Any]) -> HandshakeComplete:
        """Check the server's answer; queue ``notifications/initialized`` when it is good."""
        parsed = InitializeResult.from_dict(result)
        version = parsed.protocol_version
        if version not in LEGACY_VERSIONS:
            raise VersionNegotiationError(
                f"the server answered initialize with protocol version {version!r}, which this "
                f"client does not speak (it speaks {', '.join(LEGACY_VERSIONS)})",
                offered=self.offered,
                received=version,
            )
        session.queue(Notification("notifications/initialized"))
        return HandshakeComplete(parsed, features(version))

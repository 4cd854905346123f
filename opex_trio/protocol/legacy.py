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
from . import jsonrpc
from .events import HandshakeComplete, RequestHandled, RequestReceived, SessionEvent
from .jsonrpc import ErrorObject, ErrorResponse, Message, Notification, Request, RequestId, Response
from .types import InitializeResult
from .versions import LEGACY_VERSIONS, Era, features

if TYPE_CHECKING:
    from .session import ClientSession

__all__ = ["HANDLED_REQUESTS", "LegacyOpening", "ServerRequests"]

# Requests a legacy server may send (and a modern one ask for as input) that
# need an owner-supplied answer, with the client capability each needs declared.
HANDLED_REQUESTS = {
    "roots/list": "roots",
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
}
"""Server requests that need an answer from the owner, with the client capability each needs."""


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


class ServerRequests:
    """The requests a legacy server sent that await the owner's answer.

    ``ping`` is answered at once; a request for something the client declared
    (roots, sampling, elicitation) goes to the owner; anything else gets
    "method not found".
    """

    def __init__(self, capabilities: Mapping[str, Any]) -> None:
        self._capabilities = capabilities
        self._open: set[RequestId] = set()

    def receive(self, message: Request, outbox: list[Message]) -> SessionEvent:
        """What a request from the server means; an answer the session gives itself is queued."""
        if message.method == "ping":
            outbox.append(Response(message.id, {}))
            return RequestHandled(message)
        capability = HANDLED_REQUESTS.get(message.method)
        if capability is not None and capability in self._capabilities:
            self._open.add(message.id)
            return RequestReceived(message)
        not_found = f"method not supported by this client: {message.method}"
        outbox.append(ErrorResponse(message.id, ErrorObject(jsonrpc.METHOD_NOT_FOUND, not_found)))
        return RequestHandled(message)

    def close(self, request_id: RequestId | None) -> bool:
        """The request is answered or cancelled; whether it was awaiting an answer."""
        if request_id in self._open:
            self._open.discard(request_id)
            return True
        return False

    def clear(self) -> None:
        """Forget every open request."""
        self._open.clear()

"""The modern era of MCP (2026-07-28 and later): every request carries its own version.

Theory of operation
-------------------
There is no handshake and no session. Each request names its protocol
version, the client's capabilities and (by default) the client's identity in
``params._meta`` under the ``io.modelcontextprotocol/`` keys
(:func:`request_meta`). ``server/discover`` tells the client which versions the
server speaks, what it offers and who it is; :class:`ModernOpening` sends it
first so that the session learns the server's capabilities as the legacy
``initialize`` did, and answers an :class:`UnsupportedProtocolVersionError
<opex_trio.errors.UnsupportedProtocolVersionError>` by choosing a version from
the server's list.

Results say what they are in ``resultType``: absent or ``complete`` is a final
answer; ``input_required`` (:class:`InputRequired`) asks the client for input
(elicitation, sampling, roots) and the request is sent again, under a new id,
with the answers in ``inputResponses`` under the server's keys and the opaque
``requestState`` echoed unchanged. Any other ``resultType`` is invalid unless
an extension the client declared adds it.

Change notifications come on a long-lived ``subscriptions/listen`` request
whose filter is a :class:`SubscriptionFilter`; every message of the stream
carries the request's id as ``io.modelcontextprotocol/subscriptionId``.

Cacheable results carry :class:`CacheHints` (``ttlMs``, ``cacheScope``).

This module knows the era's messages; :mod:`.session` decides when the era
applies and keeps the state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from ..errors import ProtocolError, UnsupportedProtocolVersionError, VersionNegotiationError
from ._model import _NO_EXTRA, Implementation, McpType, _list_of, _meta, _object, _str, _type
from .jsonrpc import PreEncoded, Request
from .types import InitializeResult, ServerCapabilities
from .versions import MODERN_VERSIONS, Era, features

if TYPE_CHECKING:
    from .session import ClientSession

__all__ = [
    "CLIENT_CAPABILITIES_KEY",
    "CLIENT_INFO_KEY",
    "INPUT_METHODS",
    "LOG_LEVELS",
    "LOG_LEVEL_KEY",
    "MODERN_ERROR_CODES",
    "PROTOCOL_VERSION_KEY",
    "SERVER_INFO_KEY",
    "SUBSCRIPTION_ID_KEY",
    "CacheHints",
    "DiscoverResult",
    "InputRequest",
    "InputRequired",
    "ModernOpening",
    "SubscriptionFilter",
    "choose_version",
    "request_meta",
    "result_type",
    "shared_meta",
    "with_meta",
]

PROTOCOL_VERSION_KEY: Final = "io.modelcontextprotocol/protocolVersion"
"""The ``_meta`` key of a request's protocol version."""
CLIENT_INFO_KEY: Final = "io.modelcontextprotocol/clientInfo"
"""The ``_meta`` key of the client's name and version."""
CLIENT_CAPABILITIES_KEY: Final = "io.modelcontextprotocol/clientCapabilities"
"""The ``_meta`` key of the client's capabilities."""
LOG_LEVEL_KEY: Final = "io.modelcontextprotocol/logLevel"
"""The ``_meta`` key of the log level the client asks for."""
SUBSCRIPTION_ID_KEY: Final = "io.modelcontextprotocol/subscriptionId"
"""The ``_meta`` key naming the subscription a notification belongs to."""
SERVER_INFO_KEY: Final = "io.modelcontextprotocol/serverInfo"
"""The ``_meta`` key of the server's name and version in a result."""

MODERN_ERROR_CODES: Final = frozenset({-32020, -32021, -32022})
"""Error codes only a modern server sends; one of them identifies the era."""

INPUT_METHODS: Final = frozenset({"tools/call", "resources/read", "prompts/get"})
"""The requests a server may answer with ``input_required``."""

LOG_LEVELS: Final = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
"""The syslog levels ``io.modelcontextprotocol/logLevel`` (and ``logging/setLevel``) take."""

COMPLETE: Final = "complete"
INPUT_REQUIRED: Final = "input_required"


def request_meta(
    version: str,
    capabilities: Mapping[str, Any],
    client_info: Implementation | None,
    log_level: str | None = None,
) -> dict[str, Any]:
    """The ``_meta`` members every modern request carries."""
    meta: dict[str, Any] = {
        PROTOCOL_VERSION_KEY: version,
        CLIENT_CAPABILITIES_KEY: dict(capabilities),
    }
    if client_info is not None:
        meta[CLIENT_INFO_KEY] = client_info.to_dict()
    if log_level is not None:
        meta[LOG_LEVEL_KEY] = log_level
    return meta


def shared_meta(
    version: str,
    capabilities: Mapping[str, Any],
    client_info: Implementation | None,
    log_level: str | None = None,
) -> PreEncoded:
    """:func:`request_meta` made once for many requests: it keeps its JSON encoding."""
    return PreEncoded(request_meta(version, capabilities, client_info, log_level))


def with_meta(params: Mapping[str, Any] | None, meta: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with ``meta`` merged into its ``_meta``; the caller's other keys stay.

    Without a ``_meta`` of the caller's, ``meta`` itself goes in, not a copy:
    a message is only read once built.
    """
    out = dict(params) if params else {}
    own = out.get("_meta")
    # ``is None`` first: an ABC isinstance check per request is measurable.
    out["_meta"] = meta if own is None or not isinstance(own, Mapping) else {**own, **meta}
    return out


def result_type(result: Mapping[str, Any]) -> str:
    """What a result says it is; a result without ``resultType`` is complete."""
    value = result.get("resultType", COMPLETE)
    if not isinstance(value, str):
        raise ProtocolError(f"resultType must be a string, got {type(value).__name__}")
    return value


def choose_version(supported: Sequence[str], preferred: str) -> str | None:
    """The modern version to speak with a server that supports ``supported``.

    ``preferred`` when the server has it, else the newest modern version both
    sides speak, else ``None``.
    """
    if preferred in supported:
        return preferred
    for version in MODERN_VERSIONS:
        if version in supported:
            return version
    return None


# -- types


@attrs.frozen
class CacheHints:
    """How long a result may be reused (``ttlMs``) and by whom (``cacheScope``).

    A missing or negative ``ttlMs`` is 0 (stale at once), as the
    specification asks; ``scope`` is ``"public"``, ``"private"`` or ``None``
    when the server gave none (treat as private).
    """

    ttl_ms: int = 0
    scope: Literal["public", "private"] | None = None

    @classmethod
    def of(cls, result: Mapping[str, Any]) -> CacheHints:
        """The hints of a result; malformed hints count as absent, never as an error."""
        ttl = result.get("ttlMs")
        ttl_ms = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl > 0 else 0
        scope = result.get("cacheScope")
        return cls(ttl_ms, scope if scope in ("public", "private") else None)

    @classmethod
    def of_pages(cls, results: Sequence[Mapping[str, Any]]) -> CacheHints | None:
        """The hints of a listing read page by page; ``None`` when no page carries ``ttlMs``.

        The listing is as fresh as its stalest page, so the shortest time to
        live counts (a page without one counts as 0). All pages share one
        scope, as the specification demands; the first page's is taken.
        """
        if not any("ttlMs" in result for result in results):
            return None
        hints = [cls.of(result) for result in results]
        return cls(min(h.ttl_ms for h in hints), hints[0].scope)

    @property
    def seconds(self) -> float:
        """The time to live in seconds."""
        return self.ttl_ms / 1000.0

    def fresh(self, received_at: float, now: float) -> bool:
        """Whether a result received at ``received_at`` is still fresh at ``now`` (seconds)."""
        return now < received_at + self.seconds


@attrs.frozen(slots=False)
class DiscoverResult(McpType):
    """The server's answer to ``server/discover``."""

    supported_versions: tuple[str, ...] = attrs.field(
        metadata=_meta("supportedVersions", _list_of(_str), required=True)
    )
    capabilities: ServerCapabilities = attrs.field(
        metadata=_meta("capabilities", _type(ServerCapabilities), required=True)
    )
    instructions: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("instructions", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)

    @property
    def server_info(self) -> Implementation | None:
        """Who the server says it is, when it says (``_meta`` or an older top-level member)."""
        for source in (self.meta or {}, self.extra):
            info = source.get(SERVER_INFO_KEY if source is self.meta else "serverInfo")
            if isinstance(info, Mapping):
                try:
                    return Implementation.from_dict(dict(info), "DiscoverResult.serverInfo")
                except ProtocolError:
                    return None
        return None

    @property
    def cache_hints(self) -> CacheHints:
        """The result's caching hints."""
        return CacheHints.of(self.extra)

    def as_initialize_result(self, version: str) -> InitializeResult:
        """The legacy-shaped view the client reads: the version chosen, capabilities, identity."""
        return InitializeResult(
            protocol_version=version,
            capabilities=self.capabilities,
            server_info=self.server_info or Implementation(name="unknown", version=""),
            instructions=self.instructions,
        )


@attrs.frozen
class InputRequest:
    """One thing an ``input_required`` result asks the client for, under the server's ``key``."""

    key: str
    method: str
    params: Mapping[str, Any]


@attrs.frozen
class InputRequired:
    """An ``input_required`` result: what to answer, and the state to echo back.

    ``request_state`` is ``None`` when the server sent none; then the retry
    carries none either. When it is a string it goes back exactly as it came.
    """

    input_requests: tuple[InputRequest, ...]
    request_state: str | None

    @classmethod
    def of(cls, result: Mapping[str, Any]) -> InputRequired:
        """Parse an ``input_required`` result; :class:`ProtocolError` naming what is wrong."""
        raw = result.get("inputRequests")
        state = result.get("requestState")
        if raw is None and state is None:
            raise ProtocolError(
                "an input_required result must carry inputRequests or requestState, it has neither"
            )
        if state is not None and not isinstance(state, str):
            raise ProtocolError(f"requestState must be a string, got {type(state).__name__}")
        requests: list[InputRequest] = []
        if raw is not None:
            if not isinstance(raw, Mapping):
                raise ProtocolError(f"inputRequests must be an object, got {type(raw).__name__}")
            for key, value in raw.items():
                if not isinstance(value, Mapping) or not isinstance(value.get("method"), str):
                    raise ProtocolError(f"inputRequests[{key!r}] must be an object with a method")
                params = value.get("params")
                if params is not None and not isinstance(params, Mapping):
                    raise ProtocolError(f"inputRequests[{key!r}].params must be an object")
                requests.append(InputRequest(key, value["method"], params or {}))
        return cls(tuple(requests), state)


_FILTER_FLAGS = (
    ("tools_list_changed", "toolsListChanged"),
    ("prompts_list_changed", "promptsListChanged"),
    ("resources_list_changed", "resourcesListChanged"),
)


@attrs.frozen
class SubscriptionFilter:
    """Which notifications a ``subscriptions/listen`` stream carries."""

    tools_list_changed: bool = False
    prompts_list_changed: bool = False
    resources_list_changed: bool = False
    resource_subscriptions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The filter as the ``notifications`` member of the request."""
        out: dict[str, Any] = {key: True for name, key in _FILTER_FLAGS if getattr(self, name)}
        if self.resource_subscriptions:
            out["resourceSubscriptions"] = list(self.resource_subscriptions)
        return out

    @classmethod
    def of(cls, data: Any) -> SubscriptionFilter:
        """Read a filter (the server's acknowledgment); members of the wrong type count as off."""
        if not isinstance(data, Mapping):
            return cls()
        uris = data.get("resourceSubscriptions")
        return cls(
            tools_list_changed=data.get("toolsListChanged") is True,
            prompts_list_changed=data.get("promptsListChanged") is True,
            resources_list_changed=data.get("resourcesListChanged") is True,
            resource_subscriptions=tuple(u for u in uris if isinstance(u, str))
            if isinstance(uris, list)
            else (),
        )

    @property
    def empty(self) -> bool:
        """Whether the filter asks for nothing."""
        return self == SubscriptionFilter()


# -- opening


class ModernOpening:
    """The modern era's opening: ``server/discover``, retried once per version the server names."""

    era = Era.MODERN

    def __init__(self, preferred: str) -> None:
        self.version = preferred
        self.tried: list[str] = []

    def first_request(self, session: ClientSession) -> Request:
        """A ``server/discover`` request carrying :attr:`version` in its ``_meta``."""
        self.tried.append(self.version)
        return Request(
            session.next_id(),
            "server/discover",
            {"_meta": session.meta_for(self.version)},
        )

    def on_result(self, session: ClientSession, result: Mapping[str, Any]) -> Any:
        """Check the discovery; the :class:`~.events.HandshakeComplete` for the version chosen."""
        from .events import HandshakeComplete

        kind = result_type(result)
        if kind != COMPLETE:
            raise ProtocolError(f"server/discover answered with resultType {kind!r}")
        parsed = DiscoverResult.from_dict(result)
        version = choose_version(parsed.supported_versions, self.version)
        if version is None:
            raise VersionNegotiationError(
                "the server supports protocol versions "
                f"{', '.join(parsed.supported_versions) or '(none listed)'}, none of which this "
                f"client speaks in the modern era ({', '.join(MODERN_VERSIONS)})",
                offered=self.version,
                received=None,
            )
        return HandshakeComplete(parsed.as_initialize_result(version), features(version), parsed)

    def retry_version(self, error: UnsupportedProtocolVersionError) -> str | None:
        """The version to try next after ``error``, or ``None`` when there is none left."""
        version = choose_version(error.supported, self.version)
        if version is None or self.tried.count(version) >= 2:
            return None
        self.version = version
        return version

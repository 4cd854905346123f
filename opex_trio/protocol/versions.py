"""MCP protocol versions and what each one allows.

Theory of operation
-------------------
Every version-dependent rule in opex_trio is a field of :class:`Features`,
looked up once from :data:`FEATURES` after negotiation. Code asks
``session.features.batching`` rather than comparing version strings, so a new
revision is one new row here, not ``if`` statements spread over the package.

Versions fall into two eras (see :class:`Era`): the *legacy* era opens a
session with ``initialize`` (2024-11-05 up to 2025-11-25); the *modern* era
(2026-07-28 and later) is stateless and discovers the server with
``server/discover``. The era decides how a session opens; the feature row
decides what is allowed once it is open.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

__all__ = [
    "FEATURES",
    "LATEST_LEGACY_VERSION",
    "LATEST_VERSION",
    "LEGACY_VERSIONS",
    "MODERN_VERSIONS",
    "SUPPORTED_VERSIONS",
    "Era",
    "Features",
    "era_of",
    "features",
    "is_supported",
    "missing_method",
]


class Era(enum.Enum):
    """How a session with a server opens and carries its version."""

    LEGACY = "legacy"
    """``initialize`` handshake; the version holds for the whole session."""
    MODERN = "modern"
    """No handshake; every request names its version in ``_meta``."""


# A global, read faster than the member off its class (see protocol/session.py).
_MODERN = Era.MODERN


@attrs.frozen
class Features:
    """What one protocol version allows. Every version-dependent rule is a field here."""

    version: str
    era: Era
    batching: bool
    """JSON-RPC batches (arrays of messages) may be sent and received."""
    streamable_http: bool
    """The Streamable HTTP transport exists (else only the HTTP+SSE transport)."""
    protocol_version_header: bool
    """HTTP requests after negotiation carry ``MCP-Protocol-Version``."""
    tool_annotations: bool
    audio_content: bool
    progress_message: bool
    """Progress notifications may carry a ``message``."""
    completions_capability: bool
    structured_content: bool
    """Tools may declare ``outputSchema`` and return ``structuredContent``."""
    resource_links: bool
    elicitation: bool
    titles: bool
    icons: bool
    elicitation_url_mode: bool
    sampling_tools: bool
    tasks: bool
    ping: bool
    logging_set_level: bool
    server_initiated_requests: bool
    """The server may send requests (sampling, elicitation, roots) on its own."""
    session_ids: bool
    """Streamable HTTP sessions (``Mcp-Session-Id``) exist."""
    resumable_streams: bool
    """SSE streams can be resumed with ``Last-Event-ID``."""


LEGACY_VERSIONS: Final = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
"""Versions of the legacy era this client speaks, newest first."""
MODERN_VERSIONS: Final = ("2026-07-28",)
"""Versions of the modern era this client knows, newest first."""
LATEST_LEGACY_VERSION: Final = LEGACY_VERSIONS[0]
"""The version offered in ``initialize``."""
LATEST_VERSION: Final = MODERN_VERSIONS[0]
"""The newest version this client knows of."""
SUPPORTED_VERSIONS: Final = MODERN_VERSIONS + LEGACY_VERSIONS
"""Every version this client speaks, modern first, newest first."""


def _row(
    version: str, *flag_sets: set[str], era: Era = Era.LEGACY, drop: frozenset[str] = frozenset()
) -> Features:
    names = {f.name for f in attrs.fields(Features)} - {"version", "era"}
    on = set().union(*flag_sets) - drop
    if on - names:
        raise TypeError(f"unknown feature flags {sorted(on - names)}")
    return Features(version=version, era=era, **{name: name in on for name in names})


_BASE_2024 = {"ping", "logging_set_level", "server_initiated_requests"}
_ADDED_2025_03 = {
    "streamable_http",
    "tool_annotations",
    "audio_content",
    "progress_message",
    "completions_capability",
    "session_ids",
    "resumable_streams",
}
_ADDED_2025_06 = {
    "protocol_version_header",
    "structured_content",
    "resource_links",
    "elicitation",
    "titles",
}
_ADDED_2025_11 = {"icons", "elicitation_url_mode", "sampling_tools", "tasks"}

FEATURES: Final[dict[str, Features]] = {
    "2024-11-05": _row("2024-11-05", _BASE_2024),
    # Batching came in 2025-03-26 and was removed again in 2025-06-18.
    "2025-03-26": _row("2025-03-26", _BASE_2024, _ADDED_2025_03, {"batching"}),
    "2025-06-18": _row("2025-06-18", _BASE_2024, _ADDED_2025_03, _ADDED_2025_06),
    "2025-11-25": _row("2025-11-25", _BASE_2024, _ADDED_2025_03, _ADDED_2025_06, _ADDED_2025_11),
    # The modern era drops sessions, ping, logging/setLevel, server-initiated
    # requests (replaced by multi round-trip requests), stream resumption, and
    # moves tasks to an extension.
    "2026-07-28": _row(
        "2026-07-28",
        _ADDED_2025_03,
        _ADDED_2025_06,
        _ADDED_2025_11,
        era=Era.MODERN,
        drop=frozenset({"tasks", "session_ids", "resumable_streams"}),
    ),
}
"""What each known version has, by version."""


def is_supported(version: str) -> bool:
    """Whether this client speaks ``version``."""
    return version in FEATURES


def features(version: str) -> Features:
    """The feature row of ``version``; :class:`KeyError` naming it when unknown."""
    try:
        return FEATURES[version]
    except KeyError:
        raise KeyError(f"unknown MCP protocol version {version!r}") from None


def era_of(version: str) -> Era:
    """The era ``version`` belongs to."""
    return features(version).era


# Methods that do not exist in the modern era, with what replaced them.
_NOT_MODERN = {
    "initialize": "server/discover",
    "resources/subscribe": "subscriptions/listen",
    "resources/unsubscribe": "cancelling the subscriptions/listen request",
    "ping": "any cheap request, such as server/discover",
    "logging/setLevel": "the logLevel every request carries (set_log_level)",
}


def missing_method(feats: Features, method: str) -> str | None:
    """Why ``method`` cannot be sent under ``feats``' version, or ``None`` when it can."""
    gone = (method == "ping" and not feats.ping) or (
        method == "logging/setLevel" and not feats.logging_set_level
    )
    if feats.era is _MODERN and method in _NOT_MODERN:
        return (
            f"{method} does not exist in protocol version {feats.version}; "
            f"it is replaced by {_NOT_MODERN[method]}"
        )
    if gone:
        return f"{method} does not exist in protocol version {feats.version}"
    return None

"""The requests a session has sent and not yet seen answered, by id.

Each entry keeps the method, the owner's opaque context and, in the modern
era, the parameters as the caller gave them (so the request can be sent again)
and its origin: the id the owner knows and how many input rounds it has been
through. A request sent again under a new id stays reachable by the id the
owner knows (an alias), which is how cancelling it keeps working. Requests
waiting for the input their server asked for live in :attr:`PendingTable.rounds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from ._inputs import InputRounds
from .jsonrpc import RequestId

__all__ = ["Pending", "PendingTable"]

Pending: TypeAlias = tuple[str, Any, Mapping[str, Any] | None, tuple[RequestId, int] | None]
"""(method, context, params without ``_meta`` (``None``: legacy), (known id, rounds) | None)."""


class PendingTable:
    """Requests in flight, the ids they were resent under, and those waiting for input."""

    def __init__(self) -> None:
        self._in_flight: dict[RequestId, Pending] = {}
        self._aliases: dict[RequestId, RequestId] = {}
        self._version_retried: set[RequestId] = set()
        self.rounds = InputRounds()

    def __len__(self) -> int:
        return len(self._in_flight) + len(self.rounds)

    def add(
        self,
        rid: RequestId,
        method: str,
        context: Any,
        params: Mapping[str, Any] | None = None,
        origin: tuple[RequestId, int] | None = None,
    ) -> None:
        """Record a request sent under ``rid``; ``origin`` when it is one sent again."""
        self._in_flight[rid] = (method, context, params, origin)
        if origin is not None and origin[0] != rid:
            self._aliases[origin[0]] = rid

    def pop(self, rid: RequestId) -> Pending | None:
        """Take the entry of the request answered under ``rid``."""
        return self._in_flight.pop(rid, None)

    def take(self, known_id: RequestId) -> tuple[RequestId, Pending] | None:
        """Take a request by the id its owner knows: (the id it has now, its entry)."""
        current = self._aliases.pop(known_id, known_id)
        pending = self._in_flight.pop(current, None)
        self._version_retried.discard(current)
        return None if pending is None else (current, pending)

    def finish(self, rid: RequestId, pending: Pending) -> RequestId:
        """Drop what a finished request left behind; return the id its owner knows."""
        if self._version_retried:
            self._version_retried.discard(rid)
        origin = pending[3]
        if origin is None:
            return rid
        self._aliases.pop(origin[0], None)
        return origin[0]

    def unalias(self, known_id: RequestId) -> None:
        """The request known as ``known_id`` is no longer in flight under another id."""
        self._aliases.pop(known_id, None)

    def mark_version_retry(self, rid: RequestId) -> None:
        """``rid`` was sent again because the server refused the version; never twice."""
        self._version_retried.add(rid)

    def is_version_retry(self, rid: RequestId) -> bool:
        """Whether ``rid`` already is a resend for the version."""
        return rid in self._version_retried

    def abandon(self) -> list[tuple[RequestId, str, Any]]:
        """Forget everything; return (id, method, context) of each request left unanswered."""
        abandoned = [(rid, p[0], p[1]) for rid, p in self._in_flight.items()]
        abandoned += [(rid, r.method, r.context) for rid, r in self.rounds.items()]
        self._in_flight.clear()
        self._aliases.clear()
        self._version_retried.clear()
        self.rounds.clear()
        return abandoned

"""The deadlines of one MCP client's requests: a heap watched by one task."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import trio

from ..errors import RequestTimeoutError
from ..protocol.jsonrpc import RequestId
from ._reply import Reply

__all__ = ["TIMED_OUT", "Deadlines"]

_SLACK = 64

TIMED_OUT = RequestTimeoutError("the request's deadline passed")
"""What a reply fails with when its deadline passes; the caller raises a precise error."""


class Deadlines:
    """The deadlines of one client's requests, watched by one task.

    A cancel scope per request costs more than the rest of a request's own
    work, so requests on the fast path register their deadline here instead: a
    heap, and one task that sleeps until the earliest deadline, then cancels
    that request on the server and fails its reply. Entries of answered
    requests are skipped when they reach the top, and the heap is compacted
    when they make up most of it, so it stays as large as the pending requests.

    A request whose deadline restarts on progress (:meth:`reset`) pushes a new
    entry each time; only its newest counts, the older ones are skipped like
    answered ones.
    """

    def __init__(self, expire: Callable[[RequestId, Reply], None]) -> None:
        self._expire = expire
        self._heap: list[tuple[float, int, RequestId, Reply]] = []
        self._limit = _SLACK
        self._seq = 0
        # The newest entry of each request whose deadline was reset.
        self._latest: dict[RequestId, int] = {}
        self._next = math.inf
        self._wake = trio.Event()

    def add(self, at: float, reply: Reply, request_id: RequestId) -> None:
        """Expire ``reply`` at ``at`` unless it is answered first."""
        seq = self._seq = self._seq + 1
        heap = self._heap
        heapq.heappush(heap, (at, seq, request_id, reply))
        if len(heap) > self._limit:
            self._compact()
        if at < self._next:
            self._wake.set()

    def reset(self, at: float, reply: Reply, request_id: RequestId) -> None:
        """Move the deadline of a pending request to ``at`` (earlier or later)."""
        if reply.done:
            return
        self.add(at, reply, request_id)
        self._latest[request_id] = self._seq

    def forget(self, request_id: RequestId) -> None:
        """Drop what :meth:`reset` kept of a request that ended."""
        self._latest.pop(request_id, None)

    def _stale(self, entry: tuple[float, int, RequestId, Reply]) -> bool:
        _, seq, request_id, reply = entry
        return reply.done or self._latest.get(request_id, seq) != seq

    def _compact(self) -> None:
        """Drop the entries of answered requests and of deadlines moved since."""
        # _stale, written out: this runs over the whole heap.
        latest = self._latest
        if latest:
            live = [e for e in self._heap if not e[3].done and latest.get(e[2], e[1]) == e[1]]
        else:
            live = [e for e in self._heap if not e[3].done]
        heapq.heapify(live)
        self._heap = live
        # The next compaction comes once answered entries outnumber the live
        # ones again: each at least halves the heap, so its cost spreads over
        # the adds that grew it, and the heap stays about twice the pending
        # requests.
        self._limit = 2 * len(live) + _SLACK

    async def watch(self) -> None:
        """Expire requests as their deadlines pass, for as long as the connection runs."""
        while True:
            heap = self._heap
            now = trio.current_time()
            while heap and (heap[0][0] <= now or self._stale(heap[0])):
                entry = heapq.heappop(heap)
                if not self._stale(entry):
                    self._expire(entry[2], entry[3])
            self._next = heap[0][0] if heap else math.inf
            self._wake = trio.Event()
            with trio.move_on_at(self._next):
                await self._wake.wait()

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
    """

    def __init__(self, expire: Callable[[RequestId, Reply], None]) -> None:
        self._expire = expire
        self._heap: list[tuple[float, int, RequestId, Reply]] = []
        self._limit = _SLACK
        self._seq = 0
        self._next = math.inf
        self._wake = trio.Event()

    def add(self, at: float, reply: Reply, request_id: RequestId) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, request_id, reply))
        if len(self._heap) > self._limit:
            self._compact()
        if at < self._next:
            self._wake.set()

    def _compact(self) -> None:
        """Drop the entries of answered requests."""
        live = [entry for entry in self._heap if not entry[3].done]
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
            while heap and (heap[0][3].done or heap[0][0] <= now):
                _, _, request_id, reply = heapq.heappop(heap)
                if not reply.done:
                    self._expire(request_id, reply)
            self._next = heap[0][0] if heap else math.inf
            self._wake = trio.Event()
            with trio.move_on_at(self._next):
                await self._wake.wait()

"""The subscriptions to a session manager's event streams (state changes, resource updates)."""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

__all__ = ["StateStreams"]

E = TypeVar("E")


class StateStreams(Generic[E]):
    """The open subscriptions of one of the manager's streams, written without waiting.

    :meth:`SessionManager.events` and :meth:`SessionManager.resource_updates`
    each have one.
    """

    def __init__(self) -> None:
        self.streams: list[tuple[trio.MemorySendChannel[E], trio.MemoryReceiveChannel[E]]] = []

    def subscribe(self, max_buffer: int, *, closed: bool) -> trio.MemoryReceiveChannel[E]:
        """A new subscription; one that ends at once when the manager is ``closed``."""
        send, receive = trio.open_memory_channel[E](max_buffer)
        if closed:
            send.close()
            return receive
        self.drop_closed()
        # A receive clone of our own lets us drop the oldest event when full.
        self.streams.append((send, receive.clone()))
        return receive

    def publish(self, event: E) -> None:
        """Hand ``event`` to every subscriber, dropping its oldest one when it is full."""
        self.drop_closed()
        for send, drop in self.streams:
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                drop.receive_nowait()
                send.send_nowait(event)

    def close(self) -> None:
        """End every subscription."""
        for send, drop in self.streams:
            send.close()
            drop.close()
        self.streams.clear()

    def drop_closed(self) -> None:
        """Forget the subscriptions their readers closed."""
        live = []
        for send, drop in self.streams:
            if drop.statistics().open_receive_channels <= 1:
                # The subscriber closed its end; only our clone is left.
                send.close()
                drop.close()
            else:
                live.append((send, drop))
        self.streams = live

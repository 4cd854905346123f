"""An in-memory transport pair, for tests and for in-process MCP servers.

:func:`memory_pair` returns a client-side :class:`MemoryTransport` and the
server's end (:class:`MemoryServerEnd`). Messages cross as encoded JSON bytes
over bounded trio memory channels, so both sides exercise the same encoding
and parsing as a real connection; only the IO is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ..errors import TransportBrokenError, TransportClosedError
from .base import Outgoing, Transport

__all__ = ["MemoryServerEnd", "MemoryTransport", "memory_pair"]


class MemoryTransport(Transport):
    """The client's end of an in-memory connection."""

    def __init__(
        self,
        to_server: trio.MemorySendChannel[bytes],
        from_server: trio.MemoryReceiveChannel[bytes | str],
        name: str = "memory",
    ) -> None:
        self.name = name
        self._to_server = to_server
        self._from_server = from_server
        self._closed = False

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """Hand the encoded messages to the server end."""
        if self._closed:
            raise TransportClosedError(f"the connection to {self.name} is closed")
        try:
            for message in messages:
                await self._to_server.send(message.data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise TransportBrokenError(f"{self.name} closed its end of the connection") from exc

    async def receive(self) -> bytes | str:
        """The next JSON text the server end sent."""
        if self._closed:
            raise TransportClosedError(f"the connection to {self.name} is closed")
        try:
            return await self._from_server.receive()
        except trio.EndOfChannel as exc:
            raise TransportBrokenError(f"{self.name} closed its end of the connection") from exc
        except trio.ClosedResourceError as exc:
            raise TransportClosedError(f"the connection to {self.name} is closed") from exc

    async def aclose(self) -> None:
        """Close the client's end; the server end sees the end of its input."""
        self._closed = True
        await self._to_server.aclose()
        await self._from_server.aclose()

    async def __aenter__(self) -> MemoryTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class MemoryServerEnd:
    """The server's end of an in-memory connection."""

    def __init__(
        self,
        from_client: trio.MemoryReceiveChannel[bytes],
        to_client: trio.MemorySendChannel[bytes | str],
    ) -> None:
        self._from_client = from_client
        self._to_client = to_client

    async def receive(self) -> bytes:
        """The next JSON text from the client; :class:`trio.EndOfChannel` when it closed."""
        return await self._from_client.receive()

    async def send(self, data: bytes | str) -> None:
        """Send one JSON text to the client."""
        await self._to_client.send(data)

    async def aclose(self) -> None:
        """Close the server's end; the client sees the connection broken."""
        await self._to_client.aclose()
        await self._from_client.aclose()


def memory_pair(name: str = "memory", buffer: int = 64) -> tuple[MemoryTransport, MemoryServerEnd]:
    """Make a connected client transport and server end."""
    c2s_send, c2s_recv = trio.open_memory_channel[bytes](buffer)
    s2c_send, s2c_recv = trio.open_memory_channel[bytes | str](buffer)
    return MemoryTransport(c2s_send, s2c_recv, name), MemoryServerEnd(c2s_recv, s2c_send)

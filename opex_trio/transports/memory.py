"""An in-memory transport pair, for tests and for in-process MCP servers.

:func:`memory_pair` returns a client-side :class:`MemoryTransport` and the
server's end (:class:`MemoryServerEnd`). Messages cross as encoded JSON bytes
over bounded trio memory channels, so both sides exercise the same encoding
and parsing as a real connection; only the IO is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ..errors import MessageTooLargeError, TransportBrokenError, TransportClosedError
from ..protocol.framing import DEFAULT_MAX_MESSAGE_SIZE
from .base import Outgoing, Transport

__all__ = ["MemoryServerEnd", "MemoryTransport", "memory_pair"]


class MemoryTransport(Transport):
    """The client's end of an in-memory connection."""

    def __init__(
        self,
        to_server: trio.MemorySendChannel[bytes],
        from_server: trio.MemoryReceiveChannel[bytes | str],
        name: str = "memory",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.name = name
        self.max_message_size = max_message_size
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
            data = await self._from_server.receive()
        except trio.EndOfChannel as exc:
            raise TransportBrokenError(f"{self.name} closed its end of the connection") from exc
        except trio.ClosedResourceError as exc:
            raise TransportClosedError(f"the connection to {self.name} is closed") from exc
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if len(raw) > self.max_message_size:
            # Same rule as the byte-stream transports: the message is dropped,
            # the connection goes on.
            raise MessageTooLargeError(
                f"a message of {len(raw)} bytes exceeds the limit of "
                f"{self.max_message_size} bytes and was discarded",
                size=len(raw),
                limit=self.max_message_size,
                head=raw[:256],
            )
        return data

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


def memory_pair(
    name: str = "memory", buffer: int = 64, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> tuple[MemoryTransport, MemoryServerEnd]:
    """Make a connected client transport and server end."""
    c2s_send, c2s_recv = trio.open_memory_channel[bytes](buffer)
    s2c_send, s2c_recv = trio.open_memory_channel[bytes | str](buffer)
    client = MemoryTransport(c2s_send, s2c_recv, name, max_message_size)
    return client, MemoryServerEnd(c2s_recv, s2c_send)

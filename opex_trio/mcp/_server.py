"""What the session manager keeps for one server: its record and its waiting."""

from __future__ import annotations

import trio

from ..errors import ServerUnavailableError
from ..protocol.types import Implementation, Prompt, Resource, ResourceTemplate, Tool
from ..supervision import ChildHandle
from ..transports.base import TransportFactory
from .client import McpClient
from .config import ServerConfig
from .options import FINAL_STATES, ServerOptions, ServerState, transport_factory

__all__ = ["ServerEntry", "ready_client", "unavailable"]


class ServerEntry:
    """What the manager keeps for one server."""

    def __init__(
        self, server_id: str, config: ServerConfig | TransportFactory, options: ServerOptions
    ) -> None:
        self.id = server_id
        self.config = config
        self.options = options
        self.factory = config if callable(config) else transport_factory(config, server_id)
        self.state: ServerState = "starting"
        self.client: McpClient | None = None
        self.tools: tuple[Tool, ...] = ()
        # Tools the server offers that are not in the registry, with the reason.
        self.left_out: dict[str, str] = {}
        # The server's last known listings, kept while it restarts, as its tools are.
        self.resources: tuple[Resource, ...] = ()
        self.resource_templates: tuple[ResourceTemplate, ...] = ()
        self.prompts: tuple[Prompt, ...] = ()
        self.listing = trio.Lock()
        self.protocol_version: str | None = None
        self.server_info: Implementation | None = None
        self.last_error: BaseException | None = None
        self.handle: ChildHandle | None = None
        self.changed = trio.Event()
        self.loading = trio.Lock()
        self.instructions: str | None = None
        self.runs_tasks = False
        self.tools_stale_at: float | None = None
        """When the tool list goes stale (trio time, from ``ttlMs``); ``None``: at a change."""
        self.stale = trio.Event()
        """Set when a use of the registry found the tool list stale: reload it."""

    def tools_stale(self, now: float) -> bool:
        """Whether the tool list has outlived the time to live its server gave."""
        return self.tools_stale_at is not None and now >= self.tools_stale_at

    @property
    def restarts(self) -> int:
        """How often the supervisor has started the server again."""
        return self.handle.restarts if self.handle is not None else 0

    def learn(self, client: McpClient) -> None:
        """Keep what the client's latest handshake said about the server."""
        if client.protocol_version is not None:  # None while a handshake is under way
            self.protocol_version = client.protocol_version
            self.server_info = client.server_info
            self.instructions = client.instructions
            self.runs_tasks = client.runs_tasks

    def ready_client(self) -> McpClient | None:
        """The client, when the server can take calls now; else None."""
        client = self.client
        # Not ``connected``: while the actor renews a session the server forgot,
        # the state stays "ready" and the client itself holds calls until the
        # new session is open; waiting here for a state change would wait forever.
        if self.state in ("ready", "unhealthy") and client is not None and client.available:
            return client
        return None

    def tool(self, name: str) -> Tool | None:
        """The server's last known tool of that name, if any."""
        return next((t for t in self.tools if t.name == name), None)


def unavailable(entry: ServerEntry) -> ServerUnavailableError:
    """The error of a call to a server that cannot take it."""
    why = f": {entry.last_error}" if entry.last_error else ""
    return ServerUnavailableError(
        f"MCP server {entry.id!r} is not available ({entry.state}){why}",
        server=entry.id,
        state=entry.state,
        last_error=entry.last_error,
    )


async def ready_client(entry: ServerEntry, deadline: float) -> McpClient:
    """Wait until the server is ready, up to ``deadline``, and return its client."""
    with trio.move_on_at(deadline):
        while True:
            client = entry.ready_client()
            if client is not None:
                return client
            if entry.state in FINAL_STATES:
                raise unavailable(entry)
            await entry.changed.wait()
    raise unavailable(entry)

"""The session manager's cache of each server's resources, resource templates and prompts.

Loaded with the tools when a server is ready (after every restart too), again
when the server says a list changed (``notifications/resources/list_changed``,
``notifications/prompts/list_changed``) and after a renewed session, and kept
while the server restarts, so :meth:`SessionManager.resources
<opex_trio.mcp.manager.SessionManager.resources>` and its siblings answer
without a round trip. A server that does not declare the capability has
empty lists. A listing the server fails to give is logged and the last known
one kept: a broken ``resources/list`` does not keep the server's tools from
being offered.
"""

from __future__ import annotations

import logging
from typing import Literal

from ..errors import McpError, ProtocolError
from ._server import ServerEntry
from .client import McpClient

__all__ = ["Listing", "load_listings", "load_listings_locked"]

logger = logging.getLogger("opex_trio.mcp.manager")

Listing = Literal["resources", "prompts"]
"""A cached kind of listing: ``"resources"`` (with the templates) or ``"prompts"``."""


async def load_listings(
    entry: ServerEntry, client: McpClient, kinds: tuple[Listing, ...] = ("resources", "prompts")
) -> None:
    """Load the server's listings of ``kinds`` into ``entry``.

    One load at a time per server, so an older answer never replaces a newer
    one. A JSON-RPC error or a malformed answer keeps the last known listing
    (logged); a broken connection raises, as every call does.
    """
    async with entry.listing:
        await load_listings_locked(entry, client, kinds)


async def load_listings_locked(
    entry: ServerEntry, client: McpClient, kinds: tuple[Listing, ...] = ("resources", "prompts")
) -> None:
    """:func:`load_listings`, for a caller that holds ``entry.listing``."""
    caps = client.capabilities
    for kind in kinds:
        try:
            if kind == "resources":
                if caps.resources is None:
                    entry.resources, entry.resource_templates = (), ()
                    continue
                resources = await client.list_resources()
                try:
                    templates = await client.list_resource_templates()
                except McpError as exc:
                    # Templates are optional even where resources are offered.
                    logger.debug("MCP server %r lists no templates: %s", entry.id, str(exc))
                    templates = []
                entry.resources, entry.resource_templates = tuple(resources), tuple(templates)
            else:
                if caps.prompts is None:
                    entry.prompts = ()
                    continue
                entry.prompts = tuple(await client.list_prompts())
        except (McpError, ProtocolError) as exc:
            logger.warning(
                "MCP server %r: listing its %s failed, the last known list is kept: %s",
                entry.id,
                kind,
                str(exc),
            )

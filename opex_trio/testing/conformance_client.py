"""The client program the official MCP conformance suite drives.

The suite (``@modelcontextprotocol/conformance``) starts a test server for a
client scenario, then runs this program with the server's URL as its last
argument and the scenario's name in ``MCP_CONFORMANCE_SCENARIO``
(``MCP_CONFORMANCE_CONTEXT`` may hold JSON with credentials); it judges the
client by what reaches its server. Run it by hand as::

    MCP_CONFORMANCE_SCENARIO=tools_call python -m opex_trio.testing.conformance_client URL

Each scenario gets what it asks of a client:

* ``initialize``: open a session (the suite checks the handshake), list tools;
* ``tools_call``: call ``add_numbers`` with two numbers;
* ``elicitation-sep1034-client-defaults``: call the scenario's tool and accept
  its elicitation with every default of the requested schema filled in;
* ``sse-retry``: call ``test_reconnection``, whose response stream the server
  closes early, so the answer arrives only after a resumption that honours
  ``retry:`` and sends ``Last-Event-ID``.

An unknown scenario opens a session and calls every tool that needs no
arguments. The exit status is 0 when every step worked, 1 otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio

from .._version import __version__
from ..mcp.client import ClientOptions, McpClient
from ..protocol.types import ElicitParams, ElicitResult, Implementation
from ..transports.base import Transport
from ..transports.http import HttpParameters, open_http_transport
from ._conformance_auth import oauth_for

__all__ = ["defaults_of", "main", "run_scenario"]

logger = logging.getLogger("opex_trio.testing.conformance_client")

_BOUND = 60.0


def defaults_of(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``default`` of every property of an elicitation's requested schema."""
    properties = (schema or {}).get("properties") or {}
    return {
        name: spec["default"]
        for name, spec in properties.items()
        if isinstance(spec, Mapping) and "default" in spec
    }


async def _accept_with_defaults(params: ElicitParams) -> ElicitResult:
    return ElicitResult("accept", content=defaults_of(params.requested_schema))


def _credentials() -> dict[str, Any]:
    raw = os.environ.get("MCP_CONFORMANCE_CONTEXT")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        logger.warning("MCP_CONFORMANCE_CONTEXT is not JSON; ignored")
        return {}
    return value if isinstance(value, dict) else {}


async def run_scenario(url: str, scenario: str) -> None:
    """Do what ``scenario`` asks of a client against the server at ``url``."""
    context = _credentials()
    token = context.get("access_token") or context.get("token")
    params = HttpParameters(
        url,
        name=f"conformance {scenario or 'server'}",
        auth_token=token if isinstance(token, str) and token else None,
        auth=oauth_for(scenario, context, url),
    )

    def factory() -> AbstractAsyncContextManager[Transport]:
        return open_http_transport(params)

    options = ClientOptions(
        client_info=Implementation(name="opex-trio-conformance-client", version=__version__),
        elicitation_handler=_accept_with_defaults,
    )
    async with McpClient(factory, name=params.label, options=options) as client:
        tools = await client.list_tools()
        names = [tool.name for tool in tools]
        logger.info("server %s offers tools %s", client.server_info.name, names)
        if scenario == "initialize":
            return
        if scenario == "tools_call":
            result = await client.call_tool("add_numbers", {"a": 5, "b": 3})
            logger.info("add_numbers: %s", result.text)
            return
        if scenario == "elicitation-sep1034-client-defaults":
            result = await client.call_tool("test_client_elicitation_defaults")
            logger.info("elicitation tool: %s", result.text)
            return
        if scenario == "sse-retry":
            result = await client.call_tool("test_reconnection")
            logger.info("test_reconnection: %s", result.text)
            return
        for tool in tools:
            if not tool.input_schema.get("required"):
                result = await client.call_tool(tool.name)
                logger.info("%s: %s", tool.name, result.text)


def main(argv: list[str] | None = None) -> int:
    """Run the scenario named in ``MCP_CONFORMANCE_SCENARIO`` against the URL in ``argv``."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m opex_trio.testing.conformance_client SERVER_URL", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")

    async def go() -> None:
        with trio.fail_after(_BOUND):
            await run_scenario(args[-1], scenario)

    try:
        trio.run(go)
    except Exception as exc:  # noqa: BLE001 - the exit status is the program's verdict
        logger.error("scenario %r failed: %s: %s", scenario, type(exc).__name__, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

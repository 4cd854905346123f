"""The client program the official MCP conformance suite drives.

The suite (``@modelcontextprotocol/conformance``) starts a test server for a
client scenario, then runs this program with the server's URL as its last
argument and the scenario's name in ``MCP_CONFORMANCE_SCENARIO``
(``MCP_CONFORMANCE_CONTEXT`` may hold JSON with credentials, and
``MCP_CONFORMANCE_PROTOCOL_VERSION`` the spec version to speak, which pins the
client's era; without it the client detects the era); it judges the client by
what reaches its server. Run it by hand as::

    MCP_CONFORMANCE_SCENARIO=tools_call python -m opex_trio.testing.conformance_client URL

Each scenario gets what it asks of a client:

* ``initialize``: open a session (the suite checks the handshake), list tools;
* ``json-schema-ref-no-deref``: list tools (whose schema has a network
  ``$ref`` the library must not fetch);
* ``tools_call``: call ``add_numbers`` with two numbers;
* ``elicitation-sep1034-client-defaults``: call the scenario's tool and accept
  its elicitation with every default of the requested schema filled in;
* ``sse-retry``: call ``test_reconnection``, whose response stream the server
  closes early, so the answer arrives only after a resumption that honours
  ``retry:`` and sends ``Last-Event-ID``;
* ``json-schema-2020-12-preservation``: send the ``inputSchema`` of
  ``json_schema_2020_12_tool``, as the client's tool list holds it, back
  through ``json_schema_echo``, so the suite sees what the library kept;
* the skills scenarios (``sep-2640-*``): list the skills as the skill tool a
  model is offered (:class:`~opex_trio.mcp.skills.SkillCatalog`); except in
  ``sep-2640-client-no-prefetch``, call that tool for the first skill, which
  reads and verifies its files (a refused skill is logged; the suite judges
  what was read);
* a scenario that names tool calls in ``MCP_CONFORMANCE_CONTEXT``
  (``toolCalls``): make those calls.

Any other scenario opens a session, lists the tools and calls each of them
(arguments made up from the schema's required properties), then reads the
first resource and gets the first prompt when the server offers them. The exit
status is 0 when every step worked, 1 otherwise.
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
from ..errors import SkillVerificationError
from ..mcp.client import ClientOptions, McpClient
from ..mcp.elicitation import defaults_of
from ..mcp.skills import SkillCatalog
from ..protocol.types import ElicitParams, ElicitResult, Implementation, Tool
from ..protocol.versions import LEGACY_VERSIONS, MODERN_VERSIONS, Era
from ..transports.base import Transport
from ..transports.http import HttpParameters, open_http_transport
from ._conformance_auth import oauth_for

__all__ = ["defaults_of", "main", "run_scenario", "sample_arguments"]

logger = logging.getLogger("opex_trio.testing.conformance_client")

_BOUND = 60.0


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


def sample_arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Made-up values for the required properties of a tool's input schema."""
    properties = schema.get("properties") or {}
    samples = {"string": "sample", "integer": 1, "number": 1.5, "boolean": True}
    out: dict[str, Any] = {}
    for name in schema.get("required") or ():
        spec = properties.get(name) if isinstance(properties, Mapping) else None
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        if isinstance(spec, Mapping) and "default" in spec:
            out[name] = spec["default"]
        elif kind == "object":
            out[name] = {}
        elif kind == "array":
            out[name] = []
        else:
            out[name] = samples.get(kind, "sample") if isinstance(kind, str) else "sample"
    return out


async def _call_everything(client: McpClient, tools: list[Tool]) -> None:
    for tool in tools:
        result = await client.call_tool(tool.name, sample_arguments(tool.input_schema))
        logger.info("%s: %s", tool.name, result.text)
    capabilities = client.capabilities
    if capabilities.resources is not None:
        resources = await client.list_resources()
        if resources:
            await client.read_resource(resources[0].uri)
    if capabilities.prompts is not None:
        prompts = await client.list_prompts()
        if prompts:
            prompt = prompts[0]
            arguments = {a.name: "sample" for a in prompt.arguments or () if a.required}
            await client.get_prompt(prompt.name, arguments)


def _era_options(version: str | None) -> dict[str, Any]:
    """Pin the era to the spec version the suite asks for; detect it when it names none."""
    if version in MODERN_VERSIONS:
        return {"era": Era.MODERN, "modern_version": version}
    if version in LEGACY_VERSIONS:
        return {"era": Era.LEGACY, "protocol_version": version}
    return {"era": None}


async def _skills(client: McpClient, *, load: bool) -> None:
    # The way a model gets skills: the catalog's tool, then a call of it.
    catalog = await SkillCatalog.of_clients({"server": client})
    logger.info("skill tool offered: %s", catalog.tool()["function"]["description"])
    if load and catalog.skills:
        name = catalog.skills[0].name
        try:
            text = await catalog.call({"name": name})
        except SkillVerificationError as exc:
            logger.info("skill %s refused: %s", name, exc)
        else:
            logger.info("skill %s loaded: %d characters for the model", name, len(text))


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
        **_era_options(os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION")),
    )
    async with McpClient(factory, name=params.label, options=options) as client:
        tools = await client.list_tools()
        by_name = {tool.name: tool for tool in tools}
        logger.info("server %s offers tools %s", client.server_info.name, list(by_name))
        planned = context.get("toolCalls")
        if scenario in ("initialize", "json-schema-ref-no-deref"):
            return  # listing the tools is the whole scenario
        if scenario == "tools_call":
            result = await client.call_tool("add_numbers", {"a": 5, "b": 3})
            logger.info("add_numbers: %s", result.text)
        elif scenario == "elicitation-sep1034-client-defaults":
            result = await client.call_tool("test_client_elicitation_defaults")
            logger.info("elicitation tool: %s", result.text)
        elif scenario == "sse-retry":
            result = await client.call_tool("test_reconnection")
            logger.info("test_reconnection: %s", result.text)
        elif scenario == "json-schema-2020-12-preservation":
            focal = by_name["json_schema_2020_12_tool"]
            # The schema as the library parsed and kept it, not as the wire had it.
            result = await client.call_tool("json_schema_echo", {"schema": focal.input_schema})
            logger.info("json_schema_echo: %s", result.text)
        elif scenario.startswith("sep-2640-"):
            await _skills(client, load=scenario != "sep-2640-client-no-prefetch")
        elif isinstance(planned, list):
            for call in planned:
                result = await client.call_tool(call["name"], call.get("arguments") or {})
                logger.info("%s: %s", call["name"], result.text)
        else:
            await _call_everything(client, tools)


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

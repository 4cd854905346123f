"""The ``opex-trio`` command: MCP servers from the command line.

Exit statuses: 0 success; 1 a runtime failure (a server failed or a tool
reported an error); 2 bad usage or configuration; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, NoReturn

import trio

from .._version import __version__
from ..errors import ConfigError, McpError, OpexError
from ..mcp.client import McpClient
from ..mcp.config import ServerConfig, load_config, server_from_command, server_id
from ..protocol.types import CallToolResult, Tool
from ..transports.stdio import StdioParameters, open_stdio_transport

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _UsageError(Exception):
    """Bad command-line input; reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``opex-trio``."""
    parser = _Parser(
        prog="opex-trio",
        description="Talk to MCP servers (and, through them, let a model use tools).",
    )
    parser.add_argument("--version", action="version", version=f"opex-trio {__version__}")
    parser.add_argument(
        "--mcp-config",
        metavar="FILE",
        help="an mcpServers JSON file (the format of Claude Desktop and Cursor)",
    )
    parser.add_argument(
        "--server",
        metavar="COMMAND",
        action="append",
        default=[],
        help='a stdio server as one command line, e.g. "uvx mcp-server-time" (repeatable)',
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    tools = commands.add_parser("tools", help="list or call the servers' tools")
    tool_commands = tools.add_subparsers(dest="tools_command", metavar="ACTION")
    tool_commands.required = True
    listing = tool_commands.add_parser("list", help="list every tool")
    listing.add_argument("--json", action="store_true", help="print the tools as JSON")
    call = tool_commands.add_parser("call", help="call one tool")
    call.add_argument("name", help="the tool's name, or SERVER/TOOL when several servers have it")
    call.add_argument("--args", default="{}", metavar="JSON", help="the arguments, a JSON object")
    call.add_argument("--json", action="store_true", help="print the whole result as JSON")
    call.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")

    servers = commands.add_parser("servers", help="show each server and its tools")
    servers.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def _configs(args: argparse.Namespace) -> dict[str, ServerConfig]:
    configs: dict[str, ServerConfig] = {}
    if args.mcp_config:
        configs.update(load_config(args.mcp_config))
    for line in args.server:
        config = server_from_command(line)
        configs[server_id(config)] = config
    if not configs:
        raise _UsageError("no MCP server given: use --mcp-config FILE or --server COMMAND")
    return configs


def _open(name: str, config: ServerConfig) -> McpClient:
    if not isinstance(config, StdioParameters):
        raise ConfigError(f"server {name!r}: only local (command) servers are supported here")
    params = (
        config
        if config.name
        else StdioParameters(config.command, config.args, env=config.env, cwd=config.cwd, name=name)
    )
    return McpClient(lambda: open_stdio_transport(params), name=name)


@asynccontextmanager
async def _connected(configs: dict[str, ServerConfig]) -> AsyncIterator[dict[str, McpClient]]:
    async with AsyncExitStack() as stack:
        clients: dict[str, McpClient] = {}

        async def connect(name: str, config: ServerConfig) -> None:
            clients[name] = await stack.enter_async_context(_open(name, config))

        # One at a time: each client's nursery must be entered and left in order.
        for name, config in configs.items():
            await connect(name, config)
        yield {name: clients[name] for name in configs}


async def _all_tools(clients: dict[str, McpClient]) -> list[tuple[str, Tool]]:
    found: list[tuple[str, Tool]] = []
    for name, client in clients.items():
        found.extend((name, tool) for tool in await client.list_tools())
    return found


def _find(tools: list[tuple[str, Tool]], wanted: str) -> tuple[str, Tool]:
    server, _, tool_name = wanted.rpartition("/")
    matches = [(s, t) for s, t in tools if t.name == tool_name and (not server or s == server)]
    if not matches:
        raise _UsageError(f"no tool named {wanted!r} (see 'opex-trio tools list')")
    if len(matches) > 1:
        names = ", ".join(f"{s}/{t.name}" for s, t in matches)
        raise _UsageError(f"tool {wanted!r} is offered by several servers; pick one of: {names}")
    return matches[0]


def _print_result(result: CallToolResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    for block in result.content:
        text = getattr(block, "text", None)
        print(text if text is not None else json.dumps(block.to_dict(), ensure_ascii=False))
    if result.structured_content is not None and not result.content:
        print(json.dumps(result.structured_content, indent=2, ensure_ascii=False))


async def _run(args: argparse.Namespace) -> int:
    configs = _configs(args)
    async with _connected(configs) as clients:
        if args.command == "servers":
            rows: list[dict[str, Any]] = []
            for name, client in clients.items():
                rows.append(
                    {
                        "name": name,
                        "state": "ready" if client.connected else "failed",
                        "server": client.server_info.name,
                        "version": client.server_info.version,
                        "protocol": client.protocol_version,
                        "tools": [t.name for t in await client.list_tools()],
                    }
                )
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                for row in rows:
                    print(
                        f"{row['name']}: {row['state']}, {row['server']} {row['version']}, "
                        f"protocol {row['protocol']}, {len(row['tools'])} tools"
                    )
                    for tool in row["tools"]:
                        print(f"  {tool}")
            return EXIT_OK
        tools = await _all_tools(clients)
        if args.tools_command == "list":
            if args.json:
                print(json.dumps([{"server": s, **t.to_dict()} for s, t in tools], indent=2))
            else:
                several = len(clients) > 1
                for server, tool in tools:
                    label = f"{server}/{tool.name}" if several else tool.name
                    summary = (tool.description or "").strip().splitlines()
                    print(f"{label}: {summary[0]}" if summary else label)
            return EXIT_OK
        try:
            arguments = json.loads(args.args)
        except json.JSONDecodeError as exc:
            raise _UsageError(f"--args is not valid JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise _UsageError(f"--args must be a JSON object, got {type(arguments).__name__}")
        server, tool = _find(tools, args.name)
        result = await clients[server].call_tool(tool.name, arguments, timeout=args.timeout)
        _print_result(result, args.json)
        return EXIT_FAILURE if result.is_error else EXIT_OK


def run(argv: Sequence[str]) -> int:
    """Parse ``argv``, run the command, and return the exit status."""
    parser = build_parser()
    verbose = "-v" in argv or "--verbose" in argv
    try:
        args = parser.parse_args(list(argv))
        levels = {0: logging.WARNING, 1: logging.INFO}
        logging.basicConfig(
            level=levels.get(args.verbose, logging.DEBUG),
            stream=sys.stderr,
            format="%(levelname)s %(name)s: %(message)s",
        )
        return trio.run(_run, args)
    except _UsageError as exc:
        print(f"opex-trio: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        if verbose:
            raise
        print(f"opex-trio: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OpexError, McpError) as exc:
        if verbose:
            raise
        print(f"opex-trio: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("opex-trio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

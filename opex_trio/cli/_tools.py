"""The ``tools`` and ``servers`` commands: MCP servers used directly, without a model."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import RequestTimeoutError
from ..mcp.manager import RegisteredTool
from ..protocol.types import (
    AudioContent,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ProgressParams,
    ResourceLink,
    TextContent,
    TextResourceContents,
)
from ._environment import Env, environment
from ._errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CliError, describe
from ._servers import Started, find_server
from ._ui import Ui

__all__ = ["servers_command", "tools_command"]


def _several(env: Env) -> bool:
    return len(env.started) > 1


def _tool_line(registered: RegisteredTool, several: bool) -> str:
    label = registered.name
    if several or registered.name != registered.tool.name:
        label += f" [{registered.server}/{registered.tool.name}]"
    summary = (registered.tool.description or "").strip().splitlines()
    return f"{label}: {summary[0]}" if summary else label


def _find_tool(env: Env, wanted: str) -> RegisteredTool:
    registry = env.mcp.tools()
    if wanted in registry:
        return registry[wanted]
    server_part, slash, tool_name = wanted.rpartition("/")
    if slash:
        ids = [s.status.id for s in env.started]
        server = find_server(ids, server_part)
        if server is None:
            known = ", ".join(map(repr, ids))
            raise CliError(f"no MCP server {server_part!r} (servers: {known})", EXIT_USAGE)
        for registered in registry.values():
            if registered.server == server and registered.tool.name == tool_name:
                return registered
        names = sorted(r.tool.name for r in registry.values() if r.server == server)
        raise CliError(
            f"MCP server {server!r} has no tool {tool_name!r} (its tools: "
            f"{', '.join(names) or 'none'})",
            EXIT_USAGE,
        )
    matches = [r for r in registry.values() if r.tool.name == wanted]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        choices = ", ".join(f"{r.server}/{r.tool.name}" for r in matches)
        raise CliError(
            f"tool {wanted!r} is offered by several servers; name one: {choices}", EXIT_USAGE
        )
    raise CliError(f"no tool named {wanted!r} (see 'opex-trio tools list')", EXIT_USAGE)


def _parse_arguments(text: str) -> dict[str, Any]:
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"--args is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            EXIT_USAGE,
        ) from None
    if not isinstance(arguments, dict):
        raise CliError(
            f"--args must be a JSON object, got {type(arguments).__name__}: {text}", EXIT_USAGE
        )
    return arguments


def _size(base64_text: str) -> str:
    # The decoded size, without decoding: four characters carry three bytes.
    size = len(base64_text) * 3 // 4 - base64_text[-2:].count("=")
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def block_text(block: ContentBlock) -> str:
    """A content block as a person reads it: binary data is a placeholder with type and size."""
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, ImageContent | AudioContent):
        return f"[{block.type} {block.mime_type}, {_size(block.data)}]"
    if isinstance(block, EmbeddedResource):
        resource = block.resource
        if isinstance(resource, TextResourceContents):
            return resource.text
        mime = resource.mime_type or "binary data"
        return f"[resource {resource.uri} {mime}, {_size(resource.blob)}]"
    if isinstance(block, ResourceLink):
        return f"[resource link {block.uri}" + (f" {block.mime_type}]" if block.mime_type else "]")
    return json.dumps(block.to_dict(), ensure_ascii=False)


def _print_result(ui: Ui, result: CallToolResult, as_json: bool) -> None:
    if as_json:
        ui.print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    for block in result.content:
        ui.print(block_text(block))
    if result.structured_content is not None and not result.content:
        ui.print(json.dumps(result.structured_content, indent=2, ensure_ascii=False))


async def tools_command(args: argparse.Namespace, ui: Ui) -> int:
    """``opex-trio tools list`` and ``tools call NAME``."""
    if args.tools_command == "call":
        # Bad arguments are found before any server starts.
        arguments = _parse_arguments(args.args)
    async with environment(args, ui, with_model=False) as env:
        if args.tools_command == "list":
            registry = sorted(env.mcp.tools().values(), key=lambda r: (r.server, r.tool.name))
            if args.json:
                rows = [
                    {"registry_name": r.name, "server": r.server, **r.tool.to_dict()}
                    for r in registry
                ]
                ui.print(json.dumps(rows, indent=2, ensure_ascii=False))
            else:
                for registered in registry:
                    ui.print(_tool_line(registered, _several(env)))
            return EXIT_OK
        registered = _find_tool(env, args.name)

        def progress(params: ProgressParams) -> None:
            ui.progress("call", registered.name, params.progress, params.total, params.message)

        try:
            result = await env.mcp.call_tool(
                registered.server,
                registered.tool.name,
                arguments,
                timeout=args.timeout or None,
                progress=progress,
            )
        except RequestTimeoutError as exc:
            raise CliError(
                f"tool {registered.name!r} did not answer within {args.timeout:g} s "
                f"(see --timeout)",
                EXIT_FAILURE,
            ) from exc
        finally:
            ui.clear_progress()
        _print_result(ui, result, args.json)
        if result.is_error:
            ui.error(f"tool {registered.name!r} reported an error")
            return EXIT_FAILURE
        return EXIT_OK


def _status_json(entry: Started, env: Env) -> dict[str, Any]:
    status = entry.status
    names = {(r.server, r.tool.name): r.name for r in env.mcp.tools().values()}
    info = status.server_info
    return {
        "id": status.id,
        "state": status.state if entry.ready else "failed",
        "server": {"name": info.name, "version": info.version} if info is not None else None,
        "protocol": status.protocol_version,
        "restarts": status.restarts,
        "last_error": describe(status.last_error) if status.last_error is not None else None,
        "tools": [
            {"name": tool, "registry_name": names.get((status.id, tool), tool)}
            for tool in status.tools
        ],
    }


async def servers_command(args: argparse.Namespace, ui: Ui) -> int:
    """``opex-trio servers``: each server's state and tools."""
    async with environment(args, ui, with_model=False, strict=False) as env:
        rows = [_status_json(entry, env) for entry in env.started]
        if args.json:
            ui.print(json.dumps(rows, indent=2, ensure_ascii=False))
        else:
            for row in rows:
                server = row["server"]
                what = f"{server['name']} {server['version']}" if server else "no server info"
                line = (
                    f"{row['id']}: {row['state']}, {what}, protocol {row['protocol'] or '-'}, "
                    f"{row['restarts']} restarts, {len(row['tools'])} tools"
                )
                if row["last_error"]:
                    line += f"; last error: {row['last_error']}"
                ui.print(line)
                for tool in row["tools"]:
                    same = tool["registry_name"] == tool["name"]
                    ui.print(
                        f"  {tool['registry_name']}"
                        + ("" if same else f" (the server's {tool['name']!r})")
                    )
        return EXIT_OK if all(entry.ready for entry in env.started) else EXIT_FAILURE

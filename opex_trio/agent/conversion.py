"""Converting one tool between the MCP and the OpenAI function-tool shapes.

:func:`mcp_tool_to_openai` turns an MCP tool into the dict a chat request's
``tools`` list carries; :func:`openai_tool_to_mcp` reads a tool the program
wrote in OpenAI's shape as an MCP :class:`~opex_trio.protocol.types.Tool`.
Naming many tools at once is :class:`~opex_trio.agent.tools.ToolIndex`'s job.
Nothing here does IO; the functions are pure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, ProtocolError
from ..mcp.naming import TOOL_NAME_PATTERN, is_valid_tool_name
from ..protocol.types import Tool
from .schema import DEFAULT_MAX_REF_DEPTH, normalize_schema
from .strict import make_strict

__all__ = ["as_tool", "description_of", "mcp_tool_to_openai", "openai_tool", "openai_tool_to_mcp"]


def description_of(tool: Tool) -> str | None:
    """What a model reads about ``tool``: its description, else a title."""
    if tool.description:
        return tool.description
    if tool.title:
        return tool.title
    if tool.annotations is not None and tool.annotations.title:
        return tool.annotations.title
    return None


def openai_tool(
    name: str, description: str | None, parameters: Mapping[str, Any], strict: bool
) -> dict[str, Any]:
    """The OpenAI function tool dict for these parts (``parameters`` is copied)."""
    function: dict[str, Any] = {"name": name}
    if description is not None:
        function["description"] = description
    function["parameters"] = copy.deepcopy(dict(parameters))
    if strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def as_tool(tool: Tool | Mapping[str, Any]) -> Tool:
    """An MCP tool given as a :class:`Tool` or as the JSON object ``tools/list`` returns.

    The object's keys are the wire's (``name``, ``inputSchema``, ``title``,
    ``description``, ``annotations``, ...); ``input_schema`` is read as
    ``inputSchema``. A dict that is no valid tool raises
    :class:`~opex_trio.errors.ConfigError` naming the tool and what is wrong.
    """
    if isinstance(tool, Tool):
        return tool
    if not isinstance(tool, Mapping):
        raise ConfigError(f"an MCP tool must be a Tool or a dict, got {type(tool).__name__}")
    data = dict(tool)
    if "inputSchema" not in data and "input_schema" in data:
        data["inputSchema"] = data.pop("input_schema")
    name = data.get("name")
    label = repr(name) if isinstance(name, str) else "(unnamed)"
    try:
        return Tool.from_dict(data, where=f"tool {label}")
    except ProtocolError as exc:
        raise ConfigError(f"not a valid MCP tool: {exc}") from exc


def mcp_tool_to_openai(
    tool: Tool | Mapping[str, Any],
    *,
    name: str | None = None,
    strict: bool = False,
    max_ref_depth: int = DEFAULT_MAX_REF_DEPTH,
) -> dict[str, Any]:
    """Convert one MCP tool into an OpenAI function tool.

    ``name`` is the name to expose (by default the tool's own, which must then
    be valid: use :class:`ToolIndex` to name many tools). The description is
    the tool's ``description``, else its ``title``, else its annotations'
    title; it is passed on whole, since cutting it could drop the very
    instructions a model needs. The schema goes through
    :func:`normalize_schema`; with ``strict=True`` also through
    :func:`make_strict`, and ``"strict": true`` is set only when that worked.

    ``tool`` is a :class:`Tool` or the plain dict ``tools/list`` returns on
    the wire (see :func:`as_tool`).

    Raises :class:`~opex_trio.errors.ConfigError` for an invalid name or a
    schema that accepts no object.
    """
    tool = as_tool(tool)
    exposed = tool.name if name is None else name
    if not is_valid_tool_name(exposed):
        raise ConfigError(
            f"tool name {exposed!r} is not valid: it must match {TOOL_NAME_PATTERN.pattern}; "
            "ToolIndex gives tools valid names"
        )
    try:
        parameters = normalize_schema(tool.input_schema, max_ref_depth=max_ref_depth)
    except ConfigError as exc:
        raise ConfigError(f"tool {tool.name!r}: {exc}") from exc
    strict_schema = make_strict(parameters) if strict else None
    if strict_schema is not None:
        return openai_tool(exposed, description_of(tool), strict_schema, True)
    return openai_tool(exposed, description_of(tool), parameters, False)


def openai_tool_to_mcp(tool: Mapping[str, Any]) -> Tool:
    """Read an OpenAI-format tool the program hands in as an MCP :class:`Tool`.

    Accepted forms: ``{"type": "function", "function": {"name", "description",
    "parameters"}}`` (chat completions), the flat ``{"type": "function",
    "name", ...}`` (responses API) and the bare ``{"name", "description",
    "parameters"}``. A missing ``parameters`` means no arguments. Anything else
    raises :class:`~opex_trio.errors.ConfigError` naming the tool.
    """
    if not isinstance(tool, Mapping):
        raise ConfigError(f"an OpenAI tool must be a dict, got {type(tool).__name__}")
    label = _label(tool)
    kind = tool.get("type", "function")
    if kind != "function":
        raise ConfigError(f"tool {label}: only function tools are supported, got type {kind!r}")
    function = tool.get("function", tool) if "function" in tool else tool
    if not isinstance(function, Mapping):
        raise ConfigError(f"tool {label}: 'function' must be a dict")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"tool {label}: 'name' must be a non-empty string")
    if not is_valid_tool_name(name):
        raise ConfigError(
            f"tool name {name!r} is not valid: it must match {TOOL_NAME_PATTERN.pattern}"
        )
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigError(f"tool {name!r}: 'description' must be a string")
    parameters = function.get("parameters", {"type": "object", "properties": {}})
    if isinstance(parameters, bool):
        parameters = {} if parameters else {"not": {}}
    if not isinstance(parameters, Mapping):
        raise ConfigError(f"tool {name!r}: 'parameters' must be a JSON Schema object")
    return Tool(name=name, input_schema=copy.deepcopy(dict(parameters)), description=description)


def _label(tool: Mapping[str, Any]) -> str:
    function = tool.get("function")
    name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
    return repr(name) if isinstance(name, str) else "(unnamed)"

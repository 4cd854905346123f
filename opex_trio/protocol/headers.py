"""The HTTP headers a Streamable HTTP request mirrors from its body (SEP-2243), sans IO.

Every POST carries ``Mcp-Method`` (the JSON-RPC method); ``tools/call``,
``prompts/get`` (``params.name``), ``resources/read`` (``params.uri``) and the
tasks extension's ``tasks/get``, ``tasks/update`` and ``tasks/cancel``
(``params.taskId``) also carry ``Mcp-Name``. A tool may mark arguments with ``x-mcp-header`` in
its ``inputSchema``; a call then carries ``Mcp-Param-{Name}`` for each marked
argument it has a value for. A value that is not plain visible ASCII (or that
looks like the sentinel) travels as ``=?base64?...?=``.

A tool whose ``x-mcp-header`` declarations break the rules (empty, not a
token, on a non-primitive or ``number`` property, not reachable through
``properties`` alone, duplicated ignoring case) must be left out of the tool
list: :func:`tool_header_problem` names what is wrong, or returns ``None``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "HEADER_KEY",
    "encode_header_value",
    "param_headers",
    "standard_headers",
    "tool_header_problem",
]

HEADER_KEY: Final = "x-mcp-header"
"""The ``inputSchema`` key that marks a tool argument to be sent as an HTTP header too."""
_NAMED: Final = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    # The tasks extension: the task, so a load balancer reaches the instance holding it.
    "tasks/get": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
}
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PLAIN = re.compile(r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")
_SAFE_INT = 2**53 - 1
_PRIMITIVE = {"string", "integer", "boolean"}
# Keywords whose subschemas are not statically reachable from the root.
_NESTED_ELSEWHERE = (
    "items",
    "prefixItems",
    "additionalProperties",
    "patternProperties",
    "oneOf",
    "anyOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "$defs",
    "definitions",
    "dependentSchemas",
    "contains",
)


def encode_header_value(value: str | int | bool) -> str:
    """A value as it goes in ``Mcp-Name`` or ``Mcp-Param-*``: plain, or the base64 sentinel."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    else:
        text = value
    sentinel = text.startswith("=?base64?") and text.endswith("?=")
    if (_PLAIN.match(text) or text == "") and not sentinel:
        return text
    return "=?base64?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def standard_headers(method: str, params: Mapping[str, Any] | None) -> dict[str, str]:
    """``Mcp-Method``, and ``Mcp-Name`` for the requests that name something."""
    headers = {"Mcp-Method": method}
    member = _NAMED.get(method)
    if member is not None and params is not None:
        value = params.get(member)
        if isinstance(value, str):
            headers["Mcp-Name"] = encode_header_value(value)
    return headers


def _declarations(
    schema: Any, path: tuple[str, ...], reachable: bool, out: list[tuple[tuple[str, ...], Any, Any]]
) -> None:
    """Collect (path, header name, property schema) of every ``x-mcp-header`` in ``schema``.

    A declaration found where it is not statically reachable gets path ``()``.
    """
    if not isinstance(schema, Mapping):
        return
    if HEADER_KEY in schema and path:
        out.append((path if reachable else (), schema[HEADER_KEY], schema))
    elif HEADER_KEY in schema:
        out.append(((), schema[HEADER_KEY], schema))
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for name, sub in props.items():
            _declarations(sub, (*path, str(name)), reachable, out)
    for keyword in _NESTED_ELSEWHERE:
        nested = schema.get(keyword)
        subs = nested if isinstance(nested, list) else [nested]
        if keyword in ("$defs", "definitions", "patternProperties", "dependentSchemas"):
            subs = list(nested.values()) if isinstance(nested, Mapping) else []
        for sub in subs:
            _declarations(sub, ("?",), False, out)


def _headers_of(input_schema: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Any, Any]]:
    found: list[tuple[tuple[str, ...], Any, Any]] = []
    _declarations(input_schema, (), True, found)
    return found


def tool_header_problem(input_schema: Mapping[str, Any]) -> str | None:
    """What is wrong with a tool's ``x-mcp-header`` declarations, or ``None``."""
    seen: dict[str, str] = {}
    for path, name, prop in _headers_of(input_schema):
        if not path or path == ("?",):
            return f"{HEADER_KEY} {name!r} is not reachable through properties alone"
        where = ".".join(path)
        if not isinstance(name, str) or not name:
            return f"{HEADER_KEY} of {where!r} is empty or not a string"
        if not _TOKEN.match(name):
            return f"{HEADER_KEY} {name!r} of {where!r} is not an HTTP header token"
        kind = prop.get("type")
        if kind not in _PRIMITIVE:
            return f"{HEADER_KEY} {name!r} is on {where!r} of type {kind!r}, not a primitive"
        folded = name.lower()
        if folded in seen:
            return f"{HEADER_KEY} {name!r} of {where!r} repeats that of {seen[folded]!r}"
        seen[folded] = where
    return None


def param_headers(input_schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, str]:
    """The ``Mcp-Param-*`` headers of a call with ``arguments`` to a tool (valid declarations)."""
    headers: dict[str, str] = {}
    for path, name, _prop in _headers_of(input_schema):
        value: Any = arguments
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None or not isinstance(value, str | int | bool) or isinstance(value, float):
            continue
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _SAFE_INT:
            continue
        headers[f"Mcp-Param-{name}"] = encode_header_value(value)
    return headers

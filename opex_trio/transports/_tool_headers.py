"""The tools whose arguments a Streamable HTTP call mirrors into ``Mcp-Param-*`` headers.

A ``tools/call`` must carry, as headers, the arguments its tool marked with
``x-mcp-header`` (:mod:`opex_trio.protocol.headers` has the rules); only the
tool's ``inputSchema`` says which. The transport learns the schemas from the
``tools/list`` answers it carries, the way it learns the session id from the
``initialize`` answer, so neither the caller nor the actor has to pass them
along. A tool whose declarations break the rules is left out of the answer
before anyone reads it, with a logged reason, as the specification asks of a
Streamable HTTP client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from ..protocol.headers import param_headers, tool_header_problem
from ..protocol.jsonrpc import RequestId

__all__ = ["ToolHeaders"]

logger = logging.getLogger("opex_trio.transports.http")


class ToolHeaders:
    """What the ``tools/list`` answers of one connection said about header declarations."""

    def __init__(self, server: str) -> None:
        self._server = server
        self._listings: set[RequestId] = set()
        self._schemas: dict[str, Mapping[str, Any]] = {}

    def listing(self, request_id: RequestId) -> None:
        """A ``tools/list`` request is on its way: :meth:`screen` looks for its answer."""
        self._listings.add(request_id)

    def done(self, request_id: RequestId) -> None:
        """The request is over, answered or not."""
        self._listings.discard(request_id)

    def for_call(self, params: Any) -> dict[str, str]:
        """The ``Mcp-Param-*`` headers of a ``tools/call`` with ``params``."""
        if not isinstance(params, Mapping) or not self._schemas:
            return {}
        schema = self._schemas.get(params.get("name"))  # type: ignore[arg-type]
        arguments = params.get("arguments")
        if schema is None or not isinstance(arguments, Mapping):
            return {}
        return param_headers(schema, arguments)

    def screen(self, data: str | bytes) -> str | bytes:
        """``data``, with the tools whose declarations are invalid left out of a listing."""
        if not self._listings:
            return data  # the common case costs one check
        try:
            value = json.loads(data)
        except ValueError:
            return data
        changed = False
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict) or not isinstance(item.get("result"), dict):
                continue
            rid = item.get("id")
            if isinstance(rid, bool) or not isinstance(rid, str | int) or rid not in self._listings:
                continue
            self._listings.discard(rid)
            changed = self._keep_valid(item["result"]) or changed
        if not changed:
            return data
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _keep_valid(self, result: dict[str, Any]) -> bool:
        tools = result.get("tools")
        if not isinstance(tools, list):
            return False
        kept = []
        for tool in tools:
            schema = tool.get("inputSchema") if isinstance(tool, dict) else None
            name = tool.get("name") if isinstance(tool, dict) else None
            problem = tool_header_problem(schema) if isinstance(schema, Mapping) else None
            if problem is not None:
                logger.warning(
                    "MCP server %r: tool %r left out, its x-mcp-header declarations are "
                    "invalid: %s",
                    self._server,
                    name,
                    problem,
                )
                continue
            if isinstance(name, str) and isinstance(schema, Mapping):
                self._schemas[name] = schema
            kept.append(tool)
        if len(kept) == len(tools):
            return False
        result["tools"] = kept
        return True

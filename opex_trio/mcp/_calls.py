"""The session manager's call path: wait for the server, call, check, and maybe resend.

A call waits for its server within its own deadline. A call in flight when
its server dies fails with the connection's error; it is sent again after the
restart only when the tool is annotated read-only or idempotent and
:attr:`ServerOptions.resend_idempotent` allows it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import trio

from ..errors import CapabilityError, RequestTimeoutError, TransportError
from ..protocol.types import CallToolResult
from ._server import ServerEntry, ready_client
from .call_meta import current_call_meta
from .client import McpClient, ProgressCallback
from .output_schema import (
    check_structured_content,
    output_validation_available,
    rejected_result,
)

__all__ = ["call_server_tool"]

logger = logging.getLogger("opex_trio.mcp.manager")

# Checked once: whether results can be checked by default.
_OUTPUT_CHECKS = output_validation_available()


async def call_server_tool(
    entry: ServerEntry,
    name: str,
    arguments: Mapping[str, Any] | None,
    *,
    timeout: float | Literal["default"] | None,
    progress: ProgressCallback | None,
    reset_on_progress: bool | None,
    max_total_timeout: float | Literal["default"] | None,
) -> CallToolResult:
    """Call one server's tool as :meth:`SessionManager.call_tool` documents it."""
    tool = entry.tool(name)
    as_task = tool is not None and tool.task_support == "required"
    seconds = entry.options.call_timeout if timeout == "default" else timeout
    start = trio.current_time()
    deadline = math.inf if seconds is None else start + seconds
    client_options = entry.options.client
    if reset_on_progress is None:
        reset_on_progress = client_options.reset_on_progress
    reset = reset_on_progress and seconds is not None
    total = (
        client_options.max_total_timeout if max_total_timeout == "default" else max_total_timeout
    )
    hard = math.inf if not reset or total is None else start + total
    resent = 0
    while True:
        client = await ready_client(entry, min(deadline, hard))
        if as_task:
            _refuse_task_only(entry, name, client)
        now = trio.current_time()
        try:
            if reset:
                result = await client.call_tool(
                    name,
                    arguments,
                    timeout=seconds,
                    progress=progress,
                    reset_on_progress=True,
                    meta=current_call_meta(),
                    max_total_timeout=None if hard == math.inf else max(hard - now, 0),
                    task=as_task,
                )
            else:
                remaining = None if deadline == math.inf else max(deadline - now, 0)
                result = await client.call_tool(
                    name,
                    arguments,
                    timeout=remaining,
                    progress=progress,
                    reset_on_progress=False,
                    meta=current_call_meta(),
                    task=as_task,
                )
            return _check_output(entry, name, result)
        except RequestTimeoutError:
            raise
        except TransportError:
            if not _may_resend(entry, name) or resent >= 2:
                raise
            resent += 1
            logger.info(
                "MCP server %r died during a call of %r; sending it again (the tool is idempotent)",
                entry.id,
                name,
            )


def _may_resend(entry: ServerEntry, name: str) -> bool:
    if not entry.options.resend_idempotent:
        return False
    tool = entry.tool(name)
    return tool is not None and tool.idempotent


def _check_output(entry: ServerEntry, name: str, result: CallToolResult) -> CallToolResult:
    """``result``, or a tool error when its structuredContent breaks the tool's outputSchema."""
    mode = entry.options.validate_output
    if mode == "off" or result.is_error:
        return result
    if mode is None and not _OUTPUT_CHECKS:
        return result
    tool = entry.tool(name)
    if tool is None or tool.output_schema is None:
        return result
    reason = check_structured_content(tool, result)
    if reason is None:
        return result
    logger.warning("MCP server %r: %s", entry.id, reason)
    return result if mode == "warn" else rejected_result(result, reason)


def _refuse_task_only(entry: ServerEntry, name: str, client: McpClient) -> None:
    """Refuse a tool that runs only as a task when its server declared no task support."""
    if not client.runs_tasks:
        raise CapabilityError(
            f"tool {name!r} of MCP server {entry.id!r} runs only as a task "
            "(execution.taskSupport is 'required'), but the server declared no support for "
            "tasks; it was not called",
            capability="tasks",
            method="tools/call",
            server=entry.id,
        )

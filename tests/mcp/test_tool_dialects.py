"""The session manager leaves out a tool whose input schema declares an unsupported dialect.

MCP 2025-11-25 makes 2020-12 the default dialect and asks for an error naming
a dialect an implementation does not support, not a guess. The tool is kept
out of the registry (so no model is offered it), the reason is in the
server's status, a warning names the tool, the server and the dialect, and a
direct call still reaches the server.
"""

from __future__ import annotations

import logging

import pytest
import trio

from opex_trio.mcp.manager import ServerOptions, SessionManager
from opex_trio.supervision import RestartPolicy
from opex_trio.testing.mcp_server import builtin_server
from tests.mcp.support import BOUND

VENDOR = "https://spec.openapis.org/oas/3.1/dialect/base"


async def test_a_tool_in_an_unsupported_dialect_is_reported_and_not_offered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="opex_trio")
    server = builtin_server()
    server.add_tool(
        "vendor",
        lambda args, ctx: f"vendor got {args['n']}",
        input_schema={"$schema": VENDOR, "type": "object", "properties": {"n": {}}},
    )
    server.add_tool(
        "draft7",
        lambda args, ctx: "draft7",
        input_schema={"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
    )
    options = ServerOptions(restart=RestartPolicy(max_restarts=1), health=None)
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery, SessionManager(options=options) as mcp:
            sid = await mcp.add_server(server.in_process(nursery), name="local", wait=True)
            names = {r.tool.name for r in mcp.tools().values()}
            assert "draft7" in names and "echo" in names
            assert "vendor" not in names
            status = mcp.status(sid)
            assert "vendor" not in status.tools
            assert list(status.left_out) == ["vendor"]
            assert repr(VENDOR) in status.left_out["vendor"]
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            (warning,) = [w for w in warnings if "'vendor'" in w]
            assert "'local'" in warning and VENDOR in warning
            # Left out of what a model is offered, not out of reach.
            assert (await mcp.call_tool(sid, "vendor", {"n": 3})).text == "vendor got 3"
            # Reloading the tools does not warn again about the same tool.
            await mcp.refresh_tools(sid)
            again = [r for r in caplog.records if "'vendor'" in r.getMessage()]
            assert len(again) == 1
            nursery.cancel_scope.cancel()

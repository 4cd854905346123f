"""A user's program that turns warnings into errors sees none from the HTTP transports.

Generators abandoned unfinished by a response read in part show up as
``ResourceWarning`` when the garbage collector finds them, in the user's
program, outside any test harness: so the program runs here as a user runs
it, in a process of its own with ``-W error``, and what it prints is checked.
"""

from __future__ import annotations

import sys

import pytest
import trio

PROGRAM = """
import gc
import sys

import trio

import opex_trio as opex
from opex_trio.testing.http_server import McpHttpServer
from opex_trio.testing.mcp_server import builtin_server

MODE = sys.argv[1]


async def main() -> None:
    options = {"legacy": True} if MODE == "legacy" else {"response_mode": MODE}
    async with trio.open_nursery() as nursery:
        server = await nursery.start(McpHttpServer(builtin_server(), **options).serve)
        async with opex.SessionManager() as mcp:
            server_id = await mcp.add_server({"url": server.url}, wait=True, timeout=60)
            for n in range(5):
                result = await mcp.call_tool(server_id, "echo", {"message": str(n)})
                assert result.text == str(n), result
            gc.collect()
        nursery.cancel_scope.cancel()
    gc.collect()


trio.run(main)
gc.collect()
print("done")
"""


@pytest.mark.parametrize("mode", ["sse", "json", "legacy"])
async def test_no_resource_warning_reaches_a_program_that_makes_warnings_errors(
    mode: str,
) -> None:
    with trio.fail_after(120):
        result = await trio.run_process(
            [sys.executable, "-W", "error", "-c", PROGRAM, mode],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    stdout = result.stdout.decode(errors="replace")
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, stderr
    assert stdout.strip() == "done", (stdout, stderr)
    # A warning raised in a finalizer cannot stop the program: Python prints it.
    assert "Warning" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr

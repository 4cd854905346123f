"""Helpers for tests that run real MCP server processes."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio

from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.testing.mcp_server import McpTestServer, ToolContext, builtin_server
from opex_trio.transports.base import Transport
from opex_trio.transports.stdio import StdioParameters, open_stdio_transport

# Generous: these tests must hold on a loaded two-core machine.
BOUND = 60


def test_server_params(*flags: str, **overrides: Any) -> StdioParameters:
    """Parameters that start the built-in test server as a real process."""
    overrides.setdefault("name", "test-server")
    overrides.setdefault("close_grace", 2.0)
    overrides.setdefault("term_grace", 2.0)
    return StdioParameters(
        sys.executable,
        ("-m", "opex_trio.testing.mcp_server", *flags),
        # The child needs to import opex_trio from this checkout.
        env={"PYTHONPATH": os.pathsep.join(sys.path)},
        **overrides,
    )


test_server_params.__test__ = False  # type: ignore[attr-defined]


def stdio_client(params: StdioParameters, options: ClientOptions | None = None) -> McpClient:
    def factory() -> AbstractAsyncContextManager[Transport]:
        return open_stdio_transport(params)

    return McpClient(factory, name=params.label, options=options)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and process_alive(int(entry)):
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rfind(b")") + 2 :].split()[2]) == pgid:
                found.append(int(entry))
    return found


def my_zombies() -> list[int]:
    """Children of this process that exited and were never reaped."""
    me = os.getpid()
    zombies = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] == b"Z" and int(fields[1]) == me:
            zombies.append(int(entry))
    return zombies


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


class LeakCheck:
    """Records fds at the start; :meth:`assert_clean` checks nothing leaked."""

    def __init__(self) -> None:
        self.fds = open_fds()
        self.pgids: list[int] = []

    def watch(self, pid: int) -> None:
        self.pgids.append(pid)

    def assert_clean(self) -> None:
        for pgid in self.pgids:
            assert group_members(pgid) == [], f"processes left in group {pgid}"
        assert my_zombies() == []
        leaked = open_fds() - self.fds
        # The listing itself opens one fd that is closed again.
        assert not {fd for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")}, leaked


def long_job_server() -> McpTestServer:
    """The built-in test server plus ``long_job``, a tool that reports progress as it goes."""
    server = builtin_server()

    @server.tool(
        input_schema={
            "type": "object",
            "properties": {"steps": {"type": "integer"}, "every": {"type": "number"}},
        }
    )
    async def long_job(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Report progress every ``every`` seconds for ``steps`` steps."""
        steps = int(args["steps"])
        for i in range(1, steps + 1):
            await trio.sleep(float(args["every"]))
            await ctx.progress(i, steps)
        return "finished"

    return server

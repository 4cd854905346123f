"""The durable commands of ``opex-trio``: ``worker`` and ``run --durable``, as real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio

pytest.importorskip("temporalio", reason="the 'temporal' extra is not installed")

from opex_trio.testing.http_server import McpHttpServer
from opex_trio.testing.llm_server import open_llm_server

from .conftest import DevServer, ScriptedModel, write_mcp_config
from .test_durable_chat import recording_server

CLI = [sys.executable, "-m", "opex_trio.cli"]


async def test_opex_trio_worker_and_run_durable(
    temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    mcp, calls = recording_server()
    http = McpHttpServer(mcp)
    cluster = ["--address", temporal_server.address, "--task-queue", task_queue]
    async with (
        open_llm_server(ScriptedModel("work", calls=2)) as llm,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(http.serve)
        config = write_mcp_config(tmp_path / "mcp.json", {"remote": {"url": http.url}})
        worker = await trio.lowlevel.open_process(
            [*CLI, "--mcp-config", str(config), "worker", "--base-url", llm.base_url, *cluster],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert worker.stderr is not None
            said = b""
            with trio.fail_after(120):
                while b"worker ready" not in said:
                    chunk = await worker.stderr.receive_some()
                    assert chunk, said.decode(errors="replace")
                    said += chunk
                done = await trio.run_process(
                    [*CLI, "run", "--durable", "--model", "m", *cluster, "go"],
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
        finally:
            worker.terminate()
            with trio.fail_after(60):
                await worker.wait()
        nursery.cancel_scope.cancel()
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == "done: worked 0 | worked 1\n"
    assert b"durable chat opex-chat-" in done.stderr
    assert [step for _, step in calls] == [0, 1]
    # SIGTERM is a clean stop for the worker command too.
    assert worker.returncode == 0


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["run", "--durable", "go"], "needs --model"),
        (["--server", "uvx x", "run", "--durable", "--model", "m", "go"], "workers' MCP servers"),
        (["worker", "--local"], "needs a model server"),
    ],
)
async def test_durable_commands_refuse_what_they_cannot_do(argv: list[str], said: str) -> None:
    with trio.fail_after(60):
        done = await trio.run_process(
            [*CLI, *argv], capture_stdout=True, capture_stderr=True, check=False
        )
    assert done.returncode == 2
    assert said in done.stderr.decode()

"""Durable chats survive what kills in-process ones: a dead worker, a restarted server.

And a cancelled run cancels its running tool at the MCP server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trio

pytest.importorskip("temporalio", reason="the 'temporal' extra is not installed")

from opex_trio.temporal import ChatSpec, DurableChats, RunCancelledError, step_key
from opex_trio.testing.http_server import McpHttpServer
from opex_trio.testing.llm_server import open_llm_server
from opex_trio.testing.mcp_server import McpTestServer, ToolContext
from opex_trio.transports.base import EXECUTION_ID_META

from .conftest import DevServer, ScriptedModel, worker_process, write_mcp_config

# Short enough that a dead worker's call moves on quickly, long enough for a
# loaded machine to heartbeat in time.
HEARTBEAT = 3.0


class BlockingServer:
    """An MCP server whose tool ``work`` blocks at one step until released (or forever).

    It records every call's idempotency key and step, and sets ``entered``
    when the blocking step starts and ``cancelled`` when that call was cancelled.
    """

    def __init__(self, block_step: int, *, block_once: bool = True) -> None:
        self.mcp = McpTestServer("work-server")
        self.calls: list[tuple[str, int]] = []
        self.entered = trio.Event()
        self.release = trio.Event()
        self.cancelled = trio.Event()
        self.block_step = block_step
        self.block_once = block_once

        @self.mcp.tool(input_schema={"type": "object", "properties": {"step": {"type": "integer"}}})
        async def work(args: Mapping[str, Any], ctx: ToolContext) -> str:
            """Record the call; block at the chosen step."""
            meta = (ctx.call.params or {}).get("_meta") or {}
            step = int(args["step"])
            self.calls.append((meta.get(EXECUTION_ID_META, ""), step))
            blocks = step == self.block_step and not (self.block_once and self.entered.is_set())
            if blocks:
                self.entered.set()
                try:
                    await self.release.wait()
                except trio.Cancelled:
                    self.cancelled.set()
                    raise
            return f"worked {step}"

        self.http = McpHttpServer(self.mcp)


def spec() -> ChatSpec:
    return ChatSpec(
        model="m",
        messages=[{"role": "user", "content": "go"}],
        heartbeat_timeout=HEARTBEAT,
    )


def remote_worker(
    server: DevServer, task_queue: str, config: Path, base_url: str, tmp_path: Path, name: str
) -> Any:
    """A worker process serving ``task_queue`` with the MCP servers of ``config``; logs by name."""
    return worker_process(
        server.address,
        task_queue,
        mcp_config=config,
        base_url=base_url,
        log=tmp_path / f"{name}.log",
    )


async def test_a_killed_worker_leaves_its_run_to_another_worker_without_repeating_done_calls(
    temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    model = ScriptedModel("work", calls=3)
    tools = BlockingServer(block_step=1)
    async with open_llm_server(model) as llm, trio.open_nursery() as nursery:
        await nursery.start(tools.http.serve)
        config = write_mcp_config(tmp_path / "mcp.json", {"remote": {"url": tools.http.url}})

        def worker(name: str) -> Any:
            return remote_worker(temporal_server, task_queue, config, llm.base_url, tmp_path, name)

        async with DurableChats(temporal_server.address, task_queue=task_queue) as chats:
            with trio.fail_after(180):
                async with worker("first") as first:
                    run = await chats.start(spec())
                    await tools.entered.wait()
                    first.kill()
                    await first.process.wait()
                async with worker("second"):
                    result = await run.result()
        nursery.cancel_scope.cancel()
    assert result.content == "done: worked 0 | worked 1 | worked 2"
    assert run.run_id is not None
    # Each model call ran once: the second worker replayed the history instead.
    assert model.keys == [step_key(run.run_id, turn, "model") for turn in (1, 2, 3, 4)]
    # The interrupted call ran again with its key; no finished call ran again.
    keys = [step_key(run.run_id, turn, "tool-0") for turn in (1, 2, 3)]
    assert tools.calls == [(keys[0], 0), (keys[1], 1), (keys[1], 1), (keys[2], 2)]
    assert Counter(key for key, _ in tools.calls) == {keys[0]: 1, keys[1]: 2, keys[2]: 1}


async def test_a_run_completes_across_a_restart_of_the_temporal_server(
    own_temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    model = ScriptedModel("work", calls=2)
    tools = BlockingServer(block_step=0)
    async with open_llm_server(model) as llm, trio.open_nursery() as nursery:
        await nursery.start(tools.http.serve)
        config = write_mcp_config(tmp_path / "mcp.json", {"remote": {"url": tools.http.url}})
        async with (
            worker_process(
                own_temporal_server.address,
                task_queue,
                mcp_config=config,
                base_url=llm.base_url,
                log=tmp_path / "worker.log",
            ),
            DurableChats(own_temporal_server.address, task_queue=task_queue) as chats,
        ):
            with trio.fail_after(240):
                run = await chats.start(spec())
                await tools.entered.wait()
                await trio.to_thread.run_sync(own_temporal_server.stop)
                await trio.to_thread.run_sync(own_temporal_server.start)
                tools.release.set()
                result = await run.result()
        nursery.cancel_scope.cancel()
    assert result.stop_reason == "answered"
    assert result.content == "done: worked 0 | worked 1"
    assert run.run_id is not None
    assert model.keys == [step_key(run.run_id, turn, "model") for turn in (1, 2, 3)]


async def test_cancelling_a_run_cancels_its_running_tool_at_the_server(
    temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    model = ScriptedModel("work", calls=1)
    tools = BlockingServer(block_step=0)
    async with open_llm_server(model) as llm, trio.open_nursery() as nursery:
        await nursery.start(tools.http.serve)
        config = write_mcp_config(tmp_path / "mcp.json", {"remote": {"url": tools.http.url}})
        async with (
            worker_process(
                temporal_server.address,
                task_queue,
                mcp_config=config,
                base_url=llm.base_url,
                log=tmp_path / "worker.log",
            ),
            DurableChats(temporal_server.address, task_queue=task_queue) as chats,
        ):
            with trio.fail_after(120):
                run = await chats.start(spec())
                await tools.entered.wait()
                await run.cancel()
                with pytest.raises(RunCancelledError):
                    await run.result()
                await tools.cancelled.wait()
        nursery.cancel_scope.cancel()
    call_ids = [r.id for r in tools.mcp.requests if r.method == "tools/call"]
    assert tools.mcp.cancelled == call_ids
    assert len(call_ids) == 1
    # Only the first model call ran; the run never got further.
    assert len(model.keys) == 1


async def test_sigterm_cancels_the_running_tool_and_another_worker_runs_it_again(
    temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    model = ScriptedModel("work", calls=2)
    tools = BlockingServer(block_step=0)
    async with open_llm_server(model) as llm, trio.open_nursery() as nursery:
        await nursery.start(tools.http.serve)
        config = write_mcp_config(tmp_path / "mcp.json", {"remote": {"url": tools.http.url}})

        def worker(name: str) -> Any:
            return remote_worker(temporal_server, task_queue, config, llm.base_url, tmp_path, name)

        async with DurableChats(temporal_server.address, task_queue=task_queue) as chats:
            with trio.fail_after(180):
                async with worker("first") as first:
                    run = await chats.start(spec())
                    await tools.entered.wait()
                    first.process.terminate()
                    # The worker stops taking work, waits its grace period,
                    # then cancels the call: the server is told.
                    await tools.cancelled.wait()
                    await first.process.wait()
                assert first.process.returncode == 0
                async with worker("second"):
                    result = await run.result()
        nursery.cancel_scope.cancel()
    assert result.content == "done: worked 0 | worked 1"
    assert run.run_id is not None
    first_key = step_key(run.run_id, 1, "tool-0")
    assert [call for call in tools.calls if call[1] == 0] == [(first_key, 0), (first_key, 0)]
    assert len(tools.mcp.cancelled) == 1

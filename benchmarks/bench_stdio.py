"""stdio MCP client benchmark: opex_trio against the official SDK and a hand-written client.

All three clients talk to the same hand-written server (``_echo_server.py``)
in one run and are measured the same way:

* sequential ``tools/call`` round trip (p50 and p99);
* throughput with 64 calls in flight;
* one lifecycle: spawn, initialize, list tools, shut down;
* peak RSS of the client process.

Latency, throughput and lifecycle interleave the three clients in one process;
peak RSS is measured in a fresh interpreter per client. The hand-written client
is the limit: no protocol checks, a batching writer, a
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
ALL_CLIENTS = (*CLIENTS, "opex_trio_modern")
"""``opex_trio_modern`` joins the others with ``--era both``."""


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
    era = "legacy"
    """The protocol era the client pins (``--era``): no probe, one kind of request throughout."""

    async def __aenter__(self) -> Opex:
        from opex_trio.mcp.client import ClientOptions, McpClient
        from opex_trio.protocol.versions import Era
        from opex_trio.transports.stdio import StdioParameters, open_stdio_transport

        params = StdioParameters(SERVER[0], SERVER[1:], name="bench")
        options = ClientOptions(era=Era(self.era))
        self._client = McpClient(
            lambda: open_stdio_transport(params), name="bench", options=options
        )
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


class OpexModern(Opex):
    """opex_trio in the modern era: every request carries its ``_meta``."""

    era = "modern"


FACTORIES: dict[str, Any] = {
    "opex_trio": Opex,
    "handwritten": HandWritten,
    "mcp_sdk": Sdk,
    "opex_trio_modern": OpexModern,
}


# -- measurements
#
# Latency, throughput and lifecycle are measured in one process, the three
# clients interleaved block by block over several rounds, and the median block
# is kept: on a shared machine, a slow spell then hits every client alike.
# Peak RSS needs a fresh interpreter per client, so it runs in child processes.


async def _sequential(client: Any, n: int) -> list[float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        await client.call("echo", {"message": f"m{i}"})
        times.append(time.perf_counter() - start)
    return times


async def _throughput(client: Any, n: int) -> float:
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await client.call("echo", {"message": "t"})

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(64):
            nursery.start_soon(worker)
    return n / (time.perf_counter() - start)


async def _lifecycle(kind: str) -> float:
    start = time.perf_counter()
    async with FACTORIES[kind]() as client:
        tools = await client.list_tools()
        assert len(tools) == 2
    return time.perf_counter() - start


async def measure_all(kinds: tuple[str, ...], rounds: int, quick: bool) -> dict[str, Any]:
    block = 100 if quick else 250
    burst = 500 if quick else 2500
    samples: dict[str, dict[str, list[float]]] = {
        k: {"seq": [], "p50": [], "tput": [], "life": []} for k in kinds
    }
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        clients = {k: await stack.enter_async_context(FACTORIES[k]()) for k in kinds}
        for client in clients.values():
            await _sequential(client, 100)  # warm up
        for _ in range(rounds):
            for kind, client in clients.items():
                times = await _sequential(client, block)
                samples[kind]["seq"].extend(times)
                samples[kind]["p50"].append(statistics.median(times))
                samples[kind]["tput"].append(await _throughput(client, burst))
                samples[kind]["life"].append(await _lifecycle(kind))
    out: dict[str, Any] = {}
    for kind, s in samples.items():
        pooled = sorted(s["seq"])
        out[kind] = {
            "seq_p50_us": statistics.median(s["p50"]) * 1e6,
            "seq_p99_us": pooled[int(len(pooled) * 0.99) - 1] * 1e6,
            "throughput_per_s": statistics.median(s["tput"]),
            "lifecycle_ms": statistics.median(s["life"]) * 1e3,
        }
    return out


async def rss_workload(kind: str) -> float:
    """Peak RSS of a client process that runs a short, representative workload."""
    async with FACTORIES[kind]() as client:
        await _sequential(client, 500)
        await _throughput(client, 2000)
    return _peak_rss_mb()


def _peak_rss_mb() -> float:
    # VmHWM is this process's own peak; ru_maxrss would start from the size of
    # the parent it was forked from.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_of(kind: str) -> float | None:
    cmd = [sys.executable, __file__, "--rss", kind]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0:
        print(f"{kind}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return float(proc.stdout.strip().splitlines()[-1])


def available() -> tuple[str, ...]:
    try:
        import mcp  # noqa: F401
    except ImportError:
        print("the official SDK (mcp) is not installed: its column is left out", file=sys.stderr)
        return ("opex_trio", "handwritten")
    return CLIENTS


ROWS = [
    ("seq_p50_us", "sequential round trip p50 (us)", "lower"),
    ("seq_p99_us", "sequential round trip p99 (us)", "lower"),
    ("throughput_per_s", "throughput, 64 in flight (calls/s)", "higher"),
    ("lifecycle_ms", "spawn + initialize + list_tools + shutdown (ms)", "lower"),
    ("peak_rss_mb", "client peak RSS (MB)", "lower"),
]


def table(results: dict[str, dict[str, Any]]) -> str:
    kinds = [k for k in ALL_CLIENTS if k in results]
    head = "| measure | " + " | ".join(kinds) + " | opex / hand-written | opex / SDK |"
    lines = [head, "|" + " --- |" * (len(kinds) + 3)]
    for key, label, _better in ROWS:
        values = [results[k].get(key, float("nan")) for k in kinds]
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
    parser.add_argument(
        "--rss", choices=ALL_CLIENTS, help="(internal) measure one client's peak RSS"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median kept)")
    parser.add_argument(
        "--era",
        choices=("legacy", "modern", "both"),
        default="legacy",
        help="the era opex_trio speaks; both adds an opex_trio_modern column",
    )
    args = parser.parse_args()
    if args.era == "modern":
        Opex.era = "modern"
    if args.rss:
        print(trio.run(rss_workload, args.rss))
        return
    kinds = available()
    if args.era == "both":
        kinds = (*kinds, "opex_trio_modern")
    results = trio.run(measure_all, kinds, 2 if args.quick else args.rounds, args.quick)
    for kind in kinds:
        rss = rss_of(kind)
        if rss is not None:
            results[kind]["peak_rss_mb"] = rss
    text = table(results)
    print(text)
    if args.era == "both":
        legacy, modern = results["opex_trio"], results["opex_trio_modern"]
        for key, label, _better in ROWS:
            if key in legacy and key in modern:
                print(f"modern / legacy, {label}: {modern[key] / legacy[key]:.3f}x")
    if args.write:
        machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
        write_readme(f"Measured on {machine}, {time.strftime('%Y-%m-%d')}.\n\n{text}")


if __name__ == "__main__":
    main()

"""stdio MCP client benchmark: opex_trio against the official SDK and a hand-written client.

All three clients talk to the same hand-written server (``_echo_server.py``)
in one run and are measured the same way:

* sequential ``tools/call`` round trip (p50 and p99);
* throughput with 64 calls in flight;
* one lifecycle: spawn, initialize, list tools, shut down;
* peak RSS of the client process.

opex_trio is called as users call it, with its default per-call timeout
(``--no-timeout`` passes ``timeout=None`` instead). The hand-written client is
the limit: no protocol checks, a batching writer, a dict of events. The SDK
client runs under trio through anyio.

A run is a fresh interpreter in which latency, throughput and lifecycle
interleave the three clients round by round (so a slow spell of a shared
machine hits them alike), followed by a fresh interpreter per client for its
peak RSS. Every round's figures are kept (``--json``); the summary gives the
median over all rounds with the lowest and highest round, the ratios taken
within each round, and each run's median beside the others': the spread, never
the best run. ``--write`` puts the summary in benchmarks/README.md and draws
every round in benchmarks/stdio.svg (``--plot-only`` redraws it from the JSON).

Run ``python benchmarks/bench_stdio.py`` (``--quick`` for a smoke run). The
official SDK (``mcp``) must be importable for its column; it is a benchmark
dependency only.
"""

from __future__ import annotations

import argparse
import json
import math
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
    """opex_trio as users call it: the default per-call timeout."""

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
        return await self._client.call_tool(name, arguments)

    async def list_tools(self) -> Any:
        return await self._client.list_tools()


class OpexNoTimeout(Opex):
    """opex_trio with ``timeout=None``: no per-call deadline (``--no-timeout``)."""

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        return await self._client.call_tool(name, arguments, timeout=None)


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
    """opex_trio in the modern era: every request carries its ``_meta`` (``--era both``)."""

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


Round = dict[str, dict[str, float]]  # client -> measure -> value, for one round


async def measure_all(kinds: tuple[str, ...], rounds: int, quick: bool) -> list[Round]:
    """Each round's figures per client: p50 and p99 of a block of sequential calls,
    throughput of one burst, one lifecycle."""
    block = 100 if quick else 250
    burst = 500 if quick else 2500
    from contextlib import AsyncExitStack

    out: list[Round] = []
    async with AsyncExitStack() as stack:
        clients = {k: await stack.enter_async_context(FACTORIES[k]()) for k in kinds}
        for client in clients.values():
            await _sequential(client, 100)  # warm up
        for _ in range(rounds):
            this: Round = {}
            for kind, client in clients.items():
                times = sorted(await _sequential(client, block))
                this[kind] = {
                    "seq_p50_us": statistics.median(times) * 1e6,
                    "seq_p99_us": times[math.ceil(len(times) * 0.99) - 1] * 1e6,
                    "throughput_per_s": await _throughput(client, burst),
                    "lifecycle_ms": await _lifecycle(kind) * 1e3,
                }
            out.append(this)
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


def _child(*args: str) -> str | None:
    """Run this script in a fresh interpreter; its last line of output, or None if it failed."""
    cmd = [sys.executable, __file__, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1800)
    if proc.returncode != 0:
        print(f"{' '.join(args)}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return proc.stdout.strip().splitlines()[-1]


def one_run(kinds: tuple[str, ...], rounds: int, quick: bool, flags: list[str]) -> dict[str, Any]:
    """One run in a fresh interpreter: its rounds, then each client's peak RSS."""
    line = _child("--one-run", "--rounds", str(rounds), *flags, *(["--quick"] if quick else []))
    if line is None:
        raise SystemExit("a run failed")
    rss: dict[str, float] = {}
    for kind in kinds:
        value = _child("--rss", kind, *flags)
        if value is not None:
            rss[kind] = float(value)
    return {"rounds": json.loads(line), "peak_rss_mb": rss}


def available() -> tuple[str, ...]:
    try:
        import mcp  # noqa: F401
    except ImportError:
        print("the official SDK (mcp) is not installed: its column is left out", file=sys.stderr)
        return ("opex_trio", "handwritten")
    return CLIENTS


# -- the summary: the spread over rounds and over runs, never the best run

ROWS = [
    ("seq_p50_us", "sequential round trip p50 (us)"),
    ("seq_p99_us", "sequential round trip p99 (us)"),
    ("throughput_per_s", "throughput, 64 in flight (calls/s)"),
    ("lifecycle_ms", "spawn + initialize + list_tools + shutdown (ms)"),
]


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:,.1f}"


def _spread(values: list[float], fmt: Callable[[float], str] = _num) -> str:
    """``median (min-max)``."""
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"


def _ratios(values: list[float]) -> str:
    """``median x (min-max)``."""
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def _ratio(value: float) -> str:
    return f"{value:.2f}x"


def table(runs: list[dict[str, Any]]) -> str:
    """Per measure and client, the median over every round of every run (min-max of
    the rounds); the ratios are taken within each round, where the clients ran
    interleaved, then summarised the same way."""
    kinds = [k for k in ALL_CLIENTS if k in runs[0]["rounds"][0]]
    rounds = [r for run in runs for r in run["rounds"]]
    head = "| measure | " + " | ".join(kinds) + " | opex / hand-written | opex / SDK |"
    lines = [head, "|" + " --- |" * (len(kinds) + 3)]
    for key, label in ROWS:
        cells = [_spread([r[k][key] for r in rounds]) for k in kinds]
        for other in ("handwritten", "mcp_sdk"):
            if other in kinds:
                ratios = [r["opex_trio"][key] / r[other][key] for r in rounds]
                cells.append(_ratios(ratios))
            else:
                cells.append("n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    rss = {k: [run["peak_rss_mb"][k] for run in runs if k in run["peak_rss_mb"]] for k in kinds}
    cells = [_spread(rss[k]) if rss[k] else "n/a" for k in kinds]
    for other in ("handwritten", "mcp_sdk"):
        pairs = [r["peak_rss_mb"] for r in runs]
        ratios = [p["opex_trio"] / p[other] for p in pairs if "opex_trio" in p and other in p]
        cells.append(_ratios(ratios) if ratios else "n/a")
    lines.append("| client peak RSS (MB; one per run) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def runs_table(runs: list[dict[str, Any]]) -> str:
    """Each run's median over its rounds, per measure and client: the spread across runs."""
    kinds = [k for k in ALL_CLIENTS if k in runs[0]["rounds"][0]]
    head = "| measure (median of each run) | " + " | ".join(kinds) + " | opex / hand-written |"
    lines = [head, "|" + " --- |" * (len(kinds) + 2)]
    for key, label in ROWS:
        cells = []
        for kind in kinds:
            medians = [statistics.median(r[kind][key] for r in run["rounds"]) for run in runs]
            cells.append(", ".join(_num(m) for m in medians))
        ratios = [
            statistics.median(r["opex_trio"][key] / r["handwritten"][key] for r in run["rounds"])
            for run in runs
        ]
        cells.append(", ".join(_ratio(x) for x in ratios))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(data: dict[str, Any]) -> str:
    """The SVG picture of a result: per client, each round's latency and throughput."""
    from _svg_plot import strip_plot

    runs = data["runs"]
    kinds = [k for k in CLIENTS if k in runs[0]["rounds"][0]]

    def series(key: str) -> dict[str, list[list[float]]]:
        return {k: [[r[k][key] for r in run["rounds"]] for run in runs] for k in kinds}

    meta = data["meta"]
    n_rounds = sum(len(run["rounds"]) for run in runs)
    notes = [
        f"{len(runs)} runs, {n_rounds} rounds in all: a dot per round (one lane per run), "
        "the bar and number at the median.",
        f"{meta['machine']}, {meta['date']}, load average {meta['load_average'][0]:.1f} at the "
        "end (a shared machine: wall-clock figures are noisy).",
    ]
    timeout = "timeout=None" if meta["opex_trio_timeout"] == "none" else "default timeout"
    return strip_plot(
        [
            ("sequential round trip p50, us (log scale; lower is better)", series("seq_p50_us")),
            (
                "throughput, 64 in flight, calls/s (log scale; higher is better)",
                series("throughput_per_s"),
            ),
        ],
        title=f"MCP over stdio: opex_trio ({timeout}), the hand-written client, the mcp SDK",
        notes=notes,
        log=True,
    )


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rss", choices=ALL_CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--one-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 run of 2 short rounds")
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per run")
    parser.add_argument("--runs", type=int, default=3, help="runs, each in a fresh interpreter")
    parser.add_argument(
        "--no-timeout",
        action="store_true",
        help="call opex_trio with timeout=None instead of its default per-call timeout",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=HERE / "stdio.svg",
        help="where --write draws the picture",
    )
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="only draw the picture of the figures in --json again",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=HERE / "results" / "stdio.json",
        help="where to keep every round's figures (plot_stdio.py draws them)",
    )
    parser.add_argument(
        "--era",
        choices=("legacy", "modern", "both"),
        default="legacy",
        help="the era opex_trio speaks; both adds an opex_trio_modern column",
    )
    args = parser.parse_args()
    flags = ["--no-timeout"] if args.no_timeout else []
    flags += ["--era", args.era]
    if args.era == "modern":
        Opex.era = "modern"
    if args.no_timeout:
        FACTORIES["opex_trio"] = OpexNoTimeout
    if args.rss:
        print(trio.run(rss_workload, args.rss))
        return
    if args.plot_only:
        args.plot.write_text(plot(json.loads(args.json.read_text())))
        return
    kinds = available()
    if args.era == "both":
        kinds = (*kinds, "opex_trio_modern")
    if args.one_run:
        print(json.dumps(trio.run(measure_all, kinds, args.rounds, args.quick)))
        return
    rounds, n_runs = (2, 1) if args.quick else (args.rounds, args.runs)
    runs = []
    for i in range(n_runs):
        runs.append(one_run(kinds, rounds, args.quick, flags))
        print(f"run {i + 1} of {n_runs} done", file=sys.stderr, flush=True)
    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine,
        "load_average": os.getloadavg(),
        "opex_trio_timeout": "none" if args.no_timeout else "default",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "runs": runs}
    args.json.write_text(json.dumps(data, indent=1))
    text = (
        f"Measured on {machine}, {meta['date']}: {n_runs} runs of {rounds} rounds, opex_trio "
        f"with {'timeout=None' if args.no_timeout else 'its default per-call timeout'}. "
        "Median over all rounds (lowest-highest round).\n\n"
        f"{table(runs)}\n\n{runs_table(runs)}"
    )
    print(text)
    if args.write:
        write_readme(text)
        args.plot.write_text(plot(data))


if __name__ == "__main__":
    main()

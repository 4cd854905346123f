"""Soak: one long-lived process under chat load, with servers killed and swapped.

A :class:`~opex_trio.SessionManager` runs ``--servers`` stdio MCP servers (the
built-in test server, real processes). ``--workers`` tasks run chats in a loop
against the scripted LLM server on 127.0.0.1: the model asks for one tool call
(an echo, or a short sleep so that calls are in flight when a server dies),
then answers. Every ``--kill-every`` seconds one server is SIGKILLed (its
calls in flight fail, the manager restarts it), every ``--swap-every`` seconds
one is removed and a new one added, and event subscriptions are opened and
closed all along (``--subscribe-every``).

Every ``--sample-every`` seconds, after a full garbage collection, it records
the process's RSS and where it sits (pymalloc's arenas; glibc malloc's bytes in
use and bytes freed but kept), Python objects alive, the blocks pymalloc holds
(``sys.getallocatedblocks``), exceptions alive, stdio transports and MCP
clients alive, and open file descriptors. At the end it prints the table and
the slope of each column per hour over the samples after ``--warmup``, then
asks glibc to give free memory back (``malloc_trim``) and reports how much RSS
that returned: memory the allocator kept, not memory still in use.

Run ``python benchmarks/soak.py`` (``--quick`` for the short run CI can afford,
``--duration`` for a long one); it stops by itself.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import random
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from opex_trio import Chat, Client, SessionManager
from opex_trio.errors import ServerUnavailableError
from opex_trio.mcp.client import McpClient
from opex_trio.mcp.manager import HealthCheck, ServerOptions
from opex_trio.supervision import RestartPolicy
from opex_trio.testing.llm_server import (
    JSONReply,
    LLMTestServer,
    RecordedRequest,
    completion,
    open_llm_server,
)
from opex_trio.transports.stdio import StdioParameters, StdioTransport

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = (
    "rss_mb",
    "pymalloc_mb",
    "malloc_used_mb",
    "malloc_free_mb",
    "objects",
    "blocks",
    "exceptions",
    "transports",
    "clients",
    "fds",
)


def server_params() -> StdioParameters:
    return StdioParameters(
        sys.executable,
        ("-m", "opex_trio.testing.mcp_server"),
        env={"PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])},
        close_grace=1.0,
        term_grace=1.0,
    )


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
    except (OSError, AttributeError):
        return None
    return libc


LIBC = _libc()


def malloc_mb() -> tuple[float, float]:
    """glibc malloc's bytes in use and bytes free but kept, in MiB (all arenas)."""
    if LIBC is None:
        return math.nan, math.nan
    info = LIBC.mallinfo2()
    return (info.uordblks + info.hblkhd) / 2**20, info.fordblks / 2**20


def pymalloc_mb() -> float:
    """The memory pymalloc's arenas hold, in MiB (read from sys._debugmallocstats)."""
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode()
    found = re.search(r"(\d+) arenas \* (\d+) bytes/arena", text)
    return int(found.group(1)) * int(found.group(2)) / 2**20 if found else math.nan


def sample(started: float, counts: dict[str, int]) -> dict[str, float]:
    gc.collect()
    objects = gc.get_objects()
    in_use, kept = malloc_mb()
    row = {
        "t": time.monotonic() - started,
        "rss_mb": rss_mb(),
        "pymalloc_mb": pymalloc_mb(),
        "malloc_used_mb": in_use,
        "malloc_free_mb": kept,
        "objects": float(len(objects)),
        "blocks": float(sys.getallocatedblocks()),
        "exceptions": float(sum(isinstance(o, BaseException) for o in objects)),
        "transports": float(sum(isinstance(o, StdioTransport) for o in objects)),
        "clients": float(sum(isinstance(o, McpClient) for o in objects)),
        "fds": float(len(os.listdir("/proc/self/fd"))),
        **{k: float(v) for k, v in counts.items()},
    }
    del objects
    return row


def exception_census() -> dict[str, int]:
    """Exceptions alive, by type, and how many of them hold a traceback."""
    gc.collect()
    census: dict[str, int] = {}
    for o in gc.get_objects():
        if isinstance(o, BaseException):
            key = type(o).__name__ + (" (with traceback)" if o.__traceback__ else "")
            census[key] = census.get(key, 0) + 1
    return dict(sorted(census.items()))


def slope_per_hour(rows: list[dict[str, float]], key: str) -> float:
    """Least-squares slope of ``key`` over time, per hour."""
    if len(rows) < 2:
        return 0.0
    ts = [r["t"] for r in rows]
    ys = [r[key] for r in rows]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return 0.0
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var * 3600


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.counts = {"chats": 0, "tool_errors": 0, "kills": 0, "swaps": 0, "subscriptions": 0}
        self.tool_names: list[str] = []
        self.mcp: SessionManager | None = None
        self.llm: LLMTestServer | None = None
        self.next_id = 0

    def answer(self, request: RecordedRequest) -> JSONReply:
        """The model: one tool call, then a final answer after its result."""
        # The scripted server keeps every request for tests to inspect; a soak
        # must not, or the memory measured is that list's.
        if self.llm is not None:
            self.llm.requests.clear()
        messages = request.json["messages"]
        if messages[-1]["role"] == "tool" or not self.tool_names:
            return JSONReply(completion("done"))
        name = self.rng.choice(self.tool_names)
        args: dict[str, Any] = {"message": "x" * 2000}
        if name.endswith("sleep"):
            args = {"seconds": 0.2}
        call = {
            "id": f"call-{len(messages)}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        return JSONReply(completion(None, tool_calls=[call]))

    def refresh_names(self) -> None:
        assert self.mcp is not None
        self.tool_names = [
            name for name, tool in self.mcp.tools().items() if tool.tool.name in ("echo", "sleep")
        ]

    async def add_server(self) -> str:
        assert self.mcp is not None
        self.next_id += 1
        options = ServerOptions(
            health=HealthCheck(interval=5, timeout=5),
            restart=RestartPolicy(backoff_initial=0.1, backoff_max=1, max_restarts=1000),
        )
        sid = await self.mcp.add_server(
            server_params(), name=f"srv{self.next_id}", options=options, wait=True, timeout=60
        )
        self.refresh_names()
        return sid

    async def worker(self, chat: Chat, i: int) -> None:
        # A conversation of some size, as a real caller holds while it waits.
        history = [{"role": "user", "content": f"worker {i}: " + "y" * 8000}]
        while True:
            result = await chat.chat(model="m", messages=history)
            self.counts["chats"] += 1
            self.counts["tool_errors"] += sum(1 for t in result.tool_calls if t.is_error)

    async def killer(self) -> None:
        assert self.mcp is not None
        while True:
            await trio.sleep(self.args.kill_every)
            ready = [s.id for s in self.mcp.servers() if s.state == "ready"]
            if not ready:
                continue
            try:
                transport = self.mcp.client(self.rng.choice(ready)).transport
            except ServerUnavailableError:
                continue  # died a moment ago; the manager has not seen it yet
            if isinstance(transport, StdioTransport) and transport.returncode is None:
                os.kill(transport.pid, signal.SIGKILL)
                self.counts["kills"] += 1
            del transport

    async def swapper(self) -> None:
        assert self.mcp is not None
        while True:
            await trio.sleep(self.args.swap_every)
            servers = [s.id for s in self.mcp.servers()]
            victim = self.rng.choice(servers)
            try:
                await self.add_server()
            except ServerUnavailableError as exc:
                print(f"a new server did not start: {exc}", flush=True)
                continue
            await self.mcp.remove_server(victim)
            self.refresh_names()
            self.counts["swaps"] += 1

    async def subscriber(self) -> None:
        assert self.mcp is not None
        while True:
            events = self.mcp.events()
            with trio.move_on_after(self.args.subscribe_every):
                async for _ in events:
                    pass
            await events.aclose()
            self.counts["subscriptions"] += 1

    async def run(self) -> list[dict[str, float]]:
        args = self.args
        rows: list[dict[str, float]] = []
        started = time.monotonic()
        async with (
            open_llm_server(self.answer) as llm,
            Client("key", base_url=llm.base_url) as client,
            SessionManager() as mcp,
        ):
            self.mcp, self.llm = mcp, llm
            for _ in range(args.servers):
                await self.add_server()
            chat = Chat(client, mcp=mcp, tool_timeout=10)
            async with trio.open_nursery() as nursery:
                for i in range(args.workers):
                    nursery.start_soon(self.worker, chat, i)
                nursery.start_soon(self.killer)
                nursery.start_soon(self.swapper)
                if args.subscribe_every > 0:
                    nursery.start_soon(self.subscriber)
                while (elapsed := time.monotonic() - started) < args.duration:
                    await trio.sleep(min(args.sample_every, args.duration - elapsed))
                    row = sample(started, self.counts)
                    rows.append(row)
                    print(format_row(row), flush=True)
                nursery.cancel_scope.cancel()
            print("exceptions alive at the end:", exception_census(), flush=True)
            self.mcp = None
        return rows


def format_row(row: dict[str, float]) -> str:
    return (
        f"{row['t']:5.0f} s  rss {row['rss_mb']:6.1f} MiB (pymalloc {row['pymalloc_mb']:5.1f}, "
        f"malloc used {row['malloc_used_mb']:5.1f}, free {row['malloc_free_mb']:5.1f})  "
        f"objects {row['objects']:6.0f}  "
        f"blocks {row['blocks']:8.0f}  exceptions {row['exceptions']:4.0f}  "
        f"transports {row['transports']:3.0f}  clients {row['clients']:3.0f}  "
        f"fds {row['fds']:4.0f}  chats {row['chats']:7.0f}  kills {row['kills']:3.0f}  "
        f"swaps {row['swaps']:3.0f}"
    )


def malloc_trim() -> float | None:
    """Ask glibc to return free memory to the system; the RSS it gave back, in MiB."""
    if LIBC is None:
        return None
    before = rss_mb()
    LIBC.malloc_trim(0)
    return before - rss_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds to run")
    parser.add_argument("--warmup", type=float, default=None, help="seconds left out of slopes")
    parser.add_argument("--servers", type=int, default=6)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--kill-every", type=float, default=20.0)
    parser.add_argument("--swap-every", type=float, default=60.0)
    parser.add_argument("--sample-every", type=float, default=30.0)
    parser.add_argument(
        "--subscribe-every",
        type=float,
        default=1.0,
        help="seconds each event subscription stays open (0: none)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the samples here")
    parser.add_argument(
        "--quick", action="store_true", help="40 s, 2 servers, kills and a swap (for CI)"
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.servers, args.workers = 40.0, 2, 8
        args.kill_every, args.swap_every, args.sample_every = 5.0, 15.0, 5.0
    if args.warmup is None:
        args.warmup = args.duration / 5
    rows = trio.run(Soak(args).run)
    steady = [r for r in rows if r["t"] >= args.warmup]
    print(f"\nslopes per hour after {args.warmup:g} s of warm-up ({len(steady)} samples):")
    for key in COLUMNS:
        print(f"  {key:11} {slope_per_hour(steady, key):+12.1f}")
    gc.collect()
    returned = malloc_trim()
    if returned is not None:
        print(f"malloc_trim(0) returned {returned:.1f} MiB of RSS to the system")
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "trimmed_mb": returned}, indent=1))


if __name__ == "__main__":
    main()

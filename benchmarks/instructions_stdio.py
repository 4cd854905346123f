"""Instructions per stdio MCP call, counted by valgrind: CPU cost that machine load does not move.

Each client of ``bench_stdio.py`` (opex_trio with its default per-call timeout,
opex_trio with ``timeout=None``, the hand-written batching client) runs in a
fresh interpreter under ``valgrind --tool=callgrind``, twice: with no measured
calls and with ``--calls`` of them, after the same 200 warm-up calls. The
difference divided by the calls is the client process's instructions per call
(the server is another process and is not counted). ``--mode seq`` makes the
calls one after another, ``--mode conc`` keeps 64 in flight.

Wall time and CPU time swing with whatever else the machine runs; instruction
counts move far less, though not at all only on an idle machine: how many
answers one read of the pipe brings depends on timing, so repeat a run to see
its spread. Needs valgrind; slow (minutes per client).

Run ``python benchmarks/instructions_stdio.py --mode conc``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_stdio  # noqa: E402 - the clients live beside this script

CLIENTS: dict[str, Any] = {
    "opex_trio": bench_stdio.Opex,
    "opex_trio_no_timeout": bench_stdio.OpexNoTimeout,
    "opex_trio_modern": bench_stdio.OpexModern,
    "handwritten": bench_stdio.HandWritten,
}


async def child(kind: str, mode: str, calls: int) -> None:
    async with CLIENTS[kind]() as client:
        for _ in range(200):
            await client.call("echo", {"message": "w"})
        if mode == "seq":
            for i in range(calls):
                await client.call("echo", {"message": f"m{i}"})
            return
        remaining = calls

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await client.call("echo", {"message": "t"})

        async with trio.open_nursery() as nursery:
            for _ in range(64):
                nursery.start_soon(worker)


def count(kind: str, mode: str, calls: int) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            kind,
            "--mode",
            mode,
            "--calls",
            str(calls),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("seq", "conc"), default="conc")
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--clients", nargs="*", default=list(CLIENTS), choices=list(CLIENTS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        trio.run(child, args.child, args.mode, args.calls)
        return
    per_call: dict[str, float] = {}
    for kind in args.clients:
        extra = count(kind, args.mode, args.calls) - count(kind, args.mode, 0)
        per_call[kind] = extra / args.calls
        print(f"{kind:22} {per_call[kind] / 1000:8.1f} k instructions per call", flush=True)
    if "handwritten" in per_call:
        for kind, value in per_call.items():
            print(f"{kind:22} {value / per_call['handwritten']:6.2f}x the hand-written client")


if __name__ == "__main__":
    main()

"""Per-request and per-chunk overhead of the LLM client, beside raw httpx2 and the openai SDK.

    python benchmarks/bench_llm.py [--requests N] [--streams M] [--chunks K] [--rounds R]

The scripted server (opex_trio.testing.llm_server) runs in a child process on
127.0.0.1, so its work does not count against the clients' CPU time. All three
clients run on trio in this process, one after another, each round in a
rotated order, over keep-alive connections:

* raw httpx2: ``AsyncClient.post`` plus ``response.json()``; for a stream,
  ``httpx2.EventSource`` plus ``json.loads`` of each event: the least a client
  must do;
* opex_trio: ``Client.chat_completion`` and ``Client.stream_chat``;
* openai: ``AsyncOpenAI().chat.completions.create`` (skipped when the package
  is not installed; it is a benchmark-only dependency).

Reported per request (non-streamed) and per chunk (streamed, ``K`` chunks a
stream): the median over rounds of wall-clock time and of this process's CPU
time, and each as a ratio to raw httpx2. Speed is measured here, never
asserted in a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import trio

import opex_trio
from opex_trio.llm import Client, RetryPolicy
from opex_trio.testing.llm_server import (
    JSONReply,
    RecordedRequest,
    Reply,
    SSEReply,
    completion,
    completion_chunks,
    open_llm_server,
)

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Tell me something about the sea."},
]
MODEL = "bench/model"


# --- the server (child process) ---


def serve(chunks: int) -> None:
    body = json.dumps(completion("The sea is large, " * 8, model=MODEL)).encode()
    pieces = [f" tok{i % 10}" for i in range(chunks)]
    encoded = [
        f"data: {json.dumps(c, separators=(',', ':'))}\n\n".encode()
        for c in completion_chunks(pieces, model=MODEL)
    ]
    json_reply = JSONReply(body)
    sse_reply = SSEReply(encoded)

    def handler(request: RecordedRequest) -> Reply:
        stream = isinstance(request.json, dict) and request.json.get("stream")
        return sse_reply if stream else json_reply

    async def main() -> None:
        async with open_llm_server(handler) as server:
            print(server.base_url, flush=True)
            # Serve until the parent closes our stdin.
            await trio.to_thread.run_sync(sys.stdin.read)

    trio.run(main)


# --- the clients ---

Runner = Callable[[int], Awaitable[None]]


async def measure(run: Runner, count: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await run(count)
    return time.perf_counter() - wall, time.process_time() - cpu


def raw_httpx2(base_url: str, http: httpx2.AsyncClient) -> tuple[Runner, Runner]:
    url = base_url + "/chat/completions"
    headers = {"Authorization": "Bearer sk-bench"}
    payload = {"model": MODEL, "messages": MESSAGES}
    stream_payload = {**payload, "stream": True}

    async def requests(n: int) -> None:
        for _ in range(n):
            response = await http.post(url, json=payload, headers=headers)
            response.json()

    async def streams(n: int) -> None:
        for _ in range(n):
            async with http.stream("POST", url, json=stream_payload, headers=headers) as response:
                async for event in httpx2.EventSource(response):
                    if event.data != "[DONE]":
                        json.loads(event.data)

    return requests, streams


def opex(client: Client) -> tuple[Runner, Runner]:
    async def requests(n: int) -> None:
        for _ in range(n):
            await client.chat_completion(model=MODEL, messages=MESSAGES)

    async def streams(n: int) -> None:
        for _ in range(n):
            async with client.stream_chat(model=MODEL, messages=MESSAGES) as stream:
                async for _event in stream:
                    pass

    return requests, streams


def openai_sdk(client: Any) -> tuple[Runner, Runner]:
    async def requests(n: int) -> None:
        for _ in range(n):
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)

    async def streams(n: int) -> None:
        for _ in range(n):
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True
            )
            async for _chunk in stream:
                pass

    return requests, streams


async def bench(base_url: str, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {}
    async with (
        httpx2.AsyncClient(timeout=60.0) as http,
        Client("sk-bench", base_url=base_url, retry=RetryPolicy(max_retries=0)) as client,
    ):
        runners: dict[str, tuple[Runner, Runner]] = {
            "raw httpx2": raw_httpx2(base_url, http),
            "opex_trio": opex(client),
        }
        sdk = None
        try:
            import openai
        except ImportError:
            print("openai is not installed: its column is left out", file=sys.stderr)
        else:
            sdk = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
            runners[f"openai {openai.__version__}"] = openai_sdk(sdk)
        try:
            names = list(runners)
            for name in names:  # warm up connections, caches and imports
                await runners[name][0](20)
                await runners[name][1](3)
            for round_ in range(args.rounds):
                order = names[round_ % len(names) :] + names[: round_ % len(names)]
                for name in order:
                    requests, streams = runners[name]
                    wall, cpu = await measure(requests, args.requests)
                    row = results.setdefault(name, {})
                    row.setdefault("request wall", []).append(wall / args.requests)
                    row.setdefault("request cpu", []).append(cpu / args.requests)
                    per_chunk = args.streams * args.chunks
                    wall, cpu = await measure(streams, args.streams)
                    row.setdefault("chunk wall", []).append(wall / per_chunk)
                    row.setdefault("chunk cpu", []).append(cpu / per_chunk)
        finally:
            if sdk is not None:
                await sdk.close()
    return results


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> str:
    baseline = results["raw httpx2"]
    lines = [
        f"opex_trio {opex_trio.__version__}, httpx2 {httpx2.__version__}, trio {trio.__version__},"
        f" CPython {platform.python_version()}; {args.requests} requests and {args.streams}"
        f" streams of {args.chunks} chunks per round, {args.rounds} rounds. Each cell: the"
        " median over rounds, and in brackets the median of the per-round ratios to raw"
        " httpx2 (rounds pair the clients in time, which cancels much of a shared"
        " machine's drift).",
        "",
        "| client | per request, wall | per request, CPU | per chunk, wall | per chunk, CPU |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, row in results.items():
        cells = []
        for key in ("request wall", "request cpu", "chunk wall", "chunk cpu"):
            value = statistics.median(row[key])
            ratio = statistics.median(
                mine / base for mine, base in zip(row[key], baseline[key], strict=True)
            )
            cells.append(f"{value * 1e6:.1f} us ({ratio:.2f}x)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.chunks)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--chunks", str(args.chunks)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        if not base_url.startswith("http://"):
            raise SystemExit("the benchmark server did not start")
        results = trio.run(bench, base_url, args)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(report(results, args))


if __name__ == "__main__":
    main()

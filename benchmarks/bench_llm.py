"""Per-request and per-chunk overhead of the LLM client, beside raw httpx2 and the openai SDK.

    python benchmarks/bench_llm.py [--requests N] [--streams M] [--chunks K] [--rounds R]

The scripted server (opex_trio.testing.llm_server) runs in a child process on
127.0.0.1, so its work does not count against the clients' CPU time. Each
client runs on trio in a fresh worker process of its own (one per client per
round, in a rotated order, so no client inherits another's heap or garbage),
warms up, then is timed over keep-alive connections:

* raw httpx2: ``AsyncClient.post`` plus ``response.json()``; for a stream,
  ``httpx2.EventSource`` plus ``json.loads`` of each event: the least a client
  must do;
* opex_trio: ``Client.chat_completion`` and ``Client.stream_chat``;
* openai: ``AsyncOpenAI().chat.completions.create`` (skipped when the package
  is not installed; it is a benchmark-only dependency).

Reported per request (non-streamed) and per chunk (streamed, ``K`` chunks a
stream), wall-clock time and the worker's CPU time: the best round of each
client, which load from elsewhere on the machine can only make worse, and the
median round. Speed is measured here, never asserted in a test.
"""

from __future__ import annotations

import argparse
import gc
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


CLIENTS = ("raw httpx2", "opex_trio", "openai")


async def work(name: str, base_url: str, args: argparse.Namespace) -> dict[str, float]:
    """Warm one client up, then time it once; the numbers are per request and per chunk."""
    async with (
        httpx2.AsyncClient(timeout=60.0) as http,
        Client("sk-bench", base_url=base_url, retry=RetryPolicy(max_retries=0)) as client,
    ):
        sdk = None
        if name == "raw httpx2":
            requests, streams = raw_httpx2(base_url, http)
        elif name == "opex_trio":
            requests, streams = opex(client)
        else:
            import openai

            sdk = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
            requests, streams = openai_sdk(sdk)
        try:
            await requests(20)
            await streams(3)
            gc.collect()
            request_wall, request_cpu = await measure(requests, args.requests)
            gc.collect()
            chunk_wall, chunk_cpu = await measure(streams, args.streams)
        finally:
            if sdk is not None:
                await sdk.close()
    chunks = args.streams * args.chunks
    return {
        "request wall": request_wall / args.requests,
        "request cpu": request_cpu / args.requests,
        "chunk wall": chunk_wall / chunks,
        "chunk cpu": chunk_cpu / chunks,
    }


def bench(base_url: str, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """Run every client in a fresh process per round, so none inherits another's heap."""
    names = ["raw httpx2", "opex_trio"]
    try:
        import openai

        names.append("openai")
        label = {"openai": f"openai {openai.__version__}"}
    except ImportError:
        print("openai is not installed: its column is left out", file=sys.stderr)
        label = {}
    results: dict[str, dict[str, list[float]]] = {}
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    name,
                    "--url",
                    base_url,
                    "--requests",
                    str(args.requests),
                    "--streams",
                    str(args.streams),
                    "--chunks",
                    str(args.chunks),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            row = results.setdefault(label.get(name, name), {})
            for key, value in json.loads(output).items():
                row.setdefault(key, []).append(value)
    return results


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> str:
    baseline = results["raw httpx2"]
    keys = ("request wall", "request cpu", "chunk wall", "chunk cpu")
    head = [
        "| client | per request, wall | per request, CPU | per chunk, wall | per chunk, CPU |",
        "| --- | --- | --- | --- | --- |",
    ]
    best = []
    middle = []
    for name, row in results.items():
        best.append(
            f"| {name} | "
            + " | ".join(
                f"{min(row[k]) * 1e6:.1f} us ({min(row[k]) / min(baseline[k]):.2f}x)" for k in keys
            )
            + " |"
        )
        cells = []
        for key in keys:
            ratio = statistics.median(
                mine / base for mine, base in zip(row[key], baseline[key], strict=True)
            )
            cells.append(f"{statistics.median(row[key]) * 1e6:.1f} us ({ratio:.2f}x)")
        middle.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(
        [
            f"opex_trio {opex_trio.__version__}, httpx2 {httpx2.__version__},"
            f" trio {trio.__version__}, CPython {platform.python_version()};"
            f" {args.requests} requests and {args.streams} streams of {args.chunks} chunks"
            f" per client per round, {args.rounds} rounds.",
            "",
            "Best round of each client (ratio to raw httpx2's best round):",
            "",
            *head,
            *best,
            "",
            "Median round (ratio: the median of the per-round ratios to raw httpx2):",
            "",
            *head,
            *middle,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.chunks)
        return
    if args.worker:
        print(json.dumps(trio.run(work, args.worker, args.url, args)))
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
        results = bench(base_url, args)
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

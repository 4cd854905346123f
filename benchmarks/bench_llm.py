"""Per-chunk and per-request cost of the LLM client, beside plain httpx2 and the openai SDK.

    python benchmarks/bench_llm.py [--rounds R] [--streams M] [--chunks K] [--requests N]
    python benchmarks/bench_llm.py --callgrind [--chunks K] [--jobs J]

The scripted server (opex_trio.testing.llm_server) runs in a child process on
127.0.0.1, so its work does not count against the clients'. Each client runs
on trio in a fresh worker process per round (rounds rotate the order), warms
up, then is measured over keep-alive connections.

Streams, the hot path: ``K`` chunks a stream (2,000 by default), ``M`` timed
streams (30) per client per round, each stream timed on its own by the
worker's CPU time (and wall time); a round's figure is the median of its
streams, divided by ``K``. The clients:

* plain httpx2: ``response.aiter_lines()``, and ``json.loads`` of each
  ``data:`` line: the least a client must do, with no events and no assembly;
* httpx2 EventSource: ``httpx2.EventSource`` plus ``json.loads`` of each event
  (the baseline this script used to compare with; its SSE parser costs more
  than the lines loop);
* opex_trio: ``Client.stream_chat``, iterating its typed events, the message
  (and tool calls) assembled;
* openai: ``AsyncOpenAI().chat.completions.create(stream=True)`` (skipped when
  the package is not installed; a benchmark-only dependency).

Three streams:

* text, buffered: the server writes the whole body at once, so each read of
  the connection returns many events and what remains per chunk is each
  client's own work;
* text, one HTTP chunk per event: as a server writes tokens as they come;
  httpx2's own per-chunk work (h11's chunked framing) is then most of every
  client's cost and makes the clients look alike;
* tool call, buffered: one tool call whose arguments come in ``K`` pieces.

Non-streamed requests: ``N`` requests per client per round, timed together.

``--callgrind`` counts instructions instead of time (valgrind's callgrind,
which repeats closely on a loaded machine): each of plain httpx2 and
opex_trio runs under it twice per stream, with 1 and 3 streams after one
warm-up stream, and the difference divided by the 2 * K chunks is the cost of
one chunk, start-up and warm-up excluded. Speed is measured here, never
asserted in a test.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
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
SHAPES = ("text, buffered", "text, one HTTP chunk per event", "tool call, buffered")
CLIENTS = ("plain httpx2", "httpx2 EventSource", "opex_trio", "openai")


# --- the server (child process) ---


def encoded_events(chunks: list[dict[str, Any]]) -> list[bytes]:
    events = [f"data: {json.dumps(c, separators=(',', ':'))}\n\n".encode() for c in chunks]
    return [*events, b"data: [DONE]\n\n"]


def tool_call_chunks(count: int) -> list[dict[str, Any]]:
    """A stream of one tool call: its head, then ``count`` pieces of its arguments."""
    chunks = completion_chunks([], model="tool call, buffered", finish_reason="tool_calls")
    head, end = chunks[:1], chunks[1:]

    def with_delta(delta: dict[str, Any]) -> dict[str, Any]:
        return {**head[0], "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}

    def arguments(text: str) -> dict[str, Any]:
        return with_delta({"tool_calls": [{"index": 0, "function": {"arguments": text}}]})

    start = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "write_file", "arguments": ""},
    }
    calls = [with_delta({"tool_calls": [start]}), arguments('{"text": "')]
    calls.extend(arguments(f"tok{i % 10} ") for i in range(count - 2))
    calls.append(arguments('"}'))
    return [*head, *calls, *end]


def serve(chunks: int) -> None:
    body = json.dumps(completion("The sea is large, " * 8, model="bench/model")).encode()
    pieces = [f" tok{i % 10}" for i in range(chunks)]
    text = encoded_events(completion_chunks(pieces, model="text"))
    replies: dict[str, Reply] = {
        # One write of the whole body (one HTTP chunk): reads return many events.
        "text, buffered": SSEReply([b"".join(text)], done=False),
        # Each event its own HTTP chunk.
        "text, one HTTP chunk per event": SSEReply(text, done=False),
        "tool call, buffered": SSEReply(
            [b"".join(encoded_events(tool_call_chunks(chunks)))], done=False
        ),
    }
    json_reply = JSONReply(body)

    def handler(request: RecordedRequest) -> Reply:
        payload = request.json if isinstance(request.json, dict) else {}
        if payload.get("stream"):
            return replies[payload["model"]]
        return json_reply

    async def main() -> None:
        async with open_llm_server(handler) as server:
            print(server.base_url, flush=True)
            # Serve until the parent closes our stdin.
            await trio.to_thread.run_sync(sys.stdin.read)

    trio.run(main)


# --- the clients (worker processes) ---

Stream = Callable[[str], Awaitable[None]]
Requests = Callable[[int], Awaitable[None]]
HEADERS = {"Authorization": "Bearer sk-bench"}


def plain_httpx2(base_url: str, http: httpx2.AsyncClient) -> tuple[Requests, Stream]:
    url = base_url + "/chat/completions"

    async def requests(n: int) -> None:
        for _ in range(n):
            response = await http.post(
                url, json={"model": "bench/model", "messages": MESSAGES}, headers=HEADERS
            )
            response.json()

    async def stream(shape: str) -> None:
        payload = {"model": shape, "messages": MESSAGES, "stream": True}
        async with http.stream("POST", url, json=payload, headers=HEADERS) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    json.loads(line[6:])

    return requests, stream


def eventsource_httpx2(base_url: str, http: httpx2.AsyncClient) -> tuple[Requests, Stream]:
    requests, _ = plain_httpx2(base_url, http)
    url = base_url + "/chat/completions"

    async def stream(shape: str) -> None:
        payload = {"model": shape, "messages": MESSAGES, "stream": True}
        async with http.stream("POST", url, json=payload, headers=HEADERS) as response:
            async for event in httpx2.EventSource(response):
                if event.data != "[DONE]":
                    json.loads(event.data)

    return requests, stream


def opex(client: Client) -> tuple[Requests, Stream]:
    async def requests(n: int) -> None:
        for _ in range(n):
            await client.chat_completion(model="bench/model", messages=MESSAGES)

    async def stream(shape: str) -> None:
        async with client.stream_chat(model=shape, messages=MESSAGES) as events:
            async for _event in events:
                pass
        assert events.final is not None

    return requests, stream


def openai_sdk(sdk: Any) -> tuple[Requests, Stream]:
    async def requests(n: int) -> None:
        for _ in range(n):
            await sdk.chat.completions.create(model="bench/model", messages=MESSAGES)

    async def stream(shape: str) -> None:
        chunks = await sdk.chat.completions.create(model=shape, messages=MESSAGES, stream=True)
        async for _chunk in chunks:
            pass

    return requests, stream


async def measure(requests: Requests, stream: Stream, args: argparse.Namespace) -> dict[str, Any]:
    if args.callgrind:
        # Only the streams: the parent runs this twice and subtracts.
        for _ in range(1 + args.streams):
            await stream(args.shape)
        return {}
    out: dict[str, Any] = {}
    await requests(20)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    await requests(args.requests)
    out["request"] = (
        (time.perf_counter() - wall) / args.requests,
        (time.process_time() - cpu) / args.requests,
    )
    for shape in SHAPES:
        for _ in range(3):
            await stream(shape)
        gc.collect()
        walls, cpus = [], []
        for _ in range(args.streams):
            wall, cpu = time.perf_counter(), time.process_time()
            await stream(shape)
            cpus.append((time.process_time() - cpu) / args.chunks)
            walls.append((time.perf_counter() - wall) / args.chunks)
        out[shape] = (statistics.median(walls), statistics.median(cpus))
    return out


async def work(name: str, base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Warm one client up, then measure it; times are per chunk and per request, in seconds."""
    async with (
        httpx2.AsyncClient(timeout=60.0) as http,
        Client("sk-bench", base_url=base_url, retry=RetryPolicy(max_retries=0)) as client,
    ):
        if name == "plain httpx2":
            return await measure(*plain_httpx2(base_url, http), args)
        if name == "httpx2 EventSource":
            return await measure(*eventsource_httpx2(base_url, http), args)
        if name == "opex_trio":
            return await measure(*opex(client), args)
        import openai

        sdk = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
        try:
            return await measure(*openai_sdk(sdk), args)
        finally:
            await sdk.close()


# --- the parent ---


def worker_command(name: str, base_url: str, args: argparse.Namespace) -> list[str]:
    return [
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
    ]


def client_names() -> list[str]:
    names = list(CLIENTS[:3])
    try:
        import openai  # noqa: F401
    except ImportError:
        print("openai is not installed: its rows are left out", file=sys.stderr)
    else:
        names.append("openai")
    return names


def timed(base_url: str, args: argparse.Namespace) -> dict[str, dict[str, list[Any]]]:
    """Every client in a fresh process per round; results[client][measure] lists the rounds."""
    names = client_names()
    results: dict[str, dict[str, list[Any]]] = {}
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            output = subprocess.run(
                worker_command(name, base_url, args), check=True, capture_output=True, text=True
            ).stdout
            row = results.setdefault(name, {})
            for key, value in json.loads(output).items():
                row.setdefault(key, []).append(value)
    return results


def spread(values: list[float], scale: float = 1e6, unit: str = " us") -> str:
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle * scale:.2f}{unit}"
    return f"{middle * scale:.2f}{unit} ({min(values) * scale:.2f}-{max(values) * scale:.2f})"


def table(results: dict[str, dict[str, list[Any]]], measure: str, what: str) -> list[str]:
    base = results["plain httpx2"][measure]
    lines = [f"| client | CPU {what} | ratio | wall {what} |", "| --- | --- | --- | --- |"]
    for name, row in results.items():
        cpu = [cpu for _, cpu in row[measure]]
        wall = [wall for wall, _ in row[measure]]
        ratios = [mine / plain for mine, (_, plain) in zip(cpu, base, strict=True)]
        lines.append(f"| {name} | {spread(cpu)} | {spread(ratios, 1, 'x')} | {spread(wall)} |")
    return lines


def timed_report(results: dict[str, dict[str, list[Any]]], args: argparse.Namespace) -> str:
    lines = []
    for shape in SHAPES:
        lines += [
            "",
            f"Per chunk, {shape}: CPU time, median of {args.streams} streams a round; the"
            " median round (lowest-highest round); ratio to plain httpx2: the median of the"
            " per-round ratios (lowest-highest)",
            "",
            *table(results, shape, "per chunk"),
        ]
    lines += [
        "",
        f"Per request: CPU time over {args.requests} requests a round",
        "",
        *table(results, "request", "per request"),
    ]
    return "\n".join(lines)


def instructions(command: list[str]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
            check=True,
            capture_output=True,
        )
        with open(out) as file:
            text = file.read()
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
    if match is None:
        raise SystemExit("callgrind wrote no instruction total")
    return int(match.group(1))


def callgrind_report(base_url: str, args: argparse.Namespace) -> str:
    few, many = 1, 3
    names = ("plain httpx2", "opex_trio")
    jobs = []
    for name in names:
        for shape in SHAPES:
            for streams in (few, many):
                command = worker_command(name, base_url, args)
                command[command.index("--streams") + 1] = str(streams)
                jobs.append([*command, "--callgrind", "--shape", shape])
    # Instruction counts do not depend on what else runs, so the runs may overlap.
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        counts = iter(list(pool.map(instructions, jobs)))
    rows: dict[str, list[float]] = {}
    for name in names:
        for _shape in SHAPES:
            first, second = next(counts), next(counts)
            rows.setdefault(name, []).append((second - first) / ((many - few) * args.chunks))
    lines = [
        "",
        f"Instructions per chunk (callgrind: a run of {many} streams minus a run of {few},"
        " each after one warm-up stream; ratio to plain httpx2)",
        "",
        "| client | " + " | ".join(SHAPES) + " |",
        "| --- |" + " --- |" * len(SHAPES),
    ]
    for name, row in rows.items():
        cells = [
            f"{value:,.0f} ({value / plain:.2f}x)"
            for value, plain in zip(row, rows["plain httpx2"], strict=True)
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--streams", type=int, default=30)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--jobs", type=int, default=4, help="callgrind runs at once")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--shape", choices=SHAPES, help=argparse.SUPPRESS)
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
    load_before = os.getloadavg()[0]
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        if not base_url.startswith("http://"):
            raise SystemExit("the benchmark server did not start")
        if args.callgrind:
            body = callgrind_report(base_url, args)
            what = f"{args.chunks} chunks a stream"
        else:
            body = timed_report(timed(base_url, args), args)
            what = (
                f"{args.rounds} rounds; {args.streams} streams of {args.chunks} chunks"
                f" and {args.requests} requests per client per round"
            )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(
        f"opex_trio {opex_trio.__version__}, httpx2 {httpx2.__version__}, trio {trio.__version__},"
        f" CPython {platform.python_version()}, {os.cpu_count()} CPUs; {what};"
        f" load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
    )
    print(body)


if __name__ == "__main__":
    main()

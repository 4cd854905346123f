"""Chat-loop benchmark: the loop's own cost per turn, and memory per concurrent chat.

* Overhead per turn: a chat whose every turn asks for one tool call (served by
  an in-process MCP server) against the scripted LLM server on 127.0.0.1,
  compared in the same run with bare ``chat_completion`` calls carrying the
  same conversation. The difference per turn is what the loop adds: building
  the tool list, parsing the calls, running the tool, adding the messages.
  Target: under 1 ms per turn.
* 1,000 chats at once in one process, each waiting for its model answer:
  memory per chat (traced Python allocations, and the process's RSS growth).

Run ``python benchmarks/bench_chat.py`` (``--quick`` for a smoke run,
``--write`` to update benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx2
import trio

from opex_trio import Chat, Client, SessionManager
from opex_trio.mcp.manager import ServerOptions
from opex_trio.testing.llm_server import JSONReply, RecordedRequest, completion, open_llm_server
from opex_trio.testing.mcp_server import builtin_server

HERE = Path(__file__).resolve().parent


def tool_turn(request: RecordedRequest) -> JSONReply:
    """Every request gets one echo call, so every turn of the chat runs a tool."""
    turn = len([m for m in request.json["messages"] if m["role"] == "assistant"])
    call = {
        "id": f"call-{turn}",
        "type": "function",
        "function": {"name": "echo", "arguments": json.dumps({"message": f"turn {turn}"})},
    }
    return JSONReply(completion(None, tool_calls=[call]))


async def overhead(turns: int, rounds: int) -> dict[str, float]:
    server = builtin_server()
    async with (
        open_llm_server(tool_turn) as llm,
        Client("key", base_url=llm.base_url) as client,
        trio.open_nursery() as nursery,
        SessionManager() as mcp,
    ):
        await mcp.add_server(
            server.in_process(nursery), name="tools", options=ServerOptions(health=None), wait=True
        )
        chat = Chat(client, mcp=mcp, max_turns=turns)
        tools = chat._tools_for_model(chat.tool_index())
        messages = [{"role": "user", "content": "go"}]
        per_turn_chat: list[float] = []
        per_turn_raw: list[float] = []
        for _ in range(rounds):
            # The same requests without the loop: the growing conversation a
            # chat of that many turns sends, one bare call each.
            result = await chat.chat(model="m", messages=messages)
            start = time.perf_counter()
            result = await chat.chat(model="m", messages=messages)
            per_turn_chat.append((time.perf_counter() - start) / turns)
            conversations = [messages + list(result.messages[: 2 * i]) for i in range(turns)]
            start = time.perf_counter()
            for conversation in conversations:
                await client.chat_completion(model="m", messages=conversation, tools=tools)
            per_turn_raw.append((time.perf_counter() - start) / turns)
        nursery.cancel_scope.cancel()
    chat_us = statistics.median(per_turn_chat) * 1e6
    raw_us = statistics.median(per_turn_raw) * 1e6
    return {"chat_turn_us": chat_us, "llm_call_us": raw_us, "overhead_us": chat_us - raw_us}


async def concurrent_chats(count: int) -> dict[str, float]:
    release = trio.Event()
    all_waiting = trio.Event()
    waiting = 0

    async def slow_answer(request: RecordedRequest) -> JSONReply:
        nonlocal waiting
        waiting += 1
        if waiting == count:
            all_waiting.set()
        await release.wait()
        return JSONReply(completion("done"))

    limits = httpx2.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with (
        open_llm_server(slow_answer) as llm,
        httpx2.AsyncClient(limits=limits, timeout=60) as http,
        Client("key", base_url=llm.base_url, http_client=http) as client,
    ):
        chat = Chat(client)
        gc.collect()
        tracemalloc.start()
        before_rss = _rss_mb()
        before, _ = tracemalloc.get_traced_memory()
        results: list[Any] = []

        async def one(i: int) -> None:
            results.append(
                await chat.chat(model="m", messages=[{"role": "user", "content": f"chat {i}"}])
            )

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
            await all_waiting.wait()
            gc.collect()
            during, _ = tracemalloc.get_traced_memory()
            during_rss = _rss_mb()
            release.set()
        tracemalloc.stop()
        assert len(results) == count
    # The traced bytes include the scripted server's side of every request;
    # they are an upper bound for the chats themselves.
    return {
        "chats": count,
        "kb_per_chat_traced": (during - before) / count / 1024,
        "kb_per_chat_rss": (during_rss - before_rss) * 1024 / count,
    }


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_readme(text: str) -> None:
    path = HERE / "README.md"
    begin, end = "<!-- chat-bench:begin -->", "<!-- chat-bench:end -->"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in current:
        before, rest = current.split(begin, 1)
        current = before + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + "\n\n## Chat loop\n\n" + block + "\n"
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    turns, rounds, count = (5, 3, 100) if args.quick else (20, 15, 1000)
    cost = trio.run(overhead, turns, rounds)
    memory = trio.run(concurrent_chats, count)
    target = "met" if cost["overhead_us"] < 1000 else "missed"
    lines = [
        "| measure | value |",
        "| --- | --- |",
        f"| one chat turn with a tool call (us) | {cost['chat_turn_us']:,.0f} |",
        f"| the same model call alone (us) | {cost['llm_call_us']:,.0f} |",
        f"| loop overhead per turn (us; target < 1000, {target}) | {cost['overhead_us']:,.0f} |",
        f"| {memory['chats']:.0f} concurrent chats: traced KB per chat | "
        f"{memory['kb_per_chat_traced']:,.1f} |",
        f"| {memory['chats']:.0f} concurrent chats: RSS KB per chat | "
        f"{memory['kb_per_chat_rss']:,.1f} |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
        write_readme(f"Measured on {machine}, {time.strftime('%Y-%m-%d')}.\n\n{text}")


if __name__ == "__main__":
    main()

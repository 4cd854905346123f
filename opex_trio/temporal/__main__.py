"""``python -m opex_trio.temporal``: a durable-chat worker, or ``run``: one durable chat.

``python -m opex_trio.temporal [options]`` runs a worker, as ``opex-trio
worker`` does but without the command's model rules (``--base-url`` and the
key from ``--api-key-env``): it prints ``ready`` on stdout once its MCP
servers are up and it polls the task queue, and stops cleanly on SIGTERM or
SIGINT.

``python -m opex_trio.temporal run --model M "prompt"`` starts a durable chat
on the cluster, waits for it and prints its answer, as ``opex-trio run
--durable`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import trio

from ..errors import OpexError
from ..mcp.config import load_config
from .client import DurableChats
from .steps import ChatSpec
from .worker import WorkerConfig, serve

__all__ = ["main", "parser", "run_parser"]


def parser(prog: str = "python -m opex_trio.temporal") -> argparse.ArgumentParser:
    """The worker's command line."""
    p = argparse.ArgumentParser(prog=prog, description="Run a durable-chat worker on Temporal.")
    p.add_argument("--address", default="127.0.0.1:7233", help="Temporal frontend host:port")
    p.add_argument("--namespace", default="default")
    p.add_argument("--task-queue", default="opex-trio")
    p.add_argument("--mcp-config", default=None, help="an mcpServers JSON file")
    p.add_argument(
        "--base-url", default=os.environ.get("OPEX_BASE_URL", "https://openrouter.ai/api/v1")
    )
    p.add_argument(
        "--api-key-env",
        default="OPENROUTER_API_KEY",
        help="the environment variable that holds the LLM API key",
    )
    p.add_argument("--graceful-shutdown", type=float, default=10.0)
    p.add_argument("--max-concurrent-activities", type=int, default=100)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def run_parser(prog: str = "python -m opex_trio.temporal run") -> argparse.ArgumentParser:
    """The command line of one durable chat."""
    p = argparse.ArgumentParser(prog=prog, description="Run one durable chat and print its answer.")
    p.add_argument("prompt", help="the user message")
    p.add_argument("--model", required=True)
    p.add_argument("--address", default="127.0.0.1:7233", help="Temporal frontend host:port")
    p.add_argument("--namespace", default="default")
    p.add_argument("--task-queue", default="opex-trio")
    p.add_argument("--system", default=None, help="the system prompt")
    p.add_argument("--max-turns", type=int, default=10)
    p.add_argument("--id", default=None, help="the workflow id (default: a new one)")
    return p


async def run_chat(args: argparse.Namespace) -> str:
    """Start the chat the parsed command line describes; its answer."""
    spec = ChatSpec(
        model=args.model,
        messages=[{"role": "user", "content": args.prompt}],
        system_prompt=args.system,
        max_turns=args.max_turns,
    )
    async with DurableChats(
        args.address, namespace=args.namespace, task_queue=args.task_queue
    ) as chats:
        result = await chats.chat(spec, id=args.id)
    return result.content or ""


def config_from(args: argparse.Namespace) -> WorkerConfig:
    """The worker configuration the parsed command line describes."""
    return WorkerConfig(
        address=args.address,
        namespace=args.namespace,
        task_queue=args.task_queue,
        servers=load_config(args.mcp_config) if args.mcp_config else {},
        api_key=os.environ.get(args.api_key_env) or None,
        base_url=args.base_url,
        graceful_shutdown=args.graceful_shutdown,
        max_concurrent_activities=args.max_concurrent_activities,
    )


def run(config: WorkerConfig) -> int:
    """Serve until a signal; 0 after a clean stop."""

    def ready() -> None:
        print("ready", flush=True)

    asyncio.run(serve(config, on_ready=ready))
    return 0


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown.

    Temporal's native threads can still call into Python while the interpreter
    finalizes, which aborts the process (temporalio/sdk-python#300): once the
    work is done and the output flushed, skip that teardown.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the worker command, or ``run``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        run_args = run_parser().parse_args(argv[1:])
        try:
            print(trio.run(run_chat, run_args), flush=True)
            code = 0
        except OpexError as exc:
            print(f"opex-trio run: {exc}", file=sys.stderr)
            code = 1
        exit_now(code)
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        code = run(config_from(args))
    except OpexError as exc:
        print(f"opex-trio worker: {exc}", file=sys.stderr)
        code = 1
    exit_now(code)


if __name__ == "__main__":
    main()

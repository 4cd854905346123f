"""The durable commands: ``opex-trio worker`` and ``opex-trio run --durable`` (the temporal extra).

``worker`` serves durable chats on a Temporal task queue, with the MCP servers
of ``--mcp-config`` and ``--server`` and the model the usual options choose
(``--base-url``, or an API key from the environment); it runs until SIGTERM
or Ctrl-C. ``run --durable`` starts one chat on the cluster, waits for it and
prints its answer; the workers hold the model's address and key, so the
command only names the model.

Both leave with ``os._exit`` once their output is flushed: Temporal's native
threads can abort a process while the interpreter shuts down
(temporalio/sdk-python#300).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from typing import Any, NoReturn

from ._errors import EXIT_OK, EXIT_USAGE, CliError
from ._model import choose_model
from ._servers import server_configs
from ._ui import Ui

__all__ = ["add_durable_options", "add_worker_options", "exit_now", "run_durable", "worker"]

_EXTRA = "needs the 'temporal' extra: pip install 'opex_trio[temporal]'"


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Temporal")
    group.add_argument(
        "--address", default="127.0.0.1:7233", help="the Temporal frontend (default %(default)s)"
    )
    group.add_argument("--namespace", default="default", help="default %(default)s")
    group.add_argument("--task-queue", default="opex-trio", help="default %(default)s")


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``opex-trio worker``."""
    _add_cluster_options(parser)
    parser.add_argument(
        "--graceful-shutdown",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM, how long running calls may finish before they are cancelled "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--max-concurrent-activities",
        type=int,
        default=100,
        metavar="N",
        help="model and tool calls at once (default %(default)s)",
    )


def add_durable_options(parser: argparse.ArgumentParser) -> None:
    """The options ``run`` gains for ``--durable``."""
    parser.add_argument(
        "--durable",
        action="store_true",
        help="run on a Temporal cluster's workers (opex-trio worker), surviving their failures",
    )
    _add_cluster_options(parser)


def _temporal() -> Any:
    try:
        import opex_trio.temporal as temporal
    except ModuleNotFoundError as exc:
        raise CliError(f"this command {_EXTRA}", EXIT_USAGE) from exc
    return temporal


def exit_now(code: int) -> NoReturn:
    """Leave without the interpreter's teardown (see the module docstring)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def worker(args: argparse.Namespace, ui: Ui) -> int:
    """``opex-trio worker``: serve durable chats until SIGTERM or Ctrl-C (runs asyncio)."""
    temporal = _temporal()
    choice = choose_model(local=bool(args.local), base_url=args.base_url, model=args.model)
    if choice.source == "local" or choice.base_url is None:
        raise CliError(
            "a worker needs a model server: pass --base-url URL, or set OPENROUTER_API_KEY "
            "or OPENAI_API_KEY (the embedded model serves one process, not a cluster)",
            EXIT_USAGE,
        )
    config = temporal.WorkerConfig(
        address=args.address,
        namespace=args.namespace,
        task_queue=args.task_queue,
        servers=server_configs(args.mcp_config, args.server),
        api_key=choice.api_key,
        base_url=choice.base_url,
        start_timeout=args.start_timeout,
        graceful_shutdown=args.graceful_shutdown,
        max_concurrent_activities=args.max_concurrent_activities,
    )

    def ready() -> None:
        ui.notice(f"worker ready on task queue {args.task_queue!r} at {args.address}")

    asyncio.run(temporal.serve(config, on_ready=ready))
    return EXIT_OK


async def run_durable(args: argparse.Namespace, ui: Ui) -> int:
    """``opex-trio run --durable PROMPT``: one durable chat; print its answer."""
    if args.approve or args.allow_sampling:
        raise CliError(
            "run --durable cannot ask a person: its tools run in a worker; leave out "
            "--approve and --allow-sampling",
            EXIT_USAGE,
        )
    temporal = _temporal()
    if not args.model:
        raise CliError(
            "run --durable needs --model: the workers hold the model's address and key",
            EXIT_USAGE,
        )
    if args.server or args.mcp_config:
        raise CliError(
            "run --durable uses the workers' MCP servers; give --mcp-config and --server "
            "to opex-trio worker",
            EXIT_USAGE,
        )
    spec = temporal.ChatSpec(
        model=args.model,
        messages=[{"role": "user", "content": args.prompt}],
        system_prompt=args.system,
        max_turns=args.max_turns,
        tool_timeout=args.tool_timeout or None,
        llm_options={"max_tokens": args.max_tokens} if args.max_tokens else {},
    )
    async with temporal.DurableChats(
        args.address, namespace=args.namespace, task_queue=args.task_queue
    ) as chats:
        run = await chats.start(spec)
        ui.notice(f"durable chat {run.id} started")
        result = await run.result()
    if args.json:
        ui.print(json.dumps(dataclasses.asdict(result), indent=2, default=str, ensure_ascii=False))
    else:
        ui.print(result.content or "")
    return EXIT_OK

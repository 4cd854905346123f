"""A Temporal worker for durable chats: asyncio outside, trio inside, servers for its whole life.

Theory of operation
-------------------
:func:`serve` connects to Temporal, starts trio in guest mode in the same
asyncio loop (:class:`~opex_trio.temporal._guest.TrioGuest`), and there opens
the LLM :class:`~opex_trio.Client` and a :class:`~opex_trio.SessionManager`
with the MCP servers of an ``mcpServers`` file; they serve every activity the
worker runs until it stops. Then it runs a Temporal worker on the task queue
with the chat workflow and its two activities.

Stopping (SIGTERM, SIGINT, or the ``stop`` event) goes in order: the Temporal
worker first (it stops polling, lets running activities finish within
``graceful_shutdown``, then cancels them, which cancels their trio code), then
the trio side (the SessionManager stops every server process), then the
connection.

A worker that dies without stopping (SIGKILL, a lost machine) leaves two
things behind on the server: its activities, which go to another worker once
their heartbeat timeout passes, and its sticky workflow queue, where the next
workflow task of each run it had cached would wait; ``sticky_timeout`` (a few
seconds, not Temporal's 10) bounds that wait before the task goes to the
shared queue.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import attrs
import trio
from temporalio.client import Client as TemporalClient
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from ..errors import ConfigError
from ..llm.client import Client
from ..mcp.config import ServerConfig
from ..mcp.manager import SessionManager
from ._guest import TrioGuest
from .activities import ChatActivities, WorkerResources
from .workflow import ChatWorkflow

__all__ = ["WorkerConfig", "open_resources", "serve"]

logger = logging.getLogger("opex_trio.temporal")


@attrs.frozen
class WorkerConfig:
    """Where a worker connects and what it serves.

    ``address``, ``namespace`` and ``task_queue`` name the Temporal cluster and
    queue. ``servers`` are the MCP servers to run (from
    :func:`opex_trio.mcp.config.load_config`), each waited for up to
    ``start_timeout`` seconds; ``api_key`` and ``base_url`` configure the LLM
    client. ``workflows`` are the workflow classes to host (subclasses of
    :class:`~opex_trio.temporal.workflow.ChatWorkflow` with hooks), and
    ``activity_options`` go to :class:`~opex_trio.temporal.activities.ChatActivities`.
    """

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "opex-trio"
    servers: Mapping[str, ServerConfig] = attrs.field(factory=dict)
    api_key: str | None = None
    base_url: str = "https://openrouter.ai/api/v1"
    start_timeout: float = 60.0
    graceful_shutdown: float = 10.0
    sticky_timeout: float = 3.0
    max_concurrent_activities: int = 100
    workflows: Sequence[type] = (ChatWorkflow,)
    activity_options: Mapping[str, Any] = attrs.field(factory=dict)


@asynccontextmanager
async def open_resources(config: WorkerConfig) -> AsyncIterator[WorkerResources]:
    """Open the LLM client and start every MCP server (in parallel); trio side."""
    async with (
        Client(config.api_key, base_url=config.base_url) as client,
        SessionManager() as mcp,
    ):
        async with trio.open_nursery() as nursery:
            for name, server in config.servers.items():
                nursery.start_soon(_add, mcp, name, server, config.start_timeout)
        yield WorkerResources(client, mcp)


async def _add(mcp: SessionManager, name: str, server: ServerConfig, timeout: float) -> None:
    await mcp.add_server(server, name=name, wait=True, timeout=timeout)


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox, with opex_trio passed through (loaded once, not per run)."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("opex_trio", "attrs")
    )


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until one of ``waits`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve(
    config: WorkerConfig,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], object] | None = None,
    handle_signals: bool = True,
) -> None:
    """Run a worker until ``stop`` is set, or SIGTERM or SIGINT arrives (asyncio).

    When the trio side fails (its resources broke), the worker stops too and
    the failure is raised.

    ``on_ready`` is called once the servers are up and the worker polls.
    """
    if not config.task_queue:
        raise ConfigError("the task queue name must not be empty")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        temporal = await TemporalClient.connect(config.address, namespace=config.namespace)
        guest = TrioGuest(lambda: open_resources(config))
        await guest.start()
        try:
            activities = ChatActivities(guest, **dict(config.activity_options))
            worker = Worker(
                temporal,
                task_queue=config.task_queue,
                workflows=list(config.workflows),
                activities=activities.all(),
                workflow_runner=sandbox_runner(),
                sticky_queue_schedule_to_start_timeout=timedelta(seconds=config.sticky_timeout),
                graceful_shutdown_timeout=timedelta(seconds=config.graceful_shutdown),
                max_concurrent_activities=config.max_concurrent_activities,
            )
            async with worker:
                logger.info("worker on task queue %r is running", config.task_queue)
                if on_ready is not None:
                    on_ready()
                await _first(stop.wait(), guest.wait_finished())
                logger.info("stopping the worker")
        finally:
            await guest.stop()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)

"""Durable chats on Temporal (the ``temporal`` extra): many machines, no lost or repeated calls.

:class:`ChatWorkflow` runs the chat loop durably; a worker
(:func:`~opex_trio.temporal.worker.serve`, or ``opex-trio worker``) runs its
model and tool calls with trio, next to MCP servers that live as long as the
worker; :class:`DurableChats` starts and follows runs from a trio program.
"""

try:
    import temporalio as _temporalio  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess
    raise ModuleNotFoundError(
        "opex_trio.temporal needs the 'temporal' extra: pip install 'opex_trio[temporal]'",
        name=exc.name,
    ) from exc

from .client import ClusterUnavailableError as ClusterUnavailableError
from .client import DurableChats as DurableChats
from .client import DurableRun as DurableRun
from .client import RunCancelledError as RunCancelledError
from .client import RunFailedError as RunFailedError
from .steps import ChatSpec as ChatSpec
from .steps import DurableEvent as DurableEvent
from .steps import DurableResult as DurableResult
from .steps import ToolOutcome as ToolOutcome
from .steps import step_key as step_key
from .worker import WorkerConfig as WorkerConfig
from .worker import serve as serve
from .workflow import ChatWorkflow as ChatWorkflow

__all__ = [
    "ChatSpec",
    "ChatWorkflow",
    "ClusterUnavailableError",
    "DurableChats",
    "DurableEvent",
    "DurableResult",
    "DurableRun",
    "RunCancelledError",
    "RunFailedError",
    "ToolOutcome",
    "WorkerConfig",
    "serve",
    "step_key",
]

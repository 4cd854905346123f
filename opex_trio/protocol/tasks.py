"""The tasks extension (``io.modelcontextprotocol/tasks``, SEP-2663), sans IO.

A server that declared the extension may answer ``tools/call`` (from a client
that declared it on that request) with a task handle (``resultType: "task"``)
instead of the tool's result. The client then follows the task with
``tasks/get`` until it reaches a terminal status (``completed``, ``failed``,
``cancelled``), waiting ``pollIntervalMs`` between polls; answers what an
``input_required`` task asks for with ``tasks/update`` (each input key once);
and cancels it with ``tasks/cancel`` (never ``notifications/cancelled``).

The experimental tasks of 2025-11-25 (legacy era) differ: the client asks for
a task (a ``task`` member in the ``tools/call`` params, for a server that
declared ``tasks.requests.tools.call``), the handle comes as ``{"task": ...}``
with ``pollInterval`` and ``ttl``, the server asks for input with ordinary
server requests while the client waits on ``tasks/result``, and that request
also brings the final result (or the tool's JSON-RPC error).

:class:`TaskFollower` holds those rules for one task: feed it each answer, and
it says what to do next (:class:`Poll`, :class:`AnswerInputs`,
:class:`FetchResult`, :class:`Finished`). The IO side does the waiting and the
sending, inside the caller's deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from ..errors import McpError, ProtocolError
from .modern import InputRequest, InputRequired

__all__ = [
    "TASKS_EXTENSION",
    "TASK_RESULT_TYPE",
    "TERMINAL",
    "AnswerInputs",
    "FetchResult",
    "Finished",
    "Poll",
    "Task",
    "TaskFollower",
    "legacy_task_support",
    "task_handle",
]

TASKS_EXTENSION: Final = "io.modelcontextprotocol/tasks"
"""The identifier of the tasks extension."""
TASK_RESULT_TYPE: Final = "task"
"""The result type that says a request became a task."""
TERMINAL: Final = frozenset({"completed", "failed", "cancelled"})
"""The task states after which a task no longer changes."""
_STATUSES: Final = TERMINAL | {"working", "input_required"}
_DEFAULT_POLL = 1.0
_MIN_POLL = 0.05
_MAX_POLL = 30.0


@attrs.frozen
class Task:
    """A task's state as the server last reported it."""

    task_id: str
    status: str
    status_message: str | None = None
    poll_interval_ms: int | None = None
    ttl_ms: int | None = None
    input_requests: tuple[InputRequest, ...] = ()
    result: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None

    @property
    def terminal(self) -> bool:
        """Whether the task will not change any more."""
        return self.status in TERMINAL

    @property
    def progress_key(self) -> tuple[str, str | None]:
        """What changes when the task moves on (reported to the caller as progress)."""
        return self.status, self.status_message

    @classmethod
    def of(cls, data: Mapping[str, Any], *, legacy: bool = False) -> Task:
        """Parse a task handle or a ``tasks/get`` result; :class:`ProtocolError` if malformed.

        ``legacy`` reads the 2025-11-25 shape: ``pollInterval`` and ``ttl``, and
        a failed task whose error comes from ``tasks/result``.
        """
        task_id, status = data.get("taskId"), data.get("status")
        if not isinstance(task_id, str) or not task_id:
            raise ProtocolError("a task must have a non-empty string taskId")
        if status not in _STATUSES:
            raise ProtocolError(f"task {task_id} has an unknown status {status!r}")
        poll = data.get("pollInterval" if legacy else "pollIntervalMs")
        ttl = data.get("ttl" if legacy else "ttlMs")
        message = data.get("statusMessage")
        inputs: tuple[InputRequest, ...] = ()
        if status == "input_required" and not legacy:
            asked = InputRequired.of({"inputRequests": data.get("inputRequests") or {}})
            inputs = asked.input_requests
        result, error = data.get("result"), data.get("error")
        if status == "completed" and not legacy and not isinstance(result, Mapping):
            raise ProtocolError(f"completed task {task_id} carries no result object")
        if status == "failed" and not legacy and not isinstance(error, Mapping):
            raise ProtocolError(f"failed task {task_id} carries no error object")
        return cls(
            task_id,
            status,
            message if isinstance(message, str) else None,
            poll if isinstance(poll, int) and not isinstance(poll, bool) and poll >= 0 else None,
            ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None,
            inputs,
            result if isinstance(result, Mapping) else None,
            error if isinstance(error, Mapping) else None,
        )


@attrs.frozen
class Poll:
    """Wait ``delay`` seconds, then send ``tasks/get`` with ``params``."""

    delay: float
    params: Mapping[str, Any]


@attrs.frozen
class AnswerInputs:
    """Answer these inputs with the server-request handlers, then :meth:`TaskFollower.update`."""

    requests: tuple[InputRequest, ...]


@attrs.frozen
class FetchResult:
    """Legacy era: send ``tasks/result`` with ``params``; it waits for the end and brings it.

    Server requests for input arrive while it waits, as ordinary requests.
    """

    params: Mapping[str, Any]


@attrs.frozen
class Finished:
    """The task ended: ``result`` (completed), or ``error`` (failed or cancelled)."""

    result: Mapping[str, Any] | None
    error: Exception | None


def legacy_task_support(capabilities: Mapping[str, Any] | None, method: str) -> bool:
    """Whether a 2025-11-25 server's ``tasks`` capability covers ``method`` (``tools/call``)."""
    section: Any = capabilities
    for part in ("requests", *method.split("/")):
        section = section.get(part) if isinstance(section, Mapping) else None
    return isinstance(section, Mapping)


def task_handle(result: Mapping[str, Any], *, legacy: bool) -> Mapping[str, Any] | None:
    """The task handle in a result, or ``None`` when the result is the request's own.

    Modern: a result whose ``resultType`` is ``"task"``. Legacy (only when the
    request asked for a task): the ``task`` member of a ``CreateTaskResult``.
    """
    if legacy:
        handle = result.get("task")
        if handle is None:
            return None
        if not isinstance(handle, Mapping):
            raise ProtocolError("the task of a CreateTaskResult must be an object")
        return handle
    return result if result.get("resultType") == TASK_RESULT_TYPE else None


class TaskFollower:
    """The rules for following one task to its end.

    ``handle`` is the task as the server created it (for the legacy era, the
    ``task`` member of its answer, with ``legacy=True``).
    """

    def __init__(
        self, handle: Mapping[str, Any], *, method: str = "tools/call", legacy: bool = False
    ) -> None:
        self.method = method
        self.legacy = legacy
        self.task = Task.of(handle, legacy=legacy)
        self._answered: set[str] = set()

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.task.task_id

    def poll_delay(self) -> float:
        """How long to wait before the next ``tasks/get``, as the server suggests (bounded)."""
        ms = self.task.poll_interval_ms
        seconds = _DEFAULT_POLL if ms is None else ms / 1000.0
        return min(max(seconds, _MIN_POLL), _MAX_POLL)

    def next_step(self) -> Poll | AnswerInputs | FetchResult | Finished:
        """What to do given the last state seen."""
        task = self.task
        if self.legacy and task.status in {"completed", "failed", "input_required"}:
            # The result, the error, or the server's requests for input: all
            # come while waiting on tasks/result.
            return FetchResult({"taskId": task.task_id})
        if task.status == "completed":
            return Finished(task.result, None)
        if task.status == "failed":
            err = task.error or {}
            code, message = err.get("code"), err.get("message")
            error = McpError.received(
                code if isinstance(code, int) else -32603,
                message if isinstance(message, str) else "the task failed",
                err.get("data"),
                method=self.method,
            )
            return Finished(None, error)
        if task.status == "cancelled":
            reason = task.status_message or "the server cancelled the task"
            return Finished(None, McpError(-32800, reason, method=self.method))
        fresh = tuple(r for r in task.input_requests if r.key not in self._answered)
        if fresh:
            return AnswerInputs(fresh)
        return Poll(self.poll_delay(), {"taskId": task.task_id})

    def observe(self, result: Mapping[str, Any]) -> Poll | AnswerInputs | FetchResult | Finished:
        """Take a ``tasks/get`` result (or a status notification) and say what to do next."""
        task = Task.of(result, legacy=self.legacy)
        if task.task_id != self.task.task_id:
            raise ProtocolError(f"asked for task {self.task.task_id}, got {task.task_id}")
        self.task = task
        return self.next_step()

    def update(self, responses: Mapping[str, Any]) -> dict[str, Any]:
        """The ``tasks/update`` params carrying ``responses``; each key is answered once."""
        fresh = {k: v for k, v in responses.items() if k not in self._answered}
        self._answered.update(fresh)
        return {"taskId": self.task.task_id, "inputResponses": fresh}

    def cancel(self) -> dict[str, Any]:
        """The ``tasks/cancel`` params."""
        return {"taskId": self.task.task_id}

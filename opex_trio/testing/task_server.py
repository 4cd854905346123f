"""The MCP test server with the extensions: tools run as tasks, and skills.

:class:`TaskTestServer` is an :class:`~opex_trio.testing.mcp_server.McpTestServer`
that also speaks the modern era's opening (``server/discover``, answering
requests that carry their version in ``_meta``) and serves:

* task tools (:meth:`TaskTestServer.add_task_tool`): in the modern era with the
  ``io.modelcontextprotocol/tasks`` extension (a task handle for a client that
  declared it on the request, ``tasks/get``, ``tasks/update``,
  ``tasks/cancel``); in the legacy era with the experimental tasks of
  2025-11-25 (``tasks/get``, ``tasks/result``, ``tasks/cancel``), when the
  client asks with a ``task`` member;
* skills (:meth:`TaskTestServer.add_skill`): ``skills/list`` and the skill's
  files as resources, with their digests.

A task tool's function takes ``(arguments, task)`` (:class:`ServerTask`): it
may set a status message and ask the client for input, and returns what a
plain tool returns. Requests the server received, the ids of tasks the client
cancelled and what it read are kept for tests to assert on.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from ..protocol import jsonrpc
from ..protocol.jsonrpc import Request
from ..protocol.modern import CLIENT_CAPABILITIES_KEY, PROTOCOL_VERSION_KEY
from ..protocol.skills import SKILLS_EXTENSION
from ..protocol.tasks import TASKS_EXTENSION
from ..protocol.versions import LEGACY_VERSIONS, MODERN_VERSIONS
from ..transports.base import TransportFactory
from .http_server import _route as _http_route
from .mcp_server import McpTestServer, ToolContext, ToolFailure, _Connection, _RpcError

__all__ = ["ServerTask", "TaskFunction", "TaskTestServer"]

TaskFunction = Callable[[Mapping[str, Any], "ServerTask"], Awaitable[Any]]
"""A task tool's function: ``(arguments, task)``, returning what a plain tool returns."""
_MISSING_CAPABILITY = -32021


class ServerTask:
    """One task the server runs: what its function sees, and what ``tasks/get`` reports."""

    def __init__(self, task_id: str, ctx: ToolContext, conn: _Connection, *, legacy: bool) -> None:
        self.task_id = task_id
        self.ctx = ctx
        self.legacy = legacy
        self.status = "working"
        self.status_message: str | None = None
        self.result: Mapping[str, Any] | None = None
        self.error: Mapping[str, Any] | None = None
        self.input_requests: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, Any] = {}
        self.done = trio.Event()
        self.scope = trio.CancelScope()
        self._answered = trio.Event()
        self._conn = conn

    def say(self, message: str) -> None:
        """Set the status message (a client reports a change as progress)."""
        self.status_message = message

    async def ask(self, key: str, method: str, params: Mapping[str, Any]) -> Any:
        """Ask the client for input and wait for its answer.

        Modern: ``input_required`` with ``inputRequests[key]`` until a
        ``tasks/update`` answers it. Legacy: a server request to the client.
        """
        if self.legacy:
            self.status = "input_required"
            try:
                meta = {"io.modelcontextprotocol/related-task": {"taskId": self.task_id}}
                return await self._conn.request(method, {**params, "_meta": meta})
            finally:
                self.status = "working"
        self.input_requests[key] = {"method": method, "params": dict(params)}
        self.status = "input_required"
        while key not in self.answers:
            await self._answered.wait()
            self._answered = trio.Event()
        del self.input_requests[key]
        if not self.input_requests:
            self.status = "working"
        return self.answers[key]

    def answer(self, responses: Mapping[str, Any]) -> None:
        """Take the answers a ``tasks/update`` carries (keys not asked for are ignored)."""
        for key, value in responses.items():
            if key in self.input_requests and key not in self.answers:
                self.answers[key] = value
        self._answered.set()

    def describe(self, poll_ms: int) -> dict[str, Any]:
        """The task as ``tasks/get`` reports it, in the task's era."""
        out: dict[str, Any] = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": "2026-08-01T00:00:00Z",
            "lastUpdatedAt": "2026-08-01T00:00:00Z",
        }
        if self.legacy:
            out.update(ttl=60000, pollInterval=poll_ms)
        else:
            out.update(ttlMs=60000, pollIntervalMs=poll_ms)
            if self.status == "input_required":
                out["inputRequests"] = dict(self.input_requests)
            elif self.status == "completed":
                out["result"] = self.result
            elif self.status == "failed":
                out["error"] = self.error
        if self.status_message is not None:
            out["statusMessage"] = self.status_message
        return out


class TaskTestServer(McpTestServer):
    """The test server with task tools and skills, in both eras; see the module docstring.

    ``modern`` makes it answer ``server/discover`` (it still answers
    ``initialize``); ``poll_interval_ms`` is what its tasks suggest.
    """

    def __init__(
        self,
        name: str = "opex-task-server",
        *,
        modern: bool = True,
        poll_interval_ms: int = 200,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("protocol_versions", LEGACY_VERSIONS)
        super().__init__(name, **kwargs)
        self.modern = modern
        self.poll_interval_ms = poll_interval_ms
        self.tasks: dict[str, ServerTask] = {}
        self.cancelled_tasks: list[str] = []
        self.reads: list[str] = []
        self.skills: list[dict[str, Any]] = []
        self._files: dict[str, bytes] = {}
        self._task_tools: dict[str, tuple[TaskFunction, str]] = {}
        self._ids = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        extensions = dict(self.capabilities.get("extensions") or {})
        extensions[TASKS_EXTENSION] = {}
        self.capabilities["extensions"] = extensions
        # 2025-11-25 declares tasks in a capability of their own.
        tasks: dict[str, Any] = {"cancel": {}, "requests": {"tools": {"call": {}}}}
        self.capabilities["tasks"] = tasks

    # -- registration

    def add_task_tool(
        self, name: str, function: TaskFunction, *, task_support: str = "required", **fields: Any
    ) -> None:
        """Register ``function`` as tool ``name``, run as a task (``execution.taskSupport``)."""

        async def direct(arguments: Mapping[str, Any], ctx: ToolContext) -> Any:
            raise ToolFailure(f"tool {name} runs only as a task")

        self.add_tool(name, direct, execution={"taskSupport": task_support}, **fields)
        self._task_tools[name] = (function, task_support)

    def add_skill(self, name: str, description: str, body: str, **files: str) -> str:
        """Serve a skill: its ``SKILL.md`` (frontmatter from ``name`` and ``description``).

        ``files`` are its other files, by relative path. Returns the ``SKILL.md`` URI.
        """
        main = f"skill://{name}/SKILL.md"
        text = f"---\nname: {name}\ndescription: {description}\n---\n\n{body}"
        contents = {main: text, **{f"skill://{name}/{path}": data for path, data in files.items()}}
        manifest = []
        for uri, data in contents.items():
            raw = data.encode("utf-8")
            self._files[uri] = raw
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            manifest.append({"uri": uri, "digest": digest, "size": len(raw)})
        frontmatter = {"name": name, "description": description}
        self.skills.append({"uri": main, "frontmatter": frontmatter, "resources": manifest})
        extensions = dict(self.capabilities.get("extensions") or {})
        extensions[SKILLS_EXTENSION] = {}
        self.capabilities["extensions"] = extensions
        self.capabilities.setdefault("resources", {"listChanged": False, "subscribe": False})
        return main

    def tamper(self, uri: str, text: str) -> None:
        """Serve other content for ``uri`` than its listed digest (a verification test)."""
        self._files[uri] = text.encode("utf-8")

    def run_tasks_in(self, nursery: trio.Nursery) -> None:
        """Run the tasks in ``nursery`` (for a server served other than :meth:`in_process`)."""
        self._nursery = nursery

    def in_process(
        self, nursery: trio.Nursery, name: str = "in-process", *, refuse_first: int = 0
    ) -> TransportFactory:
        """As :meth:`McpTestServer.in_process`; the tasks run in ``nursery`` too."""
        self.run_tasks_in(nursery)
        return super().in_process(nursery, name, refuse_first=refuse_first)

    # -- dispatch

    async def dispatch(self, request: Request, conn: _Connection) -> Any:
        """Answer the extensions' requests; leave the rest to the plain server."""
        params = dict(request.params or {})
        method = request.method
        if method == "server/discover":
            if not self.modern:
                raise _RpcError(jsonrpc.METHOD_NOT_FOUND, "method not found: server/discover")
            conn.version = MODERN_VERSIONS[-1]
            return {
                "resultType": "complete",
                "supportedVersions": list(MODERN_VERSIONS),
                "capabilities": self.capabilities,
                "serverInfo": {"name": self.name, "version": self.version},
            }
        if method == "tools/call" and params.get("name") in self._task_tools:
            return await self._start_task(request, params, conn)
        if method in ("tasks/get", "tasks/update", "tasks/cancel", "tasks/result"):
            return await self._task_request(method, params)
        if method == "skills/list":
            return {"skills": self.skills}
        if method == "resources/read" and params.get("uri") in self._files:
            uri = params["uri"]
            self.reads.append(uri)
            text = self._files[uri].decode("utf-8")
            return {"contents": [{"uri": uri, "mimeType": "text/markdown", "text": text}]}
        return await super().dispatch(request, conn)

    async def _start_task(self, request: Request, params: dict[str, Any], conn: _Connection) -> Any:
        function, support = self._task_tools[params["name"]]
        meta = params.get("_meta") or {}
        modern = PROTOCOL_VERSION_KEY in meta
        if modern:
            declared = (meta.get(CLIENT_CAPABILITIES_KEY) or {}).get("extensions") or {}
            asked = TASKS_EXTENSION in declared
        else:
            asked = isinstance(params.get("task"), Mapping)
        if not asked:
            if support == "required":
                if modern:
                    raise _RpcError(
                        _MISSING_CAPABILITY,
                        "Missing required client capability",
                        {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}},
                    )
                raise _RpcError(jsonrpc.METHOD_NOT_FOUND, "this tool runs only as a task")
            return await self._run_inline(function, request, params, conn)
        task = ServerTask(
            f"task-{next(self._ids)}", ToolContext(self, request, conn), conn, legacy=not modern
        )
        self.tasks[task.task_id] = task
        assert self._nursery is not None, "give the server a nursery with run_tasks_in()"
        self._nursery.start_soon(self._run, task, function, params.get("arguments") or {})
        handle = task.describe(self.poll_interval_ms)
        return {"resultType": "task", **handle} if modern else {"task": handle}

    async def _run_inline(
        self, function: TaskFunction, request: Request, params: dict[str, Any], conn: _Connection
    ) -> Any:
        task = ServerTask("inline", ToolContext(self, request, conn), conn, legacy=True)
        return _as_result(await function(params.get("arguments") or {}, task))

    async def _run(self, task: ServerTask, function: TaskFunction, arguments: Any) -> None:
        # Started while serving tools/call, whose HTTP stream has ended by now: what
        # the task sends goes on the session's own stream instead.
        _http_route.set(None)
        with task.scope:
            try:
                value = function(arguments, task)
                if inspect.isawaitable(value):
                    value = await value
            except ToolFailure as exc:
                task.result = {"content": [{"type": "text", "text": str(exc)}], "isError": True}
                task.status = "completed"
            except _RpcError as exc:
                task.error = {"code": exc.error.code, "message": exc.error.message}
                task.status = "failed"
            else:
                task.result = _as_result(value)
                task.status = "completed"
        if task.scope.cancelled_caught:
            task.status = "cancelled"
        task.done.set()

    async def _task_request(self, method: str, params: dict[str, Any]) -> Any:
        task = self.tasks.get(params.get("taskId", ""))
        if task is None:
            raise _RpcError(jsonrpc.INVALID_PARAMS, f"Failed to retrieve task: {params!r}")
        if method == "tasks/get":
            return {"resultType": "complete", **task.describe(self.poll_interval_ms)}
        if method == "tasks/update":
            task.answer(params.get("inputResponses") or {})
            return {"resultType": "complete"}
        if method == "tasks/cancel":
            self.cancelled_tasks.append(task.task_id)
            task.scope.cancel()
            if task.legacy:
                await task.done.wait()
                return task.describe(self.poll_interval_ms)
            return {"resultType": "complete"}
        await task.done.wait()  # tasks/result
        if task.error is not None:
            raise _RpcError(task.error["code"], task.error["message"])
        if task.status == "cancelled":
            raise _RpcError(jsonrpc.INVALID_PARAMS, f"task {task.task_id} was cancelled")
        return task.result


def _as_result(value: Any) -> Any:
    return {"content": [{"type": "text", "text": value}]} if isinstance(value, str) else value

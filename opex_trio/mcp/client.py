"""One MCP server as an actor: a mailbox, a writer task, a reader task.

Theory of operation
-------------------
:class:`McpClient` owns one connection (a transport) and one sans-IO
:class:`~opex_trio.protocol.session.ClientSession`. Callers never touch the
transport. A call builds its request with the session (which records it as
pending, with the caller's one-shot :class:`_Reply` as context), encodes it in
the caller's task (so bad arguments fail there, with a clear error), puts it
on the mailbox, a bounded memory channel, and waits on its reply.

The writer task takes everything queued in the mailbox at once and hands it
to the transport as one batch: on stdio that is one write for many calls,
which is where throughput under load comes from. The reader task feeds what
arrives to the session and acts on the events: a response wakes its caller, a
server request runs its handler in a task of its own, a notification goes to
its subscribers. Messages the session produces by itself (the answer to a
ping, ``notifications/initialized``, a cancellation) go to the mailbox too.

Each call has a deadline: a cancel scope. When it fires, or when the caller is
cancelled, the request leaves the pending table, the server gets
``notifications/cancelled``, and a late response is dropped.

When the connection breaks, every pending call fails at once with the
transport's error (for a stdio server, :class:`~opex_trio.errors.ServerExitedError`
with the exit status and the last stderr lines), and later calls fail with it
immediately. A transport that carries each request on its own (HTTP) may fail
one request alone (:class:`~opex_trio.transports.base.RequestFailure`); only
that caller gets the error.

When an HTTP server forgets our session (:class:`~opex_trio.errors.SessionExpiredError`,
a 404), the calls pending on it fail with that error, and the actor opens a new
session on the same transport (a fresh handshake) while calls made meanwhile
wait for it. A request the server refused for the forgotten session was never
run, so it is sent once more, in the new session, within its deadline: the
call that found out gets its answer, as do the calls after it. Only a refusal
that comes before the new session begins is known in time; when several calls
meet one at once, a later refusal finds its call failed already with the calls
in flight. Request ids go on from the old session, so its late answers are
dropped, and what it had still queued is not sent to the new one. Once the new
session is open, subscribers get :class:`SessionRenewed`: what the server
offers may have changed with it.

:meth:`McpClient.run` runs the actor in the caller's task, for a supervisor;
``async with McpClient(...)`` runs it in a nursery of its own.
"""

from __future__ import annotations

import heapq
import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeAlias

import attrs
import trio

from .._exceptions import unwrap_single
from ..errors import (
    ConfigError,
    McpError,
    MessageTooLargeError,
    OpexError,
    ProtocolError,
    RequestTimeoutError,
    SessionExpiredError,
    TransportClosedError,
)
from ..protocol import jsonrpc
from ..protocol.jsonrpc import Notification, Request, RequestId
from ..protocol.session import (
    CancelledByServer,
    ClientSession,
    ErrorReceived,
    HandshakeComplete,
    HandshakeFailed,
    InvalidMessage,
    LateResponse,
    ListChanged,
    LogReceived,
    NotificationReceived,
    ProgressReceived,
    RequestHandled,
    RequestReceived,
    ResourceUpdated,
    ResponseReceived,
    SessionEvent,
    SessionState,
)
from ..protocol.types import (
    CallToolResult,
    CompleteResult,
    CreateMessageParams,
    CreateMessageResult,
    ElicitParams,
    ElicitResult,
    GetPromptResult,
    Implementation,
    InitializeResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    LoggingMessageParams,
    McpType,
    ProgressParams,
    Prompt,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    Root,
    ServerCapabilities,
    Tool,
)
from ..protocol.versions import LATEST_LEGACY_VERSION, Features
from ..transports.base import Outgoing, RequestFailure, Transport, TransportFactory

__all__ = [
    "ClientOptions",
    "ElicitationHandler",
    "McpClient",
    "Notice",
    "ProgressCallback",
    "RootsProvider",
    "SamplingHandler",
    "SessionRenewed",
]

logger = logging.getLogger("opex_trio.mcp")

ProgressCallback: TypeAlias = Callable[[ProgressParams], object]
"""Called with each progress notification of a call; may be sync or async."""
SamplingHandler: TypeAlias = Callable[
    [CreateMessageParams], Awaitable[CreateMessageResult | Mapping[str, Any]]
]
"""Answers ``sampling/createMessage``."""
ElicitationHandler: TypeAlias = Callable[
    [ElicitParams], Awaitable[ElicitResult | Mapping[str, Any]]
]
"""Answers ``elicitation/create``."""
RootsProvider: TypeAlias = (
    Sequence[Root | Mapping[str, Any]] | Callable[[], Awaitable[Sequence[Root | Mapping[str, Any]]]]
)
"""The roots to answer ``roots/list`` with: a fixed list, or an async function returning one."""


@attrs.frozen
class SessionRenewed:
    """The server forgot our session, and the actor opened a new one in its place.

    Delivered to subscribers once the new session is open. The server may be
    a new process with other tools, resources or prompts, so a subscriber that
    keeps lists of them reloads them.
    """


Notice: TypeAlias = (
    LogReceived
    | ListChanged
    | ResourceUpdated
    | ProgressReceived
    | NotificationReceived
    | SessionRenewed
)
"""A notification event delivered to subscribers, or :class:`SessionRenewed`."""

_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}

_MAX_PAGES = 10_000


@attrs.frozen
class ClientOptions:
    """How an :class:`McpClient` behaves; every field has a sensible default.

    ``request_timeout`` is the default deadline of one request in seconds
    (``None``: no deadline), ``init_timeout`` that of the handshake. Declare
    ``roots``, ``sampling_handler`` or ``elicitation_handler`` to answer those
    server requests; the matching capability is declared only then.
    ``on_log`` receives the server's log messages (they also go to the
    ``opex_trio.mcp`` logger). ``mailbox_size`` bounds the queue of messages
    waiting for the writer.
    """

    client_info: Implementation | None = None
    protocol_version: str = LATEST_LEGACY_VERSION
    request_timeout: float | None = 60.0
    init_timeout: float = 30.0
    roots: RootsProvider | None = None
    sampling_handler: SamplingHandler | None = None
    elicitation_handler: ElicitationHandler | None = None
    on_log: Callable[[LoggingMessageParams], object] | None = None
    mailbox_size: int = 256

    def capabilities(self) -> dict[str, Any]:
        """The client capabilities object these options declare."""
        caps: dict[str, Any] = {}
        if self.roots is not None:
            caps["roots"] = {"listChanged": True}
        if self.sampling_handler is not None:
            caps["sampling"] = {}
        if self.elicitation_handler is not None:
            caps["elicitation"] = {"form": {}, "url": {}}
        return caps


class _Reply:
    """A one-shot slot one caller waits on for its response.

    A trio.Event would do, but this sits on every request's path and a
    single waiter needs none of its generality: the waiting task is parked
    and rescheduled directly.
    """

    __slots__ = ("_waiter", "done", "error", "refused", "result")

    def __init__(self) -> None:
        self.done = False
        # Failed because the server refused the request for a session it
        # forgot: it never ran, so it may be sent again in a new session.
        self.refused = False
        self.result: Mapping[str, Any] | None = None
        self.error: BaseException | None = None
        self._waiter: trio.lowlevel.Task | None = None

    def set(self, result: Mapping[str, Any]) -> None:
        if not self.done:
            self.result = result
            self._wake()

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.error = error
            self._wake()

    def _wake(self) -> None:
        self.done = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)

    async def wait(self) -> None:
        """Wait until set or failed; a checkpoint either way."""
        if self.done:
            await trio.lowlevel.checkpoint()
            return
        if self._waiter is not None:
            raise RuntimeError("only one task may wait for a reply")
        self._waiter = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _abort(self, _: Any) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED


class McpClient:
    """A connection to one MCP server, run as an actor.

    ``transport_factory`` opens the connection (see
    :func:`opex_trio.transports.stdio.open_stdio_transport`); ``name`` labels
    the server in logs and errors. Use it as an async context manager, or call
    :meth:`run` from a supervisor.
    """

    def __init__(
        self,
        transport_factory: TransportFactory,
        *,
        name: str = "server",
        options: ClientOptions | None = None,
    ) -> None:
        self.name = name
        self.options = options or ClientOptions()
        self._factory = transport_factory
        self._session = ClientSession(
            client_info=self.options.client_info,
            capabilities=self.options.capabilities(),
            protocol_version=self.options.protocol_version,
        )
        self._mailbox_send, self._mailbox_recv = trio.open_memory_channel[Outgoing](
            self.options.mailbox_size
        )
        self._overflow: list[Outgoing] = []
        self._handshake = _Reply()
        self._progress: dict[str | int, ProgressCallback] = {}
        self._subscribers: list[trio.MemorySendChannel[Notice]] = []
        self._server_tasks: dict[RequestId, trio.CancelScope] = {}
        self._error: BaseException | None = None
        self._transport: Transport | None = None
        self._done = trio.Event()
        self._stopped = trio.Event()
        self._ready_once = False
        self._nursery: trio.Nursery | None = None
        self._own_nursery: trio.Nursery | None = None
        self._progress_tokens = jsonrpc.IdAllocator()
        self._deadlines = _Deadlines(self._expire, lambda: self._session.pending_count)
        self._renewing: trio.Event | None = None
        self._stale_below = 0

    # -- what the server said about itself

    @property
    def initialize_result(self) -> InitializeResult:
        """The server's answer to the handshake."""
        result = self._session.initialize_result
        if result is None:
            raise TransportClosedError(f"MCP server {self.name!r} is not connected yet")
        return result

    @property
    def server_info(self) -> Implementation:
        """The server's name and version."""
        return self.initialize_result.server_info

    @property
    def capabilities(self) -> ServerCapabilities:
        """What the server declared it can do."""
        return self.initialize_result.capabilities

    @property
    def instructions(self) -> str | None:
        """The server's instructions for the model, if it sent any."""
        return self.initialize_result.instructions

    @property
    def protocol_version(self) -> str | None:
        """The negotiated protocol version, once connected."""
        return self._session.protocol_version

    @property
    def features(self) -> Features | None:
        """What the negotiated protocol version allows, once connected."""
        return self._session.features

    @property
    def transport(self) -> Transport | None:
        """The transport while connected (for inspection: pid, stderr tail, ...)."""
        return self._transport

    @property
    def connected(self) -> bool:
        """Whether the handshake is done and the connection has not failed or closed."""
        return self._session.state is SessionState.READY and self._error is None

    @property
    def available(self) -> bool:
        """Whether calls can be made now.

        True while :attr:`connected`, and also while the actor opens a new
        session because the server forgot the old one: calls made meanwhile
        wait for the new session, within their deadlines.
        """
        return self._ready_once and self._error is None and not self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        """Why the connection ended, if it failed."""
        return self._error

    @property
    def pending_count(self) -> int:
        """Requests waiting for their response."""
        return self._session.pending_count

    # -- running

    async def run(
        self, *, task_status: trio.TaskStatus[McpClient] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, handshake, report ready through ``task_status``, serve until closed.

        Raises the error that broke the connection (after failing every
        pending call with it), so a supervisor sees the failure. Returns when
        :meth:`aclose` is called.
        """
        if self._session.state is not SessionState.NEW:
            raise OpexError(f"McpClient for {self.name!r} can run only once; make a new one")
        try:
            async with self._factory() as transport:
                self._transport = transport
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._writer, transport)
                    nursery.start_soon(self._reader, transport)
                    nursery.start_soon(self._deadlines.watch)
                    try:
                        await self._open()
                    except Exception as exc:  # noqa: BLE001 - kept in self._error and raised below
                        self._fail(exc)
                    else:
                        self._ready_once = True
                        task_status.started(self)
                    await self._done.wait()
                    nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self._abandon(
                self._error
                or TransportClosedError(f"the connection to MCP server {self.name!r} was closed")
            )
            self._stopped.set()
        if self._error is not None:
            raise self._error

    def _expire(self, request_id: RequestId, reply: _Reply) -> None:
        """A request's deadline passed: cancel it on the server and fail its caller."""
        self._session.cancel(request_id, "the client's deadline passed")
        self._flush()
        reply.fail(_TIMED_OUT)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._abandon(self._error)
        self._done.set()

    async def _open(self) -> None:
        self._session.open()
        self._flush()
        with trio.move_on_after(self.options.init_timeout) as scope:
            await self._handshake.wait()
        if scope.cancelled_caught:
            raise RequestTimeoutError(
                f"MCP server {self.name!r} did not answer initialize within "
                f"{self.options.init_timeout:g} s",
                method="initialize",
                timeout=self.options.init_timeout,
            )
        if self._handshake.error is not None:
            raise self._handshake.error

    async def __aenter__(self) -> McpClient:
        self._own_cm = self._own_runner()
        return await self._own_cm.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._own_cm.__aexit__(*exc_info)

    @asynccontextmanager
    async def _own_runner(self) -> AsyncIterator[McpClient]:
        with unwrap_single():
            async with trio.open_nursery() as nursery:
                await nursery.start(self._run_contained)
                try:
                    yield self
                finally:
                    self._done.set()

    async def _run_contained(self, *, task_status: trio.TaskStatus[McpClient]) -> None:
        # Under ``async with``, a connection that breaks later must not tear
        # down the caller's block: the error is kept and calls raise it.
        try:
            await self.run(task_status=task_status)
        except (OpexError, OSError):
            if not self._ready_once:
                raise

    def abort(self, error: BaseException) -> None:
        """End the connection now because of ``error``.

        Pending and later calls fail with ``error`` and :meth:`run` raises it,
        so a supervisor restarts the server (a failed health check does this).
        """
        self._fail(error)

    async def aclose(self) -> None:
        """Close the connection; pending calls fail with :class:`TransportClosedError`."""
        self._done.set()
        if self._nursery is not None:
            await self._stopped.wait()

    # -- the two tasks

    async def _writer(self, transport: Transport) -> None:
        await self._keep(self._write_loop, transport)

    async def _reader(self, transport: Transport) -> None:
        await self._keep(self._read_loop, transport)

    async def _keep(
        self, loop: Callable[[Transport], Awaitable[None]], transport: Transport
    ) -> None:
        """Run one of the two loops; an expired session restarts it, any other failure ends all."""
        while True:
            try:
                await loop(transport)
            except SessionExpiredError as exc:
                if not self._renew(transport, exc):
                    self._fail(exc)
                    return
            except Exception as exc:  # noqa: BLE001 - any failure ends the connection, reported to callers
                self._fail(exc)
                return

    # -- a new session when the server forgot ours

    def _renew(self, transport: Transport, error: SessionExpiredError) -> bool:
        """Start a new session in the background; False when this connection cannot."""
        if (
            not self._ready_once
            or self._done.is_set()
            or self._nursery is None
            or not transport.can_reset_session
        ):
            return False
        if self._renewing is None or self._renewing.is_set():
            self._renewing = trio.Event()
            self._nursery.start_soon(self._renew_session, transport, error, self._renewing)
        return True

    async def _renew_session(
        self, transport: Transport, error: SessionExpiredError, finished: trio.Event
    ) -> None:
        logger.info("MCP server %r forgot our session; opening a new one", self.name)
        try:
            old = self._session
            self._abandon(error)
            self._session = ClientSession(
                client_info=self.options.client_info,
                capabilities=self.options.capabilities(),
                protocol_version=self.options.protocol_version,
            )
            # Ids go on from the old session, so its late answers match nothing.
            self._session.next_id = old.next_id
            self._stale_below = int(old.next_id())
            self._handshake = _Reply()
            await transport.reset_session()
            await self._open()
        except Exception as exc:  # noqa: BLE001 - reported to callers as the connection's failure
            self._fail(exc)
        else:
            self._publish(SessionRenewed())
        finally:
            finished.set()

    async def _await_renewal(self, seconds: float | None, deadline: float, method: str) -> None:
        """Wait, until ``deadline`` (``seconds`` after the call began), for a renewal under way."""
        renewing = self._renewing
        if renewing is None or renewing.is_set():
            return
        with trio.move_on_at(deadline):
            await renewing.wait()
        if not renewing.is_set():
            assert seconds is not None
            raise RequestTimeoutError(
                f"MCP server {self.name!r} was opening a new session and could not take "
                f"{method} within {seconds:g} s",
                method=method,
                timeout=seconds,
            )
        self._check_usable()

    def _is_stale(self, outgoing: Outgoing) -> bool:
        """Whether ``outgoing`` belongs to a session the server forgot."""
        message = outgoing.message
        if isinstance(message, Request):
            rid: Any = message.id
        elif isinstance(message, Notification) and message.method == "notifications/cancelled":
            rid = (message.params or {}).get("requestId")
        else:
            return False
        return isinstance(rid, int) and rid < self._stale_below

    async def _write_loop(self, transport: Transport) -> None:
        receive = self._mailbox_recv
        while True:
            first = await receive.receive()
            batch = [first]
            while True:
                try:
                    batch.append(receive.receive_nowait())
                except trio.WouldBlock:
                    break
            if self._overflow:
                batch.extend(self._overflow)
                self._overflow.clear()
            if self._stale_below:
                batch = [o for o in batch if not self._is_stale(o)]
            await transport.send(batch)

    async def _read_loop(self, transport: Transport) -> None:
        while True:
            try:
                data = await transport.receive()
            except MessageTooLargeError as exc:
                self._on_too_large(exc)
                continue
            except RequestFailure as failure:
                # The server did not answer, so no cancellation goes out.
                reply = self._session.cancel(failure.request_id, notify=False)
                if not isinstance(reply, _Reply):
                    continue  # a request of an older session, failed already
                if isinstance(failure.error, SessionExpiredError):
                    reply.refused = True
                    reply.fail(failure.error)
                    # The session is gone: renew it (the caller waits for that).
                    raise failure.error from None
                reply.fail(failure.error)
                continue
            for event in self._session.receive_data(data):
                self._dispatch(event)
            self._flush()

    def _on_too_large(self, exc: MessageTooLargeError) -> None:
        rid = jsonrpc.find_id(exc.head)
        error = MessageTooLargeError(
            f"MCP server {self.name!r} sent {exc}", size=exc.size, limit=exc.limit, head=exc.head
        )
        # The server did answer, so the request leaves the table without a cancellation.
        reply = self._session.cancel(rid, notify=False) if rid is not None else None
        if isinstance(reply, _Reply):
            reply.fail(error)
        else:
            logger.warning("%s", error)

    def _dispatch(self, event: SessionEvent) -> None:
        if isinstance(event, ResponseReceived):
            event.context.set(event.result)
        elif isinstance(event, ErrorReceived):
            received = event.error
            if isinstance(received, McpError):
                received = McpError(
                    received.code,
                    received.message,
                    received.data,
                    method=event.method,
                    server=self.name,
                )
            event.context.fail(received)
        elif isinstance(event, ProgressReceived):
            self._on_progress(event)
        elif isinstance(event, LogReceived):
            self._on_log(event)
        elif isinstance(event, ListChanged | ResourceUpdated | NotificationReceived):
            self._publish(event)
        elif isinstance(event, RequestReceived):
            assert self._nursery is not None
            self._nursery.start_soon(self._serve_server_request, event.request)
        elif isinstance(event, CancelledByServer):
            rid = event.params.request_id
            scope = self._server_tasks.get(rid) if rid is not None else None
            if scope is not None:
                scope.cancel()
        elif isinstance(event, HandshakeComplete):
            self._handshake.set({})
        elif isinstance(event, HandshakeFailed):
            error: BaseException = event.error
            if isinstance(error, McpError):
                error = McpError(
                    error.code, error.message, error.data, method="initialize", server=self.name
                )
            self._handshake.fail(error)
        elif isinstance(event, InvalidMessage):
            logger.warning(
                "MCP server %r sent an invalid message, skipped: %s", self.name, event.error
            )
        elif isinstance(event, LateResponse):
            logger.debug(
                "MCP server %r: dropped a late response to %r", self.name, event.request_id
            )
        elif isinstance(event, RequestHandled):
            pass

    def _flush(self) -> None:
        for message in self._session.take_outgoing():
            self._post(Outgoing.of(message))

    def _post(self, outgoing: Outgoing) -> None:
        try:
            self._mailbox_send.send_nowait(outgoing)
        except trio.WouldBlock:
            # The writer is busy with a full mailbox; it takes these after its
            # current batch. Session-made messages must not wait for room.
            self._overflow.append(outgoing)

    # -- notifications

    def _on_progress(self, event: ProgressReceived) -> None:
        callback = self._progress.get(event.params.progress_token)
        if callback is not None:
            self._call_user(callback, event.params, "progress callback")
        self._publish(event)

    def _on_log(self, event: LogReceived) -> None:
        params = event.params
        level = _LOG_LEVELS.get(params.level, logging.INFO)
        logger.log(level, "[%s %s] %s", self.name, params.logger or "server", params.data)
        if self.options.on_log is not None:
            self._call_user(self.options.on_log, params, "on_log")
        self._publish(event)

    def _call_user(self, callback: Callable[[Any], object], arg: Any, what: str) -> None:
        try:
            result = callback(arg)
        except Exception:
            logger.exception("the %s for MCP server %r raised", what, self.name)
            return
        if inspect.isawaitable(result) and self._nursery is not None:
            self._nursery.start_soon(self._await_user, result, what)

    async def _await_user(self, awaitable: Awaitable[object], what: str) -> None:
        try:
            await awaitable
        except Exception:
            logger.exception("the %s for MCP server %r raised", what, self.name)

    def _publish(self, event: Notice) -> None:
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                logger.warning(
                    "a notification subscriber of MCP server %r is not keeping up; dropped %s",
                    self.name,
                    type(event).__name__,
                )
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(channel)

    @asynccontextmanager
    async def subscribe(
        self, buffer: int = 256
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Notice]]:
        """Receive the server's notifications (logs, list changes, progress, others).

        A :class:`SessionRenewed` arrives too, when the actor had to open a new
        session because the server forgot the old one.

        A subscriber that falls ``buffer`` events behind loses the newest ones
        (logged), so a slow reader never stalls the connection.
        """
        send, receive = trio.open_memory_channel[Notice](buffer)
        self._subscribers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            await send.aclose()

    # -- server-to-client requests

    async def _serve_server_request(self, request: Request) -> None:
        with trio.CancelScope() as scope:
            self._server_tasks[request.id] = scope
            try:
                result = await self._answer(request)
            except McpError as exc:
                self._session.respond_error(request.id, exc.code, exc.message, exc.data)
            except ProtocolError as exc:
                self._session.respond_error(request.id, jsonrpc.INVALID_PARAMS, str(exc))
            except Exception as exc:
                logger.exception(
                    "answering %s from MCP server %r failed", request.method, self.name
                )
                self._session.respond_error(
                    request.id, jsonrpc.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"
                )
            else:
                self._session.respond(request.id, result)
            finally:
                self._server_tasks.pop(request.id, None)
                self._flush()

    async def _answer(self, request: Request) -> Mapping[str, Any]:
        params = request.params or {}
        options = self.options
        if request.method == "roots/list":
            roots = options.roots
            listed = await roots() if callable(roots) else roots or ()
            return {"roots": [_as_dict(r) for r in listed]}
        if request.method == "sampling/createMessage" and options.sampling_handler is not None:
            answer: Any = await options.sampling_handler(CreateMessageParams.from_dict(params))
            return _as_dict(answer)
        if request.method == "elicitation/create" and options.elicitation_handler is not None:
            answer = await options.elicitation_handler(ElicitParams.from_dict(params))
            return _as_dict(answer)
        raise McpError(jsonrpc.METHOD_NOT_FOUND, f"method not supported: {request.method}")

    # -- requests

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._done.is_set():
            raise TransportClosedError(f"the connection to MCP server {self.name!r} is closed")

    def _abandon(self, error: BaseException) -> None:
        for _rid, _method, context in self._session.close():
            if isinstance(context, _Reply):
                context.fail(error)
        self._handshake.fail(error)
        for scope in self._server_tasks.values():
            scope.cancel()

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | Literal["default"] | None = "default",
        progress: ProgressCallback | None = None,
    ) -> Mapping[str, Any]:
        """Send any request and return its raw result.

        ``timeout`` is in seconds (``None``: wait as long as the caller's own
        cancel scopes allow); ``progress`` receives the server's progress
        notifications for this request. Raises :class:`McpError` for the
        server's JSON-RPC error, :class:`RequestTimeoutError` when the deadline
        passes, and a :class:`~opex_trio.errors.TransportError` when the
        connection fails.
        """
        self._check_usable()
        seconds = self.options.request_timeout if timeout == "default" else timeout
        deadline = math.inf if seconds is None else trio.current_time() + seconds
        reply = await self._exchange(method, params, seconds, deadline, progress)
        if reply.refused:
            # Refused for a session the server forgot, so it never ran: sent once
            # more, in the new session, within the same deadline.
            logger.debug("MCP server %r: sending %s again in the new session", self.name, method)
            self._check_usable()
            reply = await self._exchange(method, params, seconds, deadline, progress)
        if reply.error is not None:
            raise reply.error
        assert reply.result is not None
        return reply.result

    async def _exchange(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        seconds: float | None,
        deadline: float,
        progress: ProgressCallback | None,
    ) -> _Reply:
        """Send one request; wait for its reply until ``deadline``, ``seconds`` from the call."""
        await self._await_renewal(seconds, deadline, method)
        token: int | None = None
        if progress is not None:
            token = self._progress_tokens()
            meta = dict((params or {}).get("_meta") or {})
            meta["progressToken"] = token
            params = {**(params or {}), "_meta": meta}
        reply = _Reply()
        request = self._session.send_request(method, params, context=reply)
        try:
            outgoing = Outgoing.of(request)
        except ConfigError:
            self._session.cancel(request.id, notify=False)
            raise
        queued = False
        if token is not None:
            assert progress is not None
            self._progress[token] = progress
        try:
            try:
                self._mailbox_send.send_nowait(outgoing)
                queued = True
            except trio.WouldBlock:
                # The writer is behind: wait for room, within the deadline.
                with trio.move_on_at(deadline):
                    await self._mailbox_send.send(outgoing)
                    queued = True
                if not queued:
                    self._session.cancel(request.id, notify=False)
                    reply.fail(_TIMED_OUT)
            if not reply.done:
                if deadline != math.inf:
                    self._deadlines.add(deadline, reply, request.id)
                # Waiting for the reply is this call's checkpoint (send_nowait
                # spared send()'s two).
                await reply.wait()
        except BaseException:
            # Cancelled by the caller: tell the server, if the request got out.
            if not reply.done:
                self._session.cancel(request.id, "cancelled by the client", notify=queued)
                self._flush()
            raise
        finally:
            if token is not None:
                self._progress.pop(token, None)
        if reply.error is _TIMED_OUT:
            assert seconds is not None
            raise RequestTimeoutError(
                f"MCP server {self.name!r} did not answer {method} within {seconds:g} s",
                method=method,
                timeout=seconds,
            )
        return reply

    async def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Send a notification (for example ``notifications/roots/list_changed``)."""
        self._check_usable()
        seconds = self.options.request_timeout
        deadline = math.inf if seconds is None else trio.current_time() + seconds
        await self._await_renewal(seconds, deadline, method)
        await self._mailbox_send.send(Outgoing.of(self._session.send_notification(method, params)))

    async def ping(self, *, timeout: float | Literal["default"] | None = "default") -> None:
        """Check that the server answers."""
        await self.request("ping", timeout=timeout)

    async def list_tools(self) -> list[Tool]:
        """Every tool the server offers, all pages followed."""
        return [t for page in await self._pages("tools/list", ListToolsResult) for t in page.tools]

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | Literal["default"] | None = "default",
        progress: ProgressCallback | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> CallToolResult:
        """Call a tool and return its result.

        A tool that failed comes back as a result with ``is_error`` set (that
        is the tool's answer, for the model to read); an error of the protocol
        (unknown tool, bad params) raises :class:`McpError`.
        """
        if type(name) is not str or not name:
            raise ConfigError(f"tool name must be a non-empty string, got {name!r}")
        # An exact dict is the common case; the ABC check is slower.
        if arguments is not None and type(arguments) is not dict:
            if not isinstance(arguments, Mapping):
                raise ConfigError(
                    f"arguments of tool {name!r} must be an object, got {type(arguments).__name__}"
                )
            arguments = dict(arguments)
        params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
        if meta:
            params["_meta"] = dict(meta)
        try:
            result = await self.request("tools/call", params, timeout=timeout, progress=progress)
        except ConfigError as exc:
            raise ConfigError(f"arguments of tool {name!r} cannot be sent: {exc}") from exc
        try:
            return CallToolResult.from_dict(result)
        except ProtocolError as exc:
            raise ProtocolError(
                f"MCP server {self.name!r}, result of tool {name!r}: {exc}"
            ) from exc

    async def list_resources(self) -> list[Resource]:
        """Every resource the server lists, all pages followed."""
        pages = await self._pages("resources/list", ListResourcesResult)
        return [r for page in pages for r in page.resources]

    async def list_resource_templates(self) -> list[ResourceTemplate]:
        """Every resource template the server lists, all pages followed."""
        pages = await self._pages("resources/templates/list", ListResourceTemplatesResult)
        return [t for page in pages for t in page.resource_templates]

    async def read_resource(self, uri: str) -> ReadResourceResult:
        """Read one resource."""
        return ReadResourceResult.from_dict(await self.request("resources/read", {"uri": uri}))

    async def subscribe_resource(self, uri: str) -> None:
        """Ask for ``notifications/resources/updated`` when ``uri`` changes."""
        await self.request("resources/subscribe", {"uri": uri})

    async def unsubscribe_resource(self, uri: str) -> None:
        """Stop updates for ``uri``."""
        await self.request("resources/unsubscribe", {"uri": uri})

    async def list_prompts(self) -> list[Prompt]:
        """Every prompt the server offers, all pages followed."""
        pages = await self._pages("prompts/list", ListPromptsResult)
        return [p for page in pages for p in page.prompts]

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str] | None = None
    ) -> GetPromptResult:
        """Render a prompt with its arguments."""
        params: dict[str, Any] = {"name": name}
        if arguments:
            params["arguments"] = dict(arguments)
        return GetPromptResult.from_dict(await self.request("prompts/get", params))

    async def complete(
        self,
        ref: Mapping[str, Any],
        argument: str,
        value: str,
        *,
        context_arguments: Mapping[str, str] | None = None,
    ) -> CompleteResult:
        """Ask for completions of an argument of a prompt or resource template.

        ``ref`` is ``{"type": "ref/prompt", "name": ...}`` or
        ``{"type": "ref/resource", "uri": ...}``.
        """
        params: dict[str, Any] = {"ref": dict(ref), "argument": {"name": argument, "value": value}}
        if context_arguments:
            params["context"] = {"arguments": dict(context_arguments)}
        return CompleteResult.from_dict(await self.request("completion/complete", params))

    async def set_logging_level(self, level: str) -> None:
        """Ask the server to send log messages at ``level`` and above."""
        if level not in _LOG_LEVELS:
            raise ConfigError(
                f"unknown logging level {level!r}; use one of {', '.join(_LOG_LEVELS)}"
            )
        await self.request("logging/setLevel", {"level": level})

    async def _pages(self, method: str, page_type: type[Any]) -> list[Any]:
        pages: list[McpType] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            params = {"cursor": cursor} if cursor is not None else None
            page = page_type.from_dict(await self.request(method, params), method)
            pages.append(page)
            cursor = page.next_cursor
            if cursor is None:
                return pages
            if cursor in seen:
                raise ProtocolError(
                    f"MCP server {self.name!r} repeated cursor {cursor!r} in {method}"
                )
            seen.add(cursor)
        raise ProtocolError(
            f"MCP server {self.name!r} sent more than {_MAX_PAGES} pages of {method}"
        )


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, McpType):
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(f"a handler must return a mapping or an MCP type, got {type(value).__name__}")


_TIMED_OUT = RequestTimeoutError("the request's deadline passed")
"""What a reply fails with when its deadline passes; the caller raises a precise error."""


class _Deadlines:
    """The deadlines of one client's requests, watched by one task.

    A cancel scope per request costs more than the rest of a request's own
    work, so requests on the fast path register their deadline here instead: a
    heap, and one task that sleeps until the earliest deadline, then cancels
    that request on the server and fails its reply. Entries of answered
    requests are skipped when they reach the top, and the heap is compacted
    when they make up most of it, so it stays as large as the pending requests.
    """

    def __init__(
        self, expire: Callable[[RequestId, _Reply], None], pending: Callable[[], int]
    ) -> None:
        self._expire = expire
        self._pending = pending
        self._heap: list[tuple[float, int, RequestId, _Reply]] = []
        self._seq = 0
        self._next = math.inf
        self._wake = trio.Event()

    def add(self, at: float, reply: _Reply, request_id: RequestId) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, request_id, reply))
        # Live entries are at most the pending requests; once answered ones
        # outnumber them, drop them all. Each compaction at least halves the
        # heap, so its cost spreads over the adds that grew it.
        if len(self._heap) > 2 * self._pending() + 64:
            self._heap = [entry for entry in self._heap if not entry[3].done]
            heapq.heapify(self._heap)
        if at < self._next:
            self._wake.set()

    async def watch(self) -> None:
        """Expire requests as their deadlines pass, for as long as the connection runs."""
        while True:
            heap = self._heap
            now = trio.current_time()
            while heap and (heap[0][3].done or heap[0][0] <= now):
                _, _, request_id, reply = heapq.heappop(heap)
                if not reply.done:
                    self._expire(request_id, reply)
            self._next = heap[0][0] if heap else math.inf
            self._wake = trio.Event()
            with trio.move_on_at(self._next):
                await self._wake.wait()

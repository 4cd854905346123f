"""The MCP actor: one connection, a writer task, a reader task.

Theory of operation
-------------------
:class:`Actor` owns one connection (a transport) and one sans-IO
:class:`~opex_trio.protocol.session.ClientSession`. Callers never touch the
transport: the request side (:class:`~opex_trio.mcp.client.McpClient`) records
each request in the session, with the caller's one-shot
:class:`~opex_trio.mcp._reply.Reply` as its context, and puts it on the
mailbox, a bounded memory channel.

The writer task takes everything queued in the mailbox at once and hands it
to the transport as one batch: on stdio that is one write for many calls,
which is where throughput under load comes from. The reader task feeds what
arrives to the session and acts on the events: a response wakes its caller, a
server request runs its handler in a task of its own, a notification goes to
its subscribers. Messages the session produces by itself (the answer to a
ping, ``notifications/initialized``, a cancellation) go to the mailbox too.

A third task watches the requests' deadlines (:class:`~opex_trio.mcp._deadlines.Deadlines`,
one heap rather than a cancel scope per call): when one passes, the request
leaves the pending table, the server gets ``notifications/cancelled``, and a
late response is dropped.

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
session is open, subscribers get :class:`~opex_trio.mcp.client.SessionRenewed`:
what the server offers may have changed with it. The resources the program
subscribed to (:mod:`opex_trio.mcp._subscriptions`) are subscribed to again in
the new session before the waiting calls go on.

:meth:`Actor.run` runs the actor in the caller's task, for a supervisor;
``async with`` runs it in a nursery of its own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Self

import trio

from .._exceptions import copy_error, unwrap_single
from ..errors import (
    McpError,
    MessageTooLargeError,
    OpexError,
    RequestTimeoutError,
    SessionExpiredError,
    TransportClosedError,
)
from ..protocol import jsonrpc
from ..protocol.jsonrpc import Notification, Request, RequestId
from ..protocol.session import (
    CancelledByServer,
    EraDetected,
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
    RequestResent,
    ResourceUpdated,
    ResponseReceived,
    SessionEvent,
    SessionState,
    SubscriptionAcknowledged,
    SubscriptionEnded,
)
from ..protocol.versions import Era
from ..transports.base import Outgoing, RequestFailure, Transport, TransportFactory
from ._deadlines import TIMED_OUT, Deadlines
from ._eras import new_session, open_session
from ._inbound import Notices, answer, error_answer
from ._options import ClientOptions, Notice, RequestingServer, SessionRenewed
from ._reply import Reply
from ._subscriptions import Subscriptions

__all__ = ["Actor"]

logger = logging.getLogger("opex_trio.mcp")


class Actor:
    """A connection to one MCP server, run as an actor; see the module docstring.

    The connection's life and its tasks live here; the requests callers make
    are :class:`~opex_trio.mcp.client.McpClient`'s.
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
        self._era: Era | None = None
        self._session = new_session(self.options, self._era)
        self._mailbox_send, self._mailbox_recv = trio.open_memory_channel[Outgoing](
            self.options.mailbox_size
        )
        self._overflow: list[Outgoing] = []
        self._handshake = Reply()
        self._notices = Notices(name, self.options)
        self._server_tasks: dict[RequestId, trio.CancelScope] = {}
        self._error: BaseException | None = None
        self._transport: Transport | None = None
        self._done = trio.Event()
        self._stopped = trio.Event()
        self._ready_once = False
        self._nursery: trio.Nursery | None = None
        self._own_nursery: trio.Nursery | None = None
        self._progress_tokens = jsonrpc.IdAllocator()
        self._deadlines = Deadlines(self._expire)
        self._renewing: trio.Event | None = None
        self._stale_below = 0
        self._subscriptions = Subscriptions(name)
        # trio.current_time, until run() knows the clock: calling the clock's
        # own method spares every call two frames.
        self._now: Callable[[], float] = trio.current_time

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

    async def run(self, *, task_status: trio.TaskStatus[Self] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, handshake, report ready through ``task_status``, serve until closed.

        Raises the error that broke the connection (after failing every
        pending call with it), so a supervisor sees the failure. Returns when
        :meth:`aclose` is called.
        """
        if self._session.state is not SessionState.NEW:
            raise OpexError(f"McpClient for {self.name!r} can run only once; make a new one")
        self._now = trio.lowlevel.current_clock().current_time
        try:
            async with self._factory() as transport:
                self._transport = transport
                async with trio.open_nursery() as nursery:
                    self._nursery = self._notices.nursery = nursery
                    nursery.start_soon(self._writer, transport)
                    nursery.start_soon(self._reader, transport)
                    nursery.start_soon(self._deadlines.watch)
                    try:
                        await self._open(first=True)
                    except Exception as exc:  # noqa: BLE001 - kept in self._error and raised below
                        self._fail(exc)
                    else:
                        self._ready_once = True
                        task_status.started(self)
                    await self._done.wait()
                    nursery.cancel_scope.cancel()
        finally:
            self._nursery = self._notices.nursery = None
            self._abandon(
                self._error
                or TransportClosedError(f"the connection to MCP server {self.name!r} was closed")
            )
            self._stopped.set()
        if self._error is not None:
            raise copy_error(self._error)

    def _expire(self, request_id: RequestId, reply: Reply) -> None:
        """A request's deadline passed: cancel it on the server and fail its caller."""
        self._session.cancel(request_id, "the client's deadline passed")
        self._flush()
        reply.fail(TIMED_OUT)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._abandon(self._error)
        self._done.set()

    async def _open(self, *, first: bool = False) -> None:
        await open_session(self, first=first)
        # The resources subscribed to in an earlier session, again, before the
        # calls waiting for this session go on.
        await self._subscriptions.restore(
            self._session,
            self._listen(),
            self._post_request,
            self.options.request_timeout,
        )
        self._flush()

    def _listen(self) -> Reply | None:
        # Modern era: list changes and resource updates come on a
        # subscriptions/listen stream, opened on every new session (restart,
        # renewal), when the subscribed resources change, and again when the
        # server ends it.
        ack = self._subscriptions.listen(self._session, self._post_request)
        self._flush()
        return ack

    async def __aenter__(self) -> Self:
        self._own_cm = self._own_runner()
        return await self._own_cm.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._own_cm.__aexit__(*exc_info)

    @asynccontextmanager
    async def _own_runner(self) -> AsyncIterator[Self]:
        with unwrap_single():
            async with trio.open_nursery() as nursery:
                await nursery.start(self._run_contained)
                try:
                    yield self
                finally:
                    self._done.set()

    async def _run_contained(self, *, task_status: trio.TaskStatus[Self]) -> None:
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
            self._session = new_session(self.options, self._era)
            # Ids go on from the old session, so its late answers match nothing.
            self._session.next_id = old.next_id
            self._stale_below = int(old.next_id())
            self._handshake = Reply()
            await transport.reset_session()
            await self._open()
        except Exception as exc:  # noqa: BLE001 - reported to callers as the connection's failure
            self._fail(exc)
        else:
            self._notices.publish(SessionRenewed())
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
                opening = self._session.opening_failed(failure.request_id, failure.error)
                if opening is not None:
                    # The opening request was refused: legacy when probing, else no session.
                    for event in opening:
                        self._dispatch(event)
                    self._flush()
                    continue
                # The server did not answer, so no cancellation goes out.
                reply = self._session.cancel(failure.request_id, notify=False)
                if not isinstance(reply, Reply):
                    continue  # a request of an older session, failed already
                if isinstance(failure.error, SessionExpiredError):
                    reply.refused = True
                    reply.fail(failure.error)
                    # The session is gone: renew it (the caller waits for that).
                    raise failure.error from None
                reply.fail(failure.error)
                continue
            for event in self._session.receive_data(data):
                if type(event) is ResponseReceived:
                    # _dispatch's first case, without its frame: nearly every message.
                    event.context.set(event.result)
                else:
                    self._dispatch(event)
            self._flush()

    def _on_too_large(self, exc: MessageTooLargeError) -> None:
        rid = jsonrpc.find_id(exc.head)
        # A transport that could not count the bytes reports one over the limit.
        what = f"of {exc.size} bytes, which" if exc.size > exc.limit + 1 else "that"
        error = MessageTooLargeError(
            f"MCP server {self.name!r} sent a message {what} exceeds the limit of "
            f"{exc.limit} bytes; it was discarded (raise max_message_size to accept it)",
            size=exc.size,
            limit=exc.limit,
            head=exc.head,
        )
        # The server did answer, so the request leaves the table without a cancellation.
        reply = self._session.cancel(rid, notify=False) if rid is not None else None
        if isinstance(reply, Reply):
            reply.fail(error)
        else:
            logger.warning("%s", error)

    def _dispatch(self, event: SessionEvent) -> None:
        if isinstance(event, ResponseReceived):
            event.context.set(event.result)
        elif isinstance(event, ErrorReceived):
            received = event.error
            if isinstance(received, McpError):
                received = received.located(method=event.method, server=self.name)
            if event.method == "subscriptions/listen":
                # A request of the actor's own: no caller gets its error.
                logger.warning("MCP server %r: %s failed: %s", self.name, event.method, received)
                self._subscriptions.ended(event.request_id, received)
            elif event.context is None:
                logger.warning("MCP server %r: %s failed: %s", self.name, event.method, received)
            else:
                event.context.fail(received)
        elif isinstance(event, ProgressReceived):
            self._notices.on_progress(event)
        elif isinstance(event, LogReceived):
            self._notices.on_log(event)
        elif isinstance(event, ListChanged | ResourceUpdated | NotificationReceived):
            if isinstance(event, ResourceUpdated) and self._subscriptions.stale(
                self._session, event.subscription_id
            ):
                return  # from a listen stream replaced since: its successor carries it
            self._notices.publish(event)
        elif isinstance(event, RequestReceived):
            assert self._nursery is not None
            self._nursery.start_soon(self._serve_server_request, event.request)
        elif isinstance(event, CancelledByServer):
            rid = event.params.request_id
            scope = self._server_tasks.get(rid) if rid is not None else None
            if scope is not None:
                logger.info(
                    "MCP server %r cancelled its request %r: %s",
                    self.name,
                    rid,
                    event.params.reason or "no reason given",
                )
                scope.cancel()
        elif isinstance(event, HandshakeComplete):
            self._handshake.set({})
        elif isinstance(event, HandshakeFailed):
            error: BaseException = event.error
            if isinstance(error, McpError):
                error = error.located(method=error.method or "initialize", server=self.name)
            self._handshake.fail(error)
        elif isinstance(event, InvalidMessage):
            logger.warning(
                "MCP server %r sent an invalid message, skipped: %s", self.name, event.error
            )
        elif isinstance(event, LateResponse):
            logger.debug(
                "MCP server %r: dropped a late response to %r", self.name, event.request_id
            )
        elif isinstance(event, EraDetected):
            logger.info(
                "MCP server %r speaks the %s protocol: %s", self.name, event.era.value, event.reason
            )
        elif isinstance(event, RequestResent):
            logger.debug("MCP server %r: sent again: %s", self.name, event)
        elif isinstance(event, SubscriptionEnded):
            logger.info("MCP server %r closed subscription %r", self.name, event.subscription_id)
            self._subscriptions.ended(event.subscription_id)
            if not self._done.is_set():
                self._listen()
        elif isinstance(event, SubscriptionAcknowledged):
            logger.debug("MCP server %r acknowledged %s", self.name, event)
            self._subscriptions.on_acknowledged(event)
        elif isinstance(event, RequestHandled):
            pass

    def _flush(self) -> None:
        for message in self._session.take_outgoing():
            self._post(Outgoing.of(message))

    def _post_request(self, request: Request) -> None:
        self._post(Outgoing.of(request))

    def _post(self, outgoing: Outgoing) -> None:
        try:
            self._mailbox_send.send_nowait(outgoing)
        except trio.WouldBlock:
            # The writer is busy with a full mailbox; it takes these after its
            # current batch. Session-made messages must not wait for room.
            self._overflow.append(outgoing)

    # -- notifications

    @asynccontextmanager
    async def subscribe(
        self, buffer: int = 256
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Notice]]:
        """Receive the server's notifications (logs, list changes, progress, others).

        A :class:`~opex_trio.mcp.client.SessionRenewed` arrives too, when the
        actor had to open a new session because the server forgot the old one.

        A subscriber that falls ``buffer`` events behind loses the newest ones
        (logged), so a slow reader never stalls the connection.
        """
        async with self._notices.subscribe(buffer) as receive:
            yield receive

    # -- server-to-client requests

    async def _serve_server_request(self, request: Request) -> None:
        events: list[SessionEvent] = []
        with trio.CancelScope() as scope:
            self._server_tasks[request.id] = scope
            try:
                result = await answer(self.options, request, self._requesting_server())
            except Exception as exc:  # noqa: BLE001 - answered; error_answer logs a handler's bug
                code, message, data = error_answer(exc, request.method, self.name)
                events = self._session.respond_error(request.id, code, message, data)
            else:
                # A modern server's input: answering the last one sends its request again.
                events = self._session.respond(request.id, result)
            finally:
                self._server_tasks.pop(request.id, None)
                for event in events:
                    self._dispatch(event)
                self._flush()

    def _requesting_server(self) -> RequestingServer:
        opened = self._session.initialize_result
        return RequestingServer(
            self.name,
            opened.server_info if opened is not None else None,
            self._session.protocol_version,
        )

    # -- the calls' side of a failure

    def _check_usable(self) -> None:
        if self._error is not None:
            # Each caller raises its own copy; see opex_trio._exceptions.
            raise copy_error(self._error)
        if self._done.is_set():
            raise TransportClosedError(f"the connection to MCP server {self.name!r} is closed")

    def _abandon(self, error: BaseException) -> None:
        for _rid, _method, context in self._session.close():
            if isinstance(context, Reply):
                context.fail(error)
        self._handshake.fail(error)
        self._subscriptions.abandon(error)
        for scope in self._server_tasks.values():
            scope.cancel()

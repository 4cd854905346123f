"""The request path of an MCP client: one request out, its reply back, within its deadline.

A call builds its request with the session (which records it as pending, with
the caller's one-shot reply slot as context), encodes it in the caller's task
(so bad arguments fail there, with a clear error), puts it on the mailbox and
waits on its reply. A request caught by a renewed session is sent again with a
new id.

Each call has a deadline. It is not a cancel scope, which would cost more
than the rest of the call: the deadline goes on the actor's heap
(:mod:`opex_trio.mcp._deadlines`), whose task fails the reply when it passes.
Then, or when the caller is cancelled, the request leaves the pending table,
the server gets ``notifications/cancelled``, and a late response is dropped.
With ``reset_on_progress`` each progress notification moves the deadline on,
within the call's maximum total.

:class:`RequestPath` is the actor plus that path; :class:`~opex_trio.mcp.client.McpClient`
adds the typed requests on top of it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import attrs
import trio

from .._exceptions import copy_error
from ..errors import (
    ConfigError,
    RequestTimeoutError,
)
from ..protocol.jsonrpc import RequestId
from ..protocol.types import (
    ProgressParams,
)
from ..transports.base import Outgoing
from ._actor import Actor
from ._deadlines import TIMED_OUT
from ._options import (
    ProgressCallback,
)
from ._reply import Reply

__all__ = ["INF", "RequestPath", "Timeout", "Timing", "result"]

logger = logging.getLogger("opex_trio.mcp")

INF = math.inf
"""No deadline."""

Timeout: TypeAlias = float | Literal["default"] | None
"""Seconds, ``None`` for no deadline, or ``"default"`` for the client's option."""


@attrs.define
class Timing:
    """The deadlines of one call; never changed once made (``attrs.evolve`` makes another).

    ``deadline`` bounds the whole call, ``seconds`` after it began (``None``
    and infinity: no bound). ``idle`` is set when progress restarts the
    deadline: then the call also fails after ``idle`` seconds without progress.
    Made for every call, so not frozen: a frozen attrs class pays a method
    call per field where this one assigns plainly.
    """

    seconds: float | None
    deadline: float
    idle: float | None


def result(reply: Reply) -> Mapping[str, Any]:
    """The result of an answered request, or its error raised."""
    if reply.error is not None:
        # Its own instance: the error may be every pending caller's, and a
        # shared one would collect all their frames in its traceback.
        raise copy_error(reply.error)
    assert reply.result is not None
    return reply.result


class RequestPath(Actor):
    """The actor of one MCP connection plus the path of a request through it.

    Not used alone: :class:`~opex_trio.mcp.client.McpClient` is the public class.
    """

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: Timeout = "default",
        progress: ProgressCallback | None = None,
        reset_on_progress: bool | None = None,
        max_total_timeout: Timeout = "default",
    ) -> Mapping[str, Any]:
        """Send any request and return its raw result.

        ``timeout`` is in seconds (``None``: wait as long as the caller's own
        cancel scopes allow); ``progress`` receives the server's progress
        notifications for this request. With ``reset_on_progress`` (by default
        the option of the same name) ``timeout`` is an idle deadline that each
        progress notification restarts, and ``max_total_timeout`` bounds the
        whole call. Raises :class:`McpError` for the server's JSON-RPC error,
        :class:`RequestTimeoutError` when the deadline passes, and a
        :class:`~opex_trio.errors.TransportError` when the connection fails.
        """
        self._check_usable()
        timing = self._timing(timeout, reset_on_progress, max_total_timeout)
        return await self._request(method, params, timing, progress)

    def _timing(
        self, timeout: Timeout, reset_on_progress: bool | None, max_total_timeout: Timeout
    ) -> Timing:
        options = self.options
        seconds = options.request_timeout if timeout == "default" else timeout
        reset = options.reset_on_progress if reset_on_progress is None else reset_on_progress
        if not reset or seconds is None:
            return Timing(seconds, INF if seconds is None else self._now() + seconds, None)
        total = options.max_total_timeout if max_total_timeout == "default" else max_total_timeout
        return Timing(total, INF if total is None else self._now() + total, seconds)

    async def _request(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timing: Timing,
        progress: ProgressCallback | None,
    ) -> Mapping[str, Any]:
        reply = await self._exchange(method, params, timing, progress)
        if reply.refused:
            reply = await self._resend(method, params, timing, progress)
        return result(reply)

    async def _resend(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timing: Timing,
        progress: ProgressCallback | None,
    ) -> Reply:
        # Refused for a session the server forgot, so it never ran: sent once
        # more, in the new session, within the same deadline.
        logger.debug("MCP server %r: sending %s again in the new session", self.name, method)
        self._check_usable()
        return await self._exchange(method, params, timing, progress)

    async def _exchange(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timing: Timing,
        progress: ProgressCallback | None,
    ) -> Reply:
        """Send one request; wait for its reply until its deadline."""
        idle = timing.idle
        deadline = timing.deadline
        # The first deadline: the whole call's, or the first idle period's.
        first = deadline if idle is None else min(deadline, self._now() + idle)
        if self._renewing is not None:
            await self._await_renewal(timing.seconds if idle is None else idle, first, method)
        token: int | None = None
        if progress is not None or idle is not None:
            token = self._progress_tokens()
            meta = dict((params or {}).get("_meta") or {})
            meta["progressToken"] = token
            params = {**(params or {}), "_meta": meta}
        reply = Reply()
        request = self._session.send_request(method, params, context=reply)
        try:
            outgoing = Outgoing.of(request)
        except ConfigError:
            self._session.cancel(request.id, notify=False)
            raise
        queued = False
        if token is not None:
            on_progress = progress
            if idle is not None:
                on_progress = self._progress_resetting(reply, request.id, idle, deadline, progress)
            assert on_progress is not None
            self._notices.progress[token] = on_progress
        try:
            try:
                self._mailbox_send.send_nowait(outgoing)
                queued = True
            except trio.WouldBlock:
                # The writer is behind: wait for room, within the deadline.
                with trio.move_on_at(first):
                    await self._mailbox_send.send(outgoing)
                    queued = True
                if not queued:
                    self._session.cancel(request.id, notify=False)
                    reply.fail(TIMED_OUT)
            if not reply.done:
                if first != INF:
                    self._deadlines.add(first, reply, request.id)
                # Waiting for the reply is this call's checkpoint (send_nowait
                # spared send()'s two); what reply.wait() does, without its frame.
                await trio.lowlevel.wait_task_rescheduled(reply.park())
        except BaseException:
            # Cancelled by the caller: tell the server, if the request got out.
            if not reply.done:
                self._session.cancel(request.id, "cancelled by the client", notify=queued)
                self._flush()
            raise
        finally:
            if token is not None:
                self._notices.progress.pop(token, None)
                if idle is not None:
                    self._deadlines.forget(request.id)
        if reply.error is TIMED_OUT:
            if idle is not None and trio.current_time() < deadline:
                raise RequestTimeoutError(
                    f"MCP server {self.name!r} sent no answer or progress for {method} "
                    f"within {idle:g} s",
                    method=method,
                    timeout=idle,
                )
            assert timing.seconds is not None
            total = "its maximum total of " if idle is not None else ""
            raise RequestTimeoutError(
                f"MCP server {self.name!r} did not answer {method} within "
                f"{total}{timing.seconds:g} s",
                method=method,
                timeout=timing.seconds,
            )
        return reply

    def _progress_resetting(
        self,
        reply: Reply,
        request_id: RequestId,
        idle: float,
        deadline: float,
        progress: ProgressCallback | None,
    ) -> ProgressCallback:
        """A progress callback that restarts the call's idle deadline, then calls ``progress``."""
        deadlines = self._deadlines

        def on_progress(params: ProgressParams) -> object:
            deadlines.reset(min(deadline, trio.current_time() + idle), reply, request_id)
            return progress(params) if progress is not None else None

        return on_progress

    async def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Send a notification (for example ``notifications/roots/list_changed``)."""
        self._check_usable()
        seconds = self.options.request_timeout
        deadline = math.inf if seconds is None else trio.current_time() + seconds
        await self._await_renewal(seconds, deadline, method)
        await self._mailbox_send.send(Outgoing.of(self._session.send_notification(method, params)))

"""Supervision in the style of OTP, built from trio nurseries.

A :class:`Supervisor` is an async context manager that owns a nursery. Every
async function started in it (a *child*) runs in a task of its own and is kept
alive according to its :class:`RestartPolicy`::

    async with Supervisor("workers") as sup:
        handle = await sup.start(serve, port)   # waits for task_status.started()
        ...

Theory of operation
-------------------

Each child is driven by one runner task in the supervisor's nursery. The
runner calls the child's function inside a cancel scope of its own (one per
attempt), so stopping or restarting one child never touches its siblings, and
it catches every :class:`Exception` the child raises: a failing child is
reported, never propagated. Exceptions that are not errors (``Cancelled``
from outside, ``KeyboardInterrupt``, ``SystemExit``) pass through untouched.

A child moves through these states (:data:`ChildState`); every change is
reported as a :class:`~opex_trio.telemetry.ChildStateChanged` event::

    start() / start_soon()
            |
            v        task_status.started()
        starting ---------------------------> running
            ^                                    |
            | after the backoff delay            | the run ended (or ended
            +--------- restarting <--------------+ while still starting)
                                                 |
                                                 +--> done    (returned, no restart)
                                                 +--> failed  (policy "never", or
                                                               restart intensity)
    any state --stop_nowait() or the supervisor closing--> stopped

When a run ends, the runner decides:

* a stop was requested (:meth:`ChildHandle.stop_nowait`) or the supervisor is
  closing: ``"stopped"``;
* :meth:`ChildHandle.restart` was called: restart, whatever the policy says;
* the child returned: restart if the policy is ``"always"``, else ``"done"``;
* the child raised (or, started with :meth:`Supervisor.start`, returned or
  timed out before ``task_status.started()``): ``"failed"`` if the policy is
  ``"never"``, else restart.

A restart is first checked against the restart intensity: as in OTP, when more
than ``max_restarts`` restarts fall within the last ``within`` seconds (this
one included), the child gives up and ends ``"failed"`` with a
:class:`~opex_trio.errors.SupervisionError` whose ``__cause__`` is the last
error. Otherwise the child waits in ``"restarting"`` for its backoff delay and
starts again. Backoff grows by ``backoff_factor`` with every consecutive
restart up to ``backoff_max``; a run that stayed ``"running"`` for at least
``reset_after`` seconds resets it. Note that backoff spreads restarts out: a
child that keeps failing only reaches the intensity if ``max_restarts + 1``
restarts, delays included, fit within ``within`` seconds.

Cancellation: leaving the ``async with`` (normally, by an exception or by
cancellation) cancels every child and waits for it, so no task outlives the
block. A child cancelled by the supervisor itself (stop, restart, closing) has
not failed.

The code is in three parts: this module holds the :class:`Supervisor` and its
events and re-exports the public names; ``_restart_policy`` holds
:class:`RestartPolicy` and its backoff; ``_supervised_child`` holds
:class:`ChildHandle` and the runner loop described above.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType

import trio

from . import telemetry
from ._exceptions import one_exception
from ._restart_policy import RestartMode, RestartPolicy
from ._supervised_child import FINAL_STATES as FINAL_STATES
from ._supervised_child import ChildHandle
from ._supervised_child import ChildState as ChildState
from .errors import ConfigError, UsageError
from .telemetry import ChildStateChanged

__all__ = [
    "ChildHandle",
    "ChildState",
    "ChildStateChanged",
    "RestartMode",
    "RestartPolicy",
    "Supervisor",
]

logger = logging.getLogger("opex_trio.supervision")

EventHandler = Callable[[ChildStateChanged], object]


def _describe(fn: Callable[..., object]) -> str:
    inner = getattr(fn, "func", fn)  # functools.partial
    name = getattr(inner, "__qualname__", None)
    return name if isinstance(name, str) else repr(fn)


class Supervisor:
    """Run async functions as supervised children, restarting them by their policy.

    ``name`` identifies the supervisor in events. ``policy`` is the default
    :class:`RestartPolicy` of its children. ``on_event`` is called with every
    :class:`~opex_trio.telemetry.ChildStateChanged`, synchronously in the task
    that made the change, so it must be quick; if it raises, the error is
    logged and supervision goes on. Every event is also emitted as telemetry
    and sent to the streams of :meth:`events`. ``rng`` draws the backoff
    jitter (pass a seeded ``random.Random`` for reproducible delays).

    Use it as ``async with Supervisor(...) as sup:``. Leaving the block, in
    any way, cancels every child and waits for it. An exception raised in the
    block propagates unchanged, not wrapped in an exception group; children
    never raise into the block, since their errors are contained. Only an
    exception that is not an error (``KeyboardInterrupt``, ``SystemExit``)
    escaping a child ends the supervisor: it cancels the block and is raised
    from the ``async with``, bare (never in an exception group).
    """

    def __init__(
        self,
        name: str = "supervisor",
        *,
        policy: RestartPolicy | None = None,
        on_event: EventHandler | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise ConfigError(f"Supervisor name must be a str, not {name!r}")
        if policy is not None and not isinstance(policy, RestartPolicy):
            raise ConfigError(f"Supervisor policy must be a RestartPolicy, not {policy!r}")
        if on_event is not None and not callable(on_event):
            raise ConfigError(f"Supervisor on_event must be callable, not {on_event!r}")
        self._name = name
        self._policy = policy or RestartPolicy()
        self._on_event = on_event
        self._rng = rng or random.Random()  # noqa: S311
        self._children: dict[ChildHandle, None] = {}
        self._streams: list[
            tuple[
                trio.MemorySendChannel[ChildStateChanged],
                trio.MemoryReceiveChannel[ChildStateChanged],
            ]
        ] = []
        self._manager: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<Supervisor {self._name!r} children={len(self._children)}>"

    @property
    def name(self) -> str:
        """The supervisor's name, used in events."""
        return self._name

    @property
    def policy(self) -> RestartPolicy:
        """The default restart policy of children started without one."""
        return self._policy

    @property
    def children(self) -> tuple[ChildHandle, ...]:
        """The children that have not finished yet, in start order."""
        return tuple(self._children)

    async def __aenter__(self) -> Supervisor:
        if self._manager is not None:
            raise UsageError(f"supervisor {self._name!r} can be entered only once")
        self._manager = trio.open_nursery()
        self._nursery = await self._manager.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._nursery is not None
        assert self._manager is not None
        self._closing = True
        self._nursery.cancel_scope.cancel()
        try:
            # Children contain their errors, so what escapes is the block's own
            # exception, a cancellation that arrived while the children stopped,
            # or something that is not an error: the caller gets one of them,
            # the block's own first, never a group around it.
            with one_exception([exc] if exc is not None else []):
                return bool(await self._manager.__aexit__(exc_type, exc, tb))
        finally:
            self._closed = True
            for send, drop in self._streams:
                send.close()
                drop.close()
            self._streams.clear()

    def start_soon(
        self,
        fn: Callable[..., Awaitable[object]],
        *args: object,
        name: str | None = None,
        policy: RestartPolicy | None = None,
    ) -> ChildHandle:
        """Start ``fn(*args)`` as a supervised child and return its handle at once.

        The child counts as ``"running"`` as soon as it is called; use
        :meth:`start` for a child that reports readiness. ``name`` defaults to
        the function's name, ``policy`` to the supervisor's. Pass keyword
        arguments with :func:`functools.partial`.
        """
        return self._spawn(fn, args, name, policy, wants_status=False)

    async def start(
        self,
        fn: Callable[..., Awaitable[object]],
        *args: object,
        name: str | None = None,
        policy: RestartPolicy | None = None,
    ) -> ChildHandle:
        """Start ``fn(*args, task_status=...)`` as a supervised child; wait until it is ready.

        As with ``nursery.start``, the child calls ``task_status.started(value)``
        when it is ready (``value`` becomes :attr:`ChildHandle.value`), and
        every restart waits for that again. A start that fails, times out
        (``policy.start_timeout``) or returns before ``started()`` counts as a
        failure and is retried under the policy, so this returns once a start
        succeeds, and raises the child's
        :class:`~opex_trio.errors.SupervisionError` if it ends ``"failed"``
        first. If the child is stopped before it is ready, the handle is
        returned in state ``"stopped"``. If the caller is cancelled while
        waiting, the child is stopped.
        """
        handle = self._spawn(fn, args, name, policy, wants_status=True)
        try:
            state = await handle.wait_running()
        except BaseException:
            handle.stop_nowait()
            raise
        if state == "failed":
            assert handle.error is not None
            raise handle.error.with_traceback(None)
        return handle

    def events(self, max_buffer: float = 256) -> trio.MemoryReceiveChannel[ChildStateChanged]:
        """Subscribe to the events of this supervisor from now on.

        Returns a receive channel; iterate it with ``async for`` (it ends when
        the supervisor closes) and close it to unsubscribe. The supervisor
        never waits for a reader: when ``max_buffer`` events are waiting, the
        oldest is dropped to make room (``math.inf`` keeps them all, at the
        cost of memory if nobody reads).
        """
        if isinstance(max_buffer, bool) or not (
            (isinstance(max_buffer, int) and max_buffer >= 1) or max_buffer == math.inf
        ):
            raise ConfigError(
                f"events() max_buffer must be an int >= 1 or math.inf, not {max_buffer!r}"
            )
        send, receive = trio.open_memory_channel[ChildStateChanged](max_buffer)
        if self._closed:
            send.close()
            return receive
        # A receive clone of our own lets us drop the oldest event when full.
        self._streams.append((send, receive.clone()))
        return receive

    def _spawn(
        self,
        fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        name: str | None,
        policy: RestartPolicy | None,
        *,
        wants_status: bool,
    ) -> ChildHandle:
        if self._nursery is None or self._closing:
            raise UsageError(
                f"supervisor {self._name!r} is not open: start children inside its `async with`"
            )
        given: object = fn
        if inspect.iscoroutine(given):
            given.close()
            raise ConfigError(
                "a supervised child must be an async function, not a coroutine object: "
                "pass fn and its arguments, not fn(...)"
            )
        if not callable(fn):
            raise ConfigError(f"a supervised child must be an async function, not {fn!r}")
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"a supervised child's name must be a str, not {name!r}")
        if policy is not None and not isinstance(policy, RestartPolicy):
            raise ConfigError(
                f"a supervised child's policy must be a RestartPolicy, not {policy!r}"
            )
        handle = ChildHandle(
            self,
            fn,
            args,
            name if name is not None else _describe(fn),
            policy or self._policy,
            wants_status,
        )
        self._children[handle] = None
        self._report(
            ChildStateChanged(
                supervisor=self._name,
                child=handle.name,
                state="starting",
                time=trio.current_time(),
            )
        )
        self._nursery.start_soon(handle._run, name=f"{self._name}/{handle.name}")
        return handle

    def _forget(self, handle: ChildHandle) -> None:
        self._children.pop(handle, None)

    def _report(self, event: ChildStateChanged) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception(
                    "on_event handler of supervisor %r failed on %r", self._name, event
                )
        for stream in list(self._streams):
            send, drop = stream
            if drop.statistics().open_receive_channels <= 1:
                # The subscriber closed its end; only our clone is left.
                send.close()
                drop.close()
                self._streams.remove(stream)
                continue
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                drop.receive_nowait()
                send.send_nowait(event)
        if telemetry.enabled():
            telemetry.emit(event)

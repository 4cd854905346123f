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
"""

from __future__ import annotations

import collections
import inspect
import logging
import math
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Literal, get_args

import attrs
import trio

from . import telemetry
from ._exceptions import one_exception
from .errors import ConfigError, SupervisionError, UsageError
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

RestartMode = Literal["always", "on_failure", "never"]
"""When a child is restarted: after any end, only after a failure, or never.

``"always"`` is OTP's *permanent* child, ``"on_failure"`` its *transient* one
and ``"never"`` its *temporary* one.
"""

ChildState = Literal["starting", "running", "restarting", "done", "stopped", "failed"]
"""The state of a supervised child.

``"starting"``: the function was called and has not yet called
``task_status.started()``; ``"running"``: it has (children started with
:meth:`Supervisor.start_soon` are running as soon as they are called);
``"restarting"``: it ended and waits for its backoff delay. The final states
are ``"done"`` (returned and its policy does not restart it), ``"stopped"``
(stopped on request or by the supervisor closing) and ``"failed"`` (failed
under the ``"never"`` policy, or exceeded its restart intensity).
"""

FINAL_STATES: frozenset[ChildState] = frozenset({"done", "stopped", "failed"})

_RESTART_MODES: tuple[str, ...] = get_args(RestartMode)

EventHandler = Callable[[ChildStateChanged], object]


def _check_number(
    field: str,
    value: object,
    *,
    minimum: float,
    strict: bool = False,
    allow_inf: bool = True,
) -> None:
    # bool is an int subclass, but True as a delay is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"RestartPolicy.{field} must be a number, not {value!r}")
    if (value <= minimum) if strict else (value < minimum):
        bound = "greater than" if strict else "at least"
        raise ConfigError(f"RestartPolicy.{field} must be {bound} {minimum}, not {value!r}")
    if not allow_inf and math.isinf(value):
        raise ConfigError(f"RestartPolicy.{field} must be finite, not {value!r}")


@attrs.frozen(kw_only=True)
class RestartPolicy:
    """How a supervised child is restarted, how fast, and when to give up.

    ``restart`` (a :data:`RestartMode`) says after which ends the child is
    restarted. Before the restart number ``n`` in a row (counting from 0) the
    supervisor waits ``min(backoff_initial * backoff_factor ** n, backoff_max)``
    seconds plus jitter: a random extra of up to ``jitter`` times that delay.
    Jitter only ever lengthens the delay, so the computed delay is a floor
    callers can rely on and ``backoff_max`` caps the delay before jitter (the
    longest wait is ``backoff_max * (1 + jitter)``). Set ``jitter=0`` for exact
    delays.

    More than ``max_restarts`` restarts within ``within`` seconds is the
    restart intensity, as in OTP: the child then ends ``"failed"``.
    ``max_restarts=0`` gives up on the first restart. A run that stayed
    ``"running"`` for at least ``reset_after`` seconds resets the backoff to
    ``backoff_initial`` (``None``: never reset). ``start_timeout`` bounds the
    time a child started with :meth:`Supervisor.start` may take to call
    ``task_status.started()``; when it passes, the attempt is cancelled and
    counts as a failure with a :class:`TimeoutError` (``None``: no bound;
    children started with :meth:`Supervisor.start_soon` are ready at once).

    Invalid values raise :class:`~opex_trio.errors.ConfigError` naming the field.
    """

    restart: RestartMode = "always"
    backoff_initial: float = 1.0
    backoff_factor: float = 2.0
    backoff_max: float = 30.0
    jitter: float = 0.1
    max_restarts: int = 5
    within: float = 60.0
    reset_after: float | None = 60.0
    start_timeout: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.restart not in _RESTART_MODES:
            raise ConfigError(
                f"RestartPolicy.restart must be one of {', '.join(map(repr, _RESTART_MODES))}, "
                f"not {self.restart!r}"
            )
        _check_number("backoff_initial", self.backoff_initial, minimum=0, allow_inf=False)
        _check_number("backoff_factor", self.backoff_factor, minimum=1, allow_inf=False)
        _check_number("backoff_max", self.backoff_max, minimum=0)
        if self.backoff_max < self.backoff_initial:
            raise ConfigError(
                f"RestartPolicy.backoff_max ({self.backoff_max!r}) must be at least "
                f"backoff_initial ({self.backoff_initial!r})"
            )
        _check_number("jitter", self.jitter, minimum=0, allow_inf=False)
        if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int):
            raise ConfigError(
                f"RestartPolicy.max_restarts must be an int, not {self.max_restarts!r}"
            )
        if self.max_restarts < 0:
            raise ConfigError(
                f"RestartPolicy.max_restarts must be at least 0, not {self.max_restarts!r}"
            )
        _check_number("within", self.within, minimum=0, strict=True)
        if self.reset_after is not None:
            _check_number("reset_after", self.reset_after, minimum=0)
        if self.start_timeout is not None:
            _check_number("start_timeout", self.start_timeout, minimum=0, strict=True)

    def base_delay(self, n: int) -> float:
        """Return the backoff before restart number ``n`` in a row (from 0), without jitter."""
        if n < 0:
            raise ConfigError(f"the restart number must be at least 0, not {n!r}")
        try:
            delay = self.backoff_initial * self.backoff_factor**n
        except OverflowError:
            delay = math.inf
        return min(delay, self.backoff_max)

    def delay(self, n: int, rng: random.Random | None = None) -> float:
        """Return the backoff before restart number ``n`` in a row (from 0), jitter included.

        The result lies in ``[base_delay(n), base_delay(n) * (1 + jitter)]``;
        ``rng`` supplies the randomness (the module's generator when ``None``).
        """
        base = self.base_delay(n)
        if self.jitter == 0 or base == 0 or math.isinf(base):
            return base
        # Jitter spreads restarts of many children apart; it is not a secret.
        fraction = (rng or random).random()
        return base + base * self.jitter * fraction


class _ChildTaskStatus(trio.TaskStatus[Any]):
    """The ``task_status`` handed to a child started with :meth:`Supervisor.start`."""

    def __init__(self, handle: ChildHandle) -> None:
        self._handle = handle
        self.called = False
        self.expired = False

    def __repr__(self) -> str:
        return f"<task status of supervised child {self._handle.name!r}>"

    def started(self, value: Any = None) -> None:
        """Report that the child is ready; ``value`` becomes :attr:`ChildHandle.value`."""
        if self.called:
            raise RuntimeError("called 'started' twice on the same task status")
        self.called = True
        if not self.expired:
            self._handle._on_started(value)


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


def _describe(fn: Callable[..., object]) -> str:
    inner = getattr(fn, "func", fn)  # functools.partial
    name = getattr(inner, "__qualname__", None)
    return name if isinstance(name, str) else repr(fn)


class ChildHandle:
    """A supervised child: its state, and the means to stop, restart and await it.

    Handles are made by :meth:`Supervisor.start` and
    :meth:`Supervisor.start_soon`, never directly.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        name: str,
        policy: RestartPolicy,
        wants_status: bool,
    ) -> None:
        self._supervisor = supervisor
        self._fn = fn
        self._args = args
        self._name = name
        self._policy = policy
        self._wants_status = wants_status
        self._state: ChildState = "starting"
        self._restarts = 0
        self._last_error: BaseException | None = None
        self._error: SupervisionError | None = None
        self._value: Any = None
        self._result: Any = None
        self._changed = trio.Event()
        # The scope of the current attempt or backoff sleep. It exists before
        # the state that uses it is announced, so a stop or restart requested
        # from an event handler always reaches it.
        self._scope = trio.CancelScope()
        self._stop_requested = False
        self._restart_requested = False
        self._running_since: float | None = None

    def __repr__(self) -> str:
        return f"<ChildHandle {self._name!r} {self._state} restarts={self._restarts}>"

    @property
    def name(self) -> str:
        """The child's name, used in events and errors."""
        return self._name

    @property
    def policy(self) -> RestartPolicy:
        """The restart policy of this child."""
        return self._policy

    @property
    def state(self) -> ChildState:
        """The current state (see :data:`ChildState`)."""
        return self._state

    @property
    def finished(self) -> bool:
        """Whether the child reached a final state: ``"done"``, ``"stopped"`` or ``"failed"``."""
        return self._state in FINAL_STATES

    @property
    def restarts(self) -> int:
        """How many times the child was restarted (forced restarts included)."""
        return self._restarts

    @property
    def last_error(self) -> BaseException | None:
        """The exception that ended the latest failed run, or ``None`` if none failed yet."""
        return self._last_error

    @property
    def error(self) -> SupervisionError | None:
        """The :class:`~opex_trio.errors.SupervisionError` of a ``"failed"`` child, else ``None``.

        Its ``__cause__`` is :attr:`last_error`.
        """
        return self._error

    @property
    def value(self) -> Any:
        """What the child passed to ``task_status.started()`` in its latest start."""
        return self._value

    @property
    def result(self) -> Any:
        """What the child returned, once it is ``"done"``; ``None`` before."""
        return self._result

    def stop_nowait(self) -> None:
        """Ask the child to stop: cancel it, with no restart. Stopping twice is harmless.

        The child ends ``"stopped"`` once its cleanup has run; see :meth:`stop`
        to wait for that.
        """
        if self.finished:
            return
        self._stop_requested = True
        self._scope.cancel()

    async def stop(self) -> ChildState:
        """Stop the child and wait until it has ended; return its final state.

        The state is ``"stopped"`` unless the child had already ended
        otherwise. Never raises for the child's own failure.
        """
        self.stop_nowait()
        return await self._wait_final()

    def restart(self) -> None:
        """Force a restart, for example after a failed health check.

        A starting or running child is cancelled and started again through the
        usual accounting: it counts as a restart, waits its backoff delay and
        may reach the restart intensity, whatever the policy. A child waiting
        in ``"restarting"`` starts at once (its restart was already counted).
        A finished child stays finished: start a new one instead.
        """
        if self.finished:
            return
        self._restart_requested = True
        self._scope.cancel()

    async def wait_running(self) -> ChildState:
        """Wait until the child is ``"running"`` or finished; return that state.

        Like every trio wait it checkpoints first, and the state is checked
        again after that, so the result is the state at the moment of return.
        It never raises for the child's failure: check for ``"running"``, and
        see :attr:`error` and :attr:`last_error` otherwise. Bound the wait with
        your own deadline (``trio.fail_after``).
        """
        if self._state == "running" or self.finished:
            await trio.lowlevel.checkpoint()
        while self._state != "running" and not self.finished:
            await self._changed.wait()
        return self._state

    async def wait(self) -> ChildState:
        """Wait until the child has finished and return ``"done"`` or ``"stopped"``.

        Raises the :class:`~opex_trio.errors.SupervisionError` of a child
        that ended ``"failed"``. The return value of a ``"done"`` child is
        :attr:`result`.
        """
        state = await self._wait_final()
        if self._error is not None:
            raise self._error.with_traceback(None)
        return state

    async def _wait_final(self) -> ChildState:
        if self.finished:
            await trio.lowlevel.checkpoint()
        while not self.finished:
            await self._changed.wait()
        return self._state

    # The runner: everything below runs in the child's task in the supervisor.

    def _set_state(
        self,
        state: ChildState,
        *,
        error: BaseException | None = None,
        delay: float | None = None,
    ) -> None:
        previous = self._state
        self._state = state
        self._changed.set()
        self._changed = trio.Event()
        self._supervisor._report(
            ChildStateChanged(
                supervisor=self._supervisor.name,
                child=self._name,
                state=state,
                previous=previous,
                restarts=self._restarts,
                error=error,
                delay=delay,
                time=trio.current_time(),
            )
        )

    # These read state that the child may change while the runner awaits it,
    # which attribute narrowing in the runner would not see.
    def _stopping(self) -> bool:
        return self._stop_requested

    def _ran_for(self) -> float | None:
        if self._running_since is None:
            return None
        return trio.current_time() - self._running_since

    def _on_started(self, value: Any) -> None:
        self._scope.deadline = math.inf
        self._value = value
        self._running_since = trio.current_time()
        self._set_state("running")

    def _finish(self, state: ChildState, error: BaseException | None = None) -> None:
        self._supervisor._forget(self)
        self._set_state(state, error=error)

    def _fail(self, message: str) -> None:
        error = SupervisionError(message, name=self._name, restarts=self._restarts)
        error.__cause__ = self._last_error
        self._error = error
        self._finish("failed", error)

    async def _run(self) -> None:
        policy = self._policy
        recent: collections.deque[float] = collections.deque()
        in_a_row = 0
        try:
            while True:
                if self._stop_requested:
                    self._finish("stopped")
                    return
                returned, error, ran_for = await self._attempt()
                if error is not None:
                    self._last_error = error
                if self._stop_requested or self._supervisor._closing:
                    self._finish("stopped", error)
                    return
                forced = self._restart_requested
                self._restart_requested = False
                if not forced:
                    if returned and policy.restart != "always":
                        self._finish("done")
                        return
                    if not returned and policy.restart == "never":
                        self._fail(
                            f"supervised child {self._name!r} failed and its restart policy "
                            f"is 'never'"
                        )
                        return
                now = trio.current_time()
                if (
                    policy.reset_after is not None
                    and ran_for is not None
                    and ran_for >= policy.reset_after
                ):
                    in_a_row = 0
                recent.append(now)
                # Inclusive window, as OTP counts it.
                while now - recent[0] > policy.within:
                    recent.popleft()
                if len(recent) > policy.max_restarts:
                    self._fail(
                        f"supervised child {self._name!r} reached its restart intensity: "
                        f"more than {policy.max_restarts} restarts within "
                        f"{policy.within} seconds"
                    )
                    return
                delay = policy.delay(in_a_row, self._supervisor._rng)
                in_a_row += 1
                self._restarts += 1
                self._scope = trio.CancelScope()
                self._set_state("restarting", error=error, delay=delay)
                with self._scope:
                    await trio.sleep(delay)
                if self._stopping():
                    continue
                # A restart() during the backoff only shortens it.
                self._restart_requested = False
                self._scope = trio.CancelScope()
                self._set_state("starting")
        except BaseException as exc:
            if not self.finished:
                self._finish("stopped", None if _is_cancellation(exc) else exc)
            raise

    async def _attempt(self) -> tuple[bool, Exception | None, float | None]:
        """Run the child once: (returned normally, its error, seconds spent running)."""
        scope = self._scope
        status: _ChildTaskStatus | None = None
        self._running_since = None
        returned = False
        error: Exception | None = None
        try:
            with scope:
                if scope.cancel_called:
                    # stop or restart requested before the function was even called
                    pass
                elif self._wants_status:
                    status = _ChildTaskStatus(self)
                    if self._policy.start_timeout is not None:
                        scope.deadline = trio.current_time() + self._policy.start_timeout
                    self._result = await self._fn(*self._args, task_status=status)
                    returned = True
                else:
                    self._on_started(None)
                    self._result = await self._fn(*self._args)
                    returned = True
        except Exception as exc:  # noqa: BLE001 - containing child errors is the point
            error = exc
        except BaseExceptionGroup as group:
            # A child's own nursery can mix its errors with a Cancelled from
            # outside: keep the errors as the failure, let the cancellation on.
            errors, rest = group.split(Exception)
            if errors is None or rest is None or not _is_cancellation(rest):
                raise
            self._last_error = errors
            raise rest from None
        finally:
            if status is not None:
                status.expired = True
        ran_for = self._ran_for()
        # A child that never got ready has failed, unless we cancelled it on
        # purpose (then it may well have returned early or been cut short).
        asked = self._stop_requested or self._restart_requested or self._supervisor._closing
        if status is not None and not status.called and error is None and not asked:
            if returned:
                error = RuntimeError(
                    f"supervised child {self._name!r} returned without calling "
                    "task_status.started()"
                )
            else:
                # Only the start timeout cancels an attempt nobody asked to end.
                error = TimeoutError(
                    f"supervised child {self._name!r} did not call task_status.started() "
                    f"within {self._policy.start_timeout} seconds"
                )
            returned = False
        if not returned:
            self._result = None
        return returned, error, ran_for


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

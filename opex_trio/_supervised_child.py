"""A supervised child: its :class:`ChildHandle` and the runner loop that drives it.

The handle and :data:`ChildState` are public through
:mod:`opex_trio.supervision`, whose docstring explains the states and the
decisions the runner makes when a run ends.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import trio

from .errors import SupervisionError
from .telemetry import ChildStateChanged

if TYPE_CHECKING:
    from ._restart_policy import RestartPolicy
    from .supervision import Supervisor

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

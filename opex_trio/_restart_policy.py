"""The restart policy of a supervised child: when it is restarted, its backoff, and when to give up.

:class:`RestartPolicy` is public through :mod:`opex_trio.supervision`, whose
docstring explains how the supervisor applies it.
"""

from __future__ import annotations

import math
import random
from typing import Literal, get_args

import attrs

from .errors import ConfigError

RestartMode = Literal["always", "on_failure", "never"]
"""When a child is restarted: after any end, only after a failure, or never.

``"always"`` is OTP's *permanent* child, ``"on_failure"`` its *transient* one
and ``"never"`` its *temporary* one.
"""

_RESTART_MODES: tuple[str, ...] = get_args(RestartMode)


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

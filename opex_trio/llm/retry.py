"""The retry policy of the LLM client: which failures are retried and how long to wait.

Everything here is pure: :class:`RetryPolicy` turns "attempt *n* failed with
this error" into "wait this many seconds" or "give up", and
:func:`parse_retry_after` reads the server's hints. The client's retry loop
(in :mod:`opex_trio.llm.client`) does the waiting, inside the call's cancel
scope.

The defaults are the seed library's policy:

=================================  ===================
failure                            first wait
=================================  ===================
HTTP 429 (or code 429 in a body)   5 s
HTTP 500, 502, 503, 504, 508       2 s
transport errors (connect error,   1 s
read/connect timeout, reset,
closed connection, bad HTTP)
=================================  ===================

Each retry doubles the previous wait; at most 3 retries (4 attempts). Jitter
only ever adds to a wait, so a wait is never shorter than the table says; the
jittered exponential wait is capped at ``max_delay``.

These waits are for a server that gave no hint. A ``retry-after-ms`` or
``Retry-After`` header on the failed response is the server's own word on when
to come back, and it is followed exactly, shorter or longer than the table,
without jitter, up to ``max_retry_after``: a 300 ms hint waits 300 ms, a hint
of an hour waits ``max_retry_after`` (the call's deadline may then end it
sooner). A malformed or negative hint counts as none.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import attrs

from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    LLMError,
)

__all__ = ["RetryKind", "RetryPolicy", "parse_retry_after"]

RetryKind: TypeAlias = Literal["rate_limit", "server_error", "connection"]
"""What kind of failure a retry answers; each kind has its own first wait."""


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"RetryPolicy.{attribute.name} must be a number >= 0, got {value!r}")
    if math.isinf(value) and attribute.name != "max_delay":
        raise ConfigError(f"RetryPolicy.{attribute.name} must be finite, got {value!r}")


def _max_retries(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"RetryPolicy.max_retries must be an int >= 0, got {value!r}")


def _multiplier(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value < math.inf:
        raise ConfigError(f"RetryPolicy.multiplier must be a finite number >= 1, got {value!r}")


def _frozen(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return value
    try:
        return frozenset(value)
    except TypeError:
        return value


def _statuses(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, frozenset) or not all(
        isinstance(status, int) and not isinstance(status, bool) for status in value
    ):
        raise ConfigError(f"RetryPolicy.{attribute.name} must be a set of ints, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """When and how long the client waits before trying a failed request again.

    Attributes:
        max_retries: retries after the first attempt (``0`` never retries).
        rate_limit_delay: first wait after a rate limit (``rate_limit_statuses``).
        server_error_delay: first wait after a server error (``server_error_statuses``).
        connection_delay: first wait after a transport error or a network timeout.
        multiplier: each further retry of a call waits this many times longer.
        max_delay: cap of the exponential wait, jitter included.
        jitter: the wait is multiplied by ``1 + jitter * random()``; ``0`` turns
            jitter off (as tests do to assert exact times).
        max_retry_after: the longest server hint (``Retry-After`` or
            ``retry-after-ms``) the client waits; a hint replaces the policy's
            wait, shorter or longer.
        rate_limit_statuses: statuses (or error codes in a body) retried as rate limits.
        server_error_statuses: statuses (or error codes in a body) retried as server errors.
        random: the source of jitter, a callable returning a float in ``[0, 1)``.

    """

    max_retries: int = attrs.field(default=3, validator=_max_retries)
    rate_limit_delay: float = attrs.field(default=5.0, validator=_non_negative)
    server_error_delay: float = attrs.field(default=2.0, validator=_non_negative)
    connection_delay: float = attrs.field(default=1.0, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=_multiplier)
    max_delay: float = attrs.field(default=60.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.25, validator=_non_negative)
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)
    rate_limit_statuses: frozenset[int] = attrs.field(
        default=frozenset({429}), converter=_frozen, validator=_statuses
    )
    server_error_statuses: frozenset[int] = attrs.field(
        default=frozenset({500, 502, 503, 504, 508}), converter=_frozen, validator=_statuses
    )
    random: Callable[[], float] = attrs.field(default=random.random, eq=False, repr=False)

    def kind(self, error: LLMError) -> RetryKind | None:
        """The kind of retry ``error`` calls for, or ``None`` when it must not be retried.

        Status errors are retried by status; connection errors and network
        timeouts always. Stream errors are never retried: once a stream has
        delivered an event, a retry would repeat it.
        """
        if isinstance(error, APIStatusError):
            if error.status in self.rate_limit_statuses:
                return "rate_limit"
            if error.status in self.server_error_statuses:
                return "server_error"
            return None
        if isinstance(error, APIConnectionError | APITimeoutError):
            return "connection"
        return None

    def base_delay(self, kind: RetryKind) -> float:
        """The wait before the first retry of a failure of ``kind``."""
        if kind == "rate_limit":
            return self.rate_limit_delay
        if kind == "server_error":
            return self.server_error_delay
        return self.connection_delay

    def delay(self, kind: RetryKind, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry).

        ``retry_after`` is the server's hint in seconds, if it sent one: it is
        the wait then (up to ``max_retry_after``), in place of the policy's.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = self.base_delay(kind)
        wait = base * self.multiplier ** (retry - 1)
        if self.jitter:
            wait *= 1.0 + self.jitter * self.random()
        # Jitter never takes a wait below the policy's minimum, the cap included.
        return max(min(wait, self.max_delay), min(base, self.max_delay))

    def next_delay(
        self, error: LLMError, attempts: int, retry_after: float | None = None
    ) -> float | None:
        """The wait before retrying after ``attempts`` attempts failed, the last with ``error``.

        ``None`` means give up: the error is not retryable, or the retries are spent.
        """
        if attempts > self.max_retries:
            return None
        kind = self.kind(error)
        if kind is None:
            return None
        return self.delay(kind, attempts, retry_after)


# The wall clock that HTTP dates in Retry-After are compared with (a seam for tests).
_wall_clock: Callable[[], float] = time.time


def parse_retry_after(
    headers: Mapping[str, str], now: Callable[[], float] | None = None
) -> float | None:
    """The server's retry hint in seconds, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be seconds or an HTTP date, compared with ``now()`` (a
    Unix time; the system clock by default). Missing, malformed or negative
    hints give ``None``; a date in the past gives ``0``. ``headers`` must look
    names up case-insensitively (as ``httpx2.Headers`` does) or hold lower-case
    names.
    """
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            millis = float(value)
        except ValueError:
            pass
        else:
            if 0 <= millis < math.inf:
                return millis / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - (now or _wall_clock)())
    if 0 <= seconds < math.inf:
        return seconds
    return None

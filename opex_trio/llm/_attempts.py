"""The attempt loop of a call: run an attempt; after a retryable failure, wait and run it again.

Theory of operation: one call is a sequence of attempts inside one trio cancel
scope whose deadline is the call's ``total_timeout``. After a failed attempt
the :class:`~opex_trio.llm.retry.RetryPolicy` says how long to wait, or to give
up. A wait that would end after the call's deadline, or after the deadline of
any cancel scope the caller wrapped around the call, is not slept towards: the
loop raises :class:`~opex_trio.errors.APITimeoutError` at once. This module
also builds the telemetry events that begin and end a call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import trio

from .. import telemetry
from ..errors import APIStatusError, APITimeoutError, LLMError
from .retry import parse_retry_after
from .types import ChatCompletion

if TYPE_CHECKING:
    from .client import Client

__all__ = ["finished_event", "retrying"]

logger = logging.getLogger("opex_trio.llm")

_T = TypeVar("_T")


async def retrying(
    client: Client,
    model: str,
    request_id: int,
    total_timeout: float | None,
    attempt_once: Callable[[int], Awaitable[_T]],
) -> tuple[_T, int]:
    """Run ``attempt_once(attempt)`` until it succeeds or ``client``'s policy gives up.

    Returns the result and the number of attempts made.
    """
    policy = client._retry
    attempt = 0
    deadline = math.inf if total_timeout is None else trio.current_time() + total_timeout
    with trio.CancelScope(deadline=deadline):
        while True:
            attempt += 1
            try:
                return await attempt_once(attempt), attempt
            except LLMError as error:
                error.attempts = attempt
                retry_after = (
                    parse_retry_after(error.headers) if isinstance(error, APIStatusError) else None
                )
                delay = policy.next_delay(error, attempt, retry_after)
                if delay is None:
                    raise
                # The caller's cancel scopes count too: a sleep that would
                # end after any deadline is pointless.
                limit = trio.current_effective_deadline()
                if trio.current_time() + delay >= limit:
                    raise APITimeoutError(
                        f"gave up after {attempt} attempt(s): the next retry, in {delay:g} s,"
                        f" would come after the call's deadline; last error: {error}",
                        attempts=attempt,
                    ) from error
                reason = _reason(error)
                logger.info(
                    "chat completion for %s failed on attempt %d (%s); retrying in %.3f s",
                    model,
                    attempt,
                    reason,
                    delay,
                )
                if client._observed():
                    client._emit(
                        telemetry.LLMRetry(
                            request_id=request_id,
                            model=model,
                            attempt=attempt,
                            delay=delay,
                            reason=reason,
                            status=error.status if isinstance(error, APIStatusError) else None,
                        )
                    )
                await trio.sleep(delay)
    # Only the cancel scope's own deadline ends the loop without a return or raise.
    assert total_timeout is not None
    raise APITimeoutError(
        f"the call's total timeout of {total_timeout:g} s passed during attempt {attempt}",
        attempts=attempt,
    )


def finished_event(
    request_id: int,
    model: str,
    stream: bool,
    start: float,
    attempts: int,
    *,
    completion: ChatCompletion | None = None,
    error: BaseException | None = None,
    first_chunk: float | None = None,
) -> telemetry.LLMRequestFinished:
    """The end event of a call that began at ``start`` (trio time)."""
    duration = trio.current_time() - start
    if completion is None:
        if isinstance(error, LLMError):
            attempts = error.attempts
        return telemetry.LLMRequestFinished(
            request_id=request_id,
            model=model,
            stream=stream,
            outcome="incomplete" if error is None else type(error).__name__,
            duration=duration,
            attempts=attempts,
            error=error,
            time_to_first_chunk=first_chunk,
        )
    usage = completion.usage
    return telemetry.LLMRequestFinished(
        request_id=request_id,
        model=model,
        stream=stream,
        outcome="ok",
        duration=duration,
        attempts=attempts,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        response_model=completion.model,
        response_id=completion.id,
        finish_reasons=tuple(c.finish_reason for c in completion.choices if c.finish_reason),
        time_to_first_chunk=first_chunk,
    )


def _reason(error: LLMError) -> str:
    if isinstance(error, APIStatusError):
        return f"status {error.status}"
    cause = error.__cause__
    return type(cause).__name__ if cause is not None else type(error).__name__

"""The retry policy and Retry-After parsing, without any IO."""

from __future__ import annotations

import email.utils
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opex_trio.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    ConfigError,
    RateLimitError,
    ServerError,
    StreamError,
)
from opex_trio.llm import RetryPolicy, parse_retry_after

NO_JITTER = RetryPolicy(jitter=0)


def status(code: int) -> APIStatusError:
    return APIStatusError("x", status=code)


def test_defaults_are_the_seed_policy() -> None:
    policy = RetryPolicy()
    assert policy.max_retries == 3
    assert policy.rate_limit_delay == 5.0
    assert policy.server_error_delay == 2.0
    assert policy.connection_delay == 1.0
    assert policy.multiplier == 2.0
    assert policy.rate_limit_statuses == {429}
    assert policy.server_error_statuses == {500, 502, 503, 504, 508}


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (RateLimitError("x", status=429), "rate_limit"),
        (status(429), "rate_limit"),
        (ServerError("x", status=500), "server_error"),
        (status(502), "server_error"),
        (status(503), "server_error"),
        (status(504), "server_error"),
        (status(508), "server_error"),
        (ServerError("x", status=501), None),
        (BadRequestError("x", status=400), None),
        (status(401), None),
        (status(402), None),
        (status(408), None),
        (APIConnectionError("reset"), "connection"),
        (APITimeoutError("read timeout"), "connection"),
        (StreamError("broke"), None),
    ],
)
def test_kind(error: Any, kind: str | None) -> None:
    assert NO_JITTER.kind(error) == kind


def test_exponential_sequences_without_jitter() -> None:
    def waits(error: Any) -> list[float | None]:
        return [NO_JITTER.next_delay(error, attempts) for attempts in (1, 2, 3, 4)]

    assert waits(status(429)) == [5.0, 10.0, 20.0, None]
    assert waits(status(503)) == [2.0, 4.0, 8.0, None]
    assert waits(APIConnectionError("x")) == [1.0, 2.0, 4.0, None]
    assert waits(status(400)) == [None, None, None, None]


def test_max_retries_zero_never_retries() -> None:
    assert RetryPolicy(max_retries=0).next_delay(status(429), 1) is None


def test_cap() -> None:
    policy = RetryPolicy(jitter=0, max_delay=12.0, max_retries=10)
    assert [policy.delay("rate_limit", n) for n in (1, 2, 3, 4)] == [5.0, 10.0, 12.0, 12.0]


def test_cap_below_the_minimum_keeps_the_cap() -> None:
    policy = RetryPolicy(jitter=0.5, max_delay=3.0, random=lambda: 0.99)
    assert policy.delay("rate_limit", 1) == 3.0


def test_a_server_hint_replaces_the_policy_wait_shorter_or_longer() -> None:
    assert NO_JITTER.delay("rate_limit", 1, retry_after=12.0) == 12.0
    assert NO_JITTER.delay("rate_limit", 1, retry_after=1.0) == 1.0
    assert NO_JITTER.delay("rate_limit", 2, retry_after=0.3) == 0.3
    assert NO_JITTER.delay("server_error", 1, retry_after=0.0) == 0.0
    assert NO_JITTER.delay("connection", 3, retry_after=0.25) == 0.25


def test_a_server_hint_gets_no_jitter() -> None:
    policy = RetryPolicy(jitter=1.0, random=lambda: 0.9)
    assert policy.delay("rate_limit", 1, retry_after=0.3) == 0.3
    assert policy.delay("rate_limit", 1) == 5.0 * 1.9


def test_retry_after_is_bounded() -> None:
    assert NO_JITTER.delay("rate_limit", 1, retry_after=3600.0) == 60.0
    policy = RetryPolicy(jitter=0, max_retry_after=30.0)
    assert policy.delay("rate_limit", 1, retry_after=3600.0) == 30.0


def test_jitter_uses_the_random_source() -> None:
    policy = RetryPolicy(jitter=0.5, random=lambda: 0.5)
    assert policy.delay("rate_limit", 1) == 5.0 * 1.25
    assert policy.delay("connection", 3) == 4.0 * 1.25


@pytest.mark.fuzz
@given(
    kind=st.sampled_from(["rate_limit", "server_error", "connection"]),
    retry=st.integers(1, 30),
    jitter=st.floats(0, 3),
    rand=st.floats(0, 1, exclude_max=True),
    max_delay=st.floats(0, 1000),
    retry_after=st.none() | st.floats(0, 10_000),
)
def test_waits_follow_the_hint_or_stay_between_the_minimum_and_the_cap(
    kind: Any,
    retry: int,
    jitter: float,
    rand: float,
    max_delay: float,
    retry_after: float | None,
) -> None:
    policy = RetryPolicy(jitter=jitter, max_delay=max_delay, random=lambda: rand)
    wait = policy.delay(kind, retry, retry_after)
    if retry_after is not None:
        assert wait == min(retry_after, policy.max_retry_after)
        return
    base = policy.base_delay(kind)
    exponential = base * policy.multiplier ** (retry - 1)
    assert wait >= min(exponential, max_delay, max(base, 0))
    assert wait >= min(base, max_delay)
    assert wait <= max_delay


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("max_retries", True),
        ("rate_limit_delay", -1),
        ("rate_limit_delay", float("nan")),
        ("rate_limit_delay", float("inf")),
        ("server_error_delay", "2"),
        ("connection_delay", None),
        ("multiplier", 0.5),
        ("multiplier", float("inf")),
        ("jitter", -0.1),
        ("max_retry_after", -5),
        ("rate_limit_statuses", 429),
        ("server_error_statuses", {"500"}),
    ],
)
def test_bad_values_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"RetryPolicy.{field} "):
        RetryPolicy(**{field: value})


def test_policy_is_a_frozen_value() -> None:
    policy = RetryPolicy(max_retries=5)
    assert policy == RetryPolicy(max_retries=5)
    with pytest.raises(AttributeError):
        policy.max_retries = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after-ms": "2500"}, 2.5),
        ({"retry-after-ms": "2500", "retry-after": "9"}, 2.5),
        ({"retry-after-ms": "bad", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "-1", "retry-after": "9"}, 9.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    future = email.utils.formatdate(now + 30, usegmt=True)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after({"retry-after": future}, now=lambda: now) == 30.0
    assert parse_retry_after({"retry-after": past}, now=lambda: now) == 0.0
    assert parse_retry_after({"retry-after": "Mon, 99 Foo 2025"}, now=lambda: now) is None

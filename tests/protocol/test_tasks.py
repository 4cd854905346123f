"""The tasks extension's rules for following one task: polling, input, the end."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opex_trio.errors import McpError, ProtocolError, UnsupportedProtocolVersionError
from opex_trio.protocol.tasks import (
    AnswerInputs,
    FetchResult,
    Finished,
    Poll,
    Task,
    TaskFollower,
    legacy_task_support,
    task_handle,
)


def task(status: str = "working", **more: Any) -> dict[str, Any]:
    return {
        "resultType": "task",
        "taskId": "t-1",
        "status": status,
        "createdAt": "2026-08-01T00:00:00Z",
        "lastUpdatedAt": "2026-08-01T00:00:00Z",
        "ttlMs": 60000,
        **more,
    }


ELICIT = {"method": "elicitation/create", "params": {"message": "ok?"}}


def test_a_working_task_is_polled_at_the_interval_it_suggests() -> None:
    follower = TaskFollower(task(pollIntervalMs=250))
    assert follower.next_step() == Poll(0.25, {"taskId": "t-1"})
    assert follower.observe(task(pollIntervalMs=None)) == Poll(1.0, {"taskId": "t-1"})


@given(st.integers(min_value=0, max_value=10**9))
def test_the_poll_interval_stays_within_bounds(ms: int) -> None:
    delay = TaskFollower(task(pollIntervalMs=ms)).poll_delay()
    assert 0.05 <= delay <= 30.0


def test_input_is_asked_once_per_key_and_sent_with_tasks_update() -> None:
    follower = TaskFollower(task())
    step = follower.observe(task("input_required", inputRequests={"a": ELICIT}))
    assert isinstance(step, AnswerInputs) and [r.key for r in step.requests] == ["a"]
    params = follower.update({"a": {"action": "accept"}})
    assert params == {"taskId": "t-1", "inputResponses": {"a": {"action": "accept"}}}
    # The same key seen again on the next poll is not asked twice.
    again = follower.observe(task("input_required", inputRequests={"a": ELICIT}))
    assert isinstance(again, Poll)
    assert follower.update({"a": {"action": "decline"}})["inputResponses"] == {}


def test_a_completed_task_gives_its_result() -> None:
    follower = TaskFollower(task())
    done = follower.observe(task("completed", result={"content": [], "isError": False}))
    assert done == Finished({"content": [], "isError": False}, None)
    assert follower.task.terminal


def test_a_failed_task_gives_the_typed_error() -> None:
    follower = TaskFollower(task())
    error = {"code": -32022, "message": "old", "data": {"supported": ["2026-07-28"]}}
    step = follower.observe(task("failed", error=error))
    assert isinstance(step, Finished) and isinstance(step.error, UnsupportedProtocolVersionError)
    assert step.error.method == "tools/call"


def test_a_cancelled_task_fails_with_its_message() -> None:
    step = TaskFollower(task()).observe(task("cancelled", statusMessage="operator stop"))
    assert isinstance(step, Finished) and isinstance(step.error, McpError)
    assert "operator stop" in str(step.error)


def test_cancel_names_the_task() -> None:
    assert TaskFollower(task()).cancel() == {"taskId": "t-1"}


@pytest.mark.parametrize(
    "bad",
    [
        task(taskId=""),
        task(status="sleeping"),
        task("completed"),
        task("failed"),
        task("input_required", inputRequests=[1]),
    ],
)
def test_malformed_tasks_are_protocol_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        Task.of(bad)


def test_an_answer_about_another_task_is_refused() -> None:
    with pytest.raises(ProtocolError, match="t-2"):
        TaskFollower(task()).observe(task(taskId="t-2"))


def legacy_task(status: str = "working", **more: Any) -> dict[str, Any]:
    return {"taskId": "t-9", "status": status, "ttl": 60000, "pollInterval": 500, **more}


def test_a_legacy_task_is_polled_then_its_result_fetched() -> None:
    follower = TaskFollower(legacy_task(), legacy=True)
    assert follower.next_step() == Poll(0.5, {"taskId": "t-9"})
    # Input, the end and a failure all come while waiting on tasks/result.
    for status in ("input_required", "completed", "failed"):
        step = TaskFollower(legacy_task(), legacy=True).observe(legacy_task(status))
        assert step == FetchResult({"taskId": "t-9"})
    cancelled = follower.observe(legacy_task("cancelled", statusMessage="stopped"))
    assert isinstance(cancelled, Finished) and isinstance(cancelled.error, McpError)
    assert "stopped" in str(cancelled.error)


def test_task_handles_and_support_of_each_era() -> None:
    assert task_handle(task(), legacy=False) == task()
    assert task_handle({"content": [], "resultType": "complete"}, legacy=False) is None
    assert task_handle({"task": legacy_task()}, legacy=True) == legacy_task()
    assert task_handle({"content": []}, legacy=True) is None
    with pytest.raises(ProtocolError, match="must be an object"):
        task_handle({"task": "t-9"}, legacy=True)
    assert legacy_task_support({"requests": {"tools": {"call": {}}}}, "tools/call")
    assert not legacy_task_support({"requests": {"tools": {}}}, "tools/call")
    assert not legacy_task_support({"list": {}}, "tools/call")
    assert not legacy_task_support(None, "tools/call")

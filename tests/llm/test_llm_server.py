"""The scripted OpenAI-compatible server itself: what test authors rely on."""

from __future__ import annotations

import httpx2
import pytest
import trio
from trio.testing import MockClock

from opex_trio.testing.llm_server import (
    JSONReply,
    RawReply,
    RecordedRequest,
    Reply,
    SSEReply,
    StallReply,
    completion,
    completion_chunks,
    error_body,
    open_llm_server,
)

BOUND = 600


async def test_default_replies_and_recorded_requests(autojump_clock: MockClock) -> None:
    with trio.fail_after(BOUND):
        async with open_llm_server() as server, httpx2.AsyncClient() as http:
            assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
            plain = await http.post(
                server.base_url + "/chat/completions",
                json={"model": "x", "messages": []},
                headers={"X-Test": "1"},
            )
            stream = await http.post(
                server.base_url + "/chat/completions", json={"model": "x", "stream": True}
            )
            missing = await http.get(server.base_url + "/models")
    assert plain.status_code == 200
    assert plain.json()["choices"][0]["message"]["content"]
    assert plain.json()["model"] == "x"
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.text.endswith("data: [DONE]\n\n")
    assert missing.status_code == 404
    first = server.requests[0]
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.headers["x-test"] == "1"
    assert first.json == {"model": "x", "messages": []}
    assert server.requests[2].json is None
    assert server.connections == 1


async def test_queue_before_handler_and_async_handlers(autojump_clock: MockClock) -> None:
    seen: list[RecordedRequest] = []

    async def handler(request: RecordedRequest) -> Reply:
        seen.append(request)
        await trio.sleep(1.0)
        return JSONReply(completion(f"turn {len(seen)}"))

    with trio.fail_after(BOUND):
        async with open_llm_server(handler) as server, httpx2.AsyncClient() as http:
            server.push(JSONReply(error_body("first"), status=503))
            assert server.pending == 1
            url = server.base_url + "/chat/completions"
            statuses = [(await http.post(url, json={})).status_code for _ in range(3)]
            server.handler = lambda request: JSONReply({"swapped": True})
            swapped = (await http.post(url, json={})).json()
    assert statuses == [503, 200, 200]
    assert len(seen) == 2
    assert swapped == {"swapped": True}
    assert server.pending == 0


async def test_a_failing_handler_answers_500_and_fails_the_test_at_exit(
    autojump_clock: MockClock,
) -> None:
    def handler(request: RecordedRequest) -> Reply:
        raise KeyError("bug in the test script")

    responses: list[httpx2.Response] = []

    async def script() -> None:
        async with open_llm_server(handler) as server, httpx2.AsyncClient() as http:
            responses.append(await http.post(server.base_url + "/chat/completions", json={}))

    with trio.fail_after(BOUND), pytest.raises(Exception, match="handler failed 1 time") as info:
        await script()
    assert isinstance(info.value.__cause__, KeyError)
    assert responses[0].status_code == 500
    assert "bug in the test script" in responses[0].json()["error"]["message"]


async def test_a_handler_returning_no_reply_is_reported(autojump_clock: MockClock) -> None:
    with trio.fail_after(BOUND), pytest.raises(Exception, match="handler failed") as info:
        async with open_llm_server(lambda request: "oops") as server, httpx2.AsyncClient() as http:  # type: ignore[arg-type,return-value]
            await http.post(server.base_url + "/chat/completions", json={})
    assert isinstance(info.value.__cause__, TypeError)


async def test_errors_in_the_test_body_come_out_alone(autojump_clock: MockClock) -> None:
    with pytest.raises(ValueError, match="from the test") as info:
        async with open_llm_server():
            raise ValueError("from the test") from OSError("cause")
    assert isinstance(info.value.__cause__, OSError)


async def test_push_rejects_what_is_not_a_reply(autojump_clock: MockClock) -> None:
    async with open_llm_server() as server:
        with pytest.raises(TypeError, match="not a reply"):
            server.push({"status": 200})  # type: ignore[arg-type]


async def test_sse_reply_framing(autojump_clock: MockClock) -> None:
    chunks = completion_chunks(["a"])
    with trio.fail_after(BOUND):
        async with open_llm_server() as server, httpx2.AsyncClient() as http:
            server.push(
                SSEReply([chunks[0], "line one\nline two", b": comment\n\n"], done=False),
                SSEReply(chunks[:1], truncate=True),
            )
            clean = await http.post(server.base_url + "/chat/completions", json={})
            with pytest.raises(httpx2.RemoteProtocolError):
                await http.post(server.base_url + "/chat/completions", json={})
    assert clean.text.endswith("data: line one\ndata: line two\n\n: comment\n\n")
    assert "[DONE]" not in clean.text


async def test_stall_and_raw_replies(autojump_clock: MockClock) -> None:
    with trio.fail_after(BOUND):
        async with open_llm_server() as server, httpx2.AsyncClient(timeout=60.0) as http:
            server.push(
                StallReply(seconds=5.0),
                RawReply(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"),
            )
            with pytest.raises(httpx2.RemoteProtocolError):
                await http.post(server.base_url + "/chat/completions", json={})
            assert trio.current_time() == 5.0
            with pytest.raises(httpx2.RemoteProtocolError):
                await http.post(server.base_url + "/chat/completions", json={})

"""Streamable HTTP and HTTP+SSE against real loopback servers: headers, streams, sessions, faults."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx2
import pytest
import trio

from opex_trio.errors import (
    ConfigError,
    McpError,
    ProtocolError,
    SessionExpiredError,
    TransportAuthError,
    TransportBrokenError,
)
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.protocol.session import ListChanged
from opex_trio.protocol.types import ProgressParams
from opex_trio.protocol.versions import Era
from opex_trio.testing.http_server import HttpRecord, McpHttpServer
from opex_trio.testing.mcp_server import builtin_server
from opex_trio.transports.base import Transport
from opex_trio.transports.http import HttpParameters, HttpTransport, open_http_transport
from tests.transports.support import start_in_scope

BOUND = 60
LEGACY = ClientOptions(era=Era.LEGACY)
TOKEN = "s3cr3t-token-value"


def client_for(params: HttpParameters, options: ClientOptions | None = None) -> McpClient:
    """A client of the legacy era by default: these tests follow the legacy transport's requests."""

    def factory() -> AbstractAsyncContextManager[Transport]:
        return open_http_transport(params)

    return McpClient(factory, name=params.label, options=options or LEGACY)


@asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[McpHttpServer]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(McpHttpServer(builtin_server(), **options).serve)
        yield server
        nursery.cancel_scope.cancel()


def posts(server: McpHttpServer, method: str) -> list[HttpRecord]:
    return [r for r in server.log if r.method == "POST" and r.jsonrpc_method == method]


async def test_headers_session_version_auth_and_execution_id() -> None:
    with trio.fail_after(BOUND):
        async with serving(require_token=TOKEN) as server:
            params = HttpParameters(
                server.url,
                name="remote",
                auth_token=TOKEN,
                execution_id="exec-42",
                headers={"X-Tenant": "acme"},
            )
            async with client_for(params) as client:
                transport = client.transport
                assert isinstance(transport, HttpTransport)
                assert transport.mode == "streamable-http"
                session = transport.session_id
                assert session is not None
                assert (await client.call_tool("echo", {"message": "hi"})).text == "hi"
                await client.list_tools()
            (init,) = posts(server, "initialize")
            assert init.headers["authorization"] == f"Bearer {TOKEN}"
            assert "application/json" in init.headers["accept"]
            assert "text/event-stream" in init.headers["accept"]
            assert "mcp-session-id" not in init.headers
            assert "mcp-protocol-version" not in init.headers
            for record in server.log[1:]:
                assert record.headers["mcp-session-id"] == session
                assert record.headers["mcp-protocol-version"] == "2025-11-25"
                assert record.headers["x-tenant"] == "acme"
            (call,) = posts(server, "tools/call")
            assert call.headers["execution-id"] == "exec-42"
            assert "execution-id" not in posts(server, "tools/list")[0].headers
            # The optional GET stream was opened, and the session ended with a DELETE.
            assert any(r.method == "GET" for r in server.log)
            assert server.log[-1].method == "DELETE"
            assert server.deleted == [session]


async def test_execution_id_header_name_is_configurable() -> None:
    with trio.fail_after(BOUND):
        async with serving() as server:
            params = HttpParameters(server.url, execution_id="e1", execution_id_header="X-Run")
            async with client_for(params) as client:
                await client.call_tool("echo", {"message": "x"})
            (call,) = posts(server, "tools/call")
            assert call.headers["x-run"] == "e1" and "execution-id" not in call.headers


@pytest.mark.parametrize("mode", ["sse", "json"])
async def test_progress_logs_and_server_requests_reach_the_client(mode: str) -> None:
    seen: list[ProgressParams] = []

    async def sampling(params: Any) -> dict[str, Any]:
        return {"role": "assistant", "content": {"type": "text", "text": "sampled"}, "model": "m"}

    with trio.fail_after(BOUND):
        async with serving(response_mode=mode) as server:
            options = ClientOptions(sampling_handler=sampling)
            async with client_for(HttpParameters(server.url), options) as client:
                result = await client.call_tool("progress", {"steps": 3}, progress=seen.append)
                assert result.text == "done in 3 steps"
                # With JSON answers, the server's own messages come on the GET stream.
                assert (await client.call_tool("sample")).text == "sampled"
    assert [p.progress for p in seen] == [1, 2, 3]


async def test_server_notifications_arrive_on_the_get_stream() -> None:
    with trio.fail_after(BOUND):
        async with (
            serving() as server,
            client_for(HttpParameters(server.url)) as client,
            client.subscribe() as events,
        ):
            while not any(r.method == "GET" for r in server.log):
                await trio.sleep(0.01)
            # Sent outside any request: only the GET stream can carry it.
            while True:
                await server.mcp.notify_all("notifications/tools/list_changed")
                with trio.move_on_after(0.2):
                    assert await events.receive() == ListChanged("tools")
                    break


async def test_no_get_stream_and_no_delete_are_tolerated() -> None:
    with trio.fail_after(BOUND):
        async with serving(get_stream=False, allow_delete=False) as server:
            async with client_for(HttpParameters(server.url)) as client:
                assert (await client.call_tool("echo", {"message": "ok"})).text == "ok"
            assert [r.method for r in server.log if r.method != "POST"] == ["GET", "DELETE"]


@pytest.mark.parametrize("drop", ["end", "abort"])
async def test_a_dropped_stream_is_resumed_with_last_event_id(drop: str) -> None:
    with trio.fail_after(BOUND):
        async with serving(drop_streams=drop, retry_ms=50) as server:
            async with client_for(HttpParameters(server.url)) as client:
                result = await client.call_tool("progress", {"steps": 2})
                assert result.text == "done in 2 steps"
                assert (await client.call_tool("echo", {"message": "again"})).text == "again"
            resumed = [r for r in server.log if "last-event-id" in r.headers]
            assert len(resumed) >= 2
            assert all(r.method == "GET" for r in resumed)


async def test_a_reopened_get_stream_sends_the_last_event_id_it_saw() -> None:
    with trio.fail_after(BOUND):
        async with serving(end_get_streams_after=1) as server:
            params = HttpParameters(server.url, reconnect_delay=0.05)
            async with client_for(params) as client, client.subscribe() as events:
                for _ in range(3):
                    # Sent outside any request: only the GET stream carries it,
                    # and the server ends that stream after each event.
                    await server.mcp.notify_all("notifications/tools/list_changed")
                    assert await events.receive() == ListChanged("tools")
                (session,) = server.sessions.values()
                sent_ids = [event_id for event_id, _ in session.get_stream.history]
            gets = [r for r in server.log if r.method == "GET"]
            assert len(gets) >= 3, gets
            assert "last-event-id" not in gets[0].headers
            # Each reopened stream names the last event of the stream before it.
            for seen, get in zip(sent_ids, gets[1:], strict=False):
                assert get.headers.get("last-event-id") == seen


async def test_a_stream_without_event_ids_that_ends_early_fails_only_its_call() -> None:
    with trio.fail_after(BOUND):
        async with serving() as server:
            original = server._send_stream

            async def no_ids(ex: Any, stream: Any, extra: Any, **kw: Any) -> bool:
                # A request's stream that ends at once, without an event id to resume from.
                if kw.get("post"):
                    await ex.start(200, "text/event-stream", extra)
                    await ex.end()
                    return True
                return await original(ex, stream, extra, **kw)

            async with client_for(HttpParameters(server.url)) as client:
                server._send_stream = no_ids  # type: ignore[method-assign]
                with pytest.raises(TransportBrokenError, match="cannot be resumed"):
                    await client.call_tool("echo", {"message": "lost"})
                server._send_stream = original  # type: ignore[method-assign]
                assert (await client.call_tool("echo", {"message": "fine"})).text == "fine"


async def test_an_expired_session_fails_pending_calls_and_the_refused_call_is_sent_again() -> None:
    with trio.fail_after(BOUND):
        async with serving() as server:
            async with client_for(HttpParameters(server.url, name="remote")) as client:
                transport = client.transport
                assert isinstance(transport, HttpTransport)
                first = transport.session_id
                errors: list[BaseException] = []

                async def slow() -> None:
                    try:
                        await client.call_tool("sleep", {"seconds": 3600}, timeout=None)
                    except SessionExpiredError as exc:
                        errors.append(exc)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(slow)
                    # Running on the server, so not refused when the session goes.
                    while not any(r.method == "tools/call" for r in server.mcp.requests):
                        await trio.sleep(0.01)
                    server.forget_sessions()
                    # The call that finds out was refused, not run: it is sent again
                    # in the new session. The call in flight may have run: it fails.
                    assert (await client.call_tool("echo", {"message": "x"})).text == "x"
                (error,) = errors
                assert isinstance(error, SessionExpiredError)
                assert "'remote'" in str(error) and error.server == "remote"
                # POSTed twice (refused, then sent again), run once.
                echoes = [r for r in posts(server, "tools/call") if b'"echo"' in r.body]
                assert len(echoes) == 2
                ran = [r for r in server.mcp.requests if r.method == "tools/call"]
                assert [(r.params or {}).get("name") for r in ran] == ["sleep", "echo"]
                assert (await client.call_tool("echo", {"message": "y"})).text == "y"
                assert transport.session_id not in (None, first)
                assert client.connected
            assert len(posts(server, "initialize")) == 2


async def test_a_server_restarted_mid_session_is_met_with_a_new_session() -> None:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            first, scope = await start_in_scope(nursery, McpHttpServer(builtin_server()).serve)
            async with client_for(HttpParameters(first.url, name="restarting")) as client:
                assert (await client.call_tool("echo", {"message": "a"})).text == "a"
                scope.cancel()
                second = McpHttpServer(builtin_server(), port=first.port)
                _, scope = await start_in_scope(nursery, second.serve)
                # Refused for the session the new server never knew, so not run:
                # the call is sent again in a new session and gets its answer.
                assert (await client.call_tool("echo", {"message": "b"})).text == "b"
                assert (await client.call_tool("echo", {"message": "c"})).text == "c"
            assert len(posts(second, "initialize")) == 1
            nursery.cancel_scope.cancel()


async def test_a_stateless_server_restarted_behind_its_url_goes_on_serving() -> None:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            server = McpHttpServer(builtin_server(), stateful=False)
            first, scope = await start_in_scope(nursery, server.serve)
            async with client_for(HttpParameters(first.url, name="stateless")) as client:
                assert (await client.call_tool("echo", {"message": "a"})).text == "a"
                scope.cancel()
                second = McpHttpServer(builtin_server(), port=first.port, stateful=False)
                _, scope = await start_in_scope(nursery, second.serve)
                # No session to lose: the new process takes calls without a handshake.
                assert (await client.call_tool("echo", {"message": "b"})).text == "b"
            assert posts(second, "initialize") == []
            assert [r.headers["mcp-protocol-version"] for r in posts(second, "tools/call")] == [
                "2025-11-25"
            ]
            nursery.cancel_scope.cancel()


async def test_an_error_status_fails_only_its_call() -> None:
    def intercept(record: HttpRecord) -> tuple[int, bytes] | None:
        body = json.loads(record.body) if record.body else {}
        if record.jsonrpc_method == "tools/call":
            name = body["params"]["name"]
            if name == "add":
                return 500, b"database on fire"
            if name == "fail":
                error = {"code": -32099, "message": "rejected"}
                return 400, json.dumps(
                    {"jsonrpc": "2.0", "id": body["id"], "error": error}
                ).encode()
        return None

    with trio.fail_after(BOUND):
        async with (
            serving(intercept=intercept) as server,
            client_for(HttpParameters(server.url, name="flaky")) as client,
        ):
            with pytest.raises(TransportBrokenError) as info:
                await client.call_tool("add", {"a": 1, "b": 2})
            assert "'flaky'" in str(info.value) and "500" in str(info.value)
            assert "database on fire" in str(info.value)
            with pytest.raises(McpError) as rpc:
                await client.call_tool("fail")
            assert rpc.value.code == -32099
            assert (await client.call_tool("echo", {"message": "ok"})).text == "ok"
            assert client.connected


async def test_unauthorized_raises_a_typed_error_without_the_token() -> None:
    with trio.fail_after(BOUND):
        async with serving(require_token=TOKEN) as server:
            with pytest.raises(TransportAuthError) as info:
                async with client_for(HttpParameters(server.url, name="guarded")):
                    pass
            assert info.value.status == 401 and info.value.server == "guarded"
            assert info.value.www_authenticate == 'Bearer realm="mcp"'
            with pytest.raises(TransportAuthError) as wrong:
                async with client_for(HttpParameters(server.url, auth_token="wrong-token")):
                    pass
            assert "wrong-token" not in str(wrong.value)


async def test_the_token_never_leaves_its_origin_on_a_redirect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(BOUND):
        async with (
            serving(require_token=TOKEN) as target,
            # Another port is another origin.
            serving(redirect_to=f"http://127.0.0.1:{target.port}") as redirector,
        ):
            params = HttpParameters(redirector.url, name="moved", auth_token=TOKEN)
            with pytest.raises(TransportAuthError):
                async with client_for(params):
                    pass
            assert redirector.log[0].headers["authorization"] == f"Bearer {TOKEN}"
            assert target.log, "the redirect was not followed"
            assert all("authorization" not in r.headers for r in target.log)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(params)


async def test_a_same_origin_redirect_keeps_the_token() -> None:
    with trio.fail_after(BOUND):
        async with serving(require_token=TOKEN, moved={"/old": "/mcp"}) as server:
            params = HttpParameters(f"http://127.0.0.1:{server.port}/old", auth_token=TOKEN)
            async with client_for(params) as client:
                assert (await client.call_tool("echo", {"message": "moved"})).text == "moved"
            assert any(r.path == "/old" for r in server.log)


async def test_legacy_sse_is_detected_automatically_and_can_be_forced() -> None:
    with trio.fail_after(BOUND):
        async with serving(legacy=True) as server:
            async with client_for(HttpParameters(server.url, auth_token=TOKEN)) as client:
                transport = client.transport
                assert isinstance(transport, HttpTransport)
                assert transport.mode == "sse"
                assert transport.endpoint is not None and "/messages" in transport.endpoint
                assert (await client.call_tool("echo", {"message": "old"})).text == "old"
            methods = [(r.method, r.path.split("?")[0]) for r in server.log]
            assert methods[:2] == [("POST", "/sse"), ("GET", "/sse")]
            assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in server.log)
            server.log.clear()
            params = HttpParameters(server.url, transport="sse")
            async with client_for(params) as client:
                assert (await client.call_tool("echo", {"message": "forced"})).text == "forced"
            assert server.log[0].method == "GET"


async def test_a_legacy_endpoint_on_another_origin_is_refused() -> None:
    with trio.fail_after(BOUND):
        async with serving(legacy=True) as server:

            async def elsewhere(ex: Any) -> bool:
                await ex.start(200, "text/event-stream", [])
                await ex.data(b"event: endpoint\ndata: http://127.0.0.2:9/messages\n\n")
                await trio.sleep_forever()

            server._legacy_stream = elsewhere  # type: ignore[method-assign]
            with pytest.raises(ProtocolError, match="another origin"):
                async with client_for(HttpParameters(server.url, transport="sse")):
                    pass


async def test_neither_transport_answering_is_a_clear_error() -> None:
    def not_found(record: HttpRecord) -> tuple[int, bytes] | None:
        return 404, b"nothing here"

    with trio.fail_after(BOUND):
        async with serving(intercept=not_found) as server:
            with pytest.raises(TransportBrokenError) as info:
                async with client_for(HttpParameters(server.url, name="void")):
                    pass
            assert "neither Streamable HTTP" in str(info.value) and "'void'" in str(info.value)


async def test_a_refused_connection_is_a_broken_transport_naming_the_server() -> None:
    async with serving() as server:
        url = server.url
    with trio.fail_after(BOUND), pytest.raises(TransportBrokenError) as info:
        async with client_for(HttpParameters(url, name="gone")):
            pass
    assert "'gone'" in str(info.value)


async def test_a_borrowed_client_is_not_closed() -> None:
    with trio.fail_after(BOUND):
        async with serving() as server, httpx2.AsyncClient() as http:
            params = HttpParameters(server.url, http_client=http)
            async with client_for(params) as client:
                assert (await client.call_tool("echo", {"message": "b"})).text == "b"
            assert not http.is_closed
            response = await http.get(f"http://127.0.0.1:{server.port}/elsewhere")
            assert response.status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"url": "ftp://example.com/mcp"}, "http:// or https://"),
        ({"url": 42}, "must be a string"),
        ({"url": "http://x/mcp", "headers": {"Mcp-Session-Id": "x"}}, "set by the transport"),
        ({"url": "http://x/mcp", "headers": {"X-A": "a\nb"}}, "line breaks"),
        ({"url": "http://x/mcp", "auth_token": ""}, "auth_token"),
        ({"url": "http://x/mcp", "transport": "carrier-pigeon"}, "transport must be"),
        ({"url": "http://x/mcp", "timeout": 0}, "timeout"),
        ({"url": "http://x/mcp", "max_message_size": -1}, "max_message_size"),
    ],
)
def test_bad_parameters_are_config_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        HttpParameters(**kwargs)


def test_secrets_stay_out_of_the_repr() -> None:
    params = HttpParameters(
        "https://user:pw@example.com/mcp?key=abc",
        auth_token=TOKEN,
        headers={"X-Api-Key": "hidden-value"},
    )
    shown = repr(params)
    assert TOKEN not in shown and "hidden-value" not in shown and "X-Api-Key" in shown
    with pytest.raises(ConfigError) as info:
        HttpParameters("ftp://user:pw@example.com/x?key=abc")
    assert "pw" not in str(info.value) and "abc" not in str(info.value)


async def test_calls_after_close_raise_closed_and_nothing_is_left_running() -> None:
    from opex_trio.errors import TransportClosedError

    with trio.fail_after(BOUND):
        async with serving() as server:
            async with client_for(HttpParameters(server.url)) as client:
                await client.ping()
            with pytest.raises(TransportClosedError):
                await client.call_tool("echo", {"message": "late"})


async def test_an_expired_legacy_session_is_renewed_on_a_new_stream() -> None:
    with trio.fail_after(BOUND):
        async with serving(legacy=True, expire_after=2) as server:
            async with client_for(HttpParameters(server.url, name="old-style")) as client:
                # initialize and initialized were the first two POSTs; the third is
                # refused with a 404, so it is sent again in a new session.
                assert (await client.call_tool("echo", {"message": "a"})).text == "a"
                assert (await client.call_tool("echo", {"message": "b"})).text == "b"
            streams = [r for r in server.log if r.method == "GET"]
            assert len(streams) == 2


async def test_forcing_streamable_http_does_not_fall_back() -> None:
    with trio.fail_after(BOUND):
        async with serving(legacy=True) as server:
            params = HttpParameters(server.url, name="strict", transport="streamable-http")
            with pytest.raises(TransportBrokenError, match="405"):
                async with client_for(params):
                    pass
            assert [r.method for r in server.log] == ["POST"]

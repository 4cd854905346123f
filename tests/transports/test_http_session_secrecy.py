"""A Streamable HTTP session id is a credential: it never shows in errors, logs or reprs.

Each test runs a real loopback server that echoes the id back in its error
bodies, as some servers do, and checks every error the client raises and
every record logged at WARNING or above.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from urllib.parse import parse_qs, urlsplit

import pytest
import trio

from opex_trio.errors import SessionExpiredError, TransportError
from opex_trio.mcp.client import McpClient
from opex_trio.testing.http_server import HttpRecord, McpHttpServer
from opex_trio.testing.mcp_server import builtin_server
from opex_trio.transports.base import Transport
from opex_trio.transports.http import HttpParameters, HttpTransport, open_http_transport

BOUND = 60


def client_for(url: str) -> McpClient:
    def factory() -> AbstractAsyncContextManager[Transport]:
        return open_http_transport(HttpParameters(url, name="remote"))

    return McpClient(factory, name="remote")


class Echoing:
    """An intercept that answers requests of ``session`` with ``status`` and a body naming it."""

    def __init__(self) -> None:
        self.session: str | None = None
        self.status = 404
        self.hits = 0

    def __call__(self, record: HttpRecord) -> tuple[int, bytes] | None:
        if self.session is None or record.headers.get("mcp-session-id") != self.session:
            return None
        self.hits += 1
        return self.status, f'{{"error": "no session {self.session} here"}}'.encode()


def shown(error: BaseException) -> str:
    return f"{error}\n{error!r}\n{error.args!r}"


def leaked(session: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and session in r.getMessage()
    ]


async def test_an_expired_session_id_is_in_no_error_and_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="opex_trio")
    echo = Echoing()
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(McpHttpServer(builtin_server(), intercept=echo).serve)
            async with client_for(server.url) as client:
                transport = client.transport
                assert isinstance(transport, HttpTransport)
                first = transport.session_id
                assert first is not None
                errors: list[BaseException] = []

                async def in_flight() -> None:
                    try:
                        await client.call_tool("sleep", {"seconds": 600}, timeout=None)
                    except SessionExpiredError as exc:
                        errors.append(exc)

                async with trio.open_nursery() as calls:
                    calls.start_soon(in_flight)
                    while not any(r.method == "tools/call" for r in server.mcp.requests):
                        await trio.sleep(0.01)
                    # The server forgets the session and says so, naming the id.
                    server.forget_sessions()
                    echo.session = first
                    assert (await client.call_tool("echo", {"message": "x"})).text == "x"
                (error,) = errors
                assert echo.hits >= 1
                assert "'remote'" in str(error) and "session" in str(error)
                assert first not in shown(error)
                assert first not in repr(transport) and first not in repr(client)
                assert transport.session_id not in (None, first)
            nursery.cancel_scope.cancel()
    assert leaked(first, caplog) == []


@pytest.mark.parametrize("status", [500, 409, 401])
async def test_other_failures_that_echo_the_session_id_do_not_show_it(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="opex_trio")
    echo = Echoing()
    echo.status = status
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(McpHttpServer(builtin_server(), intercept=echo).serve)
            async with client_for(server.url) as client:
                transport = client.transport
                assert isinstance(transport, HttpTransport)
                session = transport.session_id
                assert session is not None
                echo.session = session
                with pytest.raises(TransportError) as info:
                    await client.call_tool("echo", {"message": "x"})
                error = info.value
                # The body is still shown, without the id.
                assert "no session" in str(error) and "<session id>" in str(error)
                assert session not in shown(error)
                echo.session = None
            nursery.cancel_scope.cancel()
    assert leaked(session, caplog) == []


async def test_an_http_sse_session_id_echoed_in_an_error_does_not_show(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="opex_trio")
    armed: list[str] = []

    def echoing(record: HttpRecord) -> tuple[int, bytes] | None:
        query = parse_qs(urlsplit(record.path).query)
        session = (query.get("session_id") or [""])[0]
        if armed and record.method == "POST" and session:
            return 500, f"session {session} is on fire".encode()
        return None

    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                McpHttpServer(builtin_server(), legacy=True, intercept=echoing).serve
            )
            async with client_for(server.url) as client:
                transport = client.transport
                assert isinstance(transport, HttpTransport) and transport.mode == "sse"
                assert transport.endpoint is not None
                (session,) = parse_qs(urlsplit(transport.endpoint).query)["session_id"]
                armed.append(session)
                with pytest.raises(TransportError) as info:
                    await client.call_tool("echo", {"message": "x"})
                assert "on fire" in str(info.value) and "<session id>" in str(info.value)
                assert session not in shown(info.value)
                armed.clear()
            nursery.cancel_scope.cancel()
    assert leaked(session, caplog) == []

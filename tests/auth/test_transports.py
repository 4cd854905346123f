"""OAuth through the real HTTP transports: Streamable HTTP and HTTP+SSE on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trio

from opex_trio.auth import AuthorizationCode, HeadlessRedirect, MemoryTokenStore, OAuth, OAuthConfig
from opex_trio.mcp.client import McpClient
from opex_trio.testing.auth_server import ScriptedAuthServer, open_auth_server
from opex_trio.testing.http_server import HttpRecord, McpHttpServer
from opex_trio.testing.mcp_server import builtin_server
from opex_trio.transports.base import Transport
from opex_trio.transports.http import HttpParameters, open_http_transport

TOKEN = "loopback-access-token-0123456789"


@asynccontextmanager
async def protected(legacy: bool) -> AsyncIterator[tuple[McpHttpServer, ScriptedAuthServer]]:
    """An MCP server that wants ``TOKEN``, and an authorization server that issues it."""
    issuer: list[str] = []

    def metadata(record: HttpRecord) -> tuple[int, bytes] | None:
        if not record.path.startswith("/.well-known/oauth-protected-resource"):
            return None
        return 200, json.dumps({"resource": mcp.url, "authorization_servers": issuer}).encode()

    mcp = McpHttpServer(builtin_server(), legacy=legacy, require_token=TOKEN, intercept=metadata)
    async with trio.open_nursery() as nursery:
        await nursery.start(mcp.serve)
        async with open_auth_server(fixed_token=TOKEN, resource_url=mcp.url) as auth_server:
            issuer.append(auth_server.issuer)
            yield mcp, auth_server
        nursery.cancel_scope.cancel()


def _config(store: MemoryTokenStore) -> OAuthConfig:
    return OAuthConfig(grant=AuthorizationCode(HeadlessRedirect()), store=store)


@pytest.mark.parametrize("legacy", [False, True], ids=["streamable-http", "http-sse"])
async def test_transport_authorizes_and_a_reconnect_reuses_the_token(legacy: bool) -> None:
    store = MemoryTokenStore()
    with trio.fail_after(60):
        async with protected(legacy) as (mcp, auth_server):
            params = HttpParameters(
                mcp.url,
                transport="sse" if legacy else "streamable-http",
                auth=OAuth(_config(store)),
            )

            def factory() -> AbstractAsyncContextManager[Transport]:
                return open_http_transport(params)

            async with McpClient(factory, name="protected") as client:
                assert [tool.name for tool in await client.list_tools()]
            # A new connection (a reconnect, or another process with the same store).
            again = HttpParameters(
                mcp.url,
                transport="sse" if legacy else "streamable-http",
                auth=OAuth(_config(store)),
            )
            async with McpClient(lambda: open_http_transport(again), name="again") as client:
                assert await client.list_tools()
    assert len(auth_server.requests_to("/authorize")) == 1
    assert len(auth_server.requests_to("/token")) == 1
    authorized = [r for r in mcp.log if r.headers.get("authorization") == f"Bearer {TOKEN}"]
    assert authorized

"""OAuth from mcpServers entries, and the session manager's reconnects reusing the token."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import trio

from opex_trio import telemetry
from opex_trio.auth import (
    AuthorizationCode,
    ClientCredentials,
    HeadlessRedirect,
    OAuth,
    OAuthConfig,
)
from opex_trio.errors import ConfigError
from opex_trio.mcp.config import parse_server
from opex_trio.mcp.manager import SessionManager
from opex_trio.testing.auth_server import open_auth_server
from opex_trio.testing.http_server import HttpRecord
from opex_trio.transports.http import HttpParameters
from opex_trio.transports.websocket import WebSocketParameters
from tests.mcp.test_manager_remote import Loopback, options

TOKEN = "manager-access-token-0123456789"


def test_oauth_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_CLIENT_SECRET", "very-secret-value")
    params = parse_server(
        {
            "url": "https://mcp.example/mcp",
            "oauth": {"client_id": "app", "client_secret_env": "MY_CLIENT_SECRET", "scopes": "a b"},
        },
        name="remote",
    )
    assert isinstance(params, HttpParameters) and isinstance(params.auth, OAuth)
    config = params.auth.config
    assert config.client.client_id == "app"
    assert config.client.client_secret == "very-secret-value"
    assert config.scopes == ("a", "b")
    assert isinstance(config.grant, AuthorizationCode)
    assert "very-secret-value" not in repr(params) + repr(config)


def test_flat_keys_and_websocket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S", "s3")
    params = parse_server(
        {
            "url": "wss://mcp.example/ws",
            "client_id": "svc",
            "client_secret_env": "S",
            "oauth": {"grant": "client_credentials"},
        }
    )
    assert isinstance(params, WebSocketParameters) and params.auth is not None
    assert isinstance(params.auth.config.grant, ClientCredentials)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"oauth": {"client_secret_env": "NOT_SET_ANYWHERE_42"}}, "NOT_SET_ANYWHERE_42"),
        ({"oauth": {"grant": "password"}}, "grant"),
        ({"oauth": {"scopes": [1]}}, "scopes"),
        ({"oauth": {"redirect_port": -1}}, "redirect_port"),
        ({"oauth": {"bogus": 1}}, "bogus"),
        ({"oauth": "yes"}, "oauth"),
        ({"oauth": {"grant": "client_credentials"}}, "client_credentials"),
    ],
)
def test_bad_oauth_entries_name_the_field(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_server({"url": "https://mcp.example/mcp", **entry}, name="srv")
    assert "srv" in str(info.value)


def _metadata(
    issuer: list[str], url: Callable[[], str]
) -> Callable[[HttpRecord], tuple[int, bytes] | None]:
    def answer(record: HttpRecord) -> tuple[int, bytes] | None:
        if not record.path.startswith("/.well-known/oauth-protected-resource"):
            return None
        return 200, json.dumps({"resource": url(), "authorization_servers": issuer}).encode()

    return answer


async def test_manager_reconnect_reuses_the_token() -> None:
    issuer: list[str] = []
    seen: list[str] = []
    with trio.fail_after(60), telemetry.subscribe(lambda event: seen.append(repr(event))):
        async with trio.open_nursery() as nursery:
            loop = Loopback(
                "http", nursery, require_token=TOKEN, intercept=_metadata(issuer, lambda: loop.url)
            )
            await loop.start()
            async with open_auth_server(fixed_token=TOKEN, resource_url=loop.url) as auth_server:
                issuer.append(auth_server.issuer)
                config = OAuthConfig(grant=AuthorizationCode(HeadlessRedirect()))
                params = HttpParameters(
                    loop.url, auth=OAuth(config), max_reconnects=1000, reconnect_delay=0.05
                )
                async with SessionManager(options=options()) as mcp:
                    sid = await mcp.add_server(params, name="remote", wait=True, timeout=60)
                    assert (await mcp.call_tool(sid, "echo", {"message": "a"})).text == "a"
                    await loop.stop()
                    await loop.start()  # a new server process: a new session
                    assert (await mcp.call_tool(sid, "echo", {"message": "b"})).text == "b"
                    assert any(
                        r.headers.get("authorization") == f"Bearer {TOKEN}" for r in loop.http.log
                    )
            nursery.cancel_scope.cancel()
    assert len(auth_server.requests_to("/authorize")) == 1
    # Telemetry saw the server come and go, and never a token or a code.
    assert seen
    codes = [r.params["code"] for r in auth_server.requests_to("/token")]
    assert not [event for event in seen if TOKEN in event or any(c in event for c in codes)]

"""Scope selection, step-up, refresh, and a move to another authorization server."""

from __future__ import annotations

import pytest

from opex_trio.auth import ClientIdentity, MemoryTokenStore, OAuthConfig
from opex_trio.testing.auth_server import ScriptedAuthServer

from .support import harness


def _scope(server: ScriptedAuthServer, index: int = 0) -> str | None:
    return server.requests_to("/authorize")[index].params.get("scope")


async def test_scope_from_the_challenge() -> None:
    server = ScriptedAuthServer(challenge_scope="mcp:basic", prm_scopes=("x", "y"))
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
    assert _scope(server) == "mcp:basic"


async def test_scope_from_scopes_supported() -> None:
    server = ScriptedAuthServer(prm_scopes=("mcp:read", "mcp:write"))
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
    assert _scope(server) == "mcp:read mcp:write"


async def test_scope_omitted_when_nothing_says_one() -> None:
    server = ScriptedAuthServer()
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
    assert _scope(server) is None


@pytest.mark.parametrize(("advertised", "expected"), [(True, "a offline_access"), (False, "a")])
async def test_offline_access_only_when_advertised(advertised: bool, expected: str) -> None:
    supported = ("a", "offline_access") if advertised else ("a",)
    server = ScriptedAuthServer(prm_scopes=("a",), scopes_supported=supported)
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
    assert _scope(server) == expected


async def test_step_up_asks_for_the_union() -> None:
    server = ScriptedAuthServer(challenge_scope="mcp:basic", step_up_scope="mcp:write")
    async with harness(server) as h:
        assert (await h.call("tools/list")).status_code == 200
        assert (await h.call("tools/call")).status_code == 200
    assert [_scope(server, 0), _scope(server, 1)] == ["mcp:basic", "mcp:basic mcp:write"]


async def test_step_up_retry_limit() -> None:
    server = ScriptedAuthServer(required_scope="admin", never_grant=frozenset({"admin"}))
    async with harness(server) as h:
        response = await h.call()
    assert response.status_code == 403
    assert len(server.requests_to("/authorize")) == 3


async def test_refresh_before_expiry() -> None:
    server = ScriptedAuthServer(token_lifetime=10)  # inside the refresh margin at once
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
        assert (await h.call()).status_code == 200
    grants = [r.params["grant_type"] for r in server.requests_to("/token")]
    assert grants == ["authorization_code", "refresh_token"]
    assert len(server.requests_to("/authorize")) == 1


async def test_refresh_on_401() -> None:
    server = ScriptedAuthServer()
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
        server.revoke_all()
        assert (await h.call()).status_code == 200
    grants = [r.params["grant_type"] for r in server.requests_to("/token")]
    assert grants == ["authorization_code", "refresh_token"]


async def test_no_refresh_token_means_a_new_authorization() -> None:
    server = ScriptedAuthServer(issue_refresh=False)
    async with harness(server) as h:
        await h.call()
        server.revoke_all()
        assert (await h.call()).status_code == 200
    assert len(server.requests_to("/authorize")) == 2


async def test_authorization_server_migration_registers_again() -> None:
    server = ScriptedAuthServer(issue_refresh=False)
    store = MemoryTokenStore()
    async with harness(server, OAuthConfig(store=store)) as h:
        assert (await h.call()).status_code == 200
        old_client = next(iter(server.clients))
        server.issuer = "https://auth2.example"
        server.revoke_all()
        assert (await h.call()).status_code == 200
    second = [r for r in server.log if r.url.startswith("https://auth2.example")]
    assert any(r.path == "/register" for r in second)
    assert all(r.params.get("client_id") != old_client for r in second)
    credentials = await store.get("https://mcp.example/mcp")
    assert credentials is not None and credentials.issuer == "https://auth2.example"


async def test_preregistered_id_is_not_shown_to_another_issuer() -> None:
    server = ScriptedAuthServer(issuer="https://auth2.example")
    config = OAuthConfig(
        client=ClientIdentity(client_id="for-auth1", issuer="https://auth1.example")
    )
    async with harness(server, config) as h:
        assert (await h.call()).status_code == 200
    assert all(r.params.get("client_id") != "for-auth1" for r in server.log)

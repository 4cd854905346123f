"""Discovery: where the client looks for metadata, in which order, and what it refuses."""

from __future__ import annotations

import pytest

from opex_trio.auth import parse_challenges
from opex_trio.auth.metadata import (
    authorization_server_metadata_urls,
    protected_resource_metadata_urls,
    resource_matches,
)
from opex_trio.errors import AuthorizationError, IssuerMismatchError, ResourceMismatchError
from opex_trio.testing.auth_server import ScriptedAuthServer

from .support import harness


def test_challenge_parameters_are_parsed() -> None:
    [challenge] = parse_challenges(
        'Bearer error="insufficient_scope", scope="a b", resource_metadata="https://x/y"'
    )
    assert challenge.scheme == "Bearer"
    assert challenge.error == "insufficient_scope"
    assert challenge.scope == "a b"
    assert challenge.resource_metadata == "https://x/y"
    assert parse_challenges('DPoP error="use_dpop_nonce"')[0].error == "use_dpop_nonce"
    assert parse_challenges("") == []


def test_well_known_orders() -> None:
    assert protected_resource_metadata_urls("https://m.example/a/mcp") == [
        "https://m.example/.well-known/oauth-protected-resource/a/mcp",
        "https://m.example/.well-known/oauth-protected-resource",
    ]
    assert authorization_server_metadata_urls("https://a.example/tenant1") == [
        "https://a.example/.well-known/oauth-authorization-server/tenant1",
        "https://a.example/.well-known/openid-configuration/tenant1",
        "https://a.example/tenant1/.well-known/openid-configuration",
    ]
    assert authorization_server_metadata_urls("https://a.example") == [
        "https://a.example/.well-known/oauth-authorization-server",
        "https://a.example/.well-known/openid-configuration",
    ]


def test_resource_match_rules() -> None:
    assert resource_matches("https://m.example/mcp", "https://m.example/mcp")
    assert resource_matches("https://m.example", "https://m.example/mcp")
    assert not resource_matches("https://evil.example/mcp", "https://m.example/mcp")
    assert not resource_matches("https://m.example/other", "https://m.example/mcp")
    assert not resource_matches("https://m.example/mc", "https://m.example/mcp")


async def test_challenge_url_is_used_first() -> None:
    server = ScriptedAuthServer(prm_location="challenge")
    async with harness(server) as h:
        response = await h.call()
    assert response.status_code == 200
    prm = [r.url for r in server.log if "oauth-protected-resource" in r.url]
    assert prm == ["https://mcp.example/.well-known/oauth-protected-resource/mcp"]


async def test_protected_resource_metadata_path_then_root() -> None:
    server = ScriptedAuthServer(prm_location="root")
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
    prm = [r.url for r in server.log if "oauth-protected-resource" in r.url]
    assert prm == [
        "https://mcp.example/.well-known/oauth-protected-resource/mcp",
        "https://mcp.example/.well-known/oauth-protected-resource",
    ]


@pytest.mark.parametrize(
    ("style", "found_at"),
    [("oauth", 1), ("oidc", 2)],
)
async def test_authorization_server_metadata_order_with_path(style: str, found_at: int) -> None:
    server = ScriptedAuthServer(issuer="https://auth.example/tenant1", metadata_style=style)  # type: ignore[arg-type]
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
    asked = [
        r.url
        for r in server.log
        if r.url.startswith("https://auth.example/") and "well-known" in r.url
    ]
    assert asked == authorization_server_metadata_urls("https://auth.example/tenant1")[:found_at]


async def test_no_authorization_server_metadata_is_refused() -> None:
    server = ScriptedAuthServer(metadata_style=None)
    async with harness(server) as h:
        with pytest.raises(AuthorizationError) as info:
            await h.call()
    assert info.value.reason == "discovery"
    assert not server.requests_to("/authorize")


async def test_2025_03_26_metadata_at_the_server_origin() -> None:
    server = ScriptedAuthServer(issuer="https://mcp.example", prm_location=None)
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
    assert server.requests_to("/.well-known/oauth-authorization-server")
    assert server.requests_to("/token")


async def test_2025_03_26_default_endpoints_without_metadata() -> None:
    server = ScriptedAuthServer(
        issuer="https://mcp.example", prm_location=None, metadata_style=None
    )
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
    assert [r.path for r in server.log if r.path in ("/register", "/authorize", "/token")] == [
        "/register",
        "/authorize",
        "/token",
    ]


async def test_metadata_issuer_mismatch_is_refused() -> None:
    server = ScriptedAuthServer(metadata_issuer="https://attacker.example")
    async with harness(server) as h:
        with pytest.raises(IssuerMismatchError, match=r"attacker\.example"):
            await h.call()
    assert not server.requests_to("/register")
    assert not server.requests_to("/authorize")


async def test_resource_mismatch_is_refused_before_authorization() -> None:
    server = ScriptedAuthServer(prm_resource="https://evil.example/mcp")
    async with harness(server) as h:
        with pytest.raises(ResourceMismatchError, match=r"evil\.example"):
            await h.call()
    assert not server.requests_to("/authorize")
    assert not [r for r in server.log if r.url.startswith("https://auth.example")]


async def test_resource_parameter_is_the_published_one() -> None:
    server = ScriptedAuthServer(prm_location="root", prm_resource="https://mcp.example")
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
    assert server.requests_to("/authorize")[0].params["resource"] == "https://mcp.example"
    assert server.requests_to("/token")[0].params["resource"] == "https://mcp.example"

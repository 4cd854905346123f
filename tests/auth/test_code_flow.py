"""The authorization-code flow: PKCE, state, iss, client identity, token endpoint authentication."""

from __future__ import annotations

import base64

import pytest

from opex_trio.auth import AuthorizationCode, ClientIdentity, OAuthConfig
from opex_trio.auth.crypto import Pkce
from opex_trio.errors import AuthorizationError, IssuerMismatchError
from opex_trio.testing.auth_server import ScriptedAuthServer

from .support import harness


async def test_pkce_s256_state_and_resource_are_sent() -> None:
    server = ScriptedAuthServer()
    async with harness(server) as h:
        response = await h.call()
    assert response.status_code == 200
    [authorize] = server.requests_to("/authorize")
    [token] = server.requests_to("/token")
    assert authorize.params["code_challenge_method"] == "S256"
    assert authorize.params["state"]
    assert authorize.params["resource"] == "https://mcp.example/mcp"
    assert token.params["grant_type"] == "authorization_code"
    assert Pkce("x", "y").challenge == "y"
    # The server checked the verifier against the challenge; a wrong one would be a 400.
    assert token.params["code_verifier"]
    assert h.auth.authorizations == 1


async def test_second_request_reuses_the_token() -> None:
    server = ScriptedAuthServer()
    async with harness(server) as h:
        await h.call()
        await h.call()
    assert len(server.requests_to("/authorize")) == 1
    assert len([r for r in server.log if r.path == "/mcp"]) == 3


async def test_refused_without_s256() -> None:
    server = ScriptedAuthServer(pkce_methods=("plain",))
    async with harness(server) as h:
        with pytest.raises(AuthorizationError) as info:
            await h.call()
    assert info.value.reason == "pkce"
    assert not server.requests_to("/authorize")


async def test_refused_without_advertised_pkce() -> None:
    server = ScriptedAuthServer(pkce_methods=None)
    async with harness(server) as h:
        with pytest.raises(AuthorizationError, match="PKCE"):
            await h.call()


async def test_state_mismatch_is_refused() -> None:
    server = ScriptedAuthServer(state_in_redirect="wrong")
    async with harness(server) as h:
        with pytest.raises(AuthorizationError) as info:
            await h.call()
    assert info.value.reason == "state"
    assert not server.requests_to("/token")


@pytest.mark.parametrize(
    ("supported", "sent"),
    [(True, "wrong"), (True, "omit"), (True, "normalized"), (False, "wrong")],
)
async def test_iss_refusals(supported: bool, sent: str) -> None:
    server = ScriptedAuthServer(iss_supported=supported, iss_in_redirect=sent)  # type: ignore[arg-type]
    async with harness(server) as h:
        with pytest.raises(IssuerMismatchError):
            await h.call()
    assert not server.requests_to("/token")


async def test_iss_absent_and_not_advertised_is_accepted() -> None:
    server = ScriptedAuthServer(iss_supported=False, iss_in_redirect="omit")
    async with harness(server) as h:
        assert (await h.call()).status_code == 200


async def test_unexpected_redirect_origin_is_refused() -> None:
    server = ScriptedAuthServer(redirect_location="https://evil.example/callback")
    async with harness(server) as h:
        with pytest.raises(AuthorizationError) as info:
            await h.call()
    assert info.value.reason == "redirect"
    assert not [r for r in server.log if "evil.example" in r.url]


def _basic(header: str) -> tuple[str, str]:
    user, _, secret = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
    return user, secret


@pytest.mark.parametrize("method", ["none", "client_secret_basic", "client_secret_post"])
async def test_dynamic_registration_and_token_endpoint_auth(method: str) -> None:
    server = ScriptedAuthServer(auth_methods=(method,))
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
    [registration] = server.requests_to("/register")
    assert registration.params["token_endpoint_auth_method"] == method
    assert registration.params["application_type"] == "native"
    [token] = server.requests_to("/token")
    client_id = next(iter(server.clients))
    if method == "client_secret_basic":
        assert _basic(token.headers["authorization"]) == (client_id, server.clients[client_id])
        assert "client_secret" not in token.params
    elif method == "client_secret_post":
        assert token.params["client_secret"] == server.clients[client_id]
        assert "authorization" not in token.headers
    else:
        assert token.params["client_id"] == client_id
        assert "client_secret" not in token.params


async def test_pre_registration_is_used_without_registering() -> None:
    server = ScriptedAuthServer(
        registration=False,
        auth_methods=("client_secret_basic",),
        preregistered={"pre-id": "pre-secret"},
    )
    config = OAuthConfig(
        grant=AuthorizationCode(),
        client=ClientIdentity(
            client_id="pre-id", client_secret="pre-secret", issuer="https://auth.example"
        ),
    )
    async with harness(server, config) as h:
        assert (await h.call()).status_code == 200
    assert _basic(server.requests_to("/token")[0].headers["authorization"]) == (
        "pre-id",
        "pre-secret",
    )


async def test_no_identity_and_no_registration_is_refused() -> None:
    server = ScriptedAuthServer(registration=False)
    async with harness(server) as h:
        with pytest.raises(AuthorizationError) as info:
            await h.call()
    assert info.value.reason == "registration"


async def test_client_id_metadata_document_when_advertised() -> None:
    url = "https://app.example/client.json"
    server = ScriptedAuthServer(cimd=True)
    config = OAuthConfig(client=ClientIdentity(client_metadata_url=url))
    async with harness(server, config) as h:
        assert (await h.call()).status_code == 200
    assert not server.requests_to("/register")
    assert server.requests_to("/authorize")[0].params["client_id"] == url


async def test_client_id_metadata_document_not_used_when_not_advertised() -> None:
    server = ScriptedAuthServer(cimd=False)
    config = OAuthConfig(client=ClientIdentity(client_metadata_url="https://app.example/c.json"))
    async with harness(server, config) as h:
        assert (await h.call()).status_code == 200
    assert server.requests_to("/register")


async def test_concurrent_refusals_share_one_authorization() -> None:
    import trio

    server = ScriptedAuthServer()
    statuses: list[int] = []
    async with harness(server) as h:

        async def call() -> None:
            statuses.append((await h.call()).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(call)
    assert statuses == [200] * 5
    assert len(server.requests_to("/authorize")) == 1

"""The grants besides the code flow, and DPoP."""

from __future__ import annotations

import base64
import json

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from opex_trio.auth import (
    ClientCredentials,
    ClientIdentity,
    EnterpriseManaged,
    JwtBearer,
    OAuthConfig,
)
from opex_trio.errors import AuthorizationError
from opex_trio.testing.auth_server import ScriptedAuthServer

from .support import harness


async def test_client_credentials_with_a_secret() -> None:
    server = ScriptedAuthServer(auth_methods=("client_secret_basic",), preregistered={"svc": "s3"})
    config = OAuthConfig(
        grant=ClientCredentials(), client=ClientIdentity(client_id="svc", client_secret="s3")
    )
    async with harness(server, config) as h:
        assert (await h.call()).status_code == 200
    [token] = server.requests_to("/token")
    assert token.params["grant_type"] == "client_credentials"
    assert not server.requests_to("/authorize")


async def test_client_credentials_with_private_key_jwt() -> None:
    key = ECKey.generate_key("P-256")
    pem = key.as_pem(private=True).decode()
    server = ScriptedAuthServer(auth_methods=("private_key_jwt",), preregistered={"svc": None})  # type: ignore[dict-item]
    config = OAuthConfig(
        grant=ClientCredentials(), client=ClientIdentity(client_id="svc", private_key_pem=pem)
    )
    async with harness(server, config) as h:
        assert (await h.call()).status_code == 200
    [token] = server.requests_to("/token")
    assert token.params["client_assertion_type"].endswith("jwt-bearer")
    claims = jwt.decode(
        token.params["client_assertion"], ECKey.import_key(key.as_dict(private=False))
    ).claims
    assert claims["iss"] == claims["sub"] == "svc"
    assert claims["aud"] == "https://auth.example"


async def test_refused_token_request_names_no_secret() -> None:
    server = ScriptedAuthServer(
        auth_methods=("client_secret_basic",), preregistered={"svc": "right"}
    )
    config = OAuthConfig(
        grant=ClientCredentials(),
        client=ClientIdentity(client_id="svc", client_secret="wrong-secret-value"),
    )
    async with harness(server, config) as h:
        with pytest.raises(AuthorizationError) as info:
            await h.call()
    assert info.value.reason == "token"
    assert "invalid_client" in str(info.value)
    assert "wrong-secret-value" not in str(info.value)


async def test_workload_identity_jwt_bearer() -> None:
    server = ScriptedAuthServer(registration=False)
    config = OAuthConfig(
        grant=JwtBearer("workload.jwt.value"), client=ClientIdentity(client_id="w")
    )
    async with harness(server, config) as h:
        assert (await h.call()).status_code == 200
    [token] = server.requests_to("/token")
    assert token.params["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert token.params["assertion"] == "workload.jwt.value"
    assert token.params["client_id"] == "w"


async def test_enterprise_managed_token_exchange_then_jwt_bearer() -> None:
    server = ScriptedAuthServer(auth_methods=("client_secret_basic",), preregistered={"app": "sec"})
    config = OAuthConfig(
        grant=EnterpriseManaged(
            id_token="idp.id.token",
            idp_token_endpoint="https://auth.example/idp/token",
            idp_client_id="idp-app",
        ),
        client=ClientIdentity(client_id="app", client_secret="sec"),
    )
    async with harness(server, config) as h:
        assert (await h.call()).status_code == 200
    exchange, bearer = server.requests_to("/idp/token")[0], server.requests_to("/token")[0]
    assert exchange.params["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert exchange.params["subject_token"] == "idp.id.token"
    assert exchange.params["requested_token_type"] == "urn:ietf:params:oauth:token-type:id-jag"
    assert exchange.params["audience"] == "https://auth.example"
    assert exchange.params["resource"] == "https://mcp.example/mcp"
    assert bearer.params["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert bearer.params["assertion"].startswith("id-jag-")


def _header(proof: str) -> dict[str, object]:
    return json.loads(base64.urlsafe_b64decode(proof.split(".")[0] + "=="))  # type: ignore[no-any-return]


@pytest.mark.parametrize("nonce", [False, True])
async def test_dpop_bound_tokens(nonce: bool) -> None:
    server = ScriptedAuthServer(dpop=True, dpop_nonce=nonce)
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
        assert (await h.call()).status_code == 200
    tokens = server.requests_to("/token")
    assert all(r.headers.get("dpop") for r in tokens)
    assert len(tokens) == (2 if nonce else 1)  # one retry with the server's nonce
    used = [r for r in server.log if r.path == "/mcp" and "authorization" in r.headers]
    assert all(r.headers["authorization"].startswith("DPoP ") for r in used)
    proofs = [r.headers["dpop"] for r in used]
    assert len(set(proofs)) == len(proofs)  # a fresh proof every time
    assert "d" not in _header(proofs[0])["jwk"]  # type: ignore[operator]


async def test_dpop_off_when_not_advertised() -> None:
    server = ScriptedAuthServer()
    async with harness(server) as h:
        assert (await h.call()).status_code == 200
    assert "dpop" not in server.requests_to("/token")[0].headers

"""One grant at the token endpoint, once discovery and registration are done.

The authorization-code login lives here too: PKCE (S256) and ``state`` for the
request sent to the user's browser, and the checks of the redirect's answer
(state, RFC 9207 ``iss``, error, code) before its code is exchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import attrs

from ..errors import AuthorizationError, IssuerMismatchError
from ._exchange import Exchange
from .config import (
    AuthorizationCode,
    ClientCredentials,
    EnterpriseManaged,
    JwtBearer,
    OAuthConfig,
)
from .crypto import DPoPKey, Pkce, new_state
from .metadata import AuthServerMetadata, ProtectedResourceMetadata, check_secure
from .tokens import ClientRegistration, Token

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@attrs.frozen
class _Target:
    """Where one authorization happens: the resource indicator and the server's metadata."""

    resource: str
    metadata: AuthServerMetadata
    protected: ProtectedResourceMetadata | None


async def run_grant(
    exchange: Exchange,
    config: OAuthConfig,
    target: _Target,
    client: ClientRegistration,
    scope: str | None,
    dpop: DPoPKey | None,
    *,
    server: str | None,
) -> Token:
    """Run ``config``'s grant against ``target`` and return the token it brings."""
    grant = config.grant
    metadata = target.metadata
    base: dict[str, str] = {"resource": target.resource}
    if scope:
        base["scope"] = scope
    common: dict[str, Any] = {
        "client": client,
        "audience": metadata.issuer,
        "private_key_pem": config.client.private_key_pem,
        "signing_algorithm": config.client.signing_algorithm,
        "dpop": dpop,
        "requested_scope": scope,
    }
    if isinstance(grant, AuthorizationCode):
        code, verifier, redirect_uri = await _authorization_code(
            grant, target, client, scope, server=server
        )
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            **base,
        }
        return await exchange.token(
            metadata.token_endpoint, form, what="authorization code", **common
        )
    if isinstance(grant, ClientCredentials):
        form = {"grant_type": "client_credentials", **base}
        return await exchange.token(
            metadata.token_endpoint, form, what="client credentials", **common
        )
    if isinstance(grant, JwtBearer):
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": grant.assertion, **base}
        return await exchange.token(metadata.token_endpoint, form, what="JWT bearer", **common)
    assert isinstance(grant, EnterpriseManaged)
    check_secure(grant.idp_token_endpoint, "identity provider token endpoint")
    assertion = await exchange.exchange_id_token(
        grant.idp_token_endpoint,
        id_token=grant.id_token,
        audience=metadata.issuer,
        resource=target.resource,
        scope=scope,
        idp_client_id=grant.idp_client_id,
        idp_client_secret=grant.idp_client_secret,
    )
    form = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion, **base}
    return await exchange.token(metadata.token_endpoint, form, what="JWT bearer", **common)


async def _authorization_code(
    grant: AuthorizationCode,
    target: _Target,
    client: ClientRegistration,
    scope: str | None,
    *,
    server: str | None,
) -> tuple[str, str, str]:
    metadata = target.metadata
    if metadata.discovered and "S256" not in (metadata.code_challenge_methods_supported or ()):
        raise AuthorizationError(
            f"the authorization server {metadata.issuer!r} does not advertise PKCE with S256 "
            "(code_challenge_methods_supported); refusing the authorization-code flow",
            reason="pkce",
            server=server,
        )
    if metadata.authorization_endpoint is None:
        raise AuthorizationError(
            f"the authorization server {metadata.issuer!r} has no authorization_endpoint",
            reason="discovery",
            server=server,
        )
    pkce = Pkce.new()
    state = new_state()
    redirect_uri = grant.redirect.redirect_uri
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "state": state,
        "resource": target.resource,
    }
    if scope:
        params["scope"] = scope
    endpoint = metadata.authorization_endpoint
    url = endpoint + ("&" if urlsplit(endpoint).query else "?") + urlencode(params)
    answer = await grant.redirect.authorize(url)
    _check_answer(answer, state, metadata, server=server)
    return answer["code"], pkce.verifier, redirect_uri


def _check_answer(
    answer: Mapping[str, str], state: str, metadata: AuthServerMetadata, *, server: str | None
) -> None:
    if answer.get("state") != state:
        raise AuthorizationError(
            "the authorization response's state does not match the request's; refusing it",
            reason="state",
            server=server,
        )
    iss = answer.get("iss")
    if iss is None and metadata.authorization_response_iss_parameter_supported:
        raise IssuerMismatchError(
            f"the authorization server {metadata.issuer!r} advertises the iss parameter "
            "(RFC 9207) but its response has none; refusing it",
            reason="issuer",
            server=server,
        )
    if iss is not None and iss != metadata.issuer:
        raise IssuerMismatchError(
            f"the authorization response comes from issuer {iss!r}, not {metadata.issuer!r} "
            "(RFC 9207); refusing it",
            reason="issuer",
            server=server,
        )
    if "error" in answer:
        description = answer.get("error_description", "")
        raise AuthorizationError(
            f"the authorization server {metadata.issuer!r} refused: {answer['error'][:100]}"
            + (f" ({description[:200]})" if description else ""),
            reason="denied",
            server=server,
        )
    if not answer.get("code"):
        raise AuthorizationError(
            "the authorization response carries no code", reason="authorize", server=server
        )

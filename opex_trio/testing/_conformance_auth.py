"""The authorization half of the conformance client: an OAuth setup per ``auth/*`` scenario.

The suite passes what a real deployment would configure (pre-registered
client IDs and secrets, a private key, an identity provider's ID token, a
workload token) in ``MCP_CONFORMANCE_CONTEXT``; :func:`oauth_for` turns it
into an :class:`~opex_trio.auth.OAuthConfig`. Every scenario's authorization
server approves without a person, so the redirect is followed headless.
Scenarios that need nothing from the context use the authorization-code flow
with a Client ID Metadata Document URL where the server supports one, and
Dynamic Client Registration where it does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..auth import (
    AuthorizationCode,
    ClientCredentials,
    ClientIdentity,
    EnterpriseManaged,
    HeadlessRedirect,
    JwtBearer,
    OAuth,
    OAuthConfig,
)
from ..auth.config import Grant

__all__ = ["CLIENT_METADATA_URL", "oauth_for"]

#: The Client ID Metadata Document URL the suite expects a client to present.
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"
REDIRECT_URI = "http://localhost:3000/callback"


def _text(context: Mapping[str, Any], key: str) -> str | None:
    value = context.get(key)
    return value if isinstance(value, str) and value else None


def oauth_for(scenario: str, context: Mapping[str, Any], url: str) -> OAuth | None:
    """The OAuth client for ``scenario``, or ``None`` when it is no authorization scenario."""
    if not scenario.startswith("auth/"):
        return None
    client_id = _text(context, "client_id")
    identity = ClientIdentity(
        client_id=client_id,
        client_secret=_text(context, "client_secret"),
        issuer=_text(context, "issuer"),
        client_metadata_url=CLIENT_METADATA_URL,
        private_key_pem=_text(context, "private_key_pem"),
        signing_algorithm=_text(context, "signing_algorithm") or "ES256",
        client_name="opex-trio-conformance-client",
    )
    grant: Grant
    if _text(context, "idp_id_token") and _text(context, "idp_token_endpoint"):
        grant = EnterpriseManaged(
            id_token=context["idp_id_token"],
            idp_token_endpoint=context["idp_token_endpoint"],
            idp_client_id=_text(context, "idp_client_id"),
        )
    elif _text(context, "valid_jwt"):
        grant = JwtBearer(context["valid_jwt"])
    elif scenario.startswith("auth/client-credentials"):
        grant = ClientCredentials()
    else:
        grant = AuthorizationCode(HeadlessRedirect(REDIRECT_URI))
    return OAuth(OAuthConfig(grant=grant, client=identity), server_url=url, name=scenario)

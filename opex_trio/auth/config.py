"""What the program tells the OAuth client: who it is, which grant to use, where to keep tokens."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import attrs

from ..errors import ConfigError
from .redirect import HeadlessRedirect, RedirectHandler
from .tokens import MemoryTokenStore, TokenStore

__all__ = [
    "AuthorizationCode",
    "ClientCredentials",
    "ClientIdentity",
    "EnterpriseManaged",
    "Grant",
    "JwtBearer",
    "OAuthConfig",
]

AuthMethod = Literal["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")


@attrs.frozen
class ClientIdentity:
    """Who the client is at the authorization server.

    Leave everything empty to register dynamically (RFC 7591) wherever the
    server allows it. ``client_id`` (with ``client_secret`` or
    ``private_key_pem``) is a pre-registration; ``issuer`` limits it to the
    authorization server that issued it, so it is never shown to another one.
    ``client_metadata_url`` is a Client ID Metadata Document URL, used as the
    client ID where the server advertises support. ``auth_method`` forces the
    token endpoint authentication; by default it follows the server's list.
    """

    client_id: str | None = None
    client_secret: str | None = attrs.field(default=None, repr=False)
    issuer: str | None = None
    client_metadata_url: str | None = None
    private_key_pem: str | None = attrs.field(default=None, repr=False)
    signing_algorithm: str = "ES256"
    auth_method: AuthMethod | None = attrs.field(default=None)
    client_name: str = "opex-trio"

    @auth_method.validator
    def _check_method(self, attribute: object, value: object) -> None:
        if value is not None and value not in _AUTH_METHODS:
            raise ConfigError(f"auth_method must be one of {list(_AUTH_METHODS)}, got {value!r}")


@attrs.frozen
class AuthorizationCode:
    """The authorization-code grant with PKCE: a person approves in a browser."""

    redirect: RedirectHandler = attrs.field(factory=HeadlessRedirect)


@attrs.frozen
class ClientCredentials:
    """The client-credentials grant: the client acts for itself (needs a secret or a key)."""


@attrs.frozen
class JwtBearer:
    """The JWT-bearer grant (RFC 7523) with a workload identity token as the assertion."""

    assertion: str = attrs.field(repr=False)


@attrs.frozen
class EnterpriseManaged:
    """Enterprise-managed authorization: token exchange, then the JWT-bearer grant.

    The identity provider's ID token is exchanged (RFC 8693) for an identity
    assertion grant, which the authorization server's JWT-bearer grant turns
    into an access token.
    """

    id_token: str = attrs.field(repr=False)
    idp_token_endpoint: str
    idp_client_id: str | None = None
    idp_client_secret: str | None = attrs.field(default=None, repr=False)


Grant = AuthorizationCode | ClientCredentials | JwtBearer | EnterpriseManaged
"""Any of the grants an :class:`OAuthConfig` takes."""


def _scopes(value: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(value.split()) if isinstance(value, str) else tuple(value)


@attrs.frozen
class OAuthConfig:
    """How :class:`~opex_trio.auth.OAuth` gets tokens for one MCP server.

    ``scopes`` overrides the scope selection (by default: the ``scope`` of the
    server's challenge, else its ``scopes_supported``, else none).
    ``dpop``: ``True`` always binds tokens with DPoP, ``False`` never, ``None``
    when the authorization server advertises it. ``max_authorizations`` bounds
    the authorizations one request may trigger (a server that keeps asking for
    more scope is not followed forever). ``resource_metadata_url`` is where the
    protected-resource metadata is when the server's challenge does not say
    (by default the RFC 9728 well-known locations on the server's origin).
    """

    grant: Grant = attrs.field(factory=AuthorizationCode)
    client: ClientIdentity = attrs.field(factory=ClientIdentity)
    scopes: tuple[str, ...] | None = attrs.field(default=None, converter=_scopes)
    dpop: bool | None = None
    resource_metadata_url: str | None = None
    store: TokenStore = attrs.field(factory=MemoryTokenStore)
    max_authorizations: int = attrs.field(default=3)

    @max_authorizations.validator
    def _check_max(self, attribute: object, value: object) -> None:
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"max_authorizations must be a positive integer, got {value!r}")

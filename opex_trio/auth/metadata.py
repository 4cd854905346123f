"""The documents and headers of MCP authorization, parsed; the URLs to look for them at.

Nothing here does IO: :mod:`opex_trio.auth._discovery` fetches what these
functions name and hands the bodies back to be parsed. The rules follow the
MCP authorization specification (2025-03-26 to 2025-11-25 and the draft after
it), RFC 9728 (protected-resource metadata), RFC 8414 (authorization-server
metadata) and OpenID Connect Discovery.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from ..errors import AuthorizationError, IssuerMismatchError

__all__ = [
    "AuthServerMetadata",
    "Challenge",
    "ProtectedResourceMetadata",
    "authorization_server_metadata_urls",
    "canonical_resource",
    "check_secure",
    "is_loopback",
    "legacy_authorization_base",
    "parse_challenges",
    "protected_resource_metadata_urls",
    "resource_matches",
    "safe_url",
]

_PARAM = re.compile(r'\s*([A-Za-z0-9_.\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*,?')
_SCHEME = re.compile(r"\s*([A-Za-z0-9_.\-]+)(?:\s+|$)")


@attrs.frozen
class Challenge:
    """One ``WWW-Authenticate`` challenge: its scheme and its parameters (names lower case)."""

    scheme: str
    params: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def resource_metadata(self) -> str | None:
        """The protected-resource metadata URL the server pointed at."""
        return self.params.get("resource_metadata") or None

    @property
    def scope(self) -> str | None:
        """The scope the server asked for."""
        return self.params.get("scope") or None

    @property
    def error(self) -> str | None:
        """The error code (``invalid_token``, ``insufficient_scope``, ``use_dpop_nonce``)."""
        return self.params.get("error") or None


def parse_challenges(header: str | None) -> list[Challenge]:
    """Every challenge in a ``WWW-Authenticate`` value; junk is skipped, never raised."""
    challenges: list[Challenge] = []
    text = header or ""
    position = 0
    while position < len(text):
        scheme_match = _SCHEME.match(text, position)
        if scheme_match is None:
            break
        scheme = scheme_match.group(1)
        position = scheme_match.end()
        params: dict[str, str] = {}
        while True:
            match = _PARAM.match(text, position)
            if match is None:
                break
            name, value = match.group(1).lower(), match.group(2)
            if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[name] = value
            position = match.end()
        challenges.append(Challenge(scheme, params))
        if position < len(text) and text[position] == ",":
            position += 1
        elif scheme_match.end() == position and not params:
            position += 1  # a token68 or stray character: move on
    return challenges


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_url(url: str) -> str:
    """``url`` without its query, fragment or user info, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_secure(url: str, what: str) -> str:
    """``url`` if it is HTTPS, or HTTP on loopback; else :class:`AuthorizationError`."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and is_loopback(url):
        return url
    raise AuthorizationError(
        f"{what} {safe_url(url)!r} is not HTTPS (plain HTTP is allowed only on loopback)",
        reason="insecure",
    )


def canonical_resource(url: str) -> str:
    """The MCP server's canonical URI (RFC 8707): lower-case scheme and host, no fragment."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = parts.path if parts.path != "/" else ""
    return urlunsplit((parts.scheme.lower(), host, path, parts.query, ""))


def _origin_and_path(url: str) -> tuple[tuple[str, str, int | None], str]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    port = parts.port if parts.port is not None else default
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port), parts.path.rstrip("/")


def resource_matches(resource: str, server_url: str) -> bool:
    """Whether metadata's ``resource`` covers ``server_url``: same origin, path a prefix of it."""
    origin, path = _origin_and_path(resource)
    server_origin, server_path = _origin_and_path(server_url)
    if origin != server_origin:
        return False
    return server_path == path or server_path.startswith(path + "/") or path == ""


def protected_resource_metadata_urls(server_url: str) -> list[str]:
    """RFC 9728 locations for ``server_url``, most specific first: path-based, then root."""
    parts = urlsplit(server_url)
    root = urlunsplit((parts.scheme, parts.netloc, "/.well-known/oauth-protected-resource", "", ""))
    path = parts.path.rstrip("/")
    if not path:
        return [root]
    return [root + path, root]


def authorization_server_metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may live, in the order the MCP specification gives.

    With a path: RFC 8414 with path insertion, OpenID Connect with path
    insertion, OpenID Connect with the path appended. Without: RFC 8414, then
    OpenID Connect.
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")

    def at(well_known: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, well_known, "", ""))

    if not path:
        return [
            at("/.well-known/oauth-authorization-server"),
            at("/.well-known/openid-configuration"),
        ]
    return [
        at(f"/.well-known/oauth-authorization-server{path}"),
        at(f"/.well-known/openid-configuration{path}"),
        at(f"{path}/.well-known/openid-configuration"),
    ]


def legacy_authorization_base(server_url: str) -> str:
    """The 2025-03-26 authorization base URL: the MCP server's URL without its path."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@attrs.frozen
class ProtectedResourceMetadata:
    """RFC 9728 metadata of an MCP server: which authorization servers it trusts."""

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] | None = None
    url: str | None = None

    @classmethod
    def parse(cls, document: Any, url: str) -> ProtectedResourceMetadata:
        """Read the JSON object fetched from ``url`` (:class:`AuthorizationError` if bad)."""
        if not isinstance(document, Mapping):
            raise AuthorizationError(
                f"protected-resource metadata at {safe_url(url)!r} is not a JSON object",
                reason="discovery",
            )
        resource = _string(document.get("resource"))
        servers = _strings(document.get("authorization_servers"))
        if resource is None or not servers:
            raise AuthorizationError(
                f"protected-resource metadata at {safe_url(url)!r} lacks 'resource' or "
                "'authorization_servers'",
                reason="discovery",
            )
        return cls(resource, servers, _strings(document.get("scopes_supported")), url)


@attrs.frozen
class AuthServerMetadata:
    """RFC 8414 / OpenID Connect metadata of an authorization server, as the client uses it."""

    issuer: str
    authorization_endpoint: str | None
    token_endpoint: str
    registration_endpoint: str | None = None
    scopes_supported: tuple[str, ...] | None = None
    grant_types_supported: tuple[str, ...] | None = None
    code_challenge_methods_supported: tuple[str, ...] | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    dpop_signing_alg_values_supported: tuple[str, ...] | None = None
    client_id_metadata_document_supported: bool = False
    authorization_response_iss_parameter_supported: bool = False
    #: False when no document was found and the 2025-03-26 default endpoints are used.
    discovered: bool = True

    @classmethod
    def parse(cls, document: Any, url: str, expected_issuer: str) -> AuthServerMetadata:
        """Read the JSON object fetched from ``url`` for ``expected_issuer``.

        The issuer must equal ``expected_issuer`` exactly (RFC 8414 section 3.3),
        else :class:`~opex_trio.errors.IssuerMismatchError`.
        """
        if not isinstance(document, Mapping):
            raise AuthorizationError(
                f"authorization server metadata at {safe_url(url)!r} is not a JSON object",
                reason="discovery",
            )
        issuer = _string(document.get("issuer"))
        if issuer != expected_issuer:
            raise IssuerMismatchError(
                f"authorization server metadata at {safe_url(url)!r} names issuer {issuer!r}, "
                f"not {expected_issuer!r}; refusing to use it",
                reason="issuer",
            )
        token = _string(document.get("token_endpoint"))
        if token is None:
            raise AuthorizationError(
                f"authorization server metadata at {safe_url(url)!r} has no token_endpoint",
                reason="discovery",
            )
        return cls(
            issuer=issuer,
            authorization_endpoint=_string(document.get("authorization_endpoint")),
            token_endpoint=token,
            registration_endpoint=_string(document.get("registration_endpoint")),
            scopes_supported=_strings(document.get("scopes_supported")),
            grant_types_supported=_strings(document.get("grant_types_supported")),
            code_challenge_methods_supported=_strings(
                document.get("code_challenge_methods_supported")
            ),
            token_endpoint_auth_methods_supported=_strings(
                document.get("token_endpoint_auth_methods_supported")
            ),
            dpop_signing_alg_values_supported=_strings(
                document.get("dpop_signing_alg_values_supported")
            ),
            client_id_metadata_document_supported=document.get(
                "client_id_metadata_document_supported"
            )
            is True,
            authorization_response_iss_parameter_supported=document.get(
                "authorization_response_iss_parameter_supported"
            )
            is True,
        )

    @classmethod
    def legacy_defaults(cls, base: str) -> AuthServerMetadata:
        """The 2025-03-26 default endpoints under ``base`` when no metadata exists."""
        return cls(
            issuer=base,
            authorization_endpoint=f"{base}/authorize",
            token_endpoint=f"{base}/token",
            registration_endpoint=f"{base}/register",
            discovered=False,
        )

    def supports(self, values: Sequence[str] | None, value: str) -> bool:
        """Whether the advertised list ``values`` holds ``value``."""
        return values is not None and value in values

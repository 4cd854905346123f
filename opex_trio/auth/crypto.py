"""PKCE, ``state``, and the signed JWTs the client makes: DPoP proofs and client assertions.

PKCE and ``state`` need only the standard library. Signing (DPoP, RFC 9449;
``private_key_jwt``, RFC 7523) goes through joserfc, which the ``oauth``
extra installs; it is imported when first needed, and its absence is an
:class:`~opex_trio.errors.AuthorizationError` naming the extra.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from ..errors import AuthorizationError, ConfigError

__all__ = [
    "DPoPKey",
    "Pkce",
    "client_assertion",
    "new_state",
]

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@attrs.frozen
class Pkce:
    """A PKCE pair (RFC 7636, S256); the verifier never appears in a repr."""

    verifier: str = attrs.field(repr=False)
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        """A fresh verifier (64 random characters) and its S256 challenge."""
        verifier = secrets.token_urlsafe(48)
        return cls(verifier, _b64(hashlib.sha256(verifier.encode("ascii")).digest()))


def new_state() -> str:
    """An unguessable ``state`` value for one authorization request."""
    return secrets.token_urlsafe(32)


def _joserfc() -> Any:
    try:
        import joserfc.jwk
        import joserfc.jwt
    except ImportError as exc:
        raise AuthorizationError(
            "signing OAuth requests (DPoP proofs, private_key_jwt) needs the 'oauth' extra: "
            "pip install 'opex_trio[oauth]'",
            reason="extra",
        ) from exc
    return joserfc


_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


class DPoPKey:
    """A key pair that DPoP-binds tokens (RFC 9449); the private half never leaves it."""

    def __init__(self, algorithm: str = "ES256") -> None:
        if algorithm not in _CURVES:
            raise ConfigError(f"DPoP algorithm must be one of {sorted(_CURVES)}, got {algorithm!r}")
        jose = _joserfc()
        self.algorithm = algorithm
        self._key = jose.jwk.ECKey.generate_key(_CURVES[algorithm])
        self.public_jwk: dict[str, Any] = self._key.as_dict(private=False)

    def __repr__(self) -> str:
        return f"DPoPKey({self.algorithm}, thumbprint={self.thumbprint()!r})"

    def thumbprint(self) -> str:
        """The key's JWK SHA-256 thumbprint (RFC 7638), as ``cnf.jkt`` carries it."""
        return str(self._key.thumbprint())

    def proof(
        self,
        method: str,
        url: str,
        *,
        nonce: str | None = None,
        access_token: str | None = None,
    ) -> str:
        """A fresh proof for one request: ``htm``, ``htu`` (no query), ``iat``, a new ``jti``."""
        parts = urlsplit(url)
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "htm": method.upper(),
            "htu": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            "iat": int(time.time()),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = _b64(hashlib.sha256(access_token.encode("ascii")).digest())
        header = {"typ": "dpop+jwt", "alg": self.algorithm, "jwk": self.public_jwk}
        return str(_joserfc().jwt.encode(header, claims, self._key))


def client_assertion(
    *, client_id: str, audience: str, private_key_pem: str, algorithm: str = "ES256"
) -> str:
    """A ``private_key_jwt`` client assertion (RFC 7523 section 2.2) for ``audience``."""
    jose = _joserfc()
    try:
        key_type = "EC" if algorithm.startswith("ES") else "OKP" if algorithm == "EdDSA" else "RSA"
        key = jose.jwk.import_key(private_key_pem, key_type)
    except Exception as exc:  # any parse failure means a bad key; never echo it
        raise ConfigError(
            f"the private key for client {client_id!r} is not a PEM key joserfc can read"
        ) from exc
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    try:
        return str(jose.jwt.encode({"alg": algorithm, "typ": "JWT"}, claims, key))
    except Exception as exc:  # a key of the wrong type for the algorithm
        raise ConfigError(
            f"cannot sign a {algorithm} client assertion for client {client_id!r} with its key"
        ) from exc

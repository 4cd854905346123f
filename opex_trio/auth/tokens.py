"""Tokens, client registrations, and where they are kept between connections.

A :class:`TokenStore` keeps, per MCP server (its resource URI), the
:class:`Credentials` obtained for it: the access token, the refresh token and
the authorization server (issuer) that issued them. Client registrations are
kept per issuer, because a client ID is only valid at the server that issued
it (an MCP server that moves to a new authorization server means a new
registration there, never the old ID).

:class:`MemoryTokenStore` is the default: it lives as long as the object.
:class:`FileTokenStore` keeps everything in one JSON file, created readable by
the user only (0600) in the user's config folder, for the command line.

No secret appears in a ``repr``: the fields that hold one are left out.
"""

from __future__ import annotations

import abc
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from ..errors import ConfigError

__all__ = [
    "ClientRegistration",
    "Credentials",
    "FileTokenStore",
    "MemoryTokenStore",
    "Token",
    "TokenStore",
    "default_store_path",
]

# Refresh this long before the server's stated expiry, so that a request never
# carries a token that dies on the way.
EXPIRY_MARGIN = 30.0


@attrs.frozen
class Token:
    """An access token as the token endpoint issued it.

    ``expires_at`` is a Unix time (seconds), or ``None`` when the server gave no
    lifetime. ``token_type`` is ``"Bearer"`` or ``"DPoP"``.
    """

    access_token: str = attrs.field(repr=False)
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_at: float | None = None
    refresh_token: str | None = attrs.field(default=None, repr=False)
    scope: str | None = None

    @classmethod
    def from_response(
        cls, body: Mapping[str, Any], *, now: float, requested_scope: str | None = None
    ) -> Token | None:
        """The token in a token endpoint's JSON answer, or ``None`` when it holds none."""
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            return None
        expires_in = body.get("expires_in")
        expires_at = (
            now + float(expires_in)
            if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
            else None
        )
        refresh = body.get("refresh_token")
        scope = body.get("scope")
        token_type = body.get("token_type")
        return cls(
            access,
            token_type if isinstance(token_type, str) and token_type else "Bearer",
            expires_at,
            refresh if isinstance(refresh, str) and refresh else None,
            scope if isinstance(scope, str) else requested_scope,
        )

    def expired(self, now: float) -> bool:
        """Whether the token is past (or within a small margin of) its expiry."""
        return self.expires_at is not None and now >= self.expires_at - EXPIRY_MARGIN

    @property
    def is_dpop(self) -> bool:
        """Whether the token is bound to a DPoP key."""
        return self.token_type.lower() == "dpop"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (secrets included: for the store only)."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Token:
        """The inverse of :meth:`to_json`."""
        return cls(
            str(value["access_token"]),
            str(value.get("token_type") or "Bearer"),
            value.get("expires_at"),
            value.get("refresh_token"),
            value.get("scope"),
        )


@attrs.frozen
class ClientRegistration:
    """The client's identity at one authorization server.

    ``client_id`` may be a Client ID Metadata Document URL. ``auth_method`` is
    the token endpoint authentication (``none``, ``client_secret_basic``,
    ``client_secret_post``, ``private_key_jwt``).
    """

    client_id: str
    client_secret: str | None = attrs.field(default=None, repr=False)
    auth_method: str = "none"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (secrets included: for the store only)."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ClientRegistration:
        """The inverse of :meth:`to_json`."""
        return cls(
            str(value["client_id"]), value.get("client_secret"), value.get("auth_method", "none")
        )


@attrs.frozen
class Credentials:
    """What was obtained for one MCP server: the token and the issuer that made it."""

    resource: str
    issuer: str
    token: Token
    stored_at: float = attrs.field(factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (secrets included: for the store only)."""
        return {
            "resource": self.resource,
            "issuer": self.issuer,
            "token": self.token.to_json(),
            "stored_at": self.stored_at,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Credentials:
        """The inverse of :meth:`to_json`."""
        return cls(
            str(value["resource"]),
            str(value["issuer"]),
            Token.from_json(value["token"]),
            float(value.get("stored_at", 0.0)),
        )


class TokenStore(abc.ABC):
    """Where credentials (per resource) and client registrations (per issuer) are kept."""

    @abc.abstractmethod
    async def get(self, resource: str) -> Credentials | None:
        """The credentials for the MCP server ``resource``, if any."""

    @abc.abstractmethod
    async def put(self, credentials: Credentials) -> None:
        """Keep ``credentials``, replacing any for the same resource."""

    @abc.abstractmethod
    async def delete(self, resource: str) -> bool:
        """Forget the credentials for ``resource``; whether there were any."""

    @abc.abstractmethod
    async def all(self) -> list[Credentials]:
        """Every credential kept."""

    @abc.abstractmethod
    async def get_client(self, issuer: str) -> ClientRegistration | None:
        """The client's registration at ``issuer``, if any."""

    @abc.abstractmethod
    async def put_client(self, issuer: str, client: ClientRegistration) -> None:
        """Keep the client's registration at ``issuer``."""


class MemoryTokenStore(TokenStore):
    """Credentials kept in memory for the life of this object (the default)."""

    def __init__(self) -> None:
        self._credentials: dict[str, Credentials] = {}
        self._clients: dict[str, ClientRegistration] = {}

    def __repr__(self) -> str:
        return f"MemoryTokenStore(<{len(self._credentials)} credentials>)"

    async def get(self, resource: str) -> Credentials | None:
        """The credentials for ``resource``, if any."""
        return self._credentials.get(resource)

    async def put(self, credentials: Credentials) -> None:
        """Keep ``credentials``."""
        self._credentials[credentials.resource] = credentials

    async def delete(self, resource: str) -> bool:
        """Forget the credentials for ``resource``."""
        return self._credentials.pop(resource, None) is not None

    async def all(self) -> list[Credentials]:
        """Every credential kept."""
        return list(self._credentials.values())

    async def get_client(self, issuer: str) -> ClientRegistration | None:
        """The registration at ``issuer``, if any."""
        return self._clients.get(issuer)

    async def put_client(self, issuer: str, client: ClientRegistration) -> None:
        """Keep the registration at ``issuer``."""
        self._clients[issuer] = client


def default_store_path() -> Path:
    """``$XDG_CONFIG_HOME/opex-trio/auth.json`` (``~/.config`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "opex-trio" / "auth.json"


class FileTokenStore(TokenStore):
    """Credentials in one JSON file readable by the user only (mode 0600, folder 0700).

    Every change rewrites the file through a temporary file created 0600 and
    renamed over it, so a crash never leaves half a file, and the secrets are
    never readable by others, not even for a moment.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self._lock = trio.Lock()

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"credentials": {}, "clients": {}}
        except OSError as exc:
            raise ConfigError(f"cannot read the token store {str(self.path)!r}: {exc}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"the token store {str(self.path)!r} is not valid JSON") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"the token store {str(self.path)!r} is not a JSON object")
        data.setdefault("credentials", {})
        data.setdefault("clients", {})
        return data

    def _write(self, data: dict[str, Any]) -> None:
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = folder / f".{self.path.name}.{os.getpid()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(temporary, flags, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    async def _update(self, change: Any) -> Any:
        async with self._lock:

            def run() -> Any:
                data = self._read()
                result = change(data)
                self._write(data)
                return result

            return await trio.to_thread.run_sync(run)

    async def _load(self) -> dict[str, Any]:
        async with self._lock:
            return await trio.to_thread.run_sync(self._read)

    async def get(self, resource: str) -> Credentials | None:
        """The credentials for ``resource``, if any."""
        value = (await self._load())["credentials"].get(resource)
        return Credentials.from_json(value) if isinstance(value, dict) else None

    async def put(self, credentials: Credentials) -> None:
        """Keep ``credentials``."""

        def change(data: dict[str, Any]) -> None:
            data["credentials"][credentials.resource] = credentials.to_json()

        await self._update(change)

    async def delete(self, resource: str) -> bool:
        """Forget the credentials for ``resource``."""

        def change(data: dict[str, Any]) -> bool:
            return data["credentials"].pop(resource, None) is not None

        return bool(await self._update(change))

    async def all(self) -> list[Credentials]:
        """Every credential kept."""
        values = (await self._load())["credentials"].values()
        return [Credentials.from_json(value) for value in values if isinstance(value, dict)]

    async def get_client(self, issuer: str) -> ClientRegistration | None:
        """The registration at ``issuer``, if any."""
        value = (await self._load())["clients"].get(issuer)
        return ClientRegistration.from_json(value) if isinstance(value, dict) else None

    async def put_client(self, issuer: str, client: ClientRegistration) -> None:
        """Keep the registration at ``issuer``."""

        def change(data: dict[str, Any]) -> None:
            data["clients"][issuer] = client.to_json()

        await self._update(change)

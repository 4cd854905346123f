"""The OAuth 2.1 client for one MCP server, as an ``httpx2`` authentication flow.

Theory of operation
-------------------
:class:`OAuth` is an :class:`httpx2.Auth`: the HTTP transports pass it with
every request to the MCP server, and it decides what the request carries.

1. Before a request: the stored token for the server (refreshed first when it
   is about to expire) goes in ``Authorization`` (``Bearer``, or ``DPoP`` with
   a fresh proof). Requests to any other origin get nothing.
2. A 401 (or a 403 ``insufficient_scope``): discovery starts from the
   challenge. The protected-resource metadata names the authorization server
   and must name this server as its resource; the authorization server's
   metadata must name the issuer it was fetched for. Without metadata, the
   2025-03-26 fallbacks apply. A token that was refused is refreshed when it
   can be, else a new authorization runs with the configured grant; the
   request is then sent again. A step-up asks for the scopes already asked
   for plus the challenged ones. One request triggers at most
   ``max_authorizations`` authorizations.
3. A DPoP ``use_dpop_nonce`` challenge is answered once with the server's nonce.

Authorizations are serialized by a lock: concurrent requests that all hit a
401 wait for the first one's authorization and reuse its token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx2
import trio

from ..errors import AuthorizationError, ResourceMismatchError
from ._exchange import Exchange
from ._grants import JWT_BEARER_GRANT, _Target, run_grant
from .config import (
    AuthorizationCode,
    ClientCredentials,
    OAuthConfig,
)
from .crypto import DPoPKey
from .metadata import (
    AuthServerMetadata,
    Challenge,
    canonical_resource,
    check_secure,
    legacy_authorization_base,
    parse_challenges,
    resource_matches,
    safe_url,
)
from .tokens import ClientRegistration, Credentials, Token

__all__ = ["OAuth"]

logger = logging.getLogger("opex_trio.auth")


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, parts.hostname, parts.port if parts.port is not None else default


def _http_form(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return parts._replace(scheme=scheme).geturl()


class OAuth(httpx2.Auth):
    """OAuth 2.1 for one remote MCP server, plugged into an HTTP transport.

    ``server_url`` is the MCP endpoint (it becomes the resource the tokens are
    for and the key they are stored under); when ``None`` it is taken from the
    first request. ``http_client`` carries the requests to authorization
    servers (a short-lived client of its own by default).
    """

    requires_request_body = True

    def __init__(
        self,
        config: OAuthConfig | None = None,
        *,
        server_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
    ) -> None:
        self.config = config if config is not None else OAuthConfig()
        self._server_url = canonical_resource(server_url) if server_url else None
        self._http_client = http_client
        self._clock = clock
        self._name = name
        self._lock = trio.Lock()
        self._credentials: Credentials | None = None
        self._loaded = False
        self._metadata: dict[str, AuthServerMetadata] = {}
        self._dpop_key: DPoPKey | None = None
        self._rs_nonce: str | None = None
        self._as_nonce: str | None = None
        self._requested_scopes: list[str] = []
        self._indicator: str | None = None
        #: How many authorizations (not refreshes) ran, for tests and the command.
        self.authorizations = 0

    def __repr__(self) -> str:
        return f"OAuth(server_url={self._server_url!r}, grant={type(self.config.grant).__name__})"

    @property
    def server_url(self) -> str | None:
        """The MCP server's canonical URL, once known."""
        return self._server_url

    # -- the httpx2 flow ---------------------------------------------------------------

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """Sign ``request``; on a challenge, authorize and send it again."""
        if self._server_url is None:
            self._server_url = canonical_resource(str(request.url))
        if _origin(str(request.url)) != _origin(self._server_url):
            yield request  # a token is for its own server's origin only
            return
        async with self._lock:
            credentials = await self._usable()
        if request.method == "DELETE":
            # Ending a session never starts a login.
            self._sign(request, credentials)
            yield request
            return
        attempts = 0
        nonce_retried = False
        while True:
            self._sign(request, credentials)
            response = yield request
            nonce = response.headers.get("dpop-nonce")
            if nonce:
                self._rs_nonce = nonce
            if response.status_code not in (401, 403):
                return
            challenge = self._challenge(response)
            if (
                response.status_code == 401
                and challenge.error == "use_dpop_nonce"
                and nonce
                and not nonce_retried
            ):
                nonce_retried = True
                continue
            if response.status_code == 403 and challenge.error != "insufficient_scope":
                return
            if attempts >= self.config.max_authorizations:
                logger.warning(
                    "MCP server %s still refuses after %d authorizations; giving up",
                    safe_url(self._server_url),
                    attempts,
                )
                return
            attempts += 1
            await response.aread()
            async with self._lock:
                credentials = await self._recover(
                    credentials, challenge, step_up=response.status_code == 403
                )

    # -- connections that are not httpx2 requests (the WebSocket handshake) ---------------

    async def handshake_headers(self, url: str, method: str = "GET") -> dict[str, str]:
        """The headers that authorize opening ``url`` (a ``ws://`` URL counts as ``http://``)."""
        http_url = _http_form(url)
        if self._server_url is None:
            self._server_url = canonical_resource(http_url)
        request = httpx2.Request(method, http_url)
        async with self._lock:
            self._sign(request, await self._usable())
        return {
            name: value
            for name, value in request.headers.items()
            if name.lower() in ("authorization", "dpop")
        }

    async def challenged(self, status: int, www_authenticate: str | None) -> None:
        """Authorize after a refused handshake (``status`` 401 or 403), as for a refused request."""
        challenges = parse_challenges(www_authenticate)
        challenge = challenges[0] if challenges else Challenge("Bearer")
        async with self._lock:
            await self._recover(self._credentials, challenge, step_up=status == 403)

    @staticmethod
    def _challenge(response: httpx2.Response) -> Challenge:
        challenges = [
            challenge
            for value in response.headers.get_list("www-authenticate")
            for challenge in parse_challenges(value)
        ]
        for challenge in challenges:
            if challenge.scheme.lower() in ("bearer", "dpop"):
                return challenge
        return challenges[0] if challenges else Challenge("Bearer")

    def _sign(self, request: httpx2.Request, credentials: Credentials | None) -> None:
        if credentials is None:
            return
        token = credentials.token
        if token.is_dpop and self._dpop_key is not None:
            request.headers["Authorization"] = f"DPoP {token.access_token}"
            request.headers["DPoP"] = self._dpop_key.proof(
                request.method,
                str(request.url),
                nonce=self._rs_nonce,
                access_token=token.access_token,
            )
        else:
            request.headers["Authorization"] = f"Bearer {token.access_token}"

    # -- credentials ----------------------------------------------------------------------

    async def _usable(self) -> Credentials | None:
        """The current credentials, refreshed when about to expire; ``None`` when none work."""
        assert self._server_url is not None
        if not self._loaded:
            self._loaded = True
            self._credentials = await self.config.store.get(self._server_url)
        credentials = self._credentials
        if credentials is None:
            return None
        if credentials.token.is_dpop and self._dpop_key is None:
            return None  # bound to a key of an earlier process: useless now
        if credentials.token.expired(self._clock()):
            return await self._refresh(credentials)
        return credentials

    async def _recover(
        self, sent: Credentials | None, challenge: Challenge, *, step_up: bool
    ) -> Credentials:
        current = self._credentials
        if not step_up and current is not None and current is not sent:
            return current  # another request already got a new token
        if not step_up and sent is not None and sent.token.refresh_token is not None:
            refreshed = await self._refresh(sent)
            if refreshed is not None:
                return refreshed
        return await self.authorize(challenge, step_up=step_up)

    async def _refresh(self, credentials: Credentials) -> Credentials | None:
        token = credentials.token
        if token.refresh_token is None:
            return None
        try:
            async with self._exchange() as exchange:
                metadata = await self._metadata_for(exchange, credentials.issuer)
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": token.refresh_token,
                    "resource": self._indicator or credentials.resource,
                }
                client = await self.config.store.get_client(credentials.issuer)
                new = await exchange.token(
                    metadata.token_endpoint,
                    form,
                    client=client or self._preregistered(metadata),
                    audience=metadata.issuer,
                    private_key_pem=self.config.client.private_key_pem,
                    signing_algorithm=self.config.client.signing_algorithm,
                    dpop=self._dpop_key if token.is_dpop else None,
                    requested_scope=token.scope,
                    what="refresh",
                )
        except AuthorizationError as exc:
            logger.info("refreshing the token for %s failed: %s", credentials.resource, exc)
            return None
        if new.refresh_token is None:
            new = attrs.evolve(new, refresh_token=token.refresh_token)
        return await self._keep(credentials.issuer, new)

    async def _keep(self, issuer: str, token: Token) -> Credentials:
        assert self._server_url is not None
        credentials = Credentials(self._server_url, issuer, token, self._clock())
        await self.config.store.put(credentials)
        self._credentials = credentials
        return credentials

    async def logout(self) -> bool:
        """Forget this server's token, here and in the store; whether there was one."""
        assert self._server_url is not None
        self._credentials = None
        self._loaded = True
        return await self.config.store.delete(self._server_url)

    # -- authorization ------------------------------------------------------------------

    def _exchange(self) -> Any:
        return _ExchangeContext(self._http_client, self._name or self._server_url, self)

    async def _metadata_for(self, exchange: Exchange, issuer: str) -> AuthServerMetadata:
        if issuer in self._metadata:
            return self._metadata[issuer]
        metadata = await exchange.auth_server(issuer)
        if metadata is None:
            raise AuthorizationError(
                f"no authorization server metadata found for issuer {issuer!r}",
                reason="discovery",
                server=self._name,
            )
        self._metadata[issuer] = metadata
        return metadata

    async def _discover(self, exchange: Exchange, challenge: Challenge) -> _Target:
        assert self._server_url is not None
        hint = challenge.resource_metadata or self.config.resource_metadata_url
        if hint:
            check_secure(hint, "protected-resource metadata")
        protected = await exchange.protected_resource(self._server_url, hint)
        if protected is None:
            # 2025-03-26: the authorization server lives at the MCP server's origin.
            base = legacy_authorization_base(self._server_url)
            metadata = await exchange.auth_server(base)
            if metadata is None:
                metadata = AuthServerMetadata.legacy_defaults(base)
            self._metadata[metadata.issuer] = metadata
            return _Target(self._server_url, metadata, None)
        if not resource_matches(protected.resource, self._server_url):
            raise ResourceMismatchError(
                f"protected-resource metadata at {safe_url(protected.url or '')!r} is for "
                f"{protected.resource!r}, not for the MCP server {self._server_url!r}; "
                "refusing to authorize",
                reason="resource",
                server=self._name,
            )
        issuer = protected.authorization_servers[0]
        metadata = await exchange.auth_server(issuer)
        if metadata is None:
            raise AuthorizationError(
                f"authorization server {issuer!r} publishes no metadata (RFC 8414 or OpenID "
                "Connect discovery)",
                reason="discovery",
                server=self._name,
            )
        self._metadata[issuer] = metadata
        return _Target(protected.resource, metadata, protected)

    def _scope(self, challenge: Challenge, target: _Target, *, step_up: bool) -> str | None:
        if self.config.scopes is not None:
            scopes = list(self.config.scopes)
        elif challenge.scope:
            scopes = challenge.scope.split()
        elif target.protected is not None and target.protected.scopes_supported:
            scopes = list(target.protected.scopes_supported)
        else:
            scopes = []
        if step_up:
            scopes = self._requested_scopes + [s for s in scopes if s not in self._requested_scopes]
        advertised = target.metadata.scopes_supported or ()
        if (
            scopes
            and isinstance(self.config.grant, AuthorizationCode)
            and "offline_access" in advertised
            and "offline_access" not in scopes
        ):
            scopes.append("offline_access")
        self._requested_scopes = scopes
        return " ".join(scopes) or None

    def _preregistered(self, metadata: AuthServerMetadata) -> ClientRegistration | None:
        identity = self.config.client
        if identity.client_id is None:
            return None
        if identity.issuer is not None and identity.issuer != metadata.issuer:
            return None  # issued by another authorization server: never shown to this one
        if identity.auth_method is not None:
            method = identity.auth_method
        elif identity.private_key_pem is not None:
            method = "private_key_jwt"
        elif identity.client_secret is not None:
            supported = metadata.token_endpoint_auth_methods_supported or ("client_secret_basic",)
            method = (
                "client_secret_post"
                if "client_secret_post" in supported and "client_secret_basic" not in supported
                else "client_secret_basic"
            )
        else:
            method = "none"
        return ClientRegistration(identity.client_id, identity.client_secret, method)

    async def _client(
        self, exchange: Exchange, target: _Target, scope: str | None
    ) -> ClientRegistration:
        metadata = target.metadata
        pre = self._preregistered(metadata)
        if pre is not None:
            return pre
        stored = await self.config.store.get_client(metadata.issuer)
        if stored is not None:
            return stored
        identity = self.config.client
        grant = self.config.grant
        if identity.client_metadata_url and metadata.client_id_metadata_document_supported:
            return ClientRegistration(identity.client_metadata_url, None, "none")
        if metadata.registration_endpoint is None:
            raise AuthorizationError(
                f"the authorization server {metadata.issuer!r} offers no dynamic registration "
                "and no client_id is configured for it",
                reason="registration",
                server=self._name,
            )
        supported = metadata.token_endpoint_auth_methods_supported or ("client_secret_basic",)
        method = next(
            (
                m
                for m in ("none", "client_secret_basic", "client_secret_post")
                if m in supported and not (m == "none" and isinstance(grant, ClientCredentials))
            ),
            "client_secret_basic",
        )
        if isinstance(grant, AuthorizationCode):
            grant_types = ["authorization_code", "refresh_token"]
            redirect_uri: str | None = grant.redirect.redirect_uri
        elif isinstance(grant, ClientCredentials):
            grant_types, redirect_uri = ["client_credentials"], None
        else:
            grant_types, redirect_uri = [JWT_BEARER_GRANT], None
        check_secure(metadata.registration_endpoint, "client registration endpoint")
        client = await exchange.register(
            metadata,
            client_name=identity.client_name,
            redirect_uri=redirect_uri,
            grant_types=grant_types,
            scope=scope,
            auth_method=method,
        )
        await self.config.store.put_client(metadata.issuer, client)
        return client

    def _use_dpop(self, metadata: AuthServerMetadata) -> DPoPKey | None:
        wanted = self.config.dpop
        algorithms = metadata.dpop_signing_alg_values_supported or ()
        if wanted is False or (wanted is None and "ES256" not in algorithms):
            return None
        if self._dpop_key is None:
            self._dpop_key = DPoPKey("ES256")
        return self._dpop_key

    async def authorize(
        self, challenge: Challenge | None = None, *, step_up: bool = False
    ) -> Credentials:
        """Run discovery and the configured grant now; store and return the new credentials."""
        assert self._server_url is not None
        challenge = challenge or Challenge("Bearer")
        check_secure(self._server_url, "the MCP server")  # a token must never travel in clear
        async with self._exchange() as exchange:
            target = await self._discover(exchange, challenge)
            self._indicator = target.resource
            metadata = target.metadata
            for endpoint in (metadata.token_endpoint, metadata.authorization_endpoint):
                if endpoint is not None:
                    check_secure(endpoint, "authorization server endpoint")
            scope = self._scope(challenge, target, step_up=step_up)
            dpop = self._use_dpop(metadata)
            client = await self._client(exchange, target, scope)
            token = await run_grant(
                exchange, self.config, target, client, scope, dpop, server=self._name
            )
        self.authorizations += 1
        logger.info(
            "authorized with %s for %s (scope %r)", metadata.issuer, self._server_url, token.scope
        )
        return await self._keep(metadata.issuer, token)


class _ExchangeContext:
    """An :class:`Exchange` over the configured client, or over a client of its own."""

    def __init__(self, client: httpx2.AsyncClient | None, server: str | None, owner: OAuth) -> None:
        self._client = client
        self._own: httpx2.AsyncClient | None = None
        self._server = server
        self._owner = owner

    async def __aenter__(self) -> Exchange:
        client = self._client
        if client is None:
            self._own = client = httpx2.AsyncClient(timeout=30.0)
        exchange = Exchange(client, server=self._server)
        exchange.as_nonce = self._owner._as_nonce
        self._exchange = exchange
        return exchange

    async def __aexit__(self, *exc_info: object) -> None:
        self._owner._as_nonce = self._exchange.as_nonce
        if self._own is not None:
            with trio.CancelScope(shield=True):
                await self._own.aclose()

"""The HTTP side of OAuth: metadata discovery, client registration, token requests.

Every URL is checked (HTTPS, or HTTP on loopback) before anything is sent to
it, and no request follows a redirect: an authorization server that answers
with one is refused, so nothing (a client secret, a code, a verifier) can be
carried to an origin nobody chose. Errors name the endpoint and what the
server said, never a secret: whatever the server echoes back is scrubbed of
the values this client sent.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx2

from ..errors import AuthorizationError
from .crypto import JWT_BEARER_ASSERTION, DPoPKey, client_assertion
from .metadata import (
    AuthServerMetadata,
    ProtectedResourceMetadata,
    authorization_server_metadata_urls,
    check_secure,
    protected_resource_metadata_urls,
    safe_url,
)
from .tokens import ClientRegistration, Token

__all__ = ["Exchange"]

logger = logging.getLogger("opex_trio.auth")

_JSON_LIMIT = 256 * 1024


def _scrub(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text[:300]


class Exchange:
    """One conversation with authorization servers, over ``client``."""

    def __init__(self, client: httpx2.AsyncClient, *, server: str | None = None) -> None:
        self._client = client
        self._server = server
        self.as_nonce: str | None = None

    def _error(self, message: str, reason: str, status: int | None = None) -> AuthorizationError:
        return AuthorizationError(message, reason=reason, server=self._server, status=status)

    async def _send(self, request: httpx2.Request, what: str) -> httpx2.Response:
        check_secure(str(request.url), what)
        try:
            response = await self._client.send(request, follow_redirects=False)
        except httpx2.HTTPError as exc:
            raise self._error(
                f"{what} {safe_url(str(request.url))!r} could not be reached: {type(exc).__name__}",
                "network",
            ) from exc
        if response.is_redirect:
            target = response.headers.get("location", "")
            raise self._error(
                f"{what} {safe_url(str(request.url))!r} redirected to "
                f"{safe_url(str(request.url.join(target)))!r}; redirects are not followed",
                "redirect",
                response.status_code,
            )
        return response

    async def get_json(self, url: str, what: str) -> Any | None:
        """The JSON document at ``url``; ``None`` when the server has none (4xx)."""
        request = self._client.build_request(
            "GET", url, headers={"Accept": "application/json", "MCP-Protocol-Version": "2025-11-25"}
        )
        response = await self._send(request, what)
        if 400 <= response.status_code < 500:
            return None
        if response.status_code != 200:
            raise self._error(
                f"{what} {safe_url(url)!r} answered HTTP {response.status_code}",
                "discovery",
                response.status_code,
            )
        try:
            return json.loads(response.content[:_JSON_LIMIT])
        except ValueError as exc:
            raise self._error(f"{what} {safe_url(url)!r} is not JSON", "discovery") from exc

    async def protected_resource(
        self, server_url: str, from_challenge: str | None
    ) -> ProtectedResourceMetadata | None:
        """RFC 9728 metadata: the challenge's URL, else path-based, else root (or ``None``)."""
        urls = [from_challenge] if from_challenge else protected_resource_metadata_urls(server_url)
        for url in urls:
            document = await self.get_json(url, "protected-resource metadata")
            if document is not None:
                return ProtectedResourceMetadata.parse(document, url)
        return None

    async def auth_server(self, issuer: str) -> AuthServerMetadata | None:
        """The metadata of ``issuer`` from the first well-known URL that has it."""
        check_secure(issuer, "authorization server")
        for url in authorization_server_metadata_urls(issuer):
            document = await self.get_json(url, "authorization server metadata")
            if document is not None:
                return AuthServerMetadata.parse(document, url, issuer)
        return None

    async def register(
        self,
        metadata: AuthServerMetadata,
        *,
        client_name: str,
        redirect_uri: str | None,
        grant_types: list[str],
        scope: str | None,
        auth_method: str,
    ) -> ClientRegistration:
        """Dynamic Client Registration (RFC 7591) at the server's registration endpoint."""
        assert metadata.registration_endpoint is not None
        body: dict[str, Any] = {
            "client_name": client_name,
            "grant_types": grant_types,
            "response_types": ["code"] if redirect_uri else [],
            "token_endpoint_auth_method": auth_method,
            "application_type": "native",
        }
        if redirect_uri:
            body["redirect_uris"] = [redirect_uri]
        if scope:
            body["scope"] = scope
        request = self._client.build_request(
            "POST",
            metadata.registration_endpoint,
            json=body,
            headers={"Accept": "application/json"},
        )
        response = await self._send(request, "client registration endpoint")
        try:
            answer = json.loads(response.content[:_JSON_LIMIT])
        except ValueError:
            answer = None
        if response.status_code not in (200, 201) or not isinstance(answer, dict):
            raise self._error(
                f"the authorization server {metadata.issuer!r} refused to register the client: "
                f"HTTP {response.status_code}{self._oauth_error(answer, ())}",
                "registration",
                response.status_code,
            )
        client_id = answer.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise self._error(
                f"the registration at {metadata.issuer!r} returned no client_id", "registration"
            )
        secret = answer.get("client_secret")
        method = answer.get("token_endpoint_auth_method")
        if not isinstance(method, str):
            method = auth_method if isinstance(secret, str) or auth_method == "none" else "none"
        if method != "none" and not isinstance(secret, str):
            method = "none"
        return ClientRegistration(client_id, secret if isinstance(secret, str) else None, method)

    @staticmethod
    def _oauth_error(answer: Any, secrets: Iterable[str | None]) -> str:
        if not isinstance(answer, Mapping):
            return ""
        code = answer.get("error")
        description = answer.get("error_description")
        text = f": {code}" if isinstance(code, str) else ""
        if isinstance(description, str) and description:
            text += f" ({description})"
        return _scrub(text, secrets)

    async def token(
        self,
        endpoint: str,
        form: Mapping[str, str],
        *,
        client: ClientRegistration | None,
        audience: str,
        private_key_pem: str | None = None,
        signing_algorithm: str = "ES256",
        dpop: DPoPKey | None = None,
        requested_scope: str | None = None,
        what: str = "token",
    ) -> Token:
        """POST ``form`` to the token endpoint, with the client's authentication and DPoP."""
        data = dict(form)
        headers = {"Accept": "application/json"}
        secrets = [*form.values(), client.client_secret if client else None]
        if client is not None:
            method = client.auth_method
            if method == "client_secret_basic" and client.client_secret is not None:
                pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
                headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            elif method == "client_secret_post" and client.client_secret is not None:
                data["client_id"] = client.client_id
                data["client_secret"] = client.client_secret
            elif method == "private_key_jwt":
                if private_key_pem is None:
                    raise self._error(
                        "private_key_jwt needs the client's private key (private_key_pem)",
                        "client-auth",
                    )
                data["client_id"] = client.client_id
                data["client_assertion_type"] = JWT_BEARER_ASSERTION
                data["client_assertion"] = client_assertion(
                    client_id=client.client_id,
                    audience=audience,
                    private_key_pem=private_key_pem,
                    algorithm=signing_algorithm,
                )
            else:
                data["client_id"] = client.client_id
        for attempt in range(2):
            if dpop is not None:
                headers["DPoP"] = dpop.proof("POST", endpoint, nonce=self.as_nonce)
            request = self._client.build_request("POST", endpoint, data=data, headers=headers)
            response = await self._send(request, "token endpoint")
            try:
                answer = json.loads(response.content[:_JSON_LIMIT])
            except ValueError:
                answer = None
            nonce = response.headers.get("dpop-nonce")
            if nonce:
                self.as_nonce = nonce
            if (
                dpop is not None
                and attempt == 0
                and response.status_code in (400, 401)
                and isinstance(answer, dict)
                and answer.get("error") == "use_dpop_nonce"
                and nonce
            ):
                continue
            break
        token = (
            Token.from_response(answer, now=time.time(), requested_scope=requested_scope)
            if (response.status_code == 200 and isinstance(answer, dict))
            else None
        )
        if token is None:
            raise self._error(
                f"the token endpoint {safe_url(endpoint)!r} refused the {what} request: "
                f"HTTP {response.status_code}{self._oauth_error(answer, secrets)}",
                "token",
                response.status_code,
            )
        logger.debug("obtained a %s token from %s", token.token_type, safe_url(endpoint))
        return token

    async def exchange_id_token(
        self,
        endpoint: str,
        *,
        id_token: str,
        audience: str,
        resource: str,
        scope: str | None,
        idp_client_id: str | None,
        idp_client_secret: str | None,
    ) -> str:
        """RFC 8693 token exchange at the identity provider: ID token in, ID-JAG out."""
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": id_token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
            "audience": audience,
            "resource": resource,
        }
        if scope:
            form["scope"] = scope
        client = None
        if idp_client_id is not None:
            method = "client_secret_post" if idp_client_secret else "none"
            client = ClientRegistration(idp_client_id, idp_client_secret, method)
        token = await self.token(
            endpoint, form, client=client, audience=endpoint, what="token exchange"
        )
        return token.access_token

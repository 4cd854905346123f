"""A scripted OAuth authorization server and a protected resource, for tests.

:class:`ScriptedAuthServer` answers ``httpx2`` requests for two origins: the
authorization server (``issuer``) and the MCP server it protects
(``resource_url``). Plug it into an HTTP client with
``httpx2.MockTransport(server.handle)`` and point an
:class:`~opex_trio.auth.OAuth` at the resource; every request is recorded in
:attr:`ScriptedAuthServer.log`, so a test can assert what the client sent.

The fields switch on the behaviours (and the misbehaviours) the MCP
authorization specification asks a client to cope with or to refuse: where
the metadata lives, what it claims (issuer, resource, PKCE methods, scopes,
``iss`` support), what the redirect carries, DPoP with nonces, step-up
challenges, short-lived tokens and refresh. The resource answers ``200`` with
``{"ok": true, "scope": ...}`` to a request whose token is valid.

Codes, tokens and client secrets issued here are random per server.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import attrs
import h11
import httpx2
import trio

__all__ = ["AuthRecord", "ScriptedAuthServer", "open_auth_server"]


@attrs.frozen
class AuthRecord:
    """One request the scripted servers received."""

    method: str
    url: str
    headers: Mapping[str, str]
    params: Mapping[str, str]

    @property
    def path(self) -> str:
        """The URL's path."""
        return urlsplit(self.url).path


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, json=body, headers=dict(headers or {}))


@attrs.define
class ScriptedAuthServer:
    """An authorization server at ``issuer`` protecting an MCP server at ``resource_url``."""

    issuer: str = "https://auth.example"
    resource_url: str = "https://mcp.example/mcp"
    #: Where the protected-resource metadata is: "path", "root", "challenge" or None (absent).
    prm_location: Literal["path", "root", "challenge"] | None = "challenge"
    prm_resource: str | None = None
    #: Serve the protected-resource metadata at this URL instead (on any origin).
    prm_url: str | None = None
    prm_scopes: tuple[str, ...] | None = None
    #: "oauth" (RFC 8414), "oidc" (OpenID Connect) or None (no metadata).
    metadata_style: Literal["oauth", "oidc"] | None = "oauth"
    metadata_issuer: str | None = None
    pkce_methods: tuple[str, ...] | None = ("S256",)
    iss_supported: bool = True
    iss_in_redirect: Literal["correct", "wrong", "omit", "normalized"] = "correct"
    state_in_redirect: Literal["echo", "wrong"] = "echo"
    redirect_location: str | None = None
    registration: bool = True
    auth_methods: tuple[str, ...] = ("none",)
    scopes_supported: tuple[str, ...] | None = None
    challenge_scope: str | None = None
    required_scope: str | None = None
    step_up_scope: str | None = None
    dpop: bool = False
    dpop_nonce: bool = False
    token_lifetime: int = 3600
    issue_refresh: bool = True
    preregistered: Mapping[str, str] = attrs.field(factory=dict)
    cimd: bool = False
    #: Scopes never granted, however often they are asked for (a step-up that cannot succeed).
    never_grant: frozenset[str] = frozenset()
    #: Issue this access token every time instead of a random one (a resource that expects it).
    fixed_token: str | None = None
    log: list[AuthRecord] = attrs.field(factory=list)
    #: Access tokens issued and valid: token -> granted scopes.
    tokens: dict[str, set[str]] = attrs.field(factory=dict)
    refresh_tokens: dict[str, set[str]] = attrs.field(factory=dict)
    clients: dict[str, str | None] = attrs.field(factory=dict)
    _codes: dict[str, dict[str, str]] = attrs.field(factory=dict)
    _nonce: str = attrs.field(factory=lambda: secrets.token_urlsafe(8))

    # -- helpers for tests ----------------------------------------------------------------

    def requests_to(self, path: str) -> list[AuthRecord]:
        """The recorded requests whose path is ``path``."""
        return [record for record in self.log if record.path == path]

    def revoke_all(self) -> None:
        """Invalidate every access token issued so far (refresh tokens stay valid)."""
        self.tokens.clear()

    @property
    def _issuer_value(self) -> str:
        return self.metadata_issuer if self.metadata_issuer is not None else self.issuer

    def _prm_url(self) -> str:
        if self.prm_url is not None:
            return self.prm_url
        parts = urlsplit(self.resource_url)
        root = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource"
        return root if self.prm_location == "root" else root + parts.path

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one request (the ``httpx2.MockTransport`` handler)."""
        url = str(request.url)
        body = request.content.decode("utf-8", "replace")
        params = dict(request.url.params)
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body))
        elif request.headers.get("content-type", "").startswith("application/json") and body:
            value = json.loads(body)
            if isinstance(value, dict):
                params.update(
                    {k: json.dumps(v) if not isinstance(v, str) else v for k, v in value.items()}
                )
        self.log.append(AuthRecord(request.method, url, dict(request.headers), params))
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if url.split("?")[0] == self.resource_url:
            return self._resource(request)
        if self.prm_location is not None and url == self._prm_url():
            return self._prm()
        issuer = urlsplit(self.issuer)
        if origin != f"{issuer.scheme}://{issuer.netloc}":
            return httpx2.Response(404)
        prefix = issuer.path.rstrip("/")
        if parts.path.startswith("/.well-known/") or parts.path.startswith(
            prefix + "/.well-known/"
        ):
            return self._metadata_or_404(parts.path)
        route = (
            parts.path[len(prefix) :] if prefix and parts.path.startswith(prefix) else parts.path
        )
        if route == "/authorize" and request.method == "GET":
            return self._authorize(params)
        if route in ("/token", "/idp/token") and request.method == "POST":
            return self._token(request, params)
        if route == "/register" and request.method == "POST" and self.registration:
            return self._register(params)
        return httpx2.Response(404)

    # -- the protected resource -------------------------------------------------------------

    def _challenge(self, error: str | None = None, scope: str | None = None) -> str:
        scheme = "DPoP" if self.dpop else "Bearer"
        items = []
        if error:
            items.append(f'error="{error}"')
        if scope:
            items.append(f'scope="{scope}"')
        if self.prm_location == "challenge":
            items.append(f'resource_metadata="{self._prm_url()}"')
        return f"{scheme} " + ", ".join(items) if items else scheme

    def _resource(self, request: httpx2.Request) -> httpx2.Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not token or token not in self.tokens:
            return _json(
                401,
                {"error": "invalid_token"},
                {"WWW-Authenticate": self._challenge(scope=self.challenge_scope)},
            )
        if self.dpop:
            problem = self._check_proof(request, token)
            if problem is not None:
                headers = {"WWW-Authenticate": self._challenge(error=problem)}
                if problem == "use_dpop_nonce":
                    headers["DPoP-Nonce"] = self._nonce
                return _json(401, {"error": problem}, headers)
            if scheme != "DPoP":
                return _json(
                    401, {"error": "invalid_token"}, {"WWW-Authenticate": self._challenge()}
                )
        granted = self.tokens[token]
        wanted = self.required_scope
        try:
            method = json.loads(request.content or b"{}").get("method")
        except ValueError:
            method = None
        if self.step_up_scope is not None and method == "tools/call":
            wanted = self.step_up_scope
        if wanted is not None and wanted not in granted:
            return _json(
                403,
                {"error": "insufficient_scope"},
                {"WWW-Authenticate": self._challenge(error="insufficient_scope", scope=wanted)},
            )
        return _json(200, {"ok": True, "scope": " ".join(sorted(granted))})

    def _check_proof(self, request: httpx2.Request, token: str | None) -> str | None:
        from joserfc import jwt
        from joserfc.jwk import ECKey

        proof = request.headers.get("dpop")
        if not proof:
            return "invalid_dpop_proof"
        try:
            header = json.loads(base64.urlsafe_b64decode(proof.split(".")[0] + "=="))
            key = ECKey.import_key(header["jwk"])
            claims = jwt.decode(proof, key).claims
        except Exception:  # noqa: BLE001 - any bad proof is just refused
            return "invalid_dpop_proof"
        htu = urlsplit(str(request.url))
        if header.get("typ") != "dpop+jwt" or "d" in header["jwk"]:
            return "invalid_dpop_proof"
        if (
            claims.get("htm") != request.method
            or claims.get("htu") != f"{htu.scheme}://{htu.netloc}{htu.path}"
        ):
            return "invalid_dpop_proof"
        if token is not None and claims.get("ath") != _b64(hashlib.sha256(token.encode()).digest()):
            return "invalid_dpop_proof"
        if self.dpop_nonce and claims.get("nonce") != self._nonce:
            return "use_dpop_nonce"
        return None

    def _prm(self) -> httpx2.Response:
        body: dict[str, Any] = {
            "resource": self.prm_resource or self.resource_url,
            "authorization_servers": [self.issuer],
        }
        if self.prm_scopes is not None:
            body["scopes_supported"] = list(self.prm_scopes)
        return _json(200, body)

    # -- the authorization server -----------------------------------------------------------

    def _metadata_or_404(self, path: str) -> httpx2.Response:
        issuer_path = urlsplit(self.issuer).path.rstrip("/")
        if self.metadata_style == "oauth":
            expected = [f"/.well-known/oauth-authorization-server{issuer_path}"]
        elif self.metadata_style == "oidc":
            expected = [f"/.well-known/openid-configuration{issuer_path}"]
            if issuer_path:
                expected.append(f"{issuer_path}/.well-known/openid-configuration")
        else:
            expected = []
        if path not in expected:
            return httpx2.Response(404)
        base = self.issuer.rstrip("/")
        body: dict[str, Any] = {
            "issuer": self._issuer_value,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "response_types_supported": ["code"],
            "token_endpoint_auth_methods_supported": list(self.auth_methods),
            "authorization_response_iss_parameter_supported": self.iss_supported,
        }
        if self.registration:
            body["registration_endpoint"] = f"{base}/register"
        if self.pkce_methods is not None:
            body["code_challenge_methods_supported"] = list(self.pkce_methods)
        if self.scopes_supported is not None:
            body["scopes_supported"] = list(self.scopes_supported)
        if self.dpop:
            body["dpop_signing_alg_values_supported"] = ["ES256"]
        if self.cimd:
            body["client_id_metadata_document_supported"] = True
        return _json(200, body)

    def _authorize(self, params: Mapping[str, str]) -> httpx2.Response:
        redirect_uri = params.get("redirect_uri", "")
        code = secrets.token_urlsafe(16)
        self._codes[code] = dict(params)
        answer = {"code": code}
        if "state" in params:
            answer["state"] = params["state"] if self.state_in_redirect == "echo" else "forged"
        iss = {
            "correct": self._issuer_value,
            "wrong": "https://evil.example",
            "normalized": self._issuer_value + "/",
            "omit": None,
        }[self.iss_in_redirect]
        if iss is not None:
            answer["iss"] = iss
        location = self.redirect_location or redirect_uri
        return httpx2.Response(302, headers={"Location": f"{location}?{urlencode(answer)}"})

    def _client_ok(self, request: httpx2.Request, params: Mapping[str, str]) -> str | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        else:
            client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
        known = {**self.clients, **self.preregistered}
        if client_id.startswith("https://") and self.cimd:
            return client_id
        if client_id not in known:
            return None
        expected = known[client_id]
        if expected is not None and secret != expected:
            return None
        return client_id

    def _issue(self, scopes: set[str], dpop_bound: bool) -> httpx2.Response:
        token = self.fixed_token or secrets.token_urlsafe(24)
        scopes = scopes - self.never_grant
        self.tokens[token] = scopes
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "DPoP" if dpop_bound else "Bearer",
            "expires_in": self.token_lifetime,
        }
        if scopes:
            body["scope"] = " ".join(sorted(scopes))
        if self.issue_refresh:
            refresh = secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = scopes
            body["refresh_token"] = refresh
        return _json(200, body)

    def _token(self, request: httpx2.Request, params: Mapping[str, str]) -> httpx2.Response:
        dpop_bound = False
        if self.dpop and request.headers.get("dpop"):
            problem = self._check_proof(request, None)
            if problem is not None:
                return _json(400, {"error": problem}, {"DPoP-Nonce": self._nonce})
            dpop_bound = True
        grant = params.get("grant_type")
        scopes = set(params.get("scope", "").split())
        if grant == "urn:ietf:params:oauth:grant-type:token-exchange":
            if not params.get("subject_token") or not params.get("audience"):
                return _json(400, {"error": "invalid_request"})
            return _json(
                200,
                {
                    "access_token": f"id-jag-{secrets.token_hex(8)}",
                    "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag",
                    "token_type": "N_A",
                },
            )
        if grant in ("client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"):
            if grant == "client_credentials" and self._client_ok(request, params) is None:
                return _json(401, {"error": "invalid_client"})
            return self._issue(scopes, dpop_bound)
        if self._client_ok(request, params) is None:
            return _json(401, {"error": "invalid_client"})
        if grant == "refresh_token":
            granted = self.refresh_tokens.get(params.get("refresh_token", ""))
            if granted is None:
                return _json(400, {"error": "invalid_grant"})
            return self._issue(granted, dpop_bound)
        if grant != "authorization_code":
            return _json(400, {"error": "unsupported_grant_type"})
        asked = self._codes.pop(params.get("code", ""), None)
        if asked is None:
            return _json(400, {"error": "invalid_grant"})
        verifier = params.get("code_verifier", "")
        if _b64(hashlib.sha256(verifier.encode()).digest()) != asked.get("code_challenge"):
            return _json(400, {"error": "invalid_grant", "error_description": "PKCE failed"})
        if params.get("redirect_uri") != asked.get("redirect_uri"):
            return _json(400, {"error": "invalid_grant"})
        return self._issue(set(asked.get("scope", "").split()), dpop_bound)

    def _register(self, params: Mapping[str, str]) -> httpx2.Response:
        method = params.get("token_endpoint_auth_method", "none")
        client_id = f"client-{secrets.token_hex(4)}"
        secret = None if method == "none" else secrets.token_urlsafe(16)
        self.clients[client_id] = secret
        body: dict[str, Any] = {"client_id": client_id, "token_endpoint_auth_method": method}
        if secret is not None:
            body["client_secret"] = secret
        return _json(201, body)


async def _serve_connection(server: ScriptedAuthServer, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            event: Any = h11.NEED_DATA
            body = b""
            request: h11.Request | None = None
            while not isinstance(event, h11.EndOfMessage):
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.ConnectionClosed):
                    return
            assert request is not None
            host = dict(request.headers).get(b"host", b"127.0.0.1").decode()
            answer = server.handle(
                httpx2.Request(
                    request.method.decode(),
                    f"http://{host}{request.target.decode()}",
                    headers=[(k.decode(), v.decode()) for k, v in request.headers],
                    content=body,
                )
            )
            content = answer.content
            headers = [
                (k, v)
                for k, v in answer.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding")
            ]
            headers.append(("Content-Length", str(len(content))))
            for event_out in (
                h11.Response(status_code=answer.status_code, headers=headers),
                h11.Data(data=content),
                h11.EndOfMessage(),
            ):
                await stream.send_all(conn.send(event_out) or b"")
            if conn.our_state is not h11.DONE:
                return
            conn.start_next_cycle()


@asynccontextmanager
async def open_auth_server(**fields: Any) -> AsyncIterator[ScriptedAuthServer]:
    """A :class:`ScriptedAuthServer` on real HTTP at ``http://127.0.0.1:PORT`` (its issuer).

    ``fields`` are :class:`ScriptedAuthServer`'s; ``issuer`` defaults to the
    bound address. Requests to any host reach it, so a protected resource
    named in ``resource_url`` on the same port works too.
    """
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    fields.setdefault("issuer", f"http://127.0.0.1:{port}")
    server = ScriptedAuthServer(**fields)

    async def connection(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, h11.ProtocolError):
            await _serve_connection(server, stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, connection, listeners)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()

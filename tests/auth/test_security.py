"""Secrets stay secret: never in a log line, a repr, an error or another origin's request."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import httpx2
import pytest

from opex_trio.auth import (
    ClientCredentials,
    ClientIdentity,
    ClientRegistration,
    Credentials,
    FileTokenStore,
    JwtBearer,
    OAuthConfig,
    Token,
)
from opex_trio.auth.crypto import Pkce
from opex_trio.auth.metadata import check_secure
from opex_trio.errors import AuthorizationError
from opex_trio.testing.auth_server import ScriptedAuthServer

from .support import harness


def _secrets(server: ScriptedAuthServer) -> list[str]:
    values = [*server.tokens, *server.refresh_tokens]
    values += [secret for secret in server.clients.values() if secret]
    for record in server.log:
        for key in ("code", "code_verifier", "client_secret", "assertion", "refresh_token"):
            if key in record.params:
                values.append(record.params[key])
    return [value for value in values if len(value) >= 8]


async def test_no_secret_in_any_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = ScriptedAuthServer(auth_methods=("client_secret_post",), token_lifetime=10)
    async with harness(server) as h:
        await h.call()
        await h.call()  # refreshes
    logged = "\n".join(
        record.getMessage() for record in caplog.records if record.name.startswith("opex_trio")
    )
    assert "authorized with" in logged
    for secret in _secrets(server):
        assert secret not in logged


def test_reprs_hide_secrets() -> None:
    token = Token("access-secret-1", refresh_token="refresh-secret-2")
    registration = ClientRegistration("id", "client-secret-3", "client_secret_basic")
    identity = ClientIdentity(
        client_id="id", client_secret="client-secret-4", private_key_pem="PEM-5"
    )
    pkce = Pkce.new()
    text = " ".join(
        repr(value)
        for value in (
            token,
            registration,
            identity,
            pkce,
            Credentials("https://m", "https://a", token),
            OAuthConfig(grant=JwtBearer("assertion-secret-6"), client=identity),
        )
    )
    for secret in (
        "access-secret-1",
        "refresh-secret-2",
        "client-secret-3",
        "client-secret-4",
        "PEM-5",
        "assertion-secret-6",
        pkce.verifier,
    ):
        assert secret not in text


async def test_token_never_sent_to_another_origin() -> None:
    server = ScriptedAuthServer()
    async with harness(server) as h:
        await h.call()
        await h.client.get("https://elsewhere.example/x", auth=h.auth)
    [other] = [r for r in server.log if "elsewhere.example" in r.url]
    assert "authorization" not in other.headers
    assert "dpop" not in other.headers


async def test_client_secret_only_goes_to_the_token_endpoint() -> None:
    server = ScriptedAuthServer(
        auth_methods=("client_secret_basic",), preregistered={"svc": "s3cret-value"}
    )
    config = OAuthConfig(
        grant=ClientCredentials(),
        client=ClientIdentity(client_id="svc", client_secret="s3cret-value"),
    )
    async with harness(server, config) as h:
        await h.call()
    carrying = [
        r.url
        for r in server.log
        if "s3cret-value" in str(r.params) or r.headers.get("authorization", "").startswith("Basic")
    ]
    assert carrying == ["https://auth.example/token"]


@pytest.mark.parametrize(
    "url",
    ["http://auth.example/x", "ftp://auth.example/x", "http://10.0.0.1/x", "https:///nohost"],
)
def test_https_required_off_loopback(url: str) -> None:
    with pytest.raises(AuthorizationError) as info:
        check_secure(url, "endpoint")
    assert info.value.reason == "insecure"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8/x", "http://localhost/x", "http://[::1]/x", "https://a.example"]
)
def test_https_or_loopback_accepted(url: str) -> None:
    assert check_secure(url, "endpoint") == url


async def test_plain_http_authorization_server_is_refused() -> None:
    server = ScriptedAuthServer(issuer="http://auth.example")
    async with harness(server) as h:
        with pytest.raises(AuthorizationError) as info:
            await h.call()
    assert info.value.reason == "insecure"
    assert not [r for r in server.log if r.url.startswith("http://auth.example")]


async def test_redirecting_token_endpoint_is_refused() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/token":
            return httpx2.Response(307, headers={"Location": "https://evil.example/token"})
        return server.handle(request)

    server = ScriptedAuthServer(
        auth_methods=("client_secret_post",), preregistered={"c": "secret-xyz"}
    )
    config = OAuthConfig(
        grant=ClientCredentials(), client=ClientIdentity(client_id="c", client_secret="secret-xyz")
    )
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
        from opex_trio.auth import OAuth

        auth = OAuth(config, server_url=server.resource_url, http_client=client)
        with pytest.raises(AuthorizationError) as info:
            await client.post(server.resource_url, json={}, auth=auth)
    assert info.value.reason == "redirect"
    assert "secret-xyz" not in str(info.value)


async def test_file_store_is_private(tmp_path: Path) -> None:
    path = tmp_path / "config" / "opex-trio" / "auth.json"
    store = FileTokenStore(path)
    credentials = Credentials(
        "https://m.example/mcp", "https://a.example", Token("t-1", expires_at=5.0)
    )
    await store.put(credentials)
    await store.put_client(
        "https://a.example", ClientRegistration("cid", "csecret", "client_secret_post")
    )
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    again = FileTokenStore(path)
    assert await again.get("https://m.example/mcp") == credentials
    assert (await again.get_client("https://a.example")) == ClientRegistration(
        "cid", "csecret", "client_secret_post"
    )
    assert [c.resource for c in await again.all()] == ["https://m.example/mcp"]
    assert await again.delete("https://m.example/mcp")
    assert await again.get("https://m.example/mcp") is None
    assert not await again.delete("https://m.example/mcp")


async def test_file_store_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert FileTokenStore().path == tmp_path / "opex-trio" / "auth.json"


async def test_corrupt_file_store_is_a_config_error(tmp_path: Path) -> None:
    from opex_trio.errors import ConfigError

    path = tmp_path / "auth.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"auth\.json"):
        await FileTokenStore(path).get("x")


async def test_mcp_redirect_to_another_origin_drops_the_token() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "mcp.example" and request.headers.get("authorization"):
            return httpx2.Response(307, headers={"Location": "https://other.example/mcp"})
        if request.url.host == "other.example":
            seen.append(dict(request.headers))
            return httpx2.Response(200, json={})
        return server.handle(request)

    seen: list[dict[str, str]] = []
    server = ScriptedAuthServer()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
        from opex_trio.auth import AuthorizationCode, HeadlessRedirect, OAuth

        config = OAuthConfig(grant=AuthorizationCode(HeadlessRedirect(http_client=client)))
        auth = OAuth(config, server_url=server.resource_url, http_client=client)
        await client.post(server.resource_url, json={}, auth=auth, follow_redirects=True)
    assert len(seen) == 1
    assert "authorization" not in seen[0]


async def test_plain_http_mcp_server_gets_no_token() -> None:
    server = ScriptedAuthServer(resource_url="http://mcp.example/mcp")
    async with harness(server) as h:
        with pytest.raises(AuthorizationError) as info:
            await h.call()
    assert info.value.reason == "insecure"
    assert not [r for r in server.log if r.url.startswith("https://auth.example")]


async def test_signing_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "joserfc", None)
    monkeypatch.setitem(sys.modules, "joserfc.jwk", None)
    monkeypatch.setitem(sys.modules, "joserfc.jwt", None)
    server = ScriptedAuthServer(dpop=True)
    async with harness(server) as h:
        with pytest.raises(AuthorizationError, match=r"opex_trio\[oauth\]") as info:
            await h.call()
    assert info.value.reason == "extra"

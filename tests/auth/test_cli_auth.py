"""``opex-trio auth``: login driven end to end on loopback, with a headless browser; status; logout."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx2
import pytest
import trio

from opex_trio.auth import FileTokenStore
from opex_trio.cli._auth import build_auth_parser, run_auth, with_login
from opex_trio.mcp.client import McpClient
from opex_trio.testing.auth_server import open_auth_server
from opex_trio.testing.http_server import HttpRecord, McpHttpServer
from opex_trio.testing.mcp_server import builtin_server
from opex_trio.transports.http import HttpParameters, open_http_transport

TOKEN = "cli-access-token-0123456789"


def _metadata(issuer: list[str], server: list[McpHttpServer]):  # type: ignore[no-untyped-def]
    def answer(record: HttpRecord) -> tuple[int, bytes] | None:
        if not record.path.startswith("/.well-known/oauth-protected-resource"):
            return None
        body = {
            "resource": server[0].url,
            "authorization_servers": issuer,
            "scopes_supported": ["mcp"],
        }
        return 200, json.dumps(body).encode()

    return answer


async def _browse(url: str, pages: list[str]) -> None:
    """What a browser does: load the page and follow every redirect, to the loopback callback."""
    async with httpx2.AsyncClient(follow_redirects=True) as client:
        response = await client.get(url)
        pages.append(response.text)


async def test_login_status_logout_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FileTokenStore(tmp_path / "opex-trio" / "auth.json")
    issuer: list[str] = []
    holder: list[McpHttpServer] = []
    pages: list[str] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            mcp = McpHttpServer(
                builtin_server(), require_token=TOKEN, intercept=_metadata(issuer, holder)
            )
            holder.append(mcp)
            await nursery.start(mcp.serve)
            async with open_auth_server(fixed_token=TOKEN, resource_url=mcp.url) as server:
                issuer.append(server.issuer)
                shown: list[str] = []

                def show(line: str) -> None:
                    shown.append(line)
                    nursery.start_soon(_browse, line.rsplit(" ", 1)[-1], pages)

                parser = build_auth_parser()
                args = parser.parse_args(["auth", "login", mcp.url, "--no-browser"])
                assert await run_auth(args, store=store, show=show) == 0
                assert "logged in" in capsys.readouterr().out
                # The URL went to the user, not to a browser; the callback page answered.
                assert shown and shown[0].startswith("Open this URL to log in: ")
                assert pages and "close this window" in pages[0]
                authorize = server.requests_to("/authorize")[0]
                assert authorize.params["redirect_uri"].startswith("http://127.0.0.1:")
                assert authorize.params["scope"] == "mcp"

                # Another command, later: the stored token opens the session, no new login.
                [params] = with_login(
                    {"s": HttpParameters(mcp.url)}, store=store, show=show
                ).values()
                assert isinstance(params, HttpParameters)
                async with McpClient(lambda: open_http_transport(params), name="s") as client:
                    assert await client.list_tools()
                assert len(server.requests_to("/authorize")) == 1

                args = parser.parse_args(["auth", "status", "--json"])
                assert await run_auth(args, store=store) == 0
                [line] = capsys.readouterr().out.splitlines()
                entry = json.loads(line)
                assert entry["server"] == mcp.url
                assert entry["issuer"] == server.issuer
                assert TOKEN not in line

                args = parser.parse_args(["auth", "logout", mcp.url])
                assert await run_auth(args, store=store) == 0
                assert await run_auth(args, store=store) == 1
            nursery.cancel_scope.cancel()
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert TOKEN not in capsys.readouterr().out


async def test_login_failure_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FileTokenStore(tmp_path / "auth.json")
    args = build_auth_parser().parse_args(
        ["auth", "login", "http://127.0.0.1:9/mcp", "--no-browser"]
    )
    with trio.fail_after(30):
        assert await run_auth(args, store=store) == 1
    assert "could not reach" in capsys.readouterr().err


async def test_unknown_server_is_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": {"a": {"url": "https://a.example/mcp"}}}))
    args = build_auth_parser().parse_args(["auth", "login", "b", "--mcp-config", str(config)])
    assert await run_auth(args, store=FileTokenStore(tmp_path / "auth.json")) == 2
    assert "no server 'b'" in capsys.readouterr().err


async def test_loopback_redirect_keeps_its_port_across_logins() -> None:
    from opex_trio.auth import LoopbackRedirect

    pages: list[str] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            redirect = LoopbackRedirect(
                open_browser=False,
                show=lambda line: nursery.start_soon(_browse, line.rsplit(" ", 1)[-1], pages),
            )
            first = redirect.redirect_uri
            answer = await redirect.authorize(first + "?code=one&state=s1")
            assert answer == {"code": "one", "state": "s1"}
            assert redirect.redirect_uri == first
            answer = await redirect.authorize(first + "?code=two&state=s2")
            assert answer == {"code": "two", "state": "s2"}
    assert len(pages) == 2

"""The ``opex-trio`` command's login, run as a real process against loopback servers.

The browser is a headless client: it reads the URL the command prints with
``--no-browser`` and follows it to the command's loopback callback.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import httpx2
import trio

from opex_trio.testing.auth_server import open_auth_server
from opex_trio.testing.http_server import HttpRecord, McpHttpServer
from opex_trio.testing.mcp_server import builtin_server

TOKEN = "process-access-token-0123456789"
PREFIX = "Open this URL to log in: "


async def _command(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    done = await trio.run_process(
        [sys.executable, "-m", "opex_trio.cli", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_login_then_tools_then_logout(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    issuer: list[str] = []
    holder: list[McpHttpServer] = []

    def metadata(record: HttpRecord) -> tuple[int, bytes] | None:
        if not record.path.startswith("/.well-known/oauth-protected-resource"):
            return None
        body = {"resource": holder[0].url, "authorization_servers": issuer}
        return 200, json.dumps(body).encode()

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            mcp = McpHttpServer(builtin_server(), require_token=TOKEN, intercept=metadata)
            holder.append(mcp)
            await nursery.start(mcp.serve)
            async with open_auth_server(fixed_token=TOKEN, resource_url=mcp.url) as server:
                issuer.append(server.issuer)
                process = await nursery.start(
                    lambda task_status=trio.TASK_STATUS_IGNORED: trio.run_process(
                        [
                            sys.executable,
                            "-m",
                            "opex_trio.cli",
                            "auth",
                            "login",
                            mcp.url,
                            "--no-browser",
                        ],
                        stdout=None,
                        stderr=__import__("subprocess").PIPE,
                        env=env,
                        check=False,
                        task_status=task_status,
                    )
                )
                assert process.stderr is not None
                seen = b""
                while PREFIX.encode() not in seen or not seen.rstrip(b" ").endswith(b"\n"):
                    chunk = await process.stderr.receive_some(4096)
                    assert chunk, seen.decode()
                    seen += chunk
                line = next(x for x in seen.decode().splitlines() if PREFIX in x)
                url = line.split(PREFIX, 1)[1].strip()
                async with httpx2.AsyncClient(follow_redirects=True) as browser:
                    page = await browser.get(url)
                assert "close this window" in page.text
                assert await process.wait() == 0

                store = tmp_path / "opex-trio" / "auth.json"
                assert stat.S_IMODE(store.stat().st_mode) == 0o600
                assert TOKEN in store.read_text()

                # Another command: the stored token opens the session, no new login.
                status, out, err = await _command(["--server", mcp.url, "tools", "list"], env)
                assert status == 0, err
                assert "echo" in out
                assert len(server.requests_to("/authorize")) == 1

                status, out, _ = await _command(["auth", "status"], env)
                assert status == 0 and mcp.url in out and TOKEN not in out
                assert (await _command(["auth", "logout", mcp.url], env))[0] == 0
                assert (await _command(["auth", "logout", mcp.url], env))[0] == 1
            nursery.cancel_scope.cancel()

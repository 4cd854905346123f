"""The test setup's peers are installed, start, and speak MCP; the locator skips or fails as told.

These talk raw JSON-RPC on purpose: they check the peers themselves, not
opex_trio, so a broken peer install shows up here and not as a puzzling failure
elsewhere.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from tests import peers

TIMEOUT = 60  # generous: a cold Node start on a loaded 2-core machine takes seconds


class LineReader:
    """Splits a byte stream into lines."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def line(self) -> bytes:
        while b"\n" not in self.buffer:
            chunk = await self.stream.receive_some()
            if not chunk:
                raise AssertionError(f"stream ended; unterminated data: {bytes(self.buffer)!r}")
            self.buffer += chunk
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer[:] = rest
        return line


@asynccontextmanager
async def running(argv: list[str], *, stdin: bool) -> AsyncIterator[trio.Process]:
    """Run ``argv`` with piped stdout (and stdin); stop it on the way out.

    A stdio server is stopped by closing its stdin; the others get SIGTERM.
    Either way it is killed if it is still there after the grace period.
    """
    proc = await trio.lowlevel.open_process(
        argv, stdin=subprocess.PIPE if stdin else None, stdout=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        with trio.CancelScope(shield=True):
            if proc.stdin is not None:
                await proc.stdin.aclose()
            else:
                proc.terminate()
            with trio.move_on_after(TIMEOUT):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            assert proc.stdout is not None
            await proc.stdout.aclose()


async def stdio_exchange(argv: list[str], methods: list[str]) -> dict[str, Any]:
    """Initialize a stdio server, then call each of ``methods``; return the results by method."""
    async with running(argv, stdin=True) as proc:
        assert proc.stdout is not None
        reader = LineReader(proc.stdout)

        async def send(message: dict[str, Any]) -> None:
            assert proc.stdin is not None
            await proc.stdin.send_all(json.dumps(message).encode() + b"\n")

        async def request(request_id: int, method: str, params: dict[str, Any]) -> Any:
            await send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            while True:
                message = json.loads(await reader.line())
                if message.get("id") == request_id and "method" not in message:
                    assert "error" not in message, message
                    return message["result"]
                if "id" in message and "method" in message:
                    # A request from the server (roots, sampling...): decline it.
                    await send(
                        {
                            "jsonrpc": "2.0",
                            "id": message["id"],
                            "error": {"code": -32601, "message": "not supported"},
                        }
                    )

        results = {
            "initialize": await request(
                1,
                "initialize",
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "opex-trio-peer-check", "version": "0"},
                },
            )
        }
        await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        for request_id, method in enumerate(methods, start=2):
            results[method] = await request(request_id, method, {})
    return results


def tool_names(result: dict[str, Any]) -> set[str]:
    return {tool["name"] for tool in result["tools"]}


async def test_server_everything_over_stdio(everything_stdio_command: list[str]) -> None:
    with trio.fail_after(TIMEOUT):
        results = await stdio_exchange(everything_stdio_command, ["tools/list", "prompts/list"])
    assert results["initialize"]["serverInfo"]["name"] == "mcp-servers/everything"
    assert {"echo", "get-sum", "trigger-long-running-operation"} <= tool_names(
        results["tools/list"]
    )
    assert "simple-prompt" in {p["name"] for p in results["prompts/list"]["prompts"]}


async def test_server_filesystem_over_stdio(filesystem_command: list[str]) -> None:
    with trio.fail_after(TIMEOUT):
        results = await stdio_exchange(filesystem_command, ["tools/list"])
    assert {"read_text_file", "list_directory"} <= tool_names(results["tools/list"])


async def test_time_server_over_stdio(time_server_command: list[str]) -> None:
    with trio.fail_after(TIMEOUT):
        results = await stdio_exchange(time_server_command, ["tools/list"])
    assert tool_names(results["tools/list"]) == {"get_current_time", "convert_time"}


async def test_node22_is_node_22_or_newer(node22: str) -> None:
    with trio.fail_after(TIMEOUT):
        done = await trio.run_process([node22, "--version"], capture_stdout=True)
    major = int(done.stdout.decode().strip().lstrip("v").split(".")[0])
    assert major >= 22


async def test_conformance_suite_lists_client_scenarios(conformance_command: list[str]) -> None:
    with trio.fail_after(TIMEOUT):
        done = await trio.run_process([*conformance_command, "list"], capture_stdout=True)
    listing = done.stdout.decode()
    for scenario in (
        "initialize",
        "tools_call",
        "elicitation-sep1034-client-defaults",
        "sse-retry",
    ):
        assert f"- {scenario} " in listing


async def test_peers_python_has_the_mcp_sdk(peers_python: str) -> None:
    code = "import importlib.metadata as m; print(m.version('mcp'))"
    with trio.fail_after(TIMEOUT):
        done = await trio.run_process([peers_python, "-c", code], capture_stdout=True)
    assert done.stdout.decode().strip().split(".")[0] == "2"


async def test_sdk_server_over_streamable_http(sdk_server_command: list[str]) -> None:
    with trio.fail_after(TIMEOUT):
        async with running(sdk_server_command, stdin=False) as proc:
            assert proc.stdout is not None
            first = (await LineReader(proc.stdout).line()).decode()
            assert first.startswith("listening on http://127.0.0.1:")
            url = first.removeprefix("listening on ")
            async with httpx2.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.post(
                    url,
                    json={
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {
                            "protocolVersion": "2025-11-25",
                            "capabilities": {},
                            "clientInfo": {"name": "opex-trio-peer-check", "version": "0"},
                        },
                    },
                    headers={"Accept": "application/json, text/event-stream"},
                )
    assert response.status_code == 200, response.text
    body = response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        body = next(
            line.removeprefix("data:") for line in body.splitlines() if line.startswith("data:")
        )
    assert json.loads(body)["result"]["serverInfo"]["name"] == "opex-trio-sdk-peer"


def test_missing_peer_skips_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(peers, "_EVERYTHING", tmp_path / "absent.js")
    monkeypatch.delenv(peers.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"nox -s peers"):
        peers.everything_stdio_command()


def test_missing_peer_fails_when_peers_are_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(peers, "_EVERYTHING", tmp_path / "absent.js")
    monkeypatch.setenv(peers.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=r"OPEX_REQUIRE_PEERS=1"):
        peers.everything_stdio_command()


def test_missing_peer_raises_outside_pytest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(peers, "_CONFORMANCE_0_1", tmp_path / "absent.js")
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    with pytest.raises(peers.PeerMissingError, match=r"conformance"):
        peers.conformance_command()


def test_unknown_transport_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'websocket'"):
        peers.everything_command("websocket")  # type: ignore[arg-type]

"""``opex-trio`` on its embedded default: no key, no URL, the local extra installed.

The command starts llama-cpp-python's server with SmolLM2-135M itself, says
so in one line, answers, and stops the server on exit. The nox ``interop``
session installs the extra's packages; without them these tests skip, unless
``OPEX_REQUIRE_PEERS=1``, when they fail.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
from pathlib import Path

import pytest

from opex_trio.llm.local import missing_local_model
from tests.cli.support import cli_env, run_cli

pytestmark = pytest.mark.interop

NOTICE = re.compile(
    r"^opex-trio: using the embedded SmolLM2-135M on http://127\.0\.0\.1:(\d+)/v1: "
)


@pytest.fixture(autouse=True)
def _local_extra() -> None:
    problem = missing_local_model()
    if problem is None:
        return
    if os.environ.get("OPEX_REQUIRE_PEERS") == "1":
        pytest.fail(f"{problem} (required: OPEX_REQUIRE_PEERS=1)")
    pytest.skip(f"{problem}; run `python3 -m nox -s interop`")


def _port_of(stderr: str) -> int:
    ports = [int(m.group(1)) for line in stderr.splitlines() if (m := NOTICE.match(line))]
    assert len(ports) == 1, stderr
    return ports[0]


def _model_servers_on(port: int) -> list[int]:
    """Pids of llama_cpp.server processes started with ``--port PORT``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state == b"Z" or b"llama_cpp.server" not in argv:
            continue
        if str(port).encode() in argv:
            found.append(int(entry.name))
    return found


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_run_on_the_embedded_default_with_a_real_mcp_server(
    time_server_command: list[str],
) -> None:
    ran = await run_cli(
        "--server", shlex.join(time_server_command), "run", "Say hello in one short sentence.",
        "--max-tokens", "32",
        env=cli_env(),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    port = _port_of(ran.stderr)
    assert ran.stderr.splitlines()[0] == (
        f"opex-trio: using the embedded SmolLM2-135M on http://127.0.0.1:{port}/v1: a tiny "
        "model that answers in plain text and calls no tools (set an API key or --base-url "
        "for one that does)"
    )
    assert ran.stdout.strip()
    assert "Traceback" not in ran.stderr
    # The model server was stopped with the command.
    assert _model_servers_on(port) == []
    assert not _listening(port)


async def test_run_json_and_chat_on_the_embedded_default() -> None:
    ran = await run_cli("run", "--json", "Say hi.", "--max-tokens", "16", env=cli_env())
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["model"] == "SmolLM2-135M-Instruct"
    assert result["stop_reason"] == "answered"
    assert result["usage"]["completion_tokens"] is not None
    assert 0 < result["usage"]["completion_tokens"] <= 16
    port = _port_of(ran.stderr)
    assert _model_servers_on(port) == []

    chat = await run_cli("chat", "--max-tokens", "16", stdin=b"Hello.\nAnd again.\n", env=cli_env())
    assert chat.returncode == 0, chat.stderr
    assert len([line for line in chat.stdout.splitlines() if line.strip()]) >= 2
    assert _model_servers_on(_port_of(chat.stderr)) == []

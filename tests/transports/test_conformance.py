"""The official MCP conformance suite's client scenarios, run against our conformance client.

The nox session ``conformance`` runs the same; this test gives the answer from plain pytest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

from tests.transports.support import peers

# The nox `conformance` session runs these scenarios (and every other one); the
# `tests` sessions leave them to it.
pytestmark = [pytest.mark.peers, pytest.mark.conformance]

SCENARIOS = ("initialize", "tools_call", "elicitation-sep1034-client-defaults", "sse-retry")


def conformance_command() -> list[str]:
    command: list[str] = peers().conformance_command()
    return command


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_client_scenario_passes(scenario: str, tmp_path: Path) -> None:
    argv = [
        *conformance_command(),
        "client",
        "--command",
        f"{sys.executable} -m opex_trio.testing.conformance_client",
        "--scenario",
        scenario,
        "--output-dir",
        str(tmp_path),
    ]
    with trio.fail_after(180):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, output
    (checks_file,) = tmp_path.glob("*/checks.json")
    checks = json.loads(checks_file.read_text())
    verdicts = [c["status"] for c in checks if c["status"] in ("SUCCESS", "FAILURE", "WARNING")]
    assert verdicts and set(verdicts) == {"SUCCESS"}, output

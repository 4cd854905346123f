"""Bad input: one line on stderr naming what and where, no traceback, the documented exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.support import TEST_SERVER, Ran, run_cli

CRASHING = f"{TEST_SERVER} --crash-at-start"


def only_line(ran: Ran) -> str:
    lines = ran.lines
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("opex-trio: error: ")
    return lines[0].removeprefix("opex-trio: error: ")


async def test_a_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    ran = await run_cli("--mcp-config", str(missing), "tools", "list")
    assert ran.returncode == 2
    assert only_line(ran) == f"config file {str(missing)!r} does not exist"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"mcpServers": {"a": {"command": "x",}}}', "is not valid JSON: Expecting property name"),
        ('{"servers_typo": {}}', "has no 'mcpServers' object"),
        ('{"mcpServers": {"a": {"args": ["x"]}}}', "mcpServers.a needs 'command'"),
        (
            '{"mcpServers": {"a": {"command": "x", "args": "y"}}}',
            "mcpServers.a.args must be a list",
        ),
    ],
)
async def test_a_malformed_config_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "servers.json"
    path.write_text(content)
    ran = await run_cli("--mcp-config", str(path), "servers")
    assert ran.returncode == 2
    line = only_line(ran)
    assert str(path) in line and expected in line


async def test_a_server_command_that_does_not_exist() -> None:
    ran = await run_cli("--server", "no-such-mcp-server-command --flag", "tools", "list")
    assert ran.returncode == 2
    line = only_line(ran)
    assert line.startswith("MCP server 'no-such-mcp-server-command' did not start: ")
    assert "did not start" in line
    assert "command 'no-such-mcp-server-command' was not found on PATH" in line


async def test_a_server_that_crashes_at_start(tmp_path: Path) -> None:
    config = tmp_path / "servers.json"
    command, *args = CRASHING.split()
    config.write_text(json.dumps({"mcpServers": {"crashy": {"command": command, "args": args}}}))
    ran = await run_cli("--mcp-config", str(config), "--server", TEST_SERVER, "tools", "list")
    assert ran.returncode == 1
    line = only_line(ran)
    # Said once: not "MCP server 'crashy' did not start: MCP server 'crashy' exited".
    assert line.startswith("MCP server 'crashy' did not start: exited")
    assert line.count("MCP server") == 1
    assert line.endswith("(exit status 7); stderr: crashing at start on purpose")
    assert ran.stdout == ""


async def test_run_stops_at_a_server_that_will_not_start() -> None:
    # Reported before the model is asked anything: no --base-url server is even needed.
    ran = await run_cli(
        "--server", CRASHING, "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "run", "Hi"
    )
    assert ran.returncode == 1
    line = only_line(ran)
    assert "did not start" in line and "exit status 7" in line


async def test_unknown_tools_and_servers() -> None:
    ran = await run_cli("--server", TEST_SERVER, "tools", "call", "no_such_tool")
    assert ran.returncode == 2
    assert only_line(ran) == "no tool named 'no_such_tool' (see 'opex-trio tools list')"

    ran = await run_cli("--server", TEST_SERVER, "tools", "call", "elsewhere/echo")
    assert ran.returncode == 2
    line = only_line(ran)
    assert line == "no MCP server 'elsewhere' (servers: 'opex_trio-testing-mcp_server')"

    ran = await run_cli("--server", TEST_SERVER, "tools", "call", "mcp/nope")
    assert ran.returncode == 2
    assert only_line(ran).startswith("no MCP server 'mcp'")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("{oops", "--args is not valid JSON: Expecting property name enclosed in double quotes"),
        ("[1, 2]", "--args must be a JSON object, got list: [1, 2]"),
    ],
)
async def test_bad_args(arguments: str, expected: str) -> None:
    ran = await run_cli("--server", TEST_SERVER, "tools", "call", "echo", "--args", arguments)
    assert ran.returncode == 2
    assert only_line(ran).startswith(expected)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["tools", "list"], "no MCP server given: use --mcp-config FILE or --server COMMAND"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        (["run"], "the following arguments are required: prompt"),
        (["--max-turns", "0", "run", "x"], "argument --max-turns: must be at least 1, got 0"),
        (["run", "x", "--tool-timeout", "soon"], "not a number of seconds: 'soon'"),
        (["run", "x", "--max-tokens", "-1"], "argument --max-tokens: must be at least 0, got -1"),
        (["--local", "--base-url", "http://x/v1", "run", "x"], "--local and --base-url exclude"),
    ],
)
async def test_bad_usage(argv: list[str], expected: str) -> None:
    ran = await run_cli(*argv)
    assert ran.returncode == 2
    assert expected in only_line(ran)


async def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    ran = await run_cli("-v", "--mcp-config", str(missing), "tools", "list")
    assert ran.returncode == 2
    assert "Traceback (most recent call last)" in ran.stderr
    assert "opex_trio.errors.ConfigError" in ran.stderr
    assert ran.lines[-1] == (f"opex-trio: error: config file {str(missing)!r} does not exist")


async def test_verbose_logs_the_servers() -> None:
    ran = await run_cli("--server", TEST_SERVER, "tools", "list", "-v")
    assert ran.returncode == 0
    assert "INFO opex_trio.cli: MCP server 'opex_trio-testing-mcp_server': ready" in ran.stderr
    assert "DEBUG" not in ran.stderr
    # -vv adds debug lines: here, what the servers write to their stderr.
    flooding = f"{TEST_SERVER} --stderr-flood 10"
    ran = await run_cli("--server", flooding, "tools", "list", "-vv")
    assert ran.returncode == 0
    assert "DEBUG opex_trio.transports.stdio: [" in ran.stderr
    assert "stderr] flood flood" in ran.stderr

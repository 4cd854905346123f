"""``opex-trio tools`` and ``opex-trio servers``: MCP without a model, against real servers."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from tests.cli.support import TEST_SERVER, run_cli

CRASHING = f"{TEST_SERVER} --crash-at-start"


async def test_tools_list_and_call_against_server_everything(
    everything_stdio_command: list[str],
) -> None:
    server = shlex.join(everything_stdio_command)
    listed = await run_cli("--server", server, "tools", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert "echo: Echoes back the input string" in lines
    assert any(line.startswith("get-sum: ") for line in lines)
    assert listed.lines == []

    called = await run_cli(
        "tools", "call", "echo", "--args", '{"message": "hello there"}', "--server", server
    )
    assert called.returncode == 0, called.stderr
    assert called.stdout == "Echo: hello there\n"

    as_json = await run_cli(
        "--server", server, "tools", "call", "get-sum", "--args", '{"a": 2, "b": 40}', "--json"
    )
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert "42" in result["content"][0]["text"]

    listed_json = await run_cli("--server", server, "tools", "list", "--json")
    rows = json.loads(listed_json.stdout)
    echo = next(row for row in rows if row["name"] == "echo")
    assert echo["registry_name"] == "echo"
    assert echo["inputSchema"]["properties"]["message"]["type"] == "string"


async def test_progress_of_a_direct_call(everything_stdio_command: list[str]) -> None:
    ran = await run_cli(
        "--server", shlex.join(everything_stdio_command), "tools", "call",
        "trigger-long-running-operation", "--args", '{"duration": 1, "steps": 2}',
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "Long running operation completed" in ran.stdout
    assert "[progress] trigger-long-running-operation 1/2 (50%)" in ran.lines


async def test_several_servers_and_server_slash_tool_names(tmp_path: Path) -> None:
    config = {
        "mcpServers": {
            "one": {"command": TEST_SERVER.split()[0], "args": TEST_SERVER.split()[1:]},
            "two": {
                "command": TEST_SERVER.split()[0],
                "args": [*TEST_SERVER.split()[1:], "--name", "second"],
            },
        }
    }
    path = tmp_path / "servers.json"
    path.write_text(json.dumps(config))
    listed = await run_cli("--mcp-config", str(path), "tools", "list")
    assert listed.returncode == 0, listed.stderr
    # Both offer "echo": the registry prefixes them; each line says which is which.
    assert any(line.startswith("one__echo [one/echo]: ") for line in listed.stdout.splitlines())
    assert any(line.startswith("two__echo [two/echo]: ") for line in listed.stdout.splitlines())

    by_server = await run_cli(
        "--mcp-config", str(path), "tools", "call", "two/echo", "--args", '{"message": "2"}'
    )
    assert (by_server.returncode, by_server.stdout) == (0, "2\n")
    by_registry = await run_cli(
        "--mcp-config", str(path), "tools", "call", "one__echo", "--args", '{"message": "1"}'
    )
    assert (by_registry.returncode, by_registry.stdout) == (0, "1\n")
    ambiguous = await run_cli(
        "--mcp-config", str(path), "tools", "call", "echo", "--args", '{"message": "?"}'
    )
    assert ambiguous.returncode == 2
    assert ambiguous.lines == [
        "opex-trio: error: tool 'echo' is offered by several servers; name one: one/echo, two/echo"
    ]


async def test_a_tool_error_and_a_tool_timeout_exit_1() -> None:
    failed = await run_cli("--server", TEST_SERVER, "tools", "call", "fail")
    assert failed.returncode == 1
    assert failed.stdout == "the tool failed on purpose\n"
    assert failed.lines == ["opex-trio: error: tool 'fail' reported an error"]

    slow = await run_cli(
        "--server", TEST_SERVER, "tools", "call", "sleep", "--args", '{"seconds": 60}',
        "--timeout", "0.5",
    )  # fmt: skip
    assert slow.returncode == 1
    assert slow.lines == [
        "opex-trio: error: tool 'sleep' did not answer within 0.5 s (see --timeout)"
    ]


async def test_servers_shows_state_protocol_and_tools() -> None:
    ran = await run_cli("--server", TEST_SERVER, "servers")
    assert ran.returncode == 0, ran.stderr
    head, *tools = ran.stdout.splitlines()
    assert head.startswith("opex_trio-testing-mcp_server: ready, opex-test-server ")
    assert ", protocol 2025-" in head and ", 0 restarts, " in head
    assert "  echo" in tools and "  sleep" in tools

    as_json = await run_cli("--server", TEST_SERVER, "servers", "--json")
    (row,) = json.loads(as_json.stdout)
    assert row["state"] == "ready" and row["restarts"] == 0 and row["last_error"] is None
    assert row["server"]["name"] == "opex-test-server"
    assert {"name": "echo", "registry_name": "echo"} in row["tools"]


async def test_servers_reports_one_that_will_not_start_and_exits_1() -> None:
    ran = await run_cli("--server", TEST_SERVER, "--server", CRASHING, "servers", "--json")
    assert ran.returncode == 1
    good, bad = json.loads(ran.stdout)
    assert good["state"] == "ready"
    assert bad["state"] == "failed" and bad["tools"] == []
    assert "exit status 7" in bad["last_error"]
    assert "crashing at start on purpose" in bad["last_error"]

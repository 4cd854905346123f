"""Server configuration parsing: seed dicts, mcpServers files, stable ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opex_trio.errors import ConfigError
from opex_trio.mcp.config import (
    from_config,
    load_config,
    parse_server,
    server_from_command,
    server_id,
)
from opex_trio.transports.stdio import StdioParameters


def test_seed_stdio_dict_with_pair_list_env() -> None:
    config = parse_server(
        {"command": "npx", "args": ["-y", "pkg"], "env": [["A", "1"], {"name": "B", "value": "2"}]},
        name="fs",
    )
    assert config == StdioParameters("npx", ("-y", "pkg"), env={"A": "1", "B": "2"}, name="fs")


def test_mcp_servers_file(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "time": {"command": "uvx", "args": ["mcp-server-time"]},
                    "fs": {
                        "command": "npx",
                        "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
                        "env": {"DEBUG": "1"},
                        "cwd": "~",
                        "alwaysAllow": ["read_file"],
                    },
                    "off": {"command": "nope", "disabled": True},
                }
            }
        )
    )
    servers = load_config(path)
    assert list(servers) == ["time", "fs"]
    fs = servers["fs"]
    assert isinstance(fs, StdioParameters)
    assert fs.env == {"DEBUG": "1"} and fs.name == "fs" and fs.cwd == str(Path.home())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"is not valid JSON: Expecting property name .* line 1, column 2"),
        ("[]", "must hold a JSON object"),
        ("{}", "has no 'mcpServers' object"),
        ('{"mcpServers": []}', "'mcpServers' must be an object"),
        ('{"mcpServers": {"a": 5}}', r"mcpServers.a must be an object"),
        ('{"mcpServers": {"a": {}}}', r"mcpServers.a needs 'command'"),
        ('{"mcpServers": {"a": {"command": ""}}}', r"mcpServers.a.command must be a non-empty"),
        (
            '{"mcpServers": {"a": {"command": "x", "args": "y"}}}',
            r"mcpServers.a.args must be a list",
        ),
        (
            '{"mcpServers": {"a": {"command": "x", "env": {"K": 1}}}}',
            r"mcpServers.a.env\['K'\] must be a string",
        ),
        ('{"mcpServers": {"a": {"command": "x", "url": "http://h"}}}', "both 'command' and 'url'"),
    ],
)
def test_bad_files_name_the_file_and_the_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json' does not exist"):
        load_config(tmp_path / "missing.json")


def test_server_from_command_line() -> None:
    config = server_from_command("uvx mcp-server-time --local-timezone 'Europe/Paris'")
    assert config.command == "uvx"
    assert config.args == ("mcp-server-time", "--local-timezone", "Europe/Paris")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        server_from_command("npx 'unterminated")
    with pytest.raises(ConfigError, match="empty"):
        server_from_command("   ")


def test_ids_are_names_or_stable_slugs() -> None:
    named = parse_server({"command": "x"}, name="mine")
    assert server_id(named) == "mine"
    a = server_from_command("npx -y @modelcontextprotocol/server-everything")
    b = server_from_command("npx -y @modelcontextprotocol/server-everything")
    c = server_from_command("npx -y @modelcontextprotocol/server-everything stdio")
    assert server_id(a) == server_id(b)
    assert server_id(a).startswith("server-everything-")
    assert server_id(a) != server_id(c)
    assert server_id(server_from_command("uvx mcp-server-time")).startswith("mcp-server-time-")


def test_remote_servers_seed_dict_and_file_forms() -> None:
    from opex_trio.transports.http import HttpParameters
    from opex_trio.transports.websocket import WebSocketParameters

    seed = parse_server(
        {"url": "https://mcp.example.com/mcp", "auth_token": "s3cret", "execution_id": "run-1"},
        name="remote",
    )
    assert isinstance(seed, HttpParameters)
    assert seed.auth_token == "s3cret" and seed.execution_id == "run-1"
    assert seed.transport == "auto" and seed.name == "remote"
    assert "s3cret" not in repr(seed)
    servers = from_config(
        {
            "mcpServers": {
                "legacy": {"url": "http://127.0.0.1:9/sse", "type": "sse"},
                "modern": {
                    "url": "http://127.0.0.1:9/mcp",
                    "type": "streamableHttp",
                    "headers": {"X-Team": "a"},
                },
                "socket": {"url": "wss://example.com/mcp"},
            }
        }
    )
    assert isinstance(servers["legacy"], HttpParameters) and servers["legacy"].transport == "sse"
    assert servers["modern"].transport == "streamable-http"  # type: ignore[union-attr]
    assert isinstance(servers["socket"], WebSocketParameters)
    # Over WebSocket the execution id goes in the opening handshake.
    socket = parse_server(
        {"url": "ws://127.0.0.1:9/mcp", "auth_token": "s3cret", "execution_id": "run-2"}
    )
    assert isinstance(socket, WebSocketParameters) and socket.execution_id == "run-2"
    assert (b"Execution-Id", b"run-2") in socket.handshake_headers()
    assert "s3cret" not in repr(socket)
    with pytest.raises(ConfigError, match="execution_id_header"):
        parse_server({"url": "ws://h/mcp", "execution_id": "e", "execution_id_header": "A:B"})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"url": ""}, r"x.url must be a non-empty string"),
        ({"url": "ftp://host/"}, r"x: .*ftp"),
        ({"url": "http://h/mcp", "type": "grpc"}, r"type 'grpc' is not a remote transport"),
        ({"url": "http://h/mcp", "headers": {"A": 1}}, r"x.headers must be an object of strings"),
        ({"url": "http://h/mcp", "auth_token": 5}, r"x.auth_token must be a string"),
    ],
)
def test_bad_remote_entries_name_the_field(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_config({"mcpServers": {"x": entry}}, source="cfg")

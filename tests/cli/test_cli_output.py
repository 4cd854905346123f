"""What the command prints when things are not simple: closed pipes, HTML error pages,
binary content, several servers' names, slow or non-MCP servers, SIGHUP, an unreachable model."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import trio

from opex_trio.cli._tools import block_text
from opex_trio.protocol.types import (
    AudioContent,
    BlobResourceContents,
    EmbeddedResource,
    ImageContent,
)
from opex_trio.testing.llm_server import (
    JSONReply,
    RawReply,
    RecordedRequest,
    SSEReply,
    completion,
    completion_chunks,
    open_llm_server,
)
from tests.cli.support import BOUND, CLI, TEST_SERVER, Ran, cli_env, open_cli, run_cli
from tests.cli.test_cli_agent import _alive, call, streams_text

# -- pipes


async def _read_all(stream: Any) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


async def test_run_into_a_pipe_whose_reader_leaves_exits_quietly() -> None:
    # As `opex-trio run ... | head -c 12`: the reader takes 12 bytes and goes;
    # the answer goes on after that.
    reader_gone = trio.Event()
    replies = 0

    async def answer(request: RecordedRequest) -> SSEReply:
        nonlocal replies
        replies += 1
        if replies == 1:
            first = completion_chunks(
                ("Hello there, friend! ",), tool_calls=[call("c1", "echo", {"message": "x"})]
            )
            return SSEReply(first)
        await reader_gone.wait()
        return streams_text("And many more words.")

    async with open_llm_server(answer) as llm:
        read_end, write_end = os.pipe()
        process = await trio.lowlevel.open_process(
            [
                *CLI,
                "--base-url",
                llm.base_url,
                "--model",
                "m",
                "--server",
                TEST_SERVER,
                "run",
                "Hi",
            ],
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=cli_env(),
        )
        os.close(write_end)
        got = b""
        with trio.fail_after(BOUND):
            while len(got) < 12:
                await trio.lowlevel.wait_readable(read_end)
                got += os.read(read_end, 12 - len(got))
            os.close(read_end)
            reader_gone.set()
            assert process.stderr is not None
            stderr = (await _read_all(process.stderr)).decode()
            status = await process.wait()
    assert got == b"Hello there,"
    assert status == 141, stderr
    assert "Traceback" not in stderr and "Broken" not in stderr
    assert Ran(status, "", stderr).error_lines == []


async def test_tools_call_into_a_closed_pipe_exits_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before anything was written
    try:
        with trio.fail_after(BOUND):
            done = await trio.run_process(
                [
                    *CLI,
                    "--server",
                    TEST_SERVER,
                    "tools",
                    "call",
                    "echo",
                    "--args",
                    '{"message": "x"}',
                ],
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                capture_stderr=True,
                check=False,
                env=cli_env(),
            )
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert Ran(done.returncode, "", done.stderr.decode()).lines == []


# -- errors a person can read

_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>\n"
    b"</body></html>\n"
)


def _html_reply(status: str, page: bytes = _PAGE) -> RawReply:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/html\r\n"
        f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n"
    )
    return RawReply(head.encode() + page)


async def test_an_html_error_page_is_reduced_to_status_and_title() -> None:
    async with open_llm_server(lambda request: _html_reply("502 Bad Gateway")) as web:
        port = web.base_url.split(":")[-1].split("/")[0]
        mcp = await run_cli("--server", f"{web.base_url}/mcp", "tools", "list")
        model = await run_cli("--base-url", web.base_url, "--model", "m", "run", "Hi")
    assert mcp.returncode == 1
    assert mcp.lines == [
        f"opex-trio: error: MCP server '127-0-0-1-{port}' did not start: answered "
        "initialize with HTTP 502 Bad Gateway"
    ]
    assert model.returncode == 1
    (line,) = model.error_lines
    assert "<" not in line and "nginx" not in line
    assert re.fullmatch(r"opex-trio: error: HTTP 502: 502 Bad Gateway( \(.*\))?", line), line


async def test_a_refused_key_with_an_html_page_says_it_once() -> None:
    page = b"<html><head><title>401 Authorization Required</title></head><body></body></html>"
    async with open_llm_server(lambda request: _html_reply("401 Unauthorized", page)) as web:
        ran = await run_cli("--base-url", web.base_url, "--model", "m", "run", "Hi")
    assert ran.returncode == 2
    assert ran.error_lines == [
        "opex-trio: error: the model API refused the key (HTTP 401): 401 Authorization Required"
    ]


async def test_unreachable_base_url_without_model_says_so() -> None:
    # A bound socket that does not listen: every connection to it is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
        ran = await run_cli("--base-url", url, "run", "Hi")
    assert ran.returncode == 1
    (line,) = ran.lines
    assert line.startswith(f"opex-trio: error: the model endpoint {url} is unreachable: ")
    assert "--model" not in line


async def test_run_json_keeps_non_ascii_text() -> None:
    async with open_llm_server() as llm:
        llm.push(JSONReply(completion("Grüße aus 東京")))
        ran = await run_cli("--base-url", llm.base_url, "--model", "m", "run", "--json", "Hi")
    assert ran.returncode == 0, ran.stderr
    assert '"content": "Grüße aus 東京"' in ran.stdout
    assert json.loads(ran.stdout)["content"] == "Grüße aus 東京"


# -- binary content


def _kib(data: str) -> str:
    return f"{len(base64.b64decode(data)) / 1024:.1f} KiB"


async def test_binary_content_is_a_placeholder(everything_stdio_command: list[str]) -> None:
    server = shlex.join(everything_stdio_command)
    whole = await run_cli("--server", server, "tools", "call", "get-tiny-image", "--json")
    assert whole.returncode == 0, whole.stderr
    (image,) = [b for b in json.loads(whole.stdout)["content"] if b["type"] == "image"]
    shown = await run_cli("--server", server, "tools", "call", "get-tiny-image")
    assert shown.returncode == 0, shown.stderr
    assert f"[image {image['mimeType']}, {_kib(image['data'])}]" in shown.stdout.splitlines()
    assert image["data"][:40] not in shown.stdout

    blob = await run_cli(
        "--server", server, "tools", "call", "get-resource-reference",
        "--args", '{"resourceType": "Blob", "resourceId": 2}',
    )  # fmt: skip
    assert blob.returncode == 0, blob.stderr
    placeholder = [line for line in blob.stdout.splitlines() if line.startswith("[resource ")]
    assert len(placeholder) == 1
    assert re.fullmatch(r"\[resource demo://\S+ \S+, \d+ bytes\]", placeholder[0])


def test_placeholders_give_type_and_size() -> None:
    data = base64.b64encode(bytes(3000)).decode()
    assert block_text(AudioContent(data, "audio/wav")) == "[audio audio/wav, 2.9 KiB]"
    assert block_text(ImageContent(base64.b64encode(b"12345").decode(), "image/png")) == (
        "[image image/png, 5 bytes]"
    )
    blob = EmbeddedResource(BlobResourceContents("file:///x.bin", data))
    assert block_text(blob) == "[resource file:///x.bin binary data, 2.9 KiB]"


# -- names


async def test_plain_server_names_and_unambiguous_prefixes(time_server_command: list[str]) -> None:
    time_server = shlex.join(time_server_command)
    servers = await run_cli("--server", TEST_SERVER, "--server", time_server, "servers", "--json")
    assert servers.returncode == 0, servers.stderr
    assert [row["id"] for row in json.loads(servers.stdout)] == [
        "opex_trio-testing-mcp_server",
        "mcp-server-time",
    ]
    by_prefix = await run_cli(
        "--server", TEST_SERVER, "--server", time_server, "tools", "call",
        "mcp/get_current_time", "--args", '{"timezone": "UTC"}',
    )  # fmt: skip
    assert by_prefix.returncode == 0, by_prefix.stderr
    assert json.loads(by_prefix.stdout)["timezone"] == "UTC"

    # Two servers that would share a name keep the library's ids (with a hash),
    # and a prefix of both names neither.
    second = f"{TEST_SERVER} --name second"
    both = await run_cli("--server", TEST_SERVER, "--server", second, "servers", "--json")
    ids = [row["id"] for row in json.loads(both.stdout)]
    assert all(re.fullmatch(r"opex_trio-testing-mcp_server-[0-9a-f]{6}", i) for i in ids), ids
    ambiguous = await run_cli(
        "--server", TEST_SERVER, "--server", second, "tools", "call", "opex/echo"
    )
    assert ambiguous.returncode == 2
    (line,) = ambiguous.lines
    assert line.startswith("opex-trio: error: MCP server 'opex' is ambiguous: it begins ")
    assert all(repr(i) in line for i in ids)


# -- start-up


async def test_a_slow_start_is_reported_in_plain_lines(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    # A server that starts only when the test lets it.
    slow = shlex.join(
        [
            "sh",
            "-c",
            f"while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.05; done; exec {TEST_SERVER}",
        ]
    )
    async with open_cli("--server", slow, "tools", "list") as cli:
        await cli.wait_for("opex-trio: waiting for MCP servers to start: sh\n")
        gate.touch()
        await cli.wait_for("opex-trio: MCP server 'sh' is ready (")
        assert await cli.wait() == 0
    assert "echo: " in cli.stdout
    assert re.search(r"^opex-trio: MCP server 'sh' is ready \(\d+ tools\)$", cli.stderr, re.M)


async def test_a_server_that_speaks_no_mcp_gives_its_reason() -> None:
    not_mcp = shlex.join(["sh", "-c", "echo hello world; exec sleep 600"])
    ran = await run_cli("--server", not_mcp, "--start-timeout", "3", "tools", "list")
    assert ran.returncode == 1
    (line,) = ran.lines
    assert line.startswith(
        "opex-trio: error: MCP server 'sh' did not start within 3 s: what it sent is not MCP: "
    )
    assert "'hello world'" in line and line.endswith("(see --start-timeout)")


# -- signals


async def test_sighup_stops_the_servers_in_order_and_exits_129(tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    # This server outlives the end of its input: only the command's own stop ends it.
    server = f"{TEST_SERVER} --ignore-stdin-eof --pid-file {shlex.quote(str(pid_file))}"
    async with (
        open_llm_server() as llm,
        open_cli("--base-url", llm.base_url, "--model", "m", "--server", server, "chat") as cli,
    ):
        await cli.wait_for("opex-trio: using m on ")
        cli.process.send_signal(signal.SIGHUP)
        assert await cli.wait() == 129
    assert cli.stderr.splitlines()[-1] == "opex-trio: hung up"
    assert "Traceback" not in cli.stderr
    (pid,) = map(int, pid_file.read_text().split())
    assert not _alive(pid)

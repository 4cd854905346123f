"""``opex-trio`` in a real pseudo-terminal, checked on the screen a person would see.

Line editing and history at the chat prompt, the prompt kept out of stdout,
notices after Ctrl-C and SIGTERM on lines of their own, a cancelled tool shown
as cancelled, and in-place lines fitted to a narrow terminal that is resized.
"""

from __future__ import annotations

import re
import shlex
import signal
from pathlib import Path

from opex_trio.testing.llm_server import (
    RecordedRequest,
    SSEChunk,
    SSEReply,
    completion_chunks,
    open_llm_server,
)
from tests.cli.support import TEST_SERVER, cli_env
from tests.cli.terminal import Terminal, open_terminal
from tests.cli.test_cli_agent import _alive, chat_requests, streams_call, streams_text

UP = "\x1b[A"
LEFT = "\x1b[D"
CTRL_A = "\x01"
CTRL_C = "\x03"
CTRL_D = "\x04"


def user_lines(requests: list[RecordedRequest]) -> list[str]:
    """What the user said in each chat request (its last user message)."""
    return [
        [m for m in r.json["messages"] if m["role"] == "user"][-1]["content"]
        for r in chat_requests(requests)
    ]


def numbered_answers(request: RecordedRequest) -> SSEReply:
    return streams_text(f"answer {len(request.json['messages'])}")


async def at_prompt(term: Terminal) -> None:
    """Wait until the screen ends with an empty prompt."""
    await term.wait_until(lambda: term.screen.lines()[-1:] == [">"], "an empty prompt")


async def test_line_editing_and_a_history_kept_across_sessions(tmp_path: Path) -> None:
    env = cli_env({"XDG_STATE_HOME": str(tmp_path)})
    async with open_llm_server(numbered_answers) as llm:
        args = ("--base-url", llm.base_url, "--model", "m", "chat")
        async with open_terminal(*args, env=env) as term:
            await at_prompt(term)
            # Type, move left, insert, go to the start, insert: edited, not sent as keys.
            term.type("helo" + LEFT + "l" + CTRL_A + "> " + "\r")
            await term.wait_for("answer 1")
            await at_prompt(term)
            # The arrow up brings the last line back.
            term.type(UP + "\r")
            await term.wait_for("answer 3")
            await at_prompt(term)
            term.type(CTRL_D)
            assert await term.wait() == 0
        assert user_lines(llm.requests) == ["> hello", "> hello"]
        assert "\x1b" not in "".join(user_lines(llm.requests))
        history = tmp_path / "opex-trio" / "history"
        assert "> hello" in history.read_text()

        # A new session finds the history of the last one.
        async with open_terminal(*args, env=env) as term:
            await at_prompt(term)
            term.type(UP + "!\r")
            await term.wait_for("answer 1")
            await at_prompt(term)
            term.type(CTRL_D)
            assert await term.wait() == 0
    assert user_lines(llm.requests)[-1] == "> hello!"
    # Ctrl-D at the prompt ends the line; nothing is left behind on the screen.
    assert term.screen.lines()[-1] == ">"
    assert "" not in term.screen.lines()


async def test_the_prompt_stays_on_the_terminal_when_stdout_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "answers.txt"
    env = cli_env({"XDG_STATE_HOME": str(tmp_path)})
    async with open_llm_server(numbered_answers) as llm:
        with out.open("wb") as file:
            async with open_terminal(
                "--base-url", llm.base_url, "--model", "m", "chat",
                env=env, stdout=file.fileno(),
            ) as term:  # fmt: skip
                await at_prompt(term)
                term.type("first" + LEFT + "X\r")
                await term.wait_until(lambda: out.read_text() == "answer 1\n", "the answer")
                await at_prompt(term)
                term.type(CTRL_D)
                assert await term.wait() == 0
    # Only answers in the file; the prompt and editing happened on the terminal.
    assert out.read_text() == "answer 1\n"
    assert user_lines(llm.requests) == ["firsXt"]
    assert term.screen.lines()[-2:] == ["> firsXt", ">"]


async def test_ctrl_c_at_the_prompt_says_interrupted_on_its_own_line(tmp_path: Path) -> None:
    async with open_llm_server() as llm, open_terminal(
        "--base-url", llm.base_url, "--model", "m", "chat",
        env=cli_env({"XDG_STATE_HOME": str(tmp_path)}),
    ) as term:  # fmt: skip
        await at_prompt(term)
        term.type("half a thought")
        await term.wait_for("> half a thought")
        term.type(CTRL_C)
        assert await term.wait() == 130
        await term.wait_for("opex-trio: interrupted")
    lines = term.screen.lines()
    assert lines[-2:] == ["> half a thought", "opex-trio: interrupted"]
    assert "" not in lines


async def test_a_tool_cancelled_by_ctrl_c_is_shown_as_cancelled(tmp_path: Path) -> None:
    async with open_llm_server() as llm:
        llm.push(streams_call("c1", "sleep", {"seconds": 600}), streams_text("Back."))
        async with open_terminal(
            "--base-url", llm.base_url, "--model", "m", "--server", TEST_SERVER, "chat",
            env=cli_env({"XDG_STATE_HOME": str(tmp_path)}),
        ) as term:  # fmt: skip
            await at_prompt(term)
            term.type("Sleep\r")
            await term.wait_for('[tool] sleep {"seconds": 600}')
            term.type(CTRL_C)
            await term.wait_for("answer cancelled")
            await at_prompt(term)
            term.type("Again\r")
            await term.wait_for("Back.")
            await at_prompt(term)
            term.type(CTRL_D)
            assert await term.wait() == 0
    lines = term.screen.lines()
    start = lines.index('[tool] sleep {"seconds": 600}')
    assert re.fullmatch(r"\[tool\] sleep cancelled after \d+\.\d\d s", lines[start + 1])
    assert lines[start + 2] == (
        "opex-trio: answer cancelled; that message is left out of the conversation"
    )
    assert lines[start + 3 :] == ["> Again", "Back.", ">"]
    assert "" not in lines and "^C" not in "".join(lines)


async def test_sigterm_in_the_middle_of_an_answer(tmp_path: Path) -> None:
    async with open_llm_server() as llm:
        # Half an answer, then nothing for a long while.
        chunks = completion_chunks(("Half an ans", "wer"))
        llm.push(SSEReply([*chunks[:2], SSEChunk(chunks[2], delay=600), *chunks[3:]]))
        async with open_terminal(
            "--base-url", llm.base_url, "--model", "m", "chat",
            env=cli_env({"XDG_STATE_HOME": str(tmp_path)}),
        ) as term:  # fmt: skip
            await at_prompt(term)
            term.type("Talk\r")
            await term.wait_for("Half an ans")
            term.process.send_signal(signal.SIGTERM)
            assert await term.wait() == 143
            await term.wait_for("opex-trio: terminated")
    lines = term.screen.lines()
    assert lines[-3:] == ["> Talk", "Half an ans", "opex-trio: terminated"]


async def test_in_place_lines_fit_a_narrow_terminal_and_follow_resizes(
    everything_stdio_command: list[str],
) -> None:
    async with open_terminal(
        "--server", shlex.join(everything_stdio_command), "tools", "call",
        "trigger-long-running-operation", "--args", '{"duration": 600, "steps": 600}',
        columns=50,
    ) as term:  # fmt: skip

        def progress_line() -> str:
            found = [line for line in term.screen.lines() if line.startswith("[progress]")]
            return found[-1] if found else ""

        await term.wait_until(lambda: progress_line() != "", "the first progress report")
        # The report is longer than the terminal is wide: cut, not wrapped, with
        # room left for the "^C" the terminal echoes.
        assert len(progress_line()) == 47
        term.resize(30)
        # The line is drawn again at once, in the new width, before the next report.
        await term.wait_until(
            lambda: len(progress_line()) == 27, "a progress line redrawn for 30 columns"
        )
        term.type(CTRL_C)
        assert await term.wait() == 130
        await term.wait_for("opex-trio: interrupted")
    # One progress line was redrawn in place, never wrapped, and erased at the end.
    assert term.screen.wrapped_lines == 0
    assert [line for line in term.screen.lines() if line.startswith("[progress]")] == []
    assert term.screen.lines()[-1] == "opex-trio: interrupted"


async def test_starting_servers_are_shown_in_place(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    slow = shlex.join(
        [
            "sh",
            "-c",
            f"while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.05; done; exec {TEST_SERVER}",
        ]
    )
    async with open_terminal(
        "--server", slow, "--server", TEST_SERVER, "tools", "list", columns=40
    ) as term:  # fmt: skip
        await term.wait_until(
            lambda: any(line.startswith("[servers] 1/2 ready") for line in term.screen.lines()),
            "the start-up line with one server ready",
        )
        status = [line for line in term.screen.lines() if line.startswith("[servers]")]
        assert len(status) == 1 and len(status[0]) <= 37
        assert term.screen.wrapped_lines == 0
        gate.touch()
        assert await term.wait() == 0
        await term.wait_until(lambda: term.closed, "the end of output")
    lines = term.screen.lines()
    assert not any(line.startswith("[servers]") for line in lines)
    assert any(line.startswith("sh__echo [sh/echo]: ") for line in lines)


async def test_closing_the_terminal_stops_the_servers(tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    # This server outlives the end of its input: only the command's own stop ends it.
    server = f"{TEST_SERVER} --ignore-stdin-eof --pid-file {shlex.quote(str(pid_file))}"
    async with (
        open_llm_server() as llm,
        open_terminal(
            "--base-url", llm.base_url, "--model", "m", "--server", server, "chat",
            env=cli_env({"XDG_STATE_HOME": str(tmp_path)}),
        ) as term,
    ):  # fmt: skip
        await at_prompt(term)
        term.hang_up()
        assert await term.wait() == 129
    (pid,) = map(int, pid_file.read_text().split())
    assert not _alive(pid)

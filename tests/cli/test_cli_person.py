"""A person in the loop: ``--approve``, and a server's elicitation and sampling asked on the terminal.

On a terminal (a real pseudo-terminal) the person is asked and answers by
typing; off one (pipes), nobody is asked: tools that need approval are
refused, elicitations declined and sampling refused unless
``--allow-sampling``. The servers are real: the built-in test server, and
server-everything for elicitation (a form, and a URL) and sampling. The model
is the scripted LLM server, which calls the tools.
"""

from __future__ import annotations

import json
import shlex

import pytest

from opex_trio.cli._elicit import parse_value
from opex_trio.testing.llm_server import JSONReply, RecordedRequest, completion, open_llm_server
from tests.cli.support import TEST_SERVER, run_cli
from tests.cli.terminal import Terminal, open_terminal
from tests.cli.test_cli_agent import chat_requests, streams_call, streams_text, tool_messages
from tests.cli.test_cli_terminal import at_prompt

CTRL_D = "\x04"


def tool_contents(request: RecordedRequest) -> list[str]:
    return [m["content"] for m in tool_messages(request)]


async def prompt_shown(term: Terminal, text: str) -> None:
    """Wait until the screen's last line is the question ``text`` (waiting for an answer)."""
    await term.wait_until(
        # Lines on the screen are right-trimmed: so is the question.
        lambda: bool(term.screen.lines()) and term.screen.lines()[-1].startswith(text.rstrip()),
        repr(text),
    )


# -- --approve


async def test_run_approve_off_a_terminal_refuses_and_says_so() -> None:
    async with open_llm_server() as llm:
        llm.push(
            streams_call("c1", "pid", {}),
            streams_text("Could not."),
        )
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m", "--server", TEST_SERVER,
            "run", "Which pid?", "--approve",
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "Could not.\n"
    refused = [line for line in ran.lines if "not run: --approve asks first" in line]
    assert len(refused) == 1
    assert refused[0].startswith("opex-trio: tool 'pid' of MCP server ")
    assert refused[0].endswith("and stdin is not a terminal")
    (content,) = tool_contents(chat_requests(llm.requests)[1])
    assert content.startswith("Error: the call was not run: the person did not approve")


async def test_approve_writes_lets_read_only_tools_run() -> None:
    async with open_llm_server() as llm:
        llm.push(
            streams_call("c1", "add", {"a": 1, "b": 2}),
            streams_call("c2", "pid", {}),
            streams_text("Three."),
        )
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m", "--server", TEST_SERVER,
            "run", "Add", "--approve=writes",
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    second, third = chat_requests(llm.requests)[1:]
    # add is annotated read-only: it ran unasked; pid is not: refused.
    assert tool_contents(second) == ['3\n{"sum": 3}']
    assert "did not approve" in tool_contents(third)[-1]
    assert next(line for line in ran.lines if "not run: --approve" in line).startswith(
        "opex-trio: tool 'pid' "
    )


async def test_chat_approve_asks_and_a_no_is_told_to_the_model() -> None:
    async with open_llm_server() as llm:
        llm.push(
            streams_call("c1", "echo", {"message": "first"}),
            streams_text("You said no."),
            streams_call("c2", "echo", {"message": "second"}),
            streams_text("It ran."),
        )
        async with open_terminal(
            "--base-url", llm.base_url, "--model", "m", "--server", TEST_SERVER,
            "chat", "--approve",
        ) as term:  # fmt: skip
            await at_prompt(term)
            term.type("Echo first\r")
            await prompt_shown(term, "  run it? [y/N]")
            text = term.screen.text()
            assert "[approve] the model calls tool 'echo' of MCP server " in text
            assert '  arguments: {"message": "first"}' in text
            term.type("n\r")
            await term.wait_for("You said no.")
            await at_prompt(term)
            term.type("Echo second\r")
            await term.wait_for('  arguments: {"message": "second"}')
            await prompt_shown(term, "  run it? [y/N]")
            term.type("maybe\r")  # not an answer: asked again
            await term.wait_for("answer yes, no (or the first letter)")
            await prompt_shown(term, "  run it? [y/N]")
            term.type("y\r")
            await term.wait_for("It ran.")
            await at_prompt(term)
            term.type(CTRL_D)
            assert await term.wait() == 0
    requests = chat_requests(llm.requests)
    declined = tool_contents(requests[1])
    assert declined == ["Error: the call was not run: the person declined to run this tool call"]
    assert tool_contents(requests[3])[-1] == "second"
    assert "[approve] tool 'echo' not run" in term.screen.text()


# -- elicitation


async def test_a_form_elicitation_is_filled_in_on_the_terminal(
    everything_stdio_command: list[str],
) -> None:
    async with open_llm_server() as llm:
        llm.push(streams_call("c1", "trigger-elicitation-request", {}), streams_text("Thanks."))
        async with open_terminal(
            "--base-url", llm.base_url, "--model", "m",
            "--server", shlex.join(everything_stdio_command), "run", "Ask me",
            columns=200,
        ) as term:  # fmt: skip
            await prompt_shown(term, "  (a)nswer / (d)ecline / (c)ancel [a]")
            assert "asks: Please provide inputs for the following fields:" in term.screen.text()
            term.type("\r")
            # name is required and has no default: Enter is not enough.
            await prompt_shown(term, "  String (required): ")
            term.type("\r")
            await term.wait_for("    this field is required")
            await prompt_shown(term, "  String (required): ")
            term.type("Ada Lovelace\r")
            await prompt_shown(term, "  Boolean (y/n): ")
            term.type("y\r")
            await prompt_shown(term, "  String with default [It was a dark and stormy night.]: ")
            term.type("\r")
            await prompt_shown(term, "  String with email format (email): ")
            term.type("not-an-email\r")
            await term.wait_for("    is not a valid email; try again")
            await prompt_shown(term, "  String with email format (email): ")
            term.type("ada@example.org\r")
            await prompt_shown(term, "  String with uri format (uri): ")
            term.type("\r")
            await prompt_shown(term, "  String with date format (date): ")
            term.type("\r")
            await prompt_shown(term, "  Integer (a whole number 1..100) [42]: ")
            term.type("500\r")
            await term.wait_for("    must be between 1 and 100; try again")
            await prompt_shown(term, "  Integer (a whole number 1..100) [42]: ")
            term.type("7\r")
            # The rest take their defaults.
            for title in (
                "Number in range 1-1000",
                "Untitled Single Select Enum",
                "Untitled Multiple Select Enum",
                "Titled Single Select Enum",
                "Titled Multiple Select Enum",
                "Legacy Titled Single Select Enum",
            ):
                await prompt_shown(term, f"  {title} (")
                term.type("\r")
            await term.wait_for("Thanks.")
            assert await term.wait() == 0
    (content,) = tool_contents(chat_requests(llm.requests)[1])
    assert "User provided the requested information" in content
    assert "- Name: Ada Lovelace" in content
    assert "- Agreed to terms: true" in content
    assert "- Email: ada@example.org" in content
    assert "- Favorite Integer: 7" in content
    raw = json.loads(content.split("Raw result: ", 1)[1])
    assert raw["action"] == "accept"
    assert raw["content"]["firstLine"] == "It was a dark and stormy night."
    assert raw["content"]["untitledMultipleSelectEnum"] == ["Guitar"]
    assert raw["content"]["titledSingleSelectEnum"] == "hero-1"
    assert "homepage" not in raw["content"]


async def test_a_url_elicitation_shows_the_page_and_asks_for_consent(
    everything_stdio_command: list[str],
) -> None:
    url = "https://example.org/consent"
    async with open_llm_server() as llm:
        llm.push(
            streams_call("c1", "trigger-url-elicitation", {"url": url, "message": "Log in"}),
            streams_text("Done."),
        )
        async with open_terminal(
            "--base-url", llm.base_url, "--model", "m",
            "--server", shlex.join(everything_stdio_command), "run", "Log me in",
            columns=200,
        ) as term:  # fmt: skip
            await prompt_shown(term, "  open it (in your browser)? (y)es / (n)o / (c)ancel [n]")
            assert "asks you to open a page: Log in" in term.screen.text()
            assert f"  {url}" in term.screen.lines()
            term.type("y\r")
            await term.wait_for("Done.")
            assert await term.wait() == 0
    (content,) = tool_contents(chat_requests(llm.requests)[1])
    assert "User completed the URL elicitation flow" in content
    assert f"URL: {url}" in content


async def test_off_a_terminal_elicitation_is_declined_and_sampling_refused(
    everything_stdio_command: list[str],
) -> None:
    async with open_llm_server() as llm:
        llm.push(
            streams_call("c1", "trigger-elicitation-request", {}),
            streams_call("c2", "trigger-sampling-request", {"prompt": "Hi"}),
            streams_text("Nobody answered."),
        )
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m",
            "--server", shlex.join(everything_stdio_command), "run", "Try",
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    requests = chat_requests(llm.requests)
    assert len(requests) == 3  # no sampling request reached the model
    assert "User declined to provide the requested information" in tool_contents(requests[1])[0]
    refused = tool_contents(requests[2])[-1]
    assert "User rejected sampling request" in refused
    notices = [line for line in ran.lines if "stdin is not a terminal" in line]
    assert len(notices) == 2
    assert notices[0].startswith("opex-trio: declined a request for input of MCP server ")
    assert notices[1].startswith("opex-trio: refused a sampling request of MCP server ")
    assert "--allow-sampling" in notices[1]


async def test_on_a_terminal_a_person_can_decline_cancel_and_refuse(
    everything_stdio_command: list[str],
) -> None:
    async with open_llm_server() as llm:
        llm.push(
            streams_call("c1", "trigger-elicitation-request", {}),
            streams_call("c2", "trigger-elicitation-request", {}),
            streams_call("c3", "trigger-sampling-request", {"prompt": "first"}),
            JSONReply(completion("Sampled once.")),
            streams_call("c4", "trigger-sampling-request", {"prompt": "second"}),
            streams_text("Done asking."),
        )
        async with open_terminal(
            "--base-url", llm.base_url, "--model", "m",
            "--server", shlex.join(everything_stdio_command), "run", "Ask",
            columns=200,
        ) as term:  # fmt: skip
            question = "  (a)nswer / (d)ecline / (c)ancel [a]"
            await prompt_shown(term, question)
            term.type("d\r")
            await term.wait_until(
                lambda: term.screen.text().count(question) == 2, "the second elicitation"
            )
            await prompt_shown(term, question)
            term.type("a\r")
            await prompt_shown(term, "  String (required): ")
            term.type(CTRL_D)  # the end of the input, halfway: the form is cancelled
            # The next question is read afresh: Ctrl-D ended one answer, not the terminal.
            agree = "  let the model answer? [y/N]"
            await prompt_shown(term, agree)
            term.type("y\r")
            await term.wait_until(lambda: term.screen.text().count(agree) == 2, "the second ask")
            await prompt_shown(term, agree)
            term.type("n\r")
            await term.wait_for("Done asking.")
            assert await term.wait() == 0
    requests = chat_requests(llm.requests)
    # Four chat requests and one sampling request: the refused one never reached the model.
    assert len(requests) == 6
    assert "User declined to provide the requested information" in tool_contents(requests[1])[0]
    assert "User cancelled the elicitation dialog" in tool_contents(requests[2])[-1]
    assert requests[3].json["messages"][-1]["content"].endswith("context: first")
    assert "Sampled once." in tool_contents(requests[4])[-1]
    assert "User rejected sampling request" in tool_contents(requests[5])[-1]
    assert "[sampling] refused" in term.screen.text()


# -- sampling


async def test_allow_sampling_answers_through_the_sessions_model(
    everything_stdio_command: list[str],
) -> None:
    async with open_llm_server() as llm:
        llm.push(
            streams_call("c1", "trigger-sampling-request", {"prompt": "a haiku"}),
            # The server's sampling request comes next, to the same model.
            JSONReply(completion("Autumn moon rises")),
            streams_text("It wrote a haiku."),
        )
        ran = await run_cli(
            "--base-url", llm.base_url, "--model", "m",
            "--server", shlex.join(everything_stdio_command), "run", "Haiku", "--allow-sampling",
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    _chat, sampled, after = chat_requests(llm.requests)
    assert sampled.json["model"] == "m"
    assert sampled.json["messages"] == [
        {"role": "system", "content": "You are a helpful test server."},
        {"role": "user", "content": "Resource trigger-sampling-request context: a haiku"},
    ]
    assert "Autumn moon rises" in tool_contents(after)[0]
    assert any(line.startswith("[sampling] the model answered MCP server ") for line in ran.lines)


async def test_sampling_on_a_terminal_waits_for_the_person(
    everything_stdio_command: list[str],
) -> None:
    async with open_llm_server() as llm:
        llm.push(
            streams_call("c1", "trigger-sampling-request", {"prompt": "a limerick"}),
            JSONReply(completion("There once was a test")),
            streams_text("Sampled."),
        )
        async with open_terminal(
            "--base-url", llm.base_url, "--model", "m",
            "--server", shlex.join(everything_stdio_command), "run", "Limerick",
            columns=200,
        ) as term:  # fmt: skip
            await prompt_shown(term, "  let the model answer? [y/N]")
            text = term.screen.text()
            assert "asks the model (up to 100 tokens)" in text
            assert "  system: You are a helpful test server." in text
            assert "  user: Resource trigger-sampling-request context: a limerick" in text
            # Nothing went to the model before the person agreed.
            assert len(chat_requests(llm.requests)) == 1
            term.type("y\r")
            await term.wait_for("Sampled.")
            assert await term.wait() == 0
    assert "There once was a test" in tool_contents(chat_requests(llm.requests)[2])[0]
    assert "[sampling] the model answered MCP server " in term.screen.text()


# -- the parts


def test_typed_values_become_what_the_schema_asks_for() -> None:
    assert parse_value({"type": "boolean"}, "Yes") is True
    assert parse_value({"type": "boolean"}, "0") is False
    with pytest.raises(ValueError, match="y or n"):
        parse_value({"type": "boolean"}, "perhaps")
    assert parse_value({"type": "integer"}, "12") == 12
    with pytest.raises(ValueError, match="whole number"):
        parse_value({"type": "integer"}, "1.5")
    assert parse_value({"type": "number"}, "2") == 2
    assert parse_value({"type": "number"}, "2.0") == 2.0
    assert parse_value({"type": "number"}, "-0.25") == -0.25
    with pytest.raises(ValueError, match="a number"):
        parse_value({"type": "number"}, "two")
    titled = {"type": "string", "oneOf": [{"const": "h1", "title": "Superman"}]}
    # A choice is given by its value or by its title.
    assert parse_value(titled, "superman") == "h1"
    assert parse_value(titled, "h1") == "h1"
    legacy = {"type": "string", "enum": ["p1", "p2"], "enumNames": ["Cats", "Dogs"]}
    assert parse_value(legacy, "Dogs") == "p2"
    several = {"type": "array", "items": {"anyOf": [{"const": "f1", "title": "Tuna"},
                                                    {"const": "f2", "title": "Trout"}]}}  # fmt: skip
    assert parse_value(several, "tuna, f2,") == ["f1", "f2"]
    assert parse_value({"type": "string"}, "  as typed ") == "  as typed "


async def test_run_durable_refuses_a_person_in_the_loop() -> None:
    for option in ("--approve", "--allow-sampling"):
        ran = await run_cli("run", "--durable", "--model", "m", "Hi", option)
        assert ran.returncode == 2
        assert ran.error_lines == [
            "opex-trio: error: run --durable cannot ask a person: its tools run in a worker; "
            "leave out --approve and --allow-sampling"
        ]

"""The example runner itself: it reads pages by the conventions and fails what it should.

The parsing and matching tests need nothing; the runs start real processes (Python,
bash, ``opex-trio`` with ``mcp-server-time``) against the scripted model server, as
the documentation's examples do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from tests.docs.examples import (
    Example,
    PageError,
    Reply,
    output_matches,
    parse_console,
    parse_page,
    parse_script,
)
from tests.docs.test_examples import require_peers, run_example, split_words

PAGE = Path("page.md")

SAMPLE = """\
# A page

Some text.

<!-- llm: [
  {"tool_calls": [{"name": "get_current_time", "arguments": {"timezone": "UTC"}}]},
  "It is noon."
] -->
<!-- docs: timeout 90 -->

```python
print("hello")
```

```output
hello
```

<!-- docs: file servers.json -->
```json
{"mcpServers": {}}
```

<!-- docs: no-run "installs packages" -->
```sh
pip install opex_trio
```

```console
$ echo one
one
$ echo two \\
  three
two three
```

<!-- docs: exit 2 -->
```bash
exit 2
```

```json
{"shown": "only"}
```
"""


def test_a_page_parses_into_its_examples() -> None:
    examples = parse_page(SAMPLE, PAGE)
    assert [(e.line, e.kind) for e in examples] == [
        (11, "python"),
        (25, "shell"),
        (29, "console"),
        (38, "shell"),
    ]
    python, install, console, bash = examples
    assert python.expected == "hello\n"
    assert python.timeout == 90
    assert python.script == (
        Reply(tool_calls=({"name": "get_current_time", "arguments": {"timezone": "UTC"}},)),
        Reply(content="It is noon."),
    )
    assert python.files == {}
    assert install.no_run == "installs packages"
    assert install.files == {"servers.json": '{"mcpServers": {}}\n'}
    assert [(c.line, c.text, c.expected) for c in console.commands()] == [
        (30, "echo one", "one\n"),
        (32, "echo two \\\n  three", "two three\n"),
    ]
    assert bash.exit_status == 2
    assert bash.expected is None


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        (
            "<!-- docs: timeout 5 -->\nText between.\n\n```python\npass\n```\n",
            "right above a block",
        ),
        ("<!-- docs: no-run -->\n```python\npass\n```\n", "no-run"),
        ('<!-- docs: no-run "" -->\n```python\npass\n```\n', "no-run"),
        ("<!-- docs: frobnicate -->\n```python\npass\n```\n", "unknown or malformed"),
        ("<!-- docs: timeout soon -->\n```python\npass\n```\n", "unknown or malformed"),
        ("<!-- docs: file ../x -->\n```json\n{}\n```\n", "inside the example's directory"),
        ("<!-- llm: [1] -->\n```python\npass\n```\n", "a string or an object"),
        ('<!-- llm: [{"text": "hi"}] -->\n```python\npass\n```\n', "unknown keys"),
        ("<!-- llm: not json -->\n```python\npass\n```\n", "not JSON"),
        ("<!-- docs: timeout 5 -->\n```json\n{}\n```\n", "does not run"),
        ("Text.\n\n```output\nhi\n```\n", "must follow a runnable block"),
        ("```python\npass\n```\nText.\n```output\nhi\n```\n", "must follow a runnable block"),
        ("```python\npass\n", "never closes"),
        ("```console\n$ echo hi\n```\n\n```output\nhi\n```\n", "each command's output"),
        ("```python\npass\n```\n<!-- docs: exit 1 -->\n", "end of the page"),
    ],
)
def test_pages_that_break_the_rules_are_refused(page: str, problem: str) -> None:
    with pytest.raises(PageError, match=problem):
        parse_page(page, PAGE)


def test_a_console_block_starts_with_a_command() -> None:
    with pytest.raises(PageError, match="starts with"):
        parse_console("output first\n$ echo\n", 1)


def test_scripts_take_every_reply_form() -> None:
    replies = parse_script(
        '["text", {"chunks": ["a", "b"]}, {"error": "slow", "status": 429,'
        ' "headers": {"Retry-After": "0"}}, {"content": null, "model": "m",'
        ' "tool_calls": [{"name": "t", "arguments": "{bad", "id": "x"}]}]',
        "here",
    )
    assert replies[0] == Reply(content="text")
    assert replies[1].chunks == ("a", "b")
    assert (replies[2].error, replies[2].status, replies[2].headers) == (
        "slow",
        429,
        {"Retry-After": "0"},
    )
    assert replies[3].tool_calls == ({"name": "t", "arguments": "{bad", "id": "x"},)
    assert replies[3].model == "m"


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ("hello\n", "hello\n", True),
        ("hello\n", "hello   \n\n\n", True),
        ("\nhello\n\n", "hello", True),
        ("hello\n", "hello\nmore\n", False),
        ("hello\n", "Hello\n", False),
        ("a\n...\nz\n", "a\nb\nc\nz\n", True),
        ("a\n...\nz\n", "a\nz\n", True),
        ("a\n...\nz\n", "a\nb\n", False),
        ("...\n", "anything\nat all\n", True),
        ("...\n", "", True),
        ("It is ... in UTC.\n", "It is 12:00 in UTC.\n", True),
        ("It is ... in UTC.\n", "It is 12:00 in CET.\n", False),
        ("a.b\n", "axb\n", False),
        ("x ...\n", "x\n", False),
    ],
)
def test_output_matching(expected: str, actual: str, matches: bool) -> None:
    assert output_matches(expected, actual) is matches


def test_split_words_keeps_every_character() -> None:
    assert split_words("It is noon. ") == ["It ", "is ", "noon. "]
    assert "".join(split_words("a  b")) == "a  b"


CLIENT_PROGRAM = """\
import os

import trio

import opex_trio as opex


async def main() -> None:
    async with opex.Client(os.environ["OPENROUTER_API_KEY"], base_url=os.environ["OPEX_BASE_URL"]) as client:
        result = await client.chat_completion(model="m", messages=[{"role": "user", "content": "Hi"}])
        print(result.content)


trio.run(main)
"""


def example(source: str, language: str = "python", **options: Any) -> Example:
    return Example(page=PAGE, line=7, language=language, source=source, **options)


async def test_a_python_example_passes_and_fails_on_its_output(tmp_path: Path) -> None:
    script = (Reply(content="Scripted hello."),)
    passing = example(CLIENT_PROGRAM, script=script, expected="Scripted hello.\n")
    assert await run_example(passing, tmp_path / "pass") is None

    wrong = example(CLIENT_PROGRAM, script=script, expected="Something else.\n")
    report = await run_example(wrong, tmp_path / "wrong")
    assert report is not None
    assert report.startswith("page.md:7: stdout differs from the output block")
    assert "--- expected stdout ---\nSomething else." in report
    assert "--- actual stdout ---\nScripted hello." in report


async def test_the_model_script_must_be_used_exactly(tmp_path: Path) -> None:
    too_long = example(CLIENT_PROGRAM, script=(Reply(content="one"), Reply(content="two")))
    report = await run_example(too_long, tmp_path / "unused")
    assert report == "page.md:7: the script has 2 replies; the program asked for 1"

    empty = example(CLIENT_PROGRAM, script=())
    report = await run_example(empty, tmp_path / "unscripted")
    assert report is not None
    assert "unscripted model request 1 (the script has 0)" in report

    default = example(CLIENT_PROGRAM, expected="Hello from the scripted server.\n")
    assert await run_example(default, tmp_path / "default") is None


async def test_streamed_requests_get_the_script_as_a_stream(tmp_path: Path) -> None:
    program = CLIENT_PROGRAM.replace(
        '        result = await client.chat_completion(model="m", messages=[{"role": "user", "content": "Hi"}])\n'
        "        print(result.content)\n",
        '        async with client.stream_chat(model="m", messages=[]) as stream:\n'
        "            async for event in stream:\n"
        "                if isinstance(event, opex.ContentDelta):\n"
        "                    print(repr(event.text))\n",
    )
    streamed = example(program, script=(Reply(chunks=("Hel", "lo")),), expected="'Hel'\n'lo'\n")
    report = await run_example(streamed, tmp_path)
    assert report is None, report


async def test_an_example_is_bounded_in_time(tmp_path: Path) -> None:
    slow = example("import time\nprint('started', flush=True)\ntime.sleep(60)\n", timeout=1.0)
    report = await run_example(slow, tmp_path)
    assert report is not None
    assert report.startswith("page.md:7: did not finish within 1 s")
    assert "killed at its timeout" in report
    assert "--- actual stdout ---\nstarted" in report


async def test_exit_status_and_files(tmp_path: Path) -> None:
    script = "cat config.txt\nexit 3\n"
    files = {"config.txt": "from the page\n"}
    ok = example(script, language="sh", files=files, exit_status=3, expected="from the page\n")
    assert await run_example(ok, tmp_path / "ok") is None
    wrong = example(script, language="sh", files=files)
    report = await run_example(wrong, tmp_path / "wrong")
    assert report is not None
    assert "exited with status 3, not 0" in report


async def test_console_commands_run_the_real_command(tmp_path: Path) -> None:
    require_peers()
    source = "$ opex-trio --server mcp-server-time tools list\n...\nget_current_time: ...\n$ echo done\ndone\n"
    console = example(source, language="console", timeout=120.0)
    assert await run_example(console, tmp_path / "ok") is None
    wrong = example(
        source.replace("get_current_time", "get_the_weather"), language="console", timeout=120.0
    )
    report = await run_example(wrong, tmp_path / "wrong")
    assert report is not None
    assert "command: $ opex-trio --server mcp-server-time tools list (exit status 0)" in report


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def test_nothing_the_example_started_outlives_it(tmp_path: Path) -> None:
    background = example("sleep 300 &\necho $!\n", language="sh")
    assert await run_example(background, tmp_path) is None
    pid = int((tmp_path / "stdout").read_text())
    with trio.fail_after(30):
        while alive(pid):
            await trio.sleep(0.05)

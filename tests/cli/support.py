"""Running the ``opex-trio`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

# Generous: each command starts Python, trio and its servers, on a loaded 2-core machine.
BOUND = 120.0

KEYS = ("OPENAI_API_KEY", "OPENROUTER_API_KEY")

# The built-in test server of opex_trio, as a --server command line.
TEST_SERVER = shlex.join([sys.executable, "-m", "opex_trio.testing.mcp_server"])

CLI = [sys.executable, "-m", "opex_trio.cli"]


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without API keys (so no test reaches a real provider), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    env.update(extra or {})
    return env


# The lines that say, off a terminal, which servers are still starting: they
# appear only when a start takes more than a moment, which on a loaded machine
# any start may.
_STARTUP = re.compile(
    r"^opex-trio: (waiting for MCP servers to start: |MCP server '[^']*' is ready \()"
)


def without_startup(stderr: str) -> list[str]:
    """The lines of ``stderr`` without the start-up feedback."""
    return [line for line in stderr.splitlines() if not _STARTUP.match(line)]


@attrs.frozen
class Ran:
    """A finished command: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """The lines on stderr, less the start-up feedback."""
        return without_startup(self.stderr)

    @property
    def error_lines(self) -> list[str]:
        """The ``opex-trio: error:`` lines on stderr."""
        return [line for line in self.stderr.splitlines() if line.startswith("opex-trio: error:")]


async def run_cli(
    *args: str,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    argv: Sequence[str] = CLI,
) -> Ran:
    """Run ``opex-trio ARGS`` to its end (within :data:`BOUND`)."""
    with trio.fail_after(BOUND):
        done = await trio.run_process(
            [*argv, *args],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=dict(env) if env is not None else cli_env(),
        )
    return Ran(done.returncode, done.stdout.decode(), done.stderr.decode())


class CliProcess:
    """A running ``opex-trio``: write its stdin, watch its output, signal it."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stdout = ""
        self.stderr = ""
        self._changed = trio.Event()

    async def _read(self, stream: Any, name: str) -> None:
        while data := await stream.receive_some(65536):
            setattr(self, name, getattr(self, name) + data.decode())
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, text: str, *, where: str = "stderr", bound: float = BOUND) -> None:
        """Wait until ``text`` has appeared in the output (``stderr`` or ``stdout``)."""
        with trio.fail_after(bound):
            while text not in getattr(self, where):
                if self.process.returncode is not None:
                    await trio.sleep(0.1)
                    if text in getattr(self, where):
                        return
                    raise AssertionError(
                        f"exited with {self.process.returncode} before {text!r} appeared; "
                        f"stdout: {self.stdout!r}; stderr: {self.stderr!r}"
                    )
                with trio.move_on_after(0.5):
                    await self._changed.wait()

    async def send(self, line: str) -> None:
        """Type a line."""
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line.encode() + b"\n")

    async def close_stdin(self) -> None:
        """End the input (Ctrl-D)."""
        assert self.process.stdin is not None
        await self.process.stdin.aclose()

    def interrupt(self) -> None:
        """Send SIGINT, as Ctrl-C does."""
        self.process.send_signal(signal.SIGINT)

    async def wait(self, bound: float = BOUND) -> int:
        """Wait for the exit status."""
        with trio.fail_after(bound):
            return await self.process.wait()


@asynccontextmanager
async def open_cli(*args: str, env: Mapping[str, str] | None = None) -> AsyncIterator[CliProcess]:
    """Run ``opex-trio ARGS`` with pipes for as long as the ``async with`` lasts.

    A command still running at the end gets SIGTERM (which it answers by
    stopping its servers), then SIGKILL.
    """
    process = await trio.lowlevel.open_process(
        [*CLI, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else cli_env(),
    )
    cli = CliProcess(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cli._read, process.stdout, "stdout")
            nursery.start_soon(cli._read, process.stderr, "stderr")
            try:
                yield cli
            finally:
                await _end(process)
    finally:
        await _end(process)


async def _end(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.terminate()
            with trio.move_on_after(30):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()

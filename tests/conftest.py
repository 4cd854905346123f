"""Shared test setup: hypothesis profiles and fixtures that locate the real peers.

Hypothesis: ``HYPOTHESIS_PROFILE=fuzz`` (the nox ``fuzz`` session) runs every
property with a large budget and no deadline. Without it, properties run at
Hypothesis's default budget, also without a deadline.

Peers: the fixtures below return argv lists or paths from the ``peers`` module
(``tests/peers/__init__.py``). A test that uses one is marked ``peers``; when the
peer is not installed the test skips, or fails under ``OPEX_REQUIRE_PEERS=1``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests import peers

settings.register_profile(
    "fuzz",
    max_examples=5_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
# No per-example deadline in the normal run either: on a loaded two-core
# machine a heavy example can take longer than the default 200 ms, and a
# timing failure there would say nothing about the code.
settings.register_profile("default-no-deadline", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default-no-deadline"))


PEER_FIXTURES = frozenset(
    {
        "node22",
        "everything_stdio_command",
        "filesystem_command",
        "time_server_command",
        "conformance_command",
        "peers_python",
        "sdk_server_command",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a peer fixture with ``peers``, so ``-m "not peers"`` works."""
    for item in items:
        if PEER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.peers)


@pytest.fixture
def node22() -> str:
    """Path of a Node.js 22 or newer."""
    return peers.node22()


@pytest.fixture
def everything_stdio_command() -> list[str]:
    """Argv that starts ``@modelcontextprotocol/server-everything`` over stdio."""
    return peers.everything_stdio_command()


@pytest.fixture
def filesystem_command(tmp_path: os.PathLike[str]) -> list[str]:
    """Argv that starts ``server-filesystem`` over stdio, allowed only ``tmp_path``."""
    return peers.filesystem_command(tmp_path)


@pytest.fixture
def time_server_command() -> list[str]:
    """Argv that starts ``mcp-server-time`` over stdio (local timezone UTC)."""
    return peers.time_server_command()


@pytest.fixture
def conformance_command() -> list[str]:
    """Argv prefix of the official MCP conformance suite."""
    return peers.conformance_command()


@pytest.fixture
def peers_python() -> str:
    """The Python of the peers venv (the official ``mcp`` SDK is importable there)."""
    return peers.peers_python()


@pytest.fixture
def sdk_server_command() -> list[str]:
    """Argv that starts the official-SDK peer server over Streamable HTTP (it prints its URL)."""
    return peers.sdk_server_command("streamable-http")

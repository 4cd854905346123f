"""Where the MCP specification's schemas and examples are, when this checkout has them.

Outside CI a checkout without the specification skips the tests that need it.
Where the peers are required (``OPEX_REQUIRE_PEERS=1``, set by the nox sessions
CI runs) the specification is required too: its absence fails those tests, so
a missing folder can never let CI pass without checking the schemas.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import peers

# $OPEX_MCP_SPEC, else a ``shared/mcp-spec`` beside the checkout or beside any
# folder above it (a worktree may sit a level deeper than the main checkout).
_CANDIDATES = [
    os.environ.get("OPEX_MCP_SPEC", ""),
    *(str(parent / "shared" / "mcp-spec") for parent in Path(__file__).resolve().parents[3:]),
]


def spec_dir() -> Path | None:
    """The folder with the MCP schemas, or None when this checkout has none."""
    for candidate in _CANDIDATES:
        if candidate and (Path(candidate) / "schema").is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def mcp_spec() -> Path:
    """The specification folder; skips without it, or fails where every check must run."""
    return require_spec()


def require_spec() -> Path:
    """The specification folder; skips the test without it, or fails it under CI's settings."""
    found = spec_dir()
    if found is None:
        missing = (
            "the MCP specification folder (../shared/mcp-spec or $OPEX_MCP_SPEC) is not present"
        )
        if peers.peers_required():
            pytest.fail(f"{missing}, and {peers.REQUIRE_ENV}=1 says every check must run")
        pytest.skip(missing)
    return found

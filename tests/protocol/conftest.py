"""Where the MCP specification's schemas and examples are, when this checkout has them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    found = spec_dir()
    if found is None:
        pytest.skip(
            "the MCP specification folder (../shared/mcp-spec or $OPEX_MCP_SPEC) is not present"
        )
    return found

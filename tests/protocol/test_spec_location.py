"""A missing MCP specification folder skips its tests locally and fails them where CI runs."""

from __future__ import annotations

import pytest

from tests import peers
from tests.protocol import conftest


def test_missing_spec_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "_CANDIDATES", ["/nonexistent/mcp-spec"])
    monkeypatch.delenv(peers.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not present"):
        conftest.require_spec()


def test_missing_spec_fails_where_every_check_must_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "_CANDIDATES", ["/nonexistent/mcp-spec"])
    monkeypatch.setenv(peers.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="OPEX_REQUIRE_PEERS=1"):
        conftest.require_spec()

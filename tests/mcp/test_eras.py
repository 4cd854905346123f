"""One client, two eras: detection against a real legacy server process, and a pinned era."""

from __future__ import annotations

import pytest
import trio

from opex_trio.errors import McpError
from opex_trio.mcp.client import ClientOptions
from opex_trio.protocol.versions import LATEST_LEGACY_VERSION, Era

from .support import BOUND, stdio_client, test_server_params


async def test_detection_falls_back_to_initialize_for_a_legacy_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="opex_trio.mcp")
    with trio.fail_after(BOUND):
        client = stdio_client(test_server_params(), ClientOptions(era=None))
        async with client:
            assert client.features is not None and client.features.era is Era.LEGACY
            assert client.protocol_version == LATEST_LEGACY_VERSION
            result = await client.call_tool("echo", {"message": "still legacy"})
            assert result.text == "still legacy"
    assert any("speaks the legacy protocol" in r.getMessage() for r in caplog.records)


async def test_a_pinned_modern_era_does_not_fall_back() -> None:
    with trio.fail_after(BOUND):
        client = stdio_client(test_server_params(), ClientOptions(era=Era.MODERN))
        with pytest.raises(McpError) as info:
            async with client:
                pass  # pragma: no cover - the server cannot open a modern session
        assert info.value.method == "server/discover"
        assert info.value.server == client.name

"""Fixtures for the LLM client tests: the scripted server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from opex_trio.testing.llm_server import LLMTestServer, open_llm_server


@pytest.fixture
async def llm_server() -> AsyncIterator[LLMTestServer]:
    async with open_llm_server() as server:
        yield server

"""Helpers shared by the LLM client tests."""

from __future__ import annotations

from typing import Any

from opex_trio.llm import Client, RetryPolicy
from opex_trio.testing.llm_server import LLMTestServer

USER: list[dict[str, Any]] = [{"role": "user", "content": "Hi"}]

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def make_client(
    server: LLMTestServer, api_key: str | None = "sk-test-key", **kwargs: Any
) -> Client:
    """A client for ``server`` whose retries have no jitter, so waits are exact."""
    kwargs.setdefault("retry", RetryPolicy(jitter=0))
    return Client(api_key, base_url=server.base_url, **kwargs)


def arrivals(server: LLMTestServer) -> list[float]:
    """When each request reached the server, in trio time."""
    return [request.received_at for request in server.requests]

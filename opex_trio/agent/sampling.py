"""Answering MCP servers' sampling requests with the same LLM client.

A server that sends ``sampling/createMessage`` asks the client's model to
write something. :func:`sampling_handler` builds the handler that does it with
an :class:`~opex_trio.llm.client.Client`; pass it as
``ClientOptions(sampling_handler=...)`` (opt-in: without it the client does
not declare the sampling capability and servers cannot ask).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..llm.client import Client
from ..protocol.types import (
    CreateMessageParams,
    CreateMessageResult,
    ImageContent,
    SamplingMessage,
    TextContent,
)

__all__ = ["model_hints", "sampling_handler"]

# How OpenAI finish reasons map to MCP stop reasons.
_STOP_REASONS = {"stop": "endTurn", "length": "maxTokens", "tool_calls": "toolUse"}


def _content_parts(message: SamplingMessage) -> list[dict[str, Any]]:
    blocks = message.content if isinstance(message.content, tuple) else (message.content,)
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, TextContent):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageContent):
            parts.append(
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:{block.mime_type};base64,{block.data}"},
                }
            )
        else:
            parts.append({"type": "text", "text": f"[{type(block).__name__} not shown]"})
    return parts


def _openai_messages(params: CreateMessageParams) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if params.system_prompt:
        out.append({"role": "system", "content": params.system_prompt})
    for message in params.messages:
        parts = _content_parts(message)
        if all(p["type"] == "text" for p in parts):
            out.append({"role": message.role, "content": "\n".join(p["text"] for p in parts)})
        else:
            out.append({"role": message.role, "content": parts})
    return out


def model_hints(params: CreateMessageParams) -> Sequence[str]:
    """The model names a server hinted at in its request, in its order of preference."""
    prefs: Mapping[str, Any] = params.model_preferences or {}
    hints = prefs.get("hints") or []
    return [h["name"] for h in hints if isinstance(h, Mapping) and isinstance(h.get("name"), str)]


def sampling_handler(
    client: Client,
    *,
    model: str | Callable[[CreateMessageParams], str],
    max_tokens: int | None = None,
    **llm_options: Any,
) -> Callable[[CreateMessageParams], Any]:
    """A ``sampling/createMessage`` handler that asks ``client``'s model.

    ``model`` is a model name, or a function choosing one from the request
    (its ``model_preferences`` hints, for example). ``max_tokens`` caps what a
    server may ask for. Other keyword arguments go to every model request.
    """

    async def handle(params: CreateMessageParams) -> CreateMessageResult:
        chosen = model(params) if callable(model) else model
        tokens = params.max_tokens if max_tokens is None else min(params.max_tokens, max_tokens)
        options: dict[str, Any] = {"max_tokens": tokens, **llm_options}
        if params.temperature is not None:
            options.setdefault("temperature", params.temperature)
        if params.stop_sequences:
            options.setdefault("stop", list(params.stop_sequences))
        completion = await client.chat_completion(
            model=chosen, messages=_openai_messages(params), **options
        )
        reason = completion.finish_reason
        return CreateMessageResult(
            role="assistant",
            content=TextContent(completion.content or ""),
            model=completion.model or chosen,
            stop_reason=_STOP_REASONS.get(reason or "", reason),
        )

    return handle

"""Turning what a tool returned into what the model reads.

An OpenAI tool message carries text. :func:`tool_message_content` converts an
MCP :class:`~opex_trio.protocol.types.CallToolResult` (or a custom tool's plain
return value) into that text: text blocks joined, structured content as JSON
(unless a text block already holds the same data), images, audio and
resources described in one line each, and a result the tool marked as an error
prefixed so the model knows. Text past a size limit is cut with a marker that
says how much was left out.

Images can also travel as content parts (``image_url`` data URLs) for models
that take them: :func:`image_parts` collects them, and the chat loop attaches
them in a user message after the tool results when asked to.
"""

from __future__ import annotations

import json
from typing import Any

from ..protocol.types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
    UnknownContent,
)

__all__ = ["image_parts", "tool_message_content", "truncate"]


def _size(data: str) -> int:
    """Bytes a base64 string decodes to."""
    data = data.strip()
    return len(data) * 3 // 4 - (len(data) - len(data.rstrip("=")))


def _describe_block(block: Any) -> str:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, ImageContent):
        return f"[image: {block.mime_type}, {_size(block.data)} bytes]"
    if isinstance(block, AudioContent):
        return f"[audio: {block.mime_type}, {_size(block.data)} bytes]"
    if isinstance(block, ResourceLink):
        details = ", ".join(x for x in (block.mime_type, block.description or block.title) if x)
        return f"[resource link: {block.name} <{block.uri}>" + (
            f" ({details})]" if details else "]"
        )
    if isinstance(block, EmbeddedResource):
        resource = block.resource
        if isinstance(resource, TextResourceContents):
            return f"[resource {resource.uri}]\n{resource.text}"
        if isinstance(resource, BlobResourceContents):
            kind = resource.mime_type or "binary"
            return f"[resource {resource.uri}: {kind}, {_size(resource.blob)} bytes]"
    if isinstance(block, UnknownContent):
        return json.dumps(dict(block.data), ensure_ascii=False, default=str)
    return str(block)


def _same_data(text: str, data: Any) -> bool:
    try:
        return bool(json.loads(text) == data)
    except ValueError:
        return False


def tool_message_content(result: Any, *, max_chars: int | None = None) -> str:
    """The text the model reads for a tool's result (see the module docstring)."""
    if isinstance(result, CallToolResult):
        parts = [_describe_block(block) for block in result.content]
        structured = result.structured_content
        if structured is not None and not any(
            isinstance(b, TextContent) and _same_data(b.text, structured) for b in result.content
        ):
            parts.append(json.dumps(structured, ensure_ascii=False, default=str))
        text = "\n".join(p for p in parts if p)
        if result.is_error:
            text = "The tool reported an error: " + (text or "(no details)")
        elif not text:
            text = "(the tool returned no content)"
    elif isinstance(result, str):
        text = result
    elif result is None:
        text = "(the tool returned nothing)"
    else:
        text = json.dumps(result, ensure_ascii=False, default=str)
    return truncate(text, max_chars)


def truncate(text: str, max_chars: int | None) -> str:
    """Cut ``text`` to ``max_chars`` characters, saying how many were left out."""
    if max_chars is None or len(text) <= max_chars:
        return text
    left_out = len(text) - max_chars
    return f"{text[:max_chars]}\n[... truncated: {left_out} more characters not shown]"


def image_parts(result: Any) -> list[dict[str, Any]]:
    """``image_url`` content parts (data URLs) for the images in a tool's result."""
    if not isinstance(result, CallToolResult):
        return []
    return [
        {
            "type": "image_url",
            "image_url": {"url": f"data:{block.mime_type};base64,{block.data}"},
        }
        for block in result.content
        if isinstance(block, ImageContent)
    ]

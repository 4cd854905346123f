"""Sampling messages in the OpenAI chat format, and the model's answer back in MCP's.

MCP has two roles; OpenAI has four. An assistant message's text and tool uses
become one assistant message with ``tool_calls``; a user message of tool
results becomes one ``tool`` message per result; text, images and audio of a
user message become its content (a string when it is only text, else content
parts). :func:`openai_messages` goes one way and :func:`sampling_messages`
the other, so a server's tool loop can run through the client's model.
Nothing here does IO.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, McpError
from ..protocol import jsonrpc
from ..protocol.types import (
    AudioContent,
    CreateMessageParams,
    ImageContent,
    SamplingContent,
    SamplingMessage,
    TextContent,
    ToolResultContent,
    ToolUseContent,
    blocks_of,
)
from .content import _describe_block
from .conversion import mcp_tool_to_openai

__all__ = [
    "TOOL_CHOICES",
    "openai_messages",
    "openai_tool_choice",
    "openai_tools",
    "sampling_content",
    "sampling_messages",
]

TOOL_CHOICES = {"auto": "auto", "required": "required", "none": "none"}
"""MCP's ``toolChoice.mode`` and the OpenAI ``tool_choice`` each becomes."""

# OpenAI's input_audio knows these formats, by the audio's MIME subtype.
_AUDIO_FORMATS = {"wav": "wav", "x-wav": "wav", "wave": "wav", "mpeg": "mp3", "mp3": "mp3"}


def _invalid(message: str) -> McpError:
    return McpError(jsonrpc.INVALID_PARAMS, message)


def _part(block: SamplingContent) -> dict[str, Any]:
    if isinstance(block, TextContent):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageContent):
        url = f"data:{block.mime_type};base64,{block.data}"
        return {"type": "image_url", "image_url": {"url": url}}
    if isinstance(block, AudioContent):
        subtype = block.mime_type.partition("/")[2].lower()
        if subtype in _AUDIO_FORMATS:
            audio = {"data": block.data, "format": _AUDIO_FORMATS[subtype]}
            return {"type": "input_audio", "input_audio": audio}
    return {"type": "text", "text": _describe_block(block)}


def _plain(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _tool_text(result: ToolResultContent) -> str:
    parts = [_describe_block(block) for block in result.content]
    if result.structured_content is not None and not parts:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts)
    return f"The tool reported an error: {text}" if result.is_error else text


def _assistant(blocks: Sequence[SamplingContent]) -> dict[str, Any]:
    texts = [b for b in blocks if not isinstance(b, ToolUseContent)]
    calls = [b for b in blocks if isinstance(b, ToolUseContent)]
    out: dict[str, Any] = {"role": "assistant"}
    out["content"] = _plain([_part(b) for b in texts]) if texts else None
    if calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": json.dumps(dict(call.input), ensure_ascii=False),
                },
            }
            for call in calls
        ]
    return out


def openai_messages(params: CreateMessageParams) -> list[dict[str, Any]]:
    """The request's system prompt and messages as OpenAI chat messages.

    Raises :class:`~opex_trio.errors.McpError` (invalid params) for a role
    other than user and assistant, a tool use in a user message, or a tool
    result in an assistant one.
    """
    out: list[dict[str, Any]] = []
    if params.system_prompt:
        out.append({"role": "system", "content": params.system_prompt})
    for index, message in enumerate(params.messages):
        blocks = blocks_of(message)
        if message.role == "assistant":
            if any(isinstance(b, ToolResultContent) for b in blocks):
                raise _invalid(f"message {index}: an assistant message holds a tool result")
            out.append(_assistant(blocks))
        elif message.role == "user":
            if any(isinstance(b, ToolUseContent) for b in blocks):
                raise _invalid(f"message {index}: a user message holds a tool use")
            results = [b for b in blocks if isinstance(b, ToolResultContent)]
            if results:
                out.extend(
                    {"role": "tool", "tool_call_id": r.tool_use_id, "content": _tool_text(r)}
                    for r in results
                )
            else:
                out.append({"role": "user", "content": _plain([_part(b) for b in blocks])})
        else:
            raise _invalid(f"message {index}: unknown role {message.role!r}")
    return out


def openai_tools(params: CreateMessageParams) -> list[dict[str, Any]] | None:
    """The request's tools as OpenAI function tools (``None`` when it has none)."""
    if params.tools is None:
        return None
    converted = []
    for tool in params.tools:
        try:
            converted.append(mcp_tool_to_openai(tool))
        except ConfigError as exc:
            raise _invalid(f"a sampling tool cannot be offered to the model: {exc}") from exc
    return converted


def openai_tool_choice(params: CreateMessageParams) -> str | None:
    """The OpenAI ``tool_choice`` for the request's ``toolChoice`` (``None``: not given)."""
    if params.tool_choice is None:
        return None
    mode = params.tool_choice.get("mode", "auto")
    if mode not in TOOL_CHOICES:
        raise _invalid(f"toolChoice mode must be auto, required or none, got {mode!r}")
    return TOOL_CHOICES[mode]


def _arguments(text: str) -> Mapping[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        # The server runs the tool and can only use an object; it sees what came.
        return {"_invalid_arguments": text}
    return value


def sampling_content(message: Mapping[str, Any]) -> list[SamplingContent]:
    """The blocks of an OpenAI assistant message: its text, then a tool use per tool call."""
    blocks: list[SamplingContent] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        blocks.append(TextContent(content))
    elif isinstance(content, list):
        blocks.extend(
            TextContent(p["text"])
            for p in content
            if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        blocks.append(ToolUseContent(str(call.get("id") or ""), name, _arguments(arguments)))
    return blocks


def _user_blocks(content: Any) -> list[SamplingContent]:
    if isinstance(content, str):
        return [TextContent(content)]
    blocks: list[SamplingContent] = []
    for part in content or ():
        if part.get("type") == "text":
            blocks.append(TextContent(part["text"]))
        elif part.get("type") == "image_url":
            head, _, data = part["image_url"]["url"].partition(";base64,")
            blocks.append(ImageContent(data, head.removeprefix("data:")))
        elif part.get("type") == "input_audio":
            audio = part["input_audio"]
            blocks.append(AudioContent(audio["data"], f"audio/{audio['format']}"))
    return blocks


def sampling_messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[str | None, list[SamplingMessage]]:
    """OpenAI chat messages as MCP sampling messages, with the system prompt apart.

    Consecutive ``tool`` messages become one user message of tool results.
    """
    system: str | None = None
    out: list[SamplingMessage] = []
    for message in messages:
        role = message.get("role")
        if role == "system":
            system = str(message.get("content") or "")
        elif role == "assistant":
            out.append(SamplingMessage("assistant", tuple(sampling_content(message))))
        elif role == "tool":
            result = ToolResultContent(
                str(message.get("tool_call_id") or ""),
                (TextContent(str(message.get("content") or "")),),
            )
            last = out[-1] if out else None
            if last is not None and last.role == "user" and _all_results(last):
                out[-1] = SamplingMessage("user", (*blocks_of(last), result))
            else:
                out.append(SamplingMessage("user", (result,)))
        else:
            out.append(SamplingMessage("user", tuple(_user_blocks(message.get("content")))))
    return system, out


def _all_results(message: SamplingMessage) -> bool:
    return all(isinstance(b, ToolResultContent) for b in blocks_of(message))

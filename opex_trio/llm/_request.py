"""Building a chat completions request: argument checks, headers and the JSON body.

Pure functions the client calls before anything goes on the wire, so bad input
fails with a :class:`~opex_trio.errors.ConfigError` naming it, before any
attempt is made.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any, Final

from ..errors import ConfigError

__all__ = ["UNSET", "Unset", "check_timeout", "encode_body", "header_value"]


class Unset(enum.Enum):
    """The type of :data:`UNSET`: "use the client's default", apart from ``None``."""

    UNSET = enum.auto()


UNSET: Final = Unset.UNSET


def header_value(name: str, value: str) -> str:
    """``value`` checked fit for an HTTP header (ASCII, no line breaks); ``name`` is its name."""
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {type(value).__name__}")
    try:
        value.encode("ascii")
    except UnicodeEncodeError:
        raise ConfigError(f"{name} must be ASCII text to go into an HTTP header") from None
    if "\r" in value or "\n" in value or "\0" in value:
        raise ConfigError(f"{name} must not contain line breaks or NUL characters")
    return value


def check_timeout(name: str, value: Any) -> float | None:
    """``value`` as seconds (a number > 0) or ``None``; anything else is a ConfigError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a number of seconds > 0 or None, got {value!r}")
    return float(value)


def encode_body(
    model: Any, messages: Any, tools: Any, tool_choice: Any, extra: dict[str, Any], stream: bool
) -> bytes:
    """The JSON body of a chat completions request, every argument checked."""
    if not isinstance(model, str) or not model:
        raise ConfigError(f"model must be a non-empty string, got {model!r}")
    if not isinstance(messages, list | tuple):
        raise ConfigError(
            f"messages must be a list of message dicts, got {type(messages).__name__}"
        )
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ConfigError(f"messages[{position}] must be a dict, got {type(message).__name__}")
    if "stream" in extra:
        raise ConfigError("pass no 'stream' argument: call stream_chat() for a stream")
    payload: dict[str, Any] = {"model": model, "messages": messages}
    if tools is not None:
        if not isinstance(tools, list | tuple) or not all(isinstance(t, Mapping) for t in tools):
            raise ConfigError("tools must be a list of tool dicts")
        payload["tools"] = tools
    if tool_choice is not None:
        if not isinstance(tool_choice, str | Mapping):
            raise ConfigError(f"tool_choice must be a string or a dict, got {tool_choice!r}")
        payload["tool_choice"] = tool_choice
    elif tools:
        # "auto" is the API's documented default, but some servers
        # (llama-cpp-python's) take a missing tool_choice as "none" and leave
        # the tools out of the prompt.
        payload["tool_choice"] = "auto"
    payload.update(extra)
    if stream:
        payload["stream"] = True
    try:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the request cannot be encoded as JSON: {exc}") from exc
    return text.encode("utf-8")

"""Answering MCP servers' sampling requests with the same LLM client.

A server that sends ``sampling/createMessage`` asks the client's model to
write something. :func:`sampling_handler` builds the handler that does it with
an :class:`~opex_trio.llm.client.Client`; pass it as
``ClientOptions(sampling_handler=...)`` (opt-in: without it the client does
not declare the sampling capability and servers cannot ask).

The handler does tool use too (SEP-1577), and says so: the client declares
``sampling.tools`` with it. The request's ``tools`` are offered to the model
as function tools and ``toolChoice`` becomes ``tool_choice``; when the model
calls tools, the result holds a ``tool_use`` block per call and the stop
reason ``"toolUse"``. The server runs the tools and sends the history back
with ``tool_result`` blocks, which reach the model as ``tool`` messages: the
server's own tool loop, through the client's model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..llm.client import Client
from ..protocol.types import (
    CreateMessageParams,
    CreateMessageResult,
    TextContent,
    ToolUseContent,
)
from ._sampling_format import (
    openai_messages,
    openai_tool_choice,
    openai_tools,
    sampling_content,
)

__all__ = ["SamplingModel", "model_hints", "sampling_handler"]

# How OpenAI finish reasons map to MCP stop reasons.
_STOP_REASONS = {"stop": "endTurn", "length": "maxTokens", "tool_calls": "toolUse"}


def model_hints(params: CreateMessageParams) -> Sequence[str]:
    """The model names a server hinted at in its request, in its order of preference."""
    prefs: Mapping[str, Any] = params.model_preferences or {}
    hints = prefs.get("hints") or []
    return [h["name"] for h in hints if isinstance(h, Mapping) and isinstance(h.get("name"), str)]


class SamplingModel:
    """A ``sampling/createMessage`` handler that asks a :class:`Client`'s model.

    Built by :func:`sampling_handler`; calling it answers one request.
    ``sampling_features`` tells :class:`~opex_trio.mcp.client.ClientOptions`
    what to declare: tool use.
    """

    sampling_features = ("tools",)

    def __init__(
        self,
        client: Client,
        model: str | Callable[[CreateMessageParams], str],
        max_tokens: int | None,
        llm_options: Mapping[str, Any],
    ) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.llm_options = dict(llm_options)

    async def __call__(self, params: CreateMessageParams) -> CreateMessageResult:
        """The model's answer to ``params``."""
        chosen = self.model(params) if callable(self.model) else self.model
        limit = self.max_tokens
        tokens = params.max_tokens if limit is None else min(params.max_tokens, limit)
        options: dict[str, Any] = {"max_tokens": tokens, **self.llm_options}
        if params.temperature is not None:
            options.setdefault("temperature", params.temperature)
        if params.stop_sequences:
            options.setdefault("stop", list(params.stop_sequences))
        tools = openai_tools(params)
        choice = openai_tool_choice(params)
        if tools is not None:
            options["tools"] = tools
            if choice is not None:
                options["tool_choice"] = choice
        completion = await self.client.chat_completion(
            model=chosen, messages=openai_messages(params), **options
        )
        message = completion.message
        blocks = sampling_content(message.to_dict())
        reason = completion.finish_reason
        stop = _STOP_REASONS.get(reason or "", reason)
        if any(isinstance(b, ToolUseContent) for b in blocks):
            stop = "toolUse"
        content: Any
        if tools is None and not any(isinstance(b, ToolUseContent) for b in blocks):
            # A plain request gets one text block, as every revision reads it.
            content = TextContent(completion.content or "")
        else:
            content = tuple(blocks) or TextContent("")
        return CreateMessageResult(
            role="assistant",
            content=content,
            model=completion.model or chosen,
            stop_reason=stop,
        )


def sampling_handler(
    client: Client,
    *,
    model: str | Callable[[CreateMessageParams], str],
    max_tokens: int | None = None,
    **llm_options: Any,
) -> SamplingModel:
    """A ``sampling/createMessage`` handler that asks ``client``'s model.

    ``model`` is a model name, or a function choosing one from the request
    (its ``model_preferences`` hints, for example). ``max_tokens`` caps what a
    server may ask for. Other keyword arguments go to every model request.
    The handler does tool use (see the module's docstring).
    """
    return SamplingModel(client, model, max_tokens, llm_options)

r"""Assembling a streamed chat completion from its chunks (pure: dicts in, events out).

Theory of operation
-------------------

A stream is a sequence of ``chat.completion.chunk`` objects. Each carries
deltas for some choices: a piece of text, pieces of tool calls, a finish
reason; the last usually carries the usage. :class:`StreamAssembler` takes
the decoded chunks one by one (:meth:`~StreamAssembler.feed`), returns the
typed events each chunk holds and keeps the message so far, which
:meth:`~StreamAssembler.completion` turns into a :class:`ChatCompletion` in
the same shape as a non-streamed answer.

Tool calls arrive in pieces, and servers disagree on how:

* OpenAI sends ``index``, ``id`` and ``name`` in a call's first piece and only
  ``arguments`` after that;
* llama.cpp repeats ``id`` and ``name`` in every piece, so they must be set,
  not concatenated;
* Gemini omits ``index``: a piece with a new ``id`` starts a new call, a piece
  without an ``id`` continues the last one;
* some servers give parallel calls the same ``index`` with different ``id``\\ s:
  a different ``id`` starts a new call.

So a call is found by ``index`` (unless its ``id`` says otherwise), else by
``id``, else it is the last call. Arguments are always concatenated; a name
that repeats what is there is dropped, a different one is appended (a server
may split a long name).

An error chunk (an ``error`` object, a choice's ``error``, or a finish reason
of ``"error"``) raises :class:`~opex_trio.errors.StreamError` carrying what was
assembled so far. Whether the stream ended properly (``[DONE]``) is the
caller's business: it calls :meth:`~StreamAssembler.check_complete`.
"""

from __future__ import annotations

from typing import Any

from ..errors import StreamError
from ._errors import body_error
from .types import (
    ChatCompletion,
    ContentDelta,
    FinishEvent,
    ReasoningDelta,
    StreamEvent,
    ToolCallDelta,
    Usage,
    UsageEvent,
)

__all__ = ["StreamAssembler"]


class _ToolCallState:
    __slots__ = ("arguments", "extra", "id", "name", "type")

    def __init__(self) -> None:
        self.id = ""
        self.type = "function"
        self.name = ""
        self.arguments: list[str] = []
        self.extra: dict[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        out.update(
            id=self.id,
            type=self.type,
            function={"name": self.name, "arguments": "".join(self.arguments)},
        )
        return out


class _ChoiceState:
    __slots__ = (
        "by_id",
        "by_index",
        "content",
        "extra",
        "finish_reason",
        "index",
        "reasoning",
        "role",
        "tool_calls",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.role = "assistant"
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: list[_ToolCallState] = []
        self.by_index: dict[Any, int] = {}
        self.by_id: dict[str, int] = {}
        self.finish_reason: str | None = None
        self.extra: dict[str, Any] = {}

    def message(self) -> dict[str, Any]:
        out = dict(self.extra)
        out["role"] = self.role
        out["content"] = "".join(self.content) if self.content or not self.tool_calls else None
        if self.reasoning:
            out["reasoning"] = "".join(self.reasoning)
        if self.tool_calls:
            out["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        return out


class StreamAssembler:
    """Turns decoded stream chunks into events and, at the end, a :class:`ChatCompletion`."""

    def __init__(self) -> None:
        self._choices: dict[int, _ChoiceState] = {}
        self._usage: dict[str, Any] | None = None
        self._head: dict[str, Any] = {}
        self.chunks = 0

    def feed(self, chunk: Any) -> list[StreamEvent]:
        """The events in one decoded chunk; raises :class:`StreamError` on an error chunk."""
        event = self.feed_short(chunk)
        return [event] if event is not None else self.feed_long(chunk)

    def feed_short(self, chunk: Any) -> StreamEvent | None:
        """The event of a chunk of the commonest kind, or ``None`` (then nothing changed).

        Most chunks carry one piece of text, or one piece of a known tool
        call's arguments, for a choice already seen; this handles those in
        few steps, with the same result as the long way. Anything else, an
        error chunk included, returns ``None`` for :meth:`feed` to take the
        long way; this never raises.
        """
        if type(chunk) is not dict or "error" in chunk or chunk.get("usage"):
            return None
        choices = chunk.get("choices")
        if type(choices) is not list or len(choices) != 1:
            return None
        choice = choices[0]
        if type(choice) is not dict or choice.get("finish_reason") is not None or "error" in choice:
            return None
        delta = choice.get("delta")
        index = choice.get("index", 0)
        if type(delta) is not dict or type(index) is not int:
            return None
        state = self._choices.get(index)
        if state is None:
            return None
        size = len(delta)
        # OpenRouter repeats the role in every delta.
        if size != 1 and (size != 2 or delta.get("role") not in (None, state.role)):
            return None
        text = delta.get("content")
        if type(text) is str and text:
            self.chunks += 1
            state.content.append(text)
            return ContentDelta(text, index)
        calls = delta.get("tool_calls")
        if type(calls) is not list or len(calls) != 1:
            return None
        # A further piece of the arguments of a call already started, OpenAI's way.
        piece = calls[0]
        if type(piece) is not dict or len(piece) != 2:
            return None
        function = piece.get("function")
        if type(function) is not dict or len(function) != 1:
            return None
        arguments = function.get("arguments")
        server_index = piece.get("index")
        if type(arguments) is not str or not arguments or type(server_index) is not int:
            return None
        position = state.by_index.get(server_index)
        if position is None:
            return None
        self.chunks += 1
        state.tool_calls[position].arguments.append(arguments)
        return ToolCallDelta(position, None, None, arguments, index)

    def feed_long(self, chunk: Any) -> list[StreamEvent]:
        """The events in one decoded chunk, the long way (every kind of chunk)."""
        if type(chunk) is not dict:
            raise self._error(f"a stream chunk is {type(chunk).__name__}, not an object", chunk)
        self.chunks += 1
        if "error" in chunk:
            self._raise_error(chunk)
        if not self._head:
            self._head = {
                key: chunk[key]
                for key in ("id", "model", "created", "system_fingerprint", "provider")
                if key in chunk
            }
        events: list[StreamEvent] = []
        choices = chunk.get("choices")
        if choices:
            if type(choices) is not list:
                raise self._error("a stream chunk's choices is not a list", chunk)
            for position, choice in enumerate(choices):
                self._feed_choice(choice, position, chunk, events)
        usage = chunk.get("usage")
        if usage:
            if not isinstance(usage, dict):
                raise self._error("a stream chunk's usage is not an object", chunk)
            self._usage = usage
            events.append(UsageEvent(Usage.from_dict(usage)))
        return events

    def _feed_choice(
        self, choice: Any, position: int, chunk: dict[str, Any], events: list[StreamEvent]
    ) -> None:
        if type(choice) is not dict:
            raise self._error("a stream chunk's choice is not an object", chunk)
        index = choice.get("index", position)
        if not isinstance(index, int):
            raise self._error(f"a choice's index is {index!r}", chunk)
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _ChoiceState(index)
        if "error" in choice:
            self._raise_error(chunk)
        delta = choice.get("delta")
        if delta:
            if type(delta) is not dict:
                raise self._error("a choice's delta is not an object", chunk)
            for key, value in delta.items():
                if key == "content":
                    if value:
                        if type(value) is not str:
                            raise self._error("a delta's content is not a string", chunk)
                        state.content.append(value)
                        events.append(ContentDelta(value, index))
                elif key == "tool_calls":
                    if value:
                        if type(value) is not list:
                            raise self._error("a delta's tool_calls is not a list", chunk)
                        for piece in value:
                            self._feed_tool_call(state, piece, chunk, events)
                elif key == "role":
                    if value:
                        state.role = str(value)
                elif key == "reasoning":
                    if value and isinstance(value, str):
                        state.reasoning.append(value)
                        events.append(ReasoningDelta(value, index))
                elif key == "function_call":
                    # The legacy single-call field, which llama.cpp still streams
                    # beside tool_calls, repeating the name in every piece.
                    if value:
                        _merge_function_call(state.extra, value, chunk, self)
                elif value is not None:
                    _merge(state.extra, key, value)
        finish = choice.get("finish_reason")
        if finish is not None:
            if finish == "error":
                self._raise_error(chunk)
            if state.finish_reason is None:
                state.finish_reason = str(finish)
                events.append(FinishEvent(state.finish_reason, index))

    def _feed_tool_call(
        self, state: _ChoiceState, piece: Any, chunk: dict[str, Any], events: list[StreamEvent]
    ) -> None:
        if type(piece) is not dict:
            raise self._error("a tool call delta is not an object", chunk)
        call_id = piece.get("id") or ""
        if not isinstance(call_id, str):
            call_id = str(call_id)
        server_index = piece.get("index")
        if isinstance(server_index, list | dict):
            raise self._error(f"a tool call delta's index is {server_index!r}", chunk)
        position: int | None = None
        if call_id and call_id in state.by_id:
            position = state.by_id[call_id]
        elif server_index is not None:
            position = state.by_index.get(server_index)
            # Same index, different id: a server that numbers parallel calls alike.
            if position is not None and call_id:
                known = state.tool_calls[position].id
                if known and known != call_id:
                    position = None
        elif not call_id and state.tool_calls:
            position = len(state.tool_calls) - 1
        new = position is None
        if position is None:
            position = len(state.tool_calls)
            state.tool_calls.append(_ToolCallState())
        if server_index is not None:
            state.by_index[server_index] = position
        call = state.tool_calls[position]
        event_id: str | None = None
        if call_id and not call.id:
            call.id = event_id = call_id
            state.by_id[call_id] = position
        kind = piece.get("type")
        if isinstance(kind, str) and kind:
            call.type = kind
        event_name: str | None = None
        arguments = ""
        function = piece.get("function")
        if function:
            if type(function) is not dict:
                raise self._error("a tool call delta's function is not an object", chunk)
            name = function.get("name")
            if name and isinstance(name, str) and name != call.name:
                call.name += name
                event_name = name
            args = function.get("arguments")
            if args:
                if type(args) is not str:
                    raise self._error("a tool call delta's arguments are not a string", chunk)
                call.arguments.append(args)
                arguments = args
        for key, value in piece.items():
            if key not in ("index", "id", "type", "function") and value is not None:
                call.extra[key] = value
        if new or event_id or event_name or arguments:
            events.append(ToolCallDelta(position, event_id, event_name, arguments, state.index))

    def _error(self, message: str, chunk: Any) -> StreamError:
        return StreamError(message, partial=self.partial(), body=chunk)

    def _raise_error(self, chunk: dict[str, Any]) -> None:
        error = body_error(chunk) or {"message": "unknown error"}
        message = error.get("message")
        code = error.get("code")
        text = message if isinstance(message, str) else repr(dict(error))
        where = f"error in the stream (code {code})" if code is not None else "error in the stream"
        raise StreamError(f"{where}: {text}", partial=self.partial(), body=chunk, code=code)

    @property
    def finished(self) -> bool:
        """Whether every choice seen so far has a finish reason (and there was one)."""
        return bool(self._choices) and all(
            state.finish_reason is not None for state in self._choices.values()
        )

    def completion(self) -> ChatCompletion:
        """The completion assembled from every chunk fed so far."""
        raw: dict[str, Any] = {"object": "chat.completion", **self._head}
        raw["choices"] = [
            {
                "index": state.index,
                "message": state.message(),
                "finish_reason": state.finish_reason,
            }
            for _, state in sorted(self._choices.items())
        ]
        if self._usage is not None:
            raw["usage"] = self._usage
        return ChatCompletion.from_dict(raw)

    def partial(self) -> ChatCompletion | None:
        """What was assembled so far, or ``None`` before the first chunk."""
        # completion() cannot fail here: feed() keeps only well-formed parts
        # (a property test feeds it arbitrary chunks to hold it to that).
        return self.completion() if self.chunks else None

    def check_complete(self, done: bool) -> ChatCompletion:
        """The final completion, or :class:`StreamError` if the stream was cut short.

        ``done`` says whether ``[DONE]`` arrived. Without it the stream is still
        accepted when every choice has its finish reason (some servers end the
        body without ``[DONE]``): the message is whole then.
        """
        if not done and not self.finished:
            raise StreamError(
                f"the stream ended before [DONE] after {self.chunks} chunk(s)"
                " and before the message was finished",
                partial=self.partial(),
            )
        return self.completion()


def _merge(target: dict[str, Any], key: str, value: Any) -> None:
    """Fold one delta field the assembler does not model into the message."""
    old = target.get(key)
    if isinstance(value, str) and isinstance(old, str):
        target[key] = old + value
    elif isinstance(value, list) and isinstance(old, list):
        old.extend(value)
    else:
        target[key] = list(value) if isinstance(value, list) else value


def _merge_function_call(
    target: dict[str, Any], piece: Any, chunk: dict[str, Any], assembler: StreamAssembler
) -> None:
    if type(piece) is not dict:
        raise assembler._error("a delta's function_call is not an object", chunk)
    call = target.setdefault("function_call", {"name": "", "arguments": ""})
    name = piece.get("name")
    if name and isinstance(name, str) and name != call["name"]:
        call["name"] += name
    arguments = piece.get("arguments")
    if arguments and isinstance(arguments, str):
        call["arguments"] += arguments

"""Bookkeeping of multi round-trip requests: requests waiting for the input their server asked for.

A modern server may answer ``tools/call``, ``resources/read`` or
``prompts/get`` with ``input_required``: a map of requests (elicitation,
sampling, roots) under keys of its choosing, and an opaque ``requestState``.
:class:`InputRounds` gives each asked-for input an id of its own, so the
owner answers it like any server request, collects the answers under the
server's keys, and says when a request has all it needs to be sent again.
The session does the sending; this module only keeps count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ProtocolError
from .jsonrpc import Request, RequestId
from .modern import INPUT_METHODS, InputRequired

__all__ = ["MAX_INPUT_ROUNDS", "InputRound", "InputRounds"]

MAX_INPUT_ROUNDS = 16
"""A server that keeps asking for input more often than this is broken, not patient."""


class InputRound:
    """A request waiting for the answers to the input its server asked for."""

    __slots__ = ("context", "first_id", "keys", "method", "params", "responses", "rounds", "state")

    def __init__(
        self,
        first_id: RequestId,
        method: str,
        params: Mapping[str, Any],
        context: Any,
        state: str | None,
        rounds: int,
    ) -> None:
        self.first_id = first_id
        self.method = method
        self.params = params
        self.context = context
        self.state = state
        self.rounds = rounds
        self.keys: dict[RequestId, str] = {}
        self.responses: dict[str, Any] = {}

    def retry_members(self) -> dict[str, Any]:
        """What the request carries when sent again: the answers, and the state as it came."""
        extra: dict[str, Any] = {}
        if self.responses:
            extra["inputResponses"] = dict(self.responses)
        if self.state is not None:
            extra["requestState"] = self.state
        return extra


class InputRounds:
    """Every request of a session that waits for input, by the id its owner knows."""

    def __init__(self) -> None:
        self._by_input: dict[RequestId, InputRound] = {}
        self._by_request: dict[RequestId, InputRound] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._by_request)

    def __contains__(self, input_id: object) -> bool:
        return input_id in self._by_input

    def items(self) -> list[tuple[RequestId, InputRound]]:
        """The waiting requests, by the id their owner knows."""
        return list(self._by_request.items())

    def start(
        self,
        first_id: RequestId,
        method: str,
        params: Mapping[str, Any],
        context: Any,
        rounds: int,
        result: Mapping[str, Any],
        answerable: Mapping[str, str],
    ) -> tuple[InputRound, list[Request]]:
        """Record an ``input_required`` answer; return the round and the input requests to answer.

        ``answerable`` maps each method the client can answer to the
        capability it declared for it. An empty list means the request can be
        sent again at once. :class:`ProtocolError` when the answer is not one
        the client may act on.
        """
        if method not in INPUT_METHODS:
            raise ProtocolError(f"the server may not answer {method} with input_required")
        if rounds >= MAX_INPUT_ROUNDS:
            raise ProtocolError(f"the server asked for input {rounds} times for one {method}")
        asked = InputRequired.of(result)
        for item in asked.input_requests:
            if item.method not in answerable:
                raise ProtocolError(
                    f"the server asked for {item.method} input ({item.key!r}), which this "
                    "client did not declare it can give"
                )
        waiting = InputRound(first_id, method, params, context, asked.request_state, rounds + 1)
        requests = []
        for item in asked.input_requests:
            self._next += 1
            input_id = f"opex-input-{self._next}"
            waiting.keys[input_id] = item.key
            self._by_input[input_id] = waiting
            requests.append(Request(input_id, item.method, item.params))
        if requests:
            self._by_request[first_id] = waiting
        return waiting, requests

    def answer(self, input_id: RequestId, result: Mapping[str, Any]) -> InputRound | None:
        """Keep the answer to one input; the round when it was the last one missing."""
        waiting = self._by_input.pop(input_id)
        waiting.responses[waiting.keys.pop(input_id)] = dict(result)
        if waiting.keys:
            return None
        del self._by_request[waiting.first_id]
        return waiting

    def fail(self, input_id: RequestId) -> InputRound:
        """Give up the round one of whose inputs could not be given; return it."""
        waiting = self._by_input[input_id]
        self.drop(waiting.first_id)
        return waiting

    def drop(self, first_id: RequestId) -> InputRound | None:
        """Forget the round of a request (cancelled); return it, or ``None``."""
        waiting = self._by_request.pop(first_id, None)
        if waiting is not None:
            for input_id in waiting.keys:
                self._by_input.pop(input_id, None)
            waiting.keys.clear()
        return waiting

    def clear(self) -> None:
        """Forget every round."""
        self._by_input.clear()
        self._by_request.clear()

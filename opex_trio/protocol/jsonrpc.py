"""JSON-RPC 2.0 messages: frozen classes, parsing, encoding, ids and error codes.

Theory of operation
-------------------
A JSON-RPC message is one of four shapes, told apart by which members are
present: a :class:`Request` has ``method`` and ``id``, a :class:`Notification`
has ``method`` and no ``id``, a :class:`Response` has ``result`` and an
:class:`ErrorResponse` has ``error``. :func:`parse_message` checks one decoded
JSON value against those rules and returns the frozen class or raises one
:class:`~opex_trio.errors.ProtocolError` that says what was wrong and, when it
could be read, which id it concerned. :func:`decode` adds the JSON layer and
the batch rule: an array is a batch, accepted only when the caller says the
negotiated protocol version allows batches; each element of a batch is parsed
on its own so one bad element does not lose its siblings.

:func:`encode` is the inverse and writes compact UTF-8 JSON with no newline.
Parsing is on the hot path of every tool call, so it does plain dict look-ups
and no schema validation; MCP-level meaning lives in :mod:`.types` and
:mod:`.session`.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias

import attrs

from ..errors import ConfigError, ProtocolError

__all__ = [
    "CONNECTION_CLOSED",
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MISSING_REQUIRED_CLIENT_CAPABILITY",
    "PARSE_ERROR",
    "REQUEST_TIMEOUT",
    "RESOURCE_NOT_FOUND",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "URL_ELICITATION_REQUIRED",
    "ErrorObject",
    "ErrorResponse",
    "IdAllocator",
    "Message",
    "Notification",
    "PreEncoded",
    "Request",
    "RequestId",
    "Response",
    "decode",
    "encode",
    "encode_many",
    "error_code",
    "find_id",
    "parse_message",
]

RequestId: TypeAlias = str | int
"""The id of a JSON-RPC request."""

# Standard JSON-RPC 2.0 codes.
PARSE_ERROR: Final = -32700
"""JSON-RPC: the message was not valid JSON."""
INVALID_REQUEST: Final = -32600
"""JSON-RPC: the message was not a valid request."""
METHOD_NOT_FOUND: Final = -32601
"""JSON-RPC: the method does not exist or is not offered."""
INVALID_PARAMS: Final = -32602
"""JSON-RPC: the parameters were invalid."""
INTERNAL_ERROR: Final = -32603
"""JSON-RPC: the receiver failed internally."""
# Codes MCP implementations use in the implementation-defined range.
CONNECTION_CLOSED: Final = -32000
"""MCP: the connection closed before the answer came."""
REQUEST_TIMEOUT: Final = -32001
"""MCP: the request timed out."""
RESOURCE_NOT_FOUND: Final = -32002
"""MCP: no resource has the requested URI."""
URL_ELICITATION_REQUIRED: Final = -32042
"""MCP: the person must first visit a URL (``UrlElicitationRequiredError``)."""
# Codes the 2026-07-28 revision reserves for the specification.
HEADER_MISMATCH: Final = -32020
"""MCP 2026-07-28: an HTTP header disagrees with the request body."""
MISSING_REQUIRED_CLIENT_CAPABILITY: Final = -32021
"""MCP 2026-07-28: the request needs a client capability that was not declared."""
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022
"""MCP 2026-07-28: the server does not speak the requested version."""


@attrs.frozen(slots=True)
class Request:
    """A JSON-RPC request: a method call that expects a response with the same id."""

    id: RequestId
    method: str
    params: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The message as a JSON-ready dict."""
        out: dict[str, Any] = {"jsonrpc": "2.0", "id": self.id, "method": self.method}
        if self.params is not None:
            out["params"] = self.params
        return out


@attrs.frozen(slots=True)
class Notification:
    """A JSON-RPC notification: a method call that gets no response."""

    method: str
    params: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The message as a JSON-ready dict."""
        out: dict[str, Any] = {"jsonrpc": "2.0", "method": self.method}
        if self.params is not None:
            out["params"] = self.params
        return out


@attrs.frozen(slots=True)
class Response:
    """A successful JSON-RPC response."""

    id: RequestId
    result: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The message as a JSON-ready dict."""
        return {"jsonrpc": "2.0", "id": self.id, "result": self.result}


@attrs.frozen(slots=True)
class ErrorObject:
    """The ``error`` member of an error response."""

    code: int
    message: str
    data: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The error object as a JSON-ready dict."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


@attrs.frozen(slots=True)
class ErrorResponse:
    """A JSON-RPC error response.

    ``id`` is ``None`` when the peer could not read the id of the request.
    """

    id: RequestId | None
    error: ErrorObject

    def to_dict(self) -> dict[str, Any]:
        """The message as a JSON-ready dict."""
        return {"jsonrpc": "2.0", "id": self.id, "error": self.error.to_dict()}


Message: TypeAlias = Request | Notification | Response | ErrorResponse
"""Any JSON-RPC message."""


class IdAllocator:
    """Hands out request ids: increasing integers, never reused within one session."""

    __slots__ = ("_next",)

    def __init__(self, start: int = 1) -> None:
        self._next = start

    def __call__(self) -> int:
        """The next id."""
        value = self._next
        self._next += 1
        return value


def _read_id(obj: Mapping[str, Any]) -> RequestId | None:
    """The message's id if it is a valid one, for error messages; never raises."""
    value = obj.get("id")
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None


def _check_params(obj: Mapping[str, Any], rid: RequestId | None) -> Mapping[str, Any] | None:
    params = obj.get("params")
    if params is None or isinstance(params, dict):
        return params
    # JSON-RPC allows positional (array) params; MCP never uses them, so a list
    # is as much a protocol fault here as a number would be.
    raise ProtocolError(
        f"'params' must be an object, got {type(params).__name__}",
        request_id=rid,
        code=INVALID_REQUEST,
    )


def parse_message(obj: Any) -> Message:
    """Turn one decoded JSON value into a message, or raise :class:`ProtocolError`.

    The error's ``request_id`` is set when the value carried a readable id, and
    its ``code`` is ``-32600`` (invalid request).
    """
    if not isinstance(obj, dict):
        raise ProtocolError(
            f"a JSON-RPC message must be an object, got {type(obj).__name__}",
            code=INVALID_REQUEST,
        )
    # The answer to a request is by far the most common message: take it in
    # one step when it is plainly well formed, else go through every rule.
    result = obj.get("result")
    if (
        type(result) is dict
        and len(obj) == 3
        and type(obj.get("id")) in (int, str)
        and obj.get("jsonrpc") == "2.0"
    ):
        return Response(obj["id"], result)
    rid = _read_id(obj)
    if obj.get("jsonrpc") != "2.0":
        raise ProtocolError(
            f"'jsonrpc' must be \"2.0\", got {obj.get('jsonrpc')!r}",
            request_id=rid,
            code=INVALID_REQUEST,
        )
    has_id = "id" in obj
    raw_id = obj.get("id")
    if has_id and raw_id is not None and rid is None:
        raise ProtocolError(
            f"'id' must be a string or an integer, got {type(raw_id).__name__}",
            code=INVALID_REQUEST,
        )
    method = obj.get("method")
    if method is not None:
        if not isinstance(method, str):
            raise ProtocolError(
                f"'method' must be a string, got {type(method).__name__}",
                request_id=rid,
                code=INVALID_REQUEST,
            )
        params = _check_params(obj, rid)
        if rid is None:
            if has_id:
                raise ProtocolError(
                    f"request {method!r} has a null id", request_id=None, code=INVALID_REQUEST
                )
            return Notification(method, params)
        return Request(rid, method, params)
    if "result" in obj:
        if "error" in obj:
            raise ProtocolError(
                "a response has both 'result' and 'error'", request_id=rid, code=INVALID_REQUEST
            )
        if rid is None:
            raise ProtocolError("a result response has no id", code=INVALID_REQUEST)
        result = obj["result"]
        if not isinstance(result, dict):
            raise ProtocolError(
                f"'result' must be an object, got {type(result).__name__}",
                request_id=rid,
                code=INVALID_REQUEST,
            )
        return Response(rid, result)
    if "error" in obj:
        err = obj["error"]
        if not isinstance(err, dict):
            raise ProtocolError(
                f"'error' must be an object, got {type(err).__name__}",
                request_id=rid,
                code=INVALID_REQUEST,
            )
        code = err.get("code")
        message = err.get("message")
        if not isinstance(code, int) or isinstance(code, bool):
            raise ProtocolError(
                f"error 'code' must be an integer, got {code!r}",
                request_id=rid,
                code=INVALID_REQUEST,
            )
        if not isinstance(message, str):
            raise ProtocolError(
                f"error 'message' must be a string, got {type(message).__name__}",
                request_id=rid,
                code=INVALID_REQUEST,
            )
        return ErrorResponse(rid, ErrorObject(code, message, err.get("data")))
    raise ProtocolError(
        "not a request, notification or response: no 'method', 'result' or 'error'",
        request_id=rid,
        code=INVALID_REQUEST,
    )


def decode(data: bytes | str, *, allow_batch: bool = False) -> list[Message | ProtocolError]:
    """Parse one JSON text into its messages.

    A JSON object gives a one-element list. A JSON array is a batch: when
    ``allow_batch`` is false it raises, else every element is parsed on its own
    and a bad element appears in the list as its :class:`ProtocolError`, in
    place, so the good ones are not lost. Text that is not JSON raises
    :class:`ProtocolError` with code ``-32700``.
    """
    try:
        # Decoding to str first spares json.loads its encoding detection.
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        try:
            obj, end = _scan(text, 0)
        except (StopIteration, ValueError, RecursionError):
            end = -1
        if end != len(text):
            # Not one JSON value alone: the full decoder says what is wrong.
            obj = _loads(text)
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError is a ValueError, so undecodable bytes land here too.
        preview = data[:80] if isinstance(data, str) else data[:80].decode("utf-8", "replace")
        raise ProtocolError(
            f"not valid JSON ({exc.__class__.__name__}: {exc}): {preview!r}", code=PARSE_ERROR
        ) from exc
    if isinstance(obj, list):
        if not allow_batch:
            raise ProtocolError(
                "JSON-RPC batches are not allowed by the negotiated protocol version",
                code=INVALID_REQUEST,
            )
        if not obj:
            raise ProtocolError("an empty JSON-RPC batch", code=INVALID_REQUEST)
        out: list[Message | ProtocolError] = []
        for item in obj:
            try:
                out.append(parse_message(item))
            except ProtocolError as exc:
                out.append(exc)
        return out
    return [parse_message(obj)]


_loads = json.JSONDecoder().decode
# The C scanner under _loads: a message that is one JSON value and nothing
# more (every one a well-behaved peer sends) skips the two Python frames and
# two regular-expression matches around it; anything else takes _loads.
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed types the argument as the scanner
)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_dumps = _ENCODER.encode


def _c_encoder() -> Callable[[Any, int], Sequence[str]] | None:
    """The C encoder ``_dumps`` makes afresh for each call, made once.

    It is made without a circular-reference check, whose state would outlive
    a failed call; a value it cannot encode (a cycle, NaN, an unknown type)
    goes through ``_dumps`` again, which raises the error it always did.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return None
    encoder: Callable[[Any, int], Sequence[str]] = make(
        None,
        _ENCODER.default,
        json.encoder.encode_basestring,
        None,
        _ENCODER.key_separator,
        _ENCODER.item_separator,
        False,
        False,
        False,
    )
    return encoder


_iterencode = _c_encoder()


class PreEncoded(dict[str, Any]):
    """A JSON object that keeps its own encoding, for members every request repeats.

    A request whose ``params["_meta"]`` is one is encoded with :attr:`text`
    spliced in instead of encoding the members again (in the modern era every
    request carries the same ``_meta``, and encoding it was a third of what a
    call's encoding cost). It must not change once made.
    """

    def __init__(self, members: Mapping[str, Any]) -> None:
        super().__init__(members)
        self.text = _dumps(members)


def encode(message: Message) -> bytes:
    """Serialise one message as compact UTF-8 JSON, without a trailing newline.

    Raises :class:`~opex_trio.errors.ConfigError` (naming the message) when its
    params hold something JSON cannot carry, such as NaN or an arbitrary object.
    """
    if type(message) is Request and message.params is not None:
        meta = message.params.get("_meta")
        if type(meta) is PreEncoded:
            rest = dict(message.params)
            del rest["_meta"]
            head = _text(
                {"jsonrpc": "2.0", "id": message.id, "method": message.method, "params": rest},
                message,
            )
            # ``head`` ends with the params object's brace and the message's.
            return f'{head[:-2]}{"," if rest else ""}"_meta":{meta.text}}}}}'.encode()
    return _text(message.to_dict(), message).encode("utf-8")


def _text(obj: Any, message: Message) -> str:
    if _iterencode is not None:
        try:
            return "".join(_iterencode(obj, 0))
        except (TypeError, ValueError, RecursionError):
            pass  # _dumps below raises the error it always did
    try:
        return _dumps(obj)
    except (TypeError, ValueError) as exc:
        what = getattr(message, "method", None) or f"response {getattr(message, 'id', None)!r}"
        raise ConfigError(f"cannot encode {what} as JSON: {exc}") from exc


def encode_many(messages: list[Message]) -> bytes:
    """Serialise messages as one JSON array (a batch)."""
    return _dumps([m.to_dict() for m in messages]).encode("utf-8")


_ID_IN_HEAD = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,200}")')


def error_code(body: bytes | str) -> int | None:
    """The code of the JSON-RPC error response ``body`` holds; ``None`` when it holds none."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return None


def find_id(head: bytes) -> RequestId | None:
    """Find the ``id`` member in the first bytes of a message that could not be parsed whole.

    Used for a message over the size limit: the request it answered can then
    fail with the size error instead of waiting for its deadline. Returns
    ``None`` when no id shows in ``head``.
    """
    # Only look before the payload, so an "id" inside a result is never taken
    # for the message's own.
    for payload_key in (b'"result"', b'"error"'):
        cut = head.find(payload_key)
        if cut >= 0:
            head = head[:cut]
    match = _ID_IN_HEAD.search(head)
    if match is None:
        return None
    token = match.group(1)
    if token.startswith(b'"'):
        try:
            value = json.loads(token)
        except ValueError:
            return None
        return value if isinstance(value, str) else None
    return int(token)

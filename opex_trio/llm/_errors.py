"""Mapping what the API and httpx2 report to the error tree of :mod:`opex_trio.errors`.

Three sources of failure meet here: an HTTP error status, an error object
inside a 200 body or a stream chunk (OpenRouter's way when the upstream
provider fails after the response started), and an httpx2 exception. Each is
mapped to the most specific class; an error object's code is classified as
the same HTTP status would be. Messages name the status, the server's message
and the request id, never a request header (the API key is one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx2

from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

__all__ = [
    "body_error",
    "error_from_body",
    "error_from_response",
    "error_from_transport",
    "status_error_class",
]

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}

# Error objects that carry no numeric code still name their kind; these are
# the names OpenAI-compatible providers use, mapped to the status they mean.
_BY_NAME: dict[str, int] = {
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "model_not_found": 404,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "server_error": 500,
    "internal_error": 500,
    "api_error": 500,
    "overloaded_error": 503,
}

_MAX_MESSAGE = 500


def status_error_class(status: int) -> type[APIStatusError]:
    """The :class:`APIStatusError` subclass for an HTTP status (or an error object's code)."""
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    if 500 <= status <= 599:
        return ServerError
    return APIStatusError


def _request_id(headers: Mapping[str, str] | None, body: Any = None) -> str | None:
    if headers is not None:
        for name in ("x-request-id", "request-id", "x-generation-id"):
            value = headers.get(name)
            if value:
                return value
    value = body.get("id") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _code_status(error: Mapping[str, Any]) -> int | None:
    """The HTTP status an error object's ``code`` (or ``type``) stands for."""
    code = error.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
        return code
    if isinstance(code, str):
        if code.isdigit() and 100 <= int(code) <= 599:
            return int(code)
        if code in _BY_NAME:
            return _BY_NAME[code]
    kind = error.get("type")
    if isinstance(kind, str) and kind in _BY_NAME:
        return _BY_NAME[kind]
    status = error.get("status")
    if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
        return status
    return None


def _describe(
    status: int,
    server_message: str | None,
    request_id: str | None,
    attempts: int,
    where: str,
) -> str:
    parts = [f"{where} {status}"]
    if server_message:
        parts.append(f": {_shorten(server_message)}")
    if request_id:
        parts.append(f" (request id {request_id})")
    if attempts > 1:
        parts.append(f" (after {attempts} attempts)")
    return "".join(parts)


def _error_fields(body: Any) -> tuple[Mapping[str, Any] | None, str | None]:
    """The error object in an error response's body, and its message."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            return error, message if isinstance(message, str) else json.dumps(error)[:_MAX_MESSAGE]
        if isinstance(error, str):
            return {"message": error}, error
        message = body.get("message") or body.get("detail")
        if isinstance(message, str):
            return None, message
        return None, None
    if isinstance(body, str) and body.strip():
        return None, body
    return None, None


def error_from_response(response: httpx2.Response, *, attempts: int) -> APIStatusError:
    """The error for a response with an error status; its body must have been read."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    error, message = _error_fields(body)
    request_id = _request_id(response.headers)
    cls = status_error_class(status)
    return cls(
        _describe(status, message, request_id, attempts, "HTTP"),
        status=status,
        body=body,
        request_id=request_id,
        headers=response.headers,
        code=error.get("code") if error else None,
        error_type=error.get("type") if error and isinstance(error.get("type"), str) else None,
        attempts=attempts,
    )


def body_error(data: Any) -> Mapping[str, Any] | None:
    """The error object inside a 200 body or a stream chunk, or ``None`` if there is none.

    It is a top-level ``error``, or a choice's ``error``, or a choice whose
    finish reason is ``"error"`` (then the object is made up from what is there).
    """
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if error is not None:
        if isinstance(error, dict):
            return error
        return {"message": str(error)}
    choices = data.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            error = choice.get("error")
            if isinstance(error, dict):
                return error
            if error is not None:
                return {"message": str(error)}
            if choice.get("finish_reason") == "error":
                return {"message": "the provider ended the choice with finish_reason 'error'"}
    return None


def error_from_body(
    error: Mapping[str, Any],
    body: Any,
    *,
    headers: Mapping[str, str] | None = None,
    attempts: int,
    http_status: int = 200,
) -> APIStatusError:
    """The error for an error object found in a successful response or a stream.

    It is classified by the object's code like the same HTTP status; an
    object without a usable code gets the plain :class:`APIStatusError` with
    the response's own status, which is not retried.
    """
    status = _code_status(error)
    message = error.get("message")
    if not isinstance(message, str):
        message = json.dumps(dict(error))[:_MAX_MESSAGE]
    request_id = _request_id(headers, body)
    cls = status_error_class(status) if status is not None else APIStatusError
    where = "error object with code" if status is not None else "error object in HTTP"
    return cls(
        _describe(status or http_status, message, request_id, attempts, where),
        status=status or http_status,
        body=body,
        request_id=request_id,
        headers=headers,
        code=error.get("code"),
        error_type=error.get("type") if isinstance(error.get("type"), str) else None,
        attempts=attempts,
    )


def _timeout_text(exc: httpx2.TimeoutException) -> str:
    if isinstance(exc, httpx2.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx2.ReadTimeout):
        return "timed out waiting for the response"
    if isinstance(exc, httpx2.WriteTimeout):
        return "timed out sending the request"
    if isinstance(exc, httpx2.PoolTimeout):
        return "timed out waiting for a free connection in the pool"
    return "timed out"


def error_from_transport(exc: Exception, *, url: str, attempts: int) -> LLMError:
    """The error for an httpx2 exception (the caller chains ``exc`` as the cause)."""
    suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx2.TimeoutException):
        return APITimeoutError(f"{url}: {_timeout_text(exc)}{suffix}", attempts=attempts)
    if isinstance(exc, httpx2.ConnectError):
        return APIConnectionError(
            f"could not connect to {url}: {detail}{suffix}", attempts=attempts
        )
    if isinstance(exc, httpx2.RemoteProtocolError):
        return APIConnectionError(
            f"{url}: the server broke the HTTP protocol or closed the connection: {detail}{suffix}",
            attempts=attempts,
        )
    if isinstance(exc, httpx2.ReadError | httpx2.WriteError | httpx2.CloseError):
        return APIConnectionError(
            f"{url}: the connection broke: {detail}{suffix}", attempts=attempts
        )
    return APIConnectionError(f"{url}: {type(exc).__name__}: {detail}{suffix}", attempts=attempts)

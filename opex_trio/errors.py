"""The exception tree of opex_trio.

Every error opex_trio raises on purpose is an :class:`OpexError`. Lower-layer
errors (httpx2, ``OSError``, trio) are mapped at the layer boundary to the most
specific class below, with the original chained as ``__cause__``.

::

    OpexError
    ├── ConfigError (ValueError)             bad input from the program: config, argument
    ├── UsageError (RuntimeError)            an object used outside its life: closed, not entered
    ├── ProtocolError                         the peer broke JSON-RPC or MCP, or sent garbage
    │   ├── MessageTooLargeError              a message over the configured size limit
    │   ├── SkillVerificationError            a skill file that does not match its listing
    │   └── VersionNegotiationError           no protocol version both sides speak
    ├── McpError                              a JSON-RPC error *received* from a server
    │   ├── HeaderMismatchError               -32020: HTTP headers and body disagree
    │   ├── MissingRequiredClientCapabilityError  -32021: the request needs a capability
    │   ├── UnsupportedProtocolVersionError   -32022: the server does not speak our version
    │   └── UrlElicitationRequiredError       -32042: the person must visit a page first
    ├── CapabilityError                       a request needs a capability a side did not declare
    ├── RequestTimeoutError (TimeoutError)    an MCP request's deadline passed
    ├── TransportError                        the connection to an MCP server
    │   ├── TransportClosedError              closed by us; using it later is a bug
    │   ├── TransportAuthError                the server refused our credentials (401, 403)
    │   │   └── AuthorizationError            getting an OAuth access token for it failed
    │   │       ├── IssuerMismatchError       an authorization server is not the issuer it claims
    │   │       └── ResourceMismatchError     metadata names another resource than the server
    │   └── TransportBrokenError              broken by the peer or the network
    │       ├── ServerExitedError             a stdio server process exited
    │       ├── SessionExpiredError           an HTTP server forgot our session (404)
    │       └── HealthCheckError              a managed server failed its health checks
    ├── ServerUnavailableError                a managed server is restarting, failed or removed
    ├── UnknownToolError (KeyError)           no tool is exposed under the name asked for
    ├── SupervisionError                      a supervised task exceeded its restart intensity
    └── LLMError                              the OpenAI-compatible API
        ├── APIStatusError                    an error status, or an error in a 200 body
        │   ├── BadRequestError               400, 413, 422
        │   ├── AuthenticationError           401
        │   ├── PermissionDeniedError         403
        │   ├── NotFoundError                 404
        │   ├── RateLimitError                429
        │   └── ServerError                   5xx
        ├── APIConnectionError                connect failures, resets, protocol errors
        ├── APITimeoutError (TimeoutError)    a read/connect timeout or the call's deadline
        └── StreamError                       a stream broke, errored or ended early

Three distinctions run through the tree:

* raised locally versus received from the peer: :class:`McpError` and
  :class:`APIStatusError` carry what the other side said; everything else is our
  own finding;
* closed by us (:class:`TransportClosedError`) versus broken by the peer
  (:class:`TransportBrokenError`), as in trio's ``ClosedResourceError`` and
  ``BrokenResourceError``;
* errors for the model versus errors for the program: the chat loop turns a
  failed tool call into a tool message the model reads, while a bad API key or
  a broken config raises to the caller.

This module imports only the standard library, so every layer (the sans-IO
protocol core included) can use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "AuthorizationError",
    "BadRequestError",
    "CapabilityError",
    "ConfigError",
    "HeaderMismatchError",
    "HealthCheckError",
    "IssuerMismatchError",
    "LLMError",
    "McpError",
    "MessageTooLargeError",
    "MissingRequiredClientCapabilityError",
    "NotFoundError",
    "OpexError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResourceMismatchError",
    "ServerError",
    "ServerExitedError",
    "ServerUnavailableError",
    "SessionExpiredError",
    "SkillVerificationError",
    "StreamError",
    "SupervisionError",
    "TransportAuthError",
    "TransportBrokenError",
    "TransportClosedError",
    "TransportError",
    "UnknownToolError",
    "UnsupportedProtocolVersionError",
    "UrlElicitationRequiredError",
    "UsageError",
    "VersionNegotiationError",
]


class OpexError(Exception):
    """Base class of every error opex_trio raises on purpose."""


class ConfigError(OpexError, ValueError):
    """Bad input from the program: a config file, a config dict or an argument.

    The message names the input (file, field, value) that was wrong.
    """


class UsageError(OpexError, RuntimeError):
    """The program used an object outside its life.

    A closed ``Client`` or ``SessionManager``, one used before its
    ``async with``, or one entered twice. A bug in the calling program, never
    a condition to retry; the message says what to do instead.
    """


class ProtocolError(OpexError):
    """The peer broke JSON-RPC 2.0 or MCP, or sent bytes that do not parse.

    ``request_id`` is the JSON-RPC id of the message concerned when it could be
    read, else ``None``. ``code`` is the JSON-RPC error code that describes the
    fault (``-32700`` parse error, ``-32600`` invalid request, ...), so a reply
    to the peer can be built from it.
    """

    def __init__(
        self, message: str, *, request_id: str | int | None = None, code: int = -32600
    ) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.code = code


class MessageTooLargeError(ProtocolError):
    """A message exceeded the configured maximum size and was discarded.

    ``head`` keeps its first bytes, enough to find the id of the request it
    answered so that exactly that request can fail.
    """

    def __init__(self, message: str, *, size: int, limit: int, head: bytes = b"") -> None:
        super().__init__(message, code=-32600)
        self.size = size
        self.limit = limit
        self.head = head


class SkillVerificationError(ProtocolError):
    """A skill's file differs from what the server listed for it (size, digest, frontmatter).

    ``uri`` is the file or skill refused. Its content is never used.
    """

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri


class VersionNegotiationError(ProtocolError):
    """The server answered with a protocol version this client does not speak."""

    def __init__(self, message: str, *, offered: str, received: str | None) -> None:
        super().__init__(message)
        self.offered = offered
        self.received = received


class CapabilityError(OpexError):
    """A request needs a capability that was not declared, so it was not sent.

    ``capability`` names it (``"prompts"``, ``"resources.subscribe"``,
    ``"tasks"`` ...), ``method`` is the request and ``server`` the server.
    """

    def __init__(
        self,
        message: str,
        *,
        capability: str,
        method: str | None = None,
        server: str | None = None,
    ) -> None:
        super().__init__(message)
        self.capability = capability
        self.method = method
        self.server = server


class RequestTimeoutError(OpexError, TimeoutError):
    """An MCP request did not complete within its deadline.

    The server was sent ``notifications/cancelled`` and a late answer is dropped.
    """

    def __init__(
        self, message: str, *, method: str | None = None, timeout: float | None = None
    ) -> None:
        super().__init__(message)
        self.method = method
        self.timeout = timeout


class TransportError(OpexError):
    """The connection to an MCP server failed."""


class TransportClosedError(TransportError):
    """The transport was closed by this side; it cannot be used any more."""


class TransportAuthError(TransportError):
    """A remote MCP server refused our credentials: HTTP 401 or 403, or a policy close.

    Reconnecting with the same credentials will not help. ``status`` is the
    HTTP status (or the WebSocket close code), ``server`` names the server and
    ``www_authenticate`` keeps the server's ``WWW-Authenticate`` header, which
    says what it wants. The credentials themselves are never in the message.
    """

    def __init__(
        self,
        message: str,
        *,
        server: str | None = None,
        status: int | None = None,
        www_authenticate: str | None = None,
    ) -> None:
        super().__init__(message)
        self.server = server
        self.status = status
        self.www_authenticate = www_authenticate


class AuthorizationError(TransportAuthError):
    """Getting an OAuth access token for a remote MCP server failed, or was refused on purpose.

    ``reason`` is a short stable word a program can test (``"discovery"``,
    ``"pkce"``, ``"state"``, ``"insecure"``, ``"token"``, ``"registration"``,
    ``"step-up"``, ``"extra"``, ...). Tokens, codes, verifiers, client secrets
    and keys are never part of the message.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        server: str | None = None,
        status: int | None = None,
        www_authenticate: str | None = None,
    ) -> None:
        super().__init__(message, server=server, status=status, www_authenticate=www_authenticate)
        self.reason = reason


class IssuerMismatchError(AuthorizationError):
    """An authorization server's metadata or redirect named another issuer than expected."""


class ResourceMismatchError(AuthorizationError):
    """Protected-resource metadata names another resource than the MCP server it came from."""


class TransportBrokenError(TransportError):
    """The peer or the network broke the connection."""


class ServerExitedError(TransportBrokenError):
    """A stdio MCP server process exited.

    ``returncode`` is the exit status (negative for a signal, as in
    :mod:`subprocess`) or ``None`` when it is not known yet; ``stderr_tail``
    holds the last lines the server wrote to stderr.
    """

    def __init__(
        self,
        message: str,
        *,
        server: str | None = None,
        returncode: int | None = None,
        stderr_tail: Sequence[str] = (),
    ) -> None:
        self.server = server
        self.returncode = returncode
        self.stderr_tail = tuple(stderr_tail)
        detail = message
        if returncode is not None:
            detail += f" (exit status {returncode})"
        if self.stderr_tail:
            detail += "; last stderr lines:\n  " + "\n  ".join(self.stderr_tail)
        super().__init__(detail)


class SessionExpiredError(TransportBrokenError):
    """An HTTP server answered 404 for our session id: it no longer knows the session.

    Requests pending on the old session fail with this error (they may or may
    not have run); the client opens a new session for the calls that follow.
    """

    def __init__(self, message: str, *, server: str | None = None) -> None:
        super().__init__(message)
        self.server = server


class HealthCheckError(TransportBrokenError):
    """A managed server stopped answering its health checks and is being restarted."""

    def __init__(self, message: str, *, server: str | None = None, failures: int = 0) -> None:
        super().__init__(message)
        self.server = server
        self.failures = failures


class ServerUnavailableError(OpexError):
    """A managed MCP server could not serve a call within the call's deadline.

    ``state`` is the server's state at that moment (restarting, failed, removed,
    ...); ``last_error`` is what made it unavailable, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        server: str | None = None,
        state: str | None = None,
        last_error: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.server = server
        self.state = state
        self.last_error = last_error


class UnknownToolError(OpexError, KeyError):
    """No tool is exposed under the name asked for.

    Models sometimes call tools that do not exist; the chat loop turns this
    error into a tool message the model reads. ``name`` is the name asked for
    and ``server`` the server, when the lookup was by server and original name.
    """

    def __init__(self, message: str, *, name: str, server: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.server = server

    def __str__(self) -> str:
        # KeyError shows the repr of its argument; a message reads better as it is.
        return str(self.args[0])


class SupervisionError(OpexError):
    """A supervised task failed more often than its restart intensity allows."""

    def __init__(self, message: str, *, name: str, restarts: int) -> None:
        super().__init__(message)
        self.name = name
        self.restarts = restarts


class LLMError(OpexError):
    """Base class for errors from the OpenAI-compatible API client.

    ``attempts`` counts the HTTP attempts made, retries included.
    """

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class APIStatusError(LLMError):
    """The API answered with an error: an HTTP error status or an error object in a 200 body.

    ``status`` is the HTTP status (or the code of the error object when it came
    in a 200 body), ``body`` the decoded response body, ``request_id`` the
    provider's request id when it sent one, ``code`` and ``error_type`` the
    error object's fields.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Any = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        code: Any = None,
        error_type: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.status = status
        self.body = body
        self.request_id = request_id
        self.headers = dict(headers or {})
        self.code = code
        self.error_type = error_type


class BadRequestError(APIStatusError):
    """The request was rejected as malformed (400, 413, 422)."""


class AuthenticationError(APIStatusError):
    """The API key is missing, wrong or expired (401)."""


class PermissionDeniedError(APIStatusError):
    """The key may not use this model or endpoint (403)."""


class NotFoundError(APIStatusError):
    """The model or endpoint does not exist (404)."""


class RateLimitError(APIStatusError):
    """Too many requests or no credits left (429); retried by default."""


class ServerError(APIStatusError):
    """The provider failed (5xx); 500, 502, 503, 504 and 508 are retried by default."""


class APIConnectionError(LLMError):
    """The request did not get a response: connect failure, reset, protocol error."""


class APITimeoutError(LLMError, TimeoutError):
    """A connect or read timeout, or the deadline of the whole call, passed."""


class StreamError(LLMError):
    """A streamed response broke: an error chunk, or the end came before ``[DONE]``.

    ``partial`` holds what had been assembled before the failure, when anything had.
    """

    def __init__(
        self,
        message: str,
        *,
        partial: Any = None,
        body: Any = None,
        code: Any = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.partial = partial
        self.body = body
        self.code = code


# The errors received from MCP servers, with their code-to-class table, live in
# their own module. It derives them from OpexError above, so it is imported
# last; opex_trio/__init__ imports this module first, which keeps that order.
from ._mcp_errors import (  # noqa: E402
    HeaderMismatchError,
    McpError,
    MissingRequiredClientCapabilityError,
    UnsupportedProtocolVersionError,
    UrlElicitationRequiredError,
)

# Reported (and pickled) under this module, where users import them from.
for _cls in (
    HeaderMismatchError,
    McpError,
    MissingRequiredClientCapabilityError,
    UnsupportedProtocolVersionError,
    UrlElicitationRequiredError,
):
    _cls.__module__ = __name__
del _cls

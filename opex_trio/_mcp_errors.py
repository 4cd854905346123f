"""The errors a server sends back, one class per JSON-RPC error code it may use.

Re-exported by :mod:`opex_trio.errors`, where the whole tree is drawn; import
them from there. :meth:`McpError.received` picks the class for a code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import OpexError

__all__ = [
    "HeaderMismatchError",
    "McpError",
    "MissingRequiredClientCapabilityError",
    "UnsupportedProtocolVersionError",
    "UrlElicitationRequiredError",
]


class McpError(OpexError):
    """A JSON-RPC error response received from an MCP server.

    The server's own ``code``, ``message`` and ``data`` are kept unchanged;
    ``method`` is the request that failed and ``server`` names the server.
    """

    def __init__(
        self,
        code: int,
        message: str,
        data: Any = None,
        *,
        method: str | None = None,
        server: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        self.server = server
        where = f" from {server!r}" if server else ""
        what = f" for {method}" if method else ""
        super().__init__(f"MCP error {code}{where}{what}: {message}")

    @staticmethod
    def received(
        code: int,
        message: str,
        data: Any = None,
        *,
        method: str | None = None,
        server: str | None = None,
    ) -> McpError:
        """The error for a JSON-RPC error the server sent: the typed subclass for its code."""
        cls = _BY_CODE.get(code, McpError)
        return cls(code, message, data, method=method, server=server)

    def located(self, *, method: str | None, server: str | None) -> McpError:
        """The same error, naming the request and the server it came from."""
        return McpError.received(
            self.code, self.message, self.data, method=method or self.method, server=server
        )


class HeaderMismatchError(McpError):
    """The server found the HTTP headers disagreeing with the message body (-32020).

    A client that mirrors tool arguments into ``Mcp-Param-*`` headers sees this
    when the tool's schema changed; listing the tools again fixes it.
    """

    CODE = -32020


class MissingRequiredClientCapabilityError(McpError):
    """The request needs a client capability that was not declared (-32021).

    ``required_capabilities`` is the server's ``data.requiredCapabilities``
    (an object keyed by capability name), empty when it sent none.
    """

    CODE = -32021

    @property
    def required_capabilities(self) -> Mapping[str, Any]:
        """The capabilities the server asked for."""
        data = self.data if isinstance(self.data, Mapping) else {}
        caps = data.get("requiredCapabilities")
        return caps if isinstance(caps, Mapping) else {}


class UnsupportedProtocolVersionError(McpError):
    """The server does not speak the protocol version the request named (-32022).

    ``supported`` lists the versions the server does speak (``data.supported``);
    ``requested`` is the version it refused (``data.requested``).
    """

    CODE = -32022

    @property
    def supported(self) -> tuple[str, ...]:
        """The versions the server speaks, as it listed them."""
        data = self.data if isinstance(self.data, Mapping) else {}
        versions = data.get("supported")
        if not isinstance(versions, Sequence) or isinstance(versions, str):
            return ()
        return tuple(v for v in versions if isinstance(v, str))

    @property
    def requested(self) -> str | None:
        """The version the server refused, when it said."""
        data = self.data if isinstance(self.data, Mapping) else {}
        value = data.get("requested")
        return value if isinstance(value, str) else None


class UrlElicitationRequiredError(McpError):
    """The server needs the person to visit one or more pages before it can answer (-32042).

    ``elicitations`` are the URL-mode elicitations of the error's data (each
    with ``url``, ``elicitationId`` and ``message``), ``urls`` their pages.
    :func:`opex_trio.mcp.elicitation.retry_after_url_elicitation` opens them,
    waits for the server to say they are done, and sends the request again.
    """

    CODE = -32042

    def __init__(
        self,
        code: int,
        message: str,
        data: Any = None,
        *,
        method: str | None = None,
        server: str | None = None,
    ) -> None:
        super().__init__(code, message, data, method=method, server=server)
        listed = data.get("elicitations") if isinstance(data, Mapping) else None
        self.elicitations: list[Mapping[str, Any]] = [
            e for e in listed or () if isinstance(e, Mapping)
        ]

    @property
    def urls(self) -> list[str]:
        """The pages to open, in the server's order."""
        return [e["url"] for e in self.elicitations if isinstance(e.get("url"), str)]


_BY_CODE: dict[int, type[McpError]] = {
    HeaderMismatchError.CODE: HeaderMismatchError,
    MissingRequiredClientCapabilityError.CODE: MissingRequiredClientCapabilityError,
    UnsupportedProtocolVersionError.CODE: UnsupportedProtocolVersionError,
    UrlElicitationRequiredError.CODE: UrlElicitationRequiredError,
}

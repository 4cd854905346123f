"""How the user's browser gets to the authorization page and back: redirect handlers.

An authorization-code login sends the user to the authorization server, which
redirects back to the client's ``redirect_uri`` with a code. A
:class:`RedirectHandler` owns both halves: it says which ``redirect_uri`` to
register, and :meth:`RedirectHandler.authorize` takes the authorization URL
and returns the query parameters that came back.

* :class:`LoopbackRedirect` listens on ``127.0.0.1`` for the one callback and
  either opens the browser (``open_browser=True``) or prints the URL for the
  user to open;
* :class:`HeadlessRedirect` follows the URL itself with an HTTP client, for
  tests and for authorization servers that approve without a person (the
  conformance suite's), and reads the code from the redirect it gets.

Both refuse a redirect that goes anywhere but the registered ``redirect_uri``.
"""

from __future__ import annotations

import abc
import socket
import webbrowser
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx2
import trio

from ..errors import AuthorizationError
from .metadata import check_secure, safe_url

__all__ = ["HeadlessRedirect", "LoopbackRedirect", "RedirectHandler"]

_MAX_HOPS = 10
_MAX_REQUEST = 16 * 1024


class RedirectHandler(abc.ABC):
    """Sends the user to the authorization URL and returns what the redirect carried."""

    @property
    @abc.abstractmethod
    def redirect_uri(self) -> str:
        """The URI to register and send as ``redirect_uri``."""

    @abc.abstractmethod
    async def authorize(self, url: str) -> Mapping[str, str]:
        """Get the user through ``url``; the query parameters of the redirect back."""


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _same_target(location: str, redirect_uri: str) -> bool:
    got, want = urlsplit(location), urlsplit(redirect_uri)
    return (got.scheme, got.netloc, got.path) == (want.scheme, want.netloc, want.path)


class HeadlessRedirect(RedirectHandler):
    """Follows the authorization URL with HTTP requests, no person involved.

    Redirects are followed (at most ten, HTTPS or loopback only) until one
    points at ``redirect_uri``; that one is not fetched, its query is the
    answer. A page that does not redirect, or a redirect elsewhere that leads
    nowhere, is an :class:`~opex_trio.errors.AuthorizationError`.
    """

    def __init__(
        self,
        redirect_uri: str = "http://127.0.0.1:8976/callback",
        *,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self._redirect_uri = redirect_uri
        self._client = http_client

    @property
    def redirect_uri(self) -> str:
        """The URI to register and send as ``redirect_uri``."""
        return self._redirect_uri

    async def authorize(self, url: str) -> Mapping[str, str]:
        """Get the user through ``url``; the redirect's query parameters."""
        if self._client is not None:
            return await self._follow(self._client, url)
        async with httpx2.AsyncClient() as client:
            return await self._follow(client, url)

    async def _follow(self, client: httpx2.AsyncClient, url: str) -> Mapping[str, str]:
        origin = _origin(url)
        for _ in range(_MAX_HOPS):
            check_secure(url, "the authorization page")
            try:
                response = await client.get(url, follow_redirects=False)
            except httpx2.HTTPError as exc:
                raise AuthorizationError(
                    f"could not load the authorization page {safe_url(url)!r}: "
                    f"{type(exc).__name__}",
                    reason="authorize",
                ) from exc
            location = response.headers.get("location")
            if not response.is_redirect or not location:
                raise AuthorizationError(
                    f"the authorization page {safe_url(url)!r} answered HTTP "
                    f"{response.status_code} without redirecting back",
                    reason="authorize",
                    status=response.status_code,
                )
            target = urljoin(url, location)
            if _same_target(target, self._redirect_uri):
                return dict(parse_qsl(urlsplit(target).query))
            if _origin(target) != origin:
                raise AuthorizationError(
                    f"the authorization page redirected to {safe_url(target)!r}, neither the "
                    f"authorization server nor the redirect URI; refusing it",
                    reason="redirect",
                )
            url = target
        raise AuthorizationError("the authorization page redirected too often", reason="authorize")


_PAGE = (
    b"<!doctype html><title>opex-trio</title>"
    b"<p>You can close this window and go back to the program.</p>"
)


class LoopbackRedirect(RedirectHandler):
    """A callback server on ``127.0.0.1`` for one login, and a browser (or a printed URL).

    The port is bound when :attr:`redirect_uri` is first read (``port=0``
    takes a free one). :meth:`authorize` opens the URL with :mod:`webbrowser`
    when ``open_browser`` is true, else passes it to ``show`` (``print`` by
    default), then waits for the browser's request to ``/callback``.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        open_browser: bool = True,
        show: Callable[[str], object] | None = None,
        path: str = "/callback",
    ) -> None:
        self._port = port
        self._open_browser = open_browser
        self._show = show if show is not None else print
        self._path = path
        self._socket: socket.socket | None = None

    def _bound(self) -> socket.socket:
        if self._socket is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self._port))
            sock.listen(8)
            # Later logins (a step-up, a refresh that failed) must reuse the registered URI.
            self._port = sock.getsockname()[1]
            self._socket = sock
        return self._socket

    @property
    def port(self) -> int:
        """The callback port (0 until bound when a free one was asked for)."""
        return self._port

    @property
    def redirect_uri(self) -> str:
        """The URI to register and send as ``redirect_uri``."""
        port = self._bound().getsockname()[1]
        return f"http://127.0.0.1:{port}{self._path}"

    def close(self) -> None:
        """Stop listening (also done after each :meth:`authorize`)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def authorize(self, url: str) -> Mapping[str, str]:
        """Get the user through ``url``; the redirect's query parameters."""
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(self._bound()))
        try:
            if self._open_browser:
                opened = await trio.to_thread.run_sync(webbrowser.open, url)
                if not opened:
                    self._show(f"Open this URL to log in: {url}")
            else:
                self._show(f"Open this URL to log in: {url}")
            while True:
                stream = await listener.accept()
                async with stream:
                    params = await self._serve(stream)
                if params is not None:
                    return params
        finally:
            await listener.aclose()
            self._socket = None

    async def _serve(self, stream: trio.SocketStream) -> Mapping[str, str] | None:
        data = b""
        with trio.move_on_after(30):
            while b"\r\n\r\n" not in data and len(data) < _MAX_REQUEST:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                data += chunk
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        target = parts[1] if len(parts) >= 2 and parts[0] == "GET" else ""
        if urlsplit(target).path != self._path:
            await stream.send_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return None
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            + f"Content-Length: {len(_PAGE)}\r\nConnection: close\r\n\r\n".encode()
            + _PAGE
        )
        return dict(parse_qsl(urlsplit(target).query))

"""``opex-trio auth``: log in to remote MCP servers, see and forget the stored tokens.

Tokens live in one file readable by the user only
(``$XDG_CONFIG_HOME/opex-trio/auth.json``; see
:class:`~opex_trio.auth.FileTokenStore`). Every command that connects to
servers logs in the same way when a server answers 401 (see
:func:`with_login`): the browser opens on the authorization page (or, with
``--no-browser``, the URL is printed), the program waits for the redirect on a
loopback port, stores the token and goes on.

Exit statuses: 0 done; 1 the authorization failed (refused, unreachable
server, a check that failed) or ``logout`` found nothing to forget; 2 bad
usage (an unknown server, a bad config file); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import httpx2
import trio

from ..auth import (
    AuthorizationCode,
    FileTokenStore,
    LoopbackRedirect,
    OAuth,
    OAuthConfig,
    TokenStore,
)
from ..auth.metadata import canonical_resource
from ..errors import AuthorizationError, ConfigError
from ..mcp.config import ServerConfig, load_config, parse_server
from ..transports.http import HttpParameters
from ..transports.websocket import WebSocketParameters
from ._errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, describe

__all__ = ["add_auth_parser", "run_auth", "with_login"]

EXIT_STATUSES = """\
exit statuses:
  0    done
  1    the authorization failed, or logout found no token for the server
  2    bad usage: an unknown server, a bad config file or option
  130  interrupted (Ctrl-C)
"""


_DESCRIPTION = """\
Log in to remote MCP servers (OAuth), and see or forget the stored tokens.
Tokens are kept in one file readable by you only ($XDG_CONFIG_HOME/opex-trio/auth.json).
The other commands log in the same way when a server answers 401: the browser
opens on the authorization page (with --no-browser the URL is printed), the
redirect comes back to a loopback port, and the token is stored.
"""


def _login_oauth(
    base: OAuth | None, *, store: TokenStore, open_browser: bool, show: Callable[[str], object]
) -> OAuth:
    """``base``'s settings with the command's store and a browser (or printed URL) login."""
    config = base.config if base is not None else OAuthConfig()
    grant = config.grant
    if isinstance(grant, AuthorizationCode):
        old = grant.redirect
        port = old.port if isinstance(old, LoopbackRedirect) else 0
        grant = AuthorizationCode(LoopbackRedirect(port=port, open_browser=open_browser, show=show))
    return OAuth(attrs.evolve(config, grant=grant, store=store), name=base._name if base else None)


def with_login(
    configs: Mapping[str, ServerConfig],
    *,
    store: TokenStore,
    open_browser: bool = True,
    show: Callable[[str], object] = print,
) -> dict[str, ServerConfig]:
    """Every remote server of ``configs`` set to log in on 401 and keep its token in ``store``."""
    out: dict[str, ServerConfig] = {}
    for name, config in configs.items():
        if isinstance(config, HttpParameters | WebSocketParameters):
            auth = config.auth if isinstance(config.auth, OAuth) else None
            config = attrs.evolve(
                config,
                auth=_login_oauth(auth, store=store, open_browser=open_browser, show=show),
            )
        out[name] = config
    return out


def add_auth_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``auth`` (with ``login``, ``status``, ``logout``) to a subparsers object."""
    hidden: Any = argparse.SUPPRESS
    auth: argparse.ArgumentParser = commands.add_parser(
        "auth",
        help="log in to remote MCP servers; show or forget stored tokens",
        description=_DESCRIPTION,
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    auth.add_argument(
        "--token-store", metavar="FILE", help="the token file (default: in ~/.config)"
    )
    actions = auth.add_subparsers(dest="auth_command", metavar="ACTION")
    actions.required = True
    login = actions.add_parser("login", help="log in to a server now and store its token")
    login.add_argument(
        "target", metavar="SERVER", help="an http(s):// or ws(s):// URL, or a name in --mcp-config"
    )
    # SUPPRESS: the same options given before the command must not be reset here.
    login.add_argument("--mcp-config", metavar="FILE", default=hidden, help="an mcpServers file")
    login.add_argument(
        "--no-browser", action="store_true", default=hidden, help="print the URL instead"
    )
    login.add_argument("--scope", action="append", default=[], help="a scope to ask for")
    status = actions.add_parser("status", help="list the stored tokens (never the tokens)")
    status.add_argument("--json", action="store_true", help="one JSON object per line")
    logout = actions.add_parser("logout", help="forget the stored token of a server")
    logout.add_argument("target", metavar="SERVER", nargs="?", help="the server's URL or name")
    logout.add_argument("--mcp-config", metavar="FILE", default=hidden, help="an mcpServers file")
    logout.add_argument("--all", action="store_true", help="forget every stored token")
    return auth


def build_auth_parser() -> argparse.ArgumentParser:
    """A parser with only the ``auth`` command (for tests and for embedding)."""
    parser = argparse.ArgumentParser(prog="opex-trio")
    add_auth_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _server(args: argparse.Namespace) -> ServerConfig:
    text = args.target.strip()
    if text.startswith(("http://", "https://", "ws://", "wss://")):
        return parse_server({"url": text}, where=f"server {text!r}")
    config_file = getattr(args, "mcp_config", None)
    if not config_file:
        raise ConfigError(f"{text!r} is not a URL; name a server of --mcp-config FILE, or a URL")
    configs = load_config(config_file)
    if text not in configs:
        raise ConfigError(f"no server {text!r} in {config_file!r}; it has {sorted(configs)}")
    return configs[text]


async def _login(args: argparse.Namespace, store: TokenStore, show: Callable[[str], object]) -> int:
    config = _server(args)
    if not isinstance(config, HttpParameters | WebSocketParameters):
        raise ConfigError(f"{args.target!r} is a local (stdio) server; it needs no login")
    [prepared] = with_login(
        {"server": config},
        store=store,
        open_browser=not getattr(args, "no_browser", False),
        show=show,
    ).values()
    assert isinstance(prepared, HttpParameters | WebSocketParameters)
    auth = prepared.auth
    assert isinstance(auth, OAuth)
    if args.scope:
        auth.config = attrs.evolve(auth.config, scopes=args.scope)
    if isinstance(prepared, HttpParameters):
        # A request the server must refuse without a token starts the login, with the
        # server's own challenge (its metadata URL and scopes).
        async with httpx2.AsyncClient(timeout=prepared.timeout) as client:
            try:
                response = await client.post(
                    prepared.url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={"Accept": "application/json, text/event-stream"},
                    auth=auth,
                )
            except httpx2.HTTPError as exc:
                raise AuthorizationError(
                    f"could not reach {prepared.url!r}: {type(exc).__name__}", reason="network"
                ) from exc
        if auth.authorizations == 0 and response.status_code not in (401, 403):
            print(f"{prepared.label}: the server did not ask for authorization")
            return EXIT_OK
        if response.status_code in (401, 403):
            raise AuthorizationError(
                f"{prepared.label} still refuses after logging in (HTTP {response.status_code})",
                reason="refused",
                status=response.status_code,
            )
    else:
        await auth.handshake_headers(prepared.url)
        await auth.authorize()
    credentials = await store.get(auth.server_url or canonical_resource(prepared.url))
    scope = (
        f" (scope: {credentials.token.scope})" if credentials and credentials.token.scope else ""
    )
    print(f"{prepared.label}: logged in{scope}")
    return EXIT_OK


async def _status(args: argparse.Namespace, store: TokenStore) -> int:
    now = time.time()
    entries = await store.all()
    if not entries and not args.json:
        print("no stored tokens")
    for entry in entries:
        token = entry.token
        left = None if token.expires_at is None else int(token.expires_at - now)
        if args.json:
            print(
                json.dumps(
                    {
                        "server": entry.resource,
                        "issuer": entry.issuer,
                        "scope": token.scope,
                        "token_type": token.token_type,
                        "expires_in": left,
                        "refreshable": token.refresh_token is not None,
                    }
                )
            )
            continue
        when = (
            "no expiry"
            if left is None
            else f"expires in {left} s"
            if left > 0
            else "expired" + (", refreshable" if token.refresh_token else "")
        )
        scope = f", scope {token.scope!r}" if token.scope else ""
        print(f"{entry.resource}: from {entry.issuer}{scope}, {when}")
    return EXIT_OK


async def _logout(args: argparse.Namespace, store: TokenStore) -> int:
    if args.all:
        for entry in await store.all():
            await store.delete(entry.resource)
        print("forgot every stored token")
        return EXIT_OK
    if not args.target:
        raise ConfigError("name a server to log out of, or pass --all")
    config = _server(args)
    url = getattr(config, "url", args.target)
    http_url = url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    if await store.delete(canonical_resource(http_url)):
        print(f"{args.target}: logged out")
        return EXIT_OK
    print(f"{args.target}: no stored token")
    return EXIT_FAILURE


async def run_auth(
    args: argparse.Namespace,
    *,
    store: TokenStore | None = None,
    show: Callable[[str], object] = print,
) -> int:
    """Run ``opex-trio auth ACTION``; the exit status. Errors are reported on stderr."""
    store = store if store is not None else FileTokenStore(args.token_store)
    try:
        if args.auth_command == "login":
            return await _login(args, store, show)
        if args.auth_command == "status":
            return await _status(args, store)
        return await _logout(args, store)
    except ConfigError as exc:
        print(f"opex-trio: {describe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except AuthorizationError as exc:
        print(f"opex-trio: {describe(exc)}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: Sequence[str]) -> int:
    """``opex-trio auth ...`` on its own (the full command hands ``auth`` here)."""
    args = build_auth_parser().parse_args(list(argv))
    try:
        return trio.run(run_auth, args)
    except KeyboardInterrupt:
        return 130

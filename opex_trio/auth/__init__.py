"""OAuth 2.1 for remote MCP servers, as an ``httpx2`` authentication flow.

Pass an :class:`OAuth` to an HTTP transport (``HttpParameters(auth=...)``)
and it finds the server's authorization server, gets a token with the
configured grant, and keeps it fresh::

    auth = OAuth(OAuthConfig(grant=AuthorizationCode(LoopbackRedirect())))

See :mod:`opex_trio.auth.flow` for how a request is authorized.
"""

from __future__ import annotations

from .config import AuthorizationCode as AuthorizationCode
from .config import ClientCredentials as ClientCredentials
from .config import ClientIdentity as ClientIdentity
from .config import EnterpriseManaged as EnterpriseManaged
from .config import Grant as Grant
from .config import JwtBearer as JwtBearer
from .config import OAuthConfig as OAuthConfig
from .crypto import DPoPKey as DPoPKey
from .crypto import Pkce as Pkce
from .flow import OAuth as OAuth
from .metadata import AuthServerMetadata as AuthServerMetadata
from .metadata import Challenge as Challenge
from .metadata import ProtectedResourceMetadata as ProtectedResourceMetadata
from .metadata import parse_challenges as parse_challenges
from .redirect import HeadlessRedirect as HeadlessRedirect
from .redirect import LoopbackRedirect as LoopbackRedirect
from .redirect import RedirectHandler as RedirectHandler
from .tokens import ClientRegistration as ClientRegistration
from .tokens import Credentials as Credentials
from .tokens import FileTokenStore as FileTokenStore
from .tokens import MemoryTokenStore as MemoryTokenStore
from .tokens import Token as Token
from .tokens import TokenStore as TokenStore

__all__ = [
    "AuthServerMetadata",
    "AuthorizationCode",
    "Challenge",
    "ClientCredentials",
    "ClientIdentity",
    "ClientRegistration",
    "Credentials",
    "DPoPKey",
    "EnterpriseManaged",
    "FileTokenStore",
    "Grant",
    "HeadlessRedirect",
    "JwtBearer",
    "LoopbackRedirect",
    "MemoryTokenStore",
    "OAuth",
    "OAuthConfig",
    "Pkce",
    "ProtectedResourceMetadata",
    "RedirectHandler",
    "Token",
    "TokenStore",
    "parse_challenges",
]

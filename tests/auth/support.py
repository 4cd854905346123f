"""Running an OAuth client against the scripted authorization server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx2

from opex_trio.auth import (
    AuthorizationCode,
    HeadlessRedirect,
    OAuth,
    OAuthConfig,
)
from opex_trio.testing.auth_server import ScriptedAuthServer

REDIRECT = "http://127.0.0.1:8976/callback"


@attrs.define
class Harness:
    server: ScriptedAuthServer
    client: httpx2.AsyncClient
    auth: OAuth

    async def call(self, method: str = "tools/list") -> httpx2.Response:
        return await self.client.post(
            self.server.resource_url, json={"method": method}, auth=self.auth
        )


@asynccontextmanager
async def harness(
    server: ScriptedAuthServer, config: OAuthConfig | None = None, **kwargs: Any
) -> AsyncIterator[Harness]:
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(server.handle)) as client:
        if config is None:
            config = OAuthConfig(
                grant=AuthorizationCode(HeadlessRedirect(REDIRECT, http_client=client))
            )
        elif isinstance(config.grant, AuthorizationCode):
            config = attrs.evolve(
                config, grant=AuthorizationCode(HeadlessRedirect(REDIRECT, http_client=client))
            )
        auth = OAuth(config, server_url=server.resource_url, http_client=client, **kwargs)
        yield Harness(server, client, auth)

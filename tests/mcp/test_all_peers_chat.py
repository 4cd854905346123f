"""One SessionManager and one Chat over every real peer at once, in both protocol eras.

The peers: the official ``mcp`` 2.3 SDK server (``tests/peers/sdk_server.py``)
over stdio and over Streamable HTTP, each in its default (dual-era) mode and
with ``--modern-only``; FastMCP 4 over Streamable HTTP; and the legacy npm
``server-everything`` over stdio. The client detects each server's era (the
default), the scripted model calls a tool of every server in one turn, and
every message the client sent is checked against the JSON schema of the
version it was sent in.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from opex_trio import Chat, Client
from opex_trio.mcp.manager import SessionManager
from opex_trio.mcp.options import ServerOptions
from opex_trio.protocol.jsonrpc import Message
from opex_trio.testing.llm_server import JSONReply, completion, open_llm_server
from opex_trio.transports.base import Outgoing, Transport
from opex_trio.transports.http import HttpParameters, open_http_transport
from opex_trio.transports.stdio import StdioParameters, open_stdio_transport
from tests.protocol.conftest import require_spec
from tests.protocol.test_session import _problems, _validators
from tests.transports.support import peers
from tests.transports.test_interop import first_line, running, wait_listening

pytestmark = pytest.mark.peers

BOUND = 240  # seven server processes start on a loaded two-core machine
MODERN = "2026-07-28"
FASTMCP = str(Path(__file__).with_name("fastmcp_server.py"))

Factory = Callable[[], AbstractAsyncContextManager[Transport]]


def recorded(open_transport: Factory, sent: list[Message]) -> Factory:
    """A factory whose transports keep every message they send."""

    @asynccontextmanager
    async def factory() -> AsyncIterator[Transport]:
        async with open_transport() as transport:
            send = transport.send

            async def keeping(messages: Sequence[Outgoing]) -> None:
                sent.extend(out.message for out in messages)
                await send(messages)

            transport.send = keeping  # type: ignore[method-assign]
            yield transport

    return factory


def stdio(argv: list[str], name: str) -> Factory:
    params = StdioParameters(argv[0], tuple(argv[1:]), name=name)
    return lambda: open_stdio_transport(params)


async def http_server(stack: AsyncExitStack, argv: list[str], name: str) -> Factory:
    process = await stack.enter_async_context(running(argv))
    url = (await first_line(process)).removeprefix("listening on ").strip()
    await wait_listening(int(url.rsplit(":", 1)[1].split("/")[0]))
    params = HttpParameters(url, name=name)
    return lambda: open_http_transport(params)


def call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


# (server id, tool, arguments, the text the tool answers with)
CALLS: list[tuple[str, str, dict[str, Any], str]] = [
    ("sdk-stdio", "add", {"a": 2, "b": 40}, "42"),
    ("sdk-stdio-modern", "echo", {"message": "über"}, "über"),
    ("sdk-http", "progress", {"steps": 2}, "done"),
    ("sdk-http-modern", "add", {"a": 20, "b": 22}, "42"),
    ("fastmcp", "multiply", {"a": 6, "b": 7}, "42"),
    ("everything", "echo", {"message": "old"}, "Echo: old"),
]


async def test_one_manager_and_one_chat_over_every_peer_in_both_eras() -> None:
    spec = require_spec()
    located = peers()
    sdk_stdio = located.sdk_server_command("stdio")
    sdk_http = located.sdk_server_command("streamable-http")
    sent: dict[str, list[Message]] = {server: [] for server, *_ in CALLS}
    with trio.fail_after(BOUND):
        async with AsyncExitStack() as stack:
            factories: dict[str, Factory] = {
                "sdk-stdio": stdio(sdk_stdio, "sdk-stdio"),
                "sdk-stdio-modern": stdio([*sdk_stdio, "--modern-only"], "sdk-stdio-modern"),
                "sdk-http": await http_server(stack, sdk_http, "sdk-http"),
                "sdk-http-modern": await http_server(
                    stack, [*sdk_http, "--modern-only"], "sdk-http-modern"
                ),
                "fastmcp": await http_server(stack, [sdk_http[0], FASTMCP], "fastmcp"),
                "everything": stdio(located.everything_stdio_command(), "everything"),
            }
            llm = await stack.enter_async_context(open_llm_server())
            client = await stack.enter_async_context(Client("key", base_url=llm.base_url))
            mcp = await stack.enter_async_context(
                SessionManager(options=ServerOptions(health=None))
            )
            for server, factory in factories.items():
                await mcp.add_server(recorded(factory, sent[server]), name=server)
            await mcp.wait_ready(timeout=BOUND)
            versions = {s.id: s.protocol_version for s in mcp.servers()}
            assert {v for s, v in versions.items() if s != "everything"} == {MODERN}
            assert versions["everything"] != MODERN
            announcing = {s for s in factories if mcp.client(s).capabilities.list_changed("tools")}
            assert {"sdk-stdio", "sdk-stdio-modern", "sdk-http", "sdk-http-modern"} <= announcing

            chat = Chat(client, mcp=mcp)
            index = chat.tool_index()
            names = {(index[n].server, index[n].original_name): n for n in index}
            llm.push(
                JSONReply(
                    completion(
                        None,
                        tool_calls=[
                            call(f"c{i}", names[(server, tool)], arguments)
                            for i, (server, tool, arguments, _) in enumerate(CALLS)
                        ],
                    )
                ),
                JSONReply(completion("all six answered")),
            )
            result = await chat.chat(model="m", messages=[{"role": "user", "content": "go"}])

    assert result.content == "all six answered"
    # The model sees the text first (then any structured content).
    outcomes = {r.tool_call_id: (r.outcome, r.content.split("\n")[0]) for r in result.tool_calls}
    assert outcomes == {f"c{i}": ("ok", text) for i, (*_, text) in enumerate(CALLS)}

    schemas = {MODERN: _validators(spec, MODERN), "legacy": _validators(spec, "2025-11-25")}
    for server, messages in sent.items():
        methods = {getattr(m, "method", None) for m in messages}
        if server == "everything":
            assert "initialize" in methods and "tools/call" in methods
        else:
            assert {"server/discover", "tools/list", "tools/call"} <= methods
            # Each modern server that announces changes was listened to.
            assert ("subscriptions/listen" in methods) is (server in announcing), server
        for message in messages:
            problems = _problems(schemas[_era_of(server, message)], message)
            assert not problems, (server, message.to_dict(), problems)


def _era_of(server: str, message: Message) -> str:
    """The schema a message was sent under.

    The era probe is modern wherever it goes; ``initialize`` is legacy even
    to a modern server (on a loaded machine the probe bound can run out
    before a server starts, and the client falls back before it hears the
    late ``DiscoverResult``).
    """
    method = getattr(message, "method", None)
    if method == "server/discover":
        return MODERN
    if server == "everything" or method in ("initialize", "notifications/initialized"):
        return "legacy"
    return MODERN

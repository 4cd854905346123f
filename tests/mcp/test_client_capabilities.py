"""Capabilities told truthfully and respected, and server requests that know their server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from opex_trio.errors import CapabilityError, ConfigError
from opex_trio.mcp.client import ClientOptions, McpClient, RequestingServer
from opex_trio.protocol.types import CreateMessageParams, ElicitParams
from opex_trio.testing.mcp_server import McpTestServer, ToolContext, builtin_server
from tests.mcp.support import BOUND
from tests.mcp.test_real_servers import client_for


@asynccontextmanager
async def connected(
    server: McpTestServer, options: ClientOptions | None = None, name: str = "mem"
) -> AsyncIterator[McpClient]:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            async with McpClient(server.in_process(nursery), name=name, options=options) as client:
                yield client
            nursery.cancel_scope.cancel()


async def _sample(params: CreateMessageParams) -> dict[str, Any]:
    return {"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m"}


async def _elicit(params: ElicitParams) -> dict[str, Any]:
    return {"action": "decline"}


async def test_the_client_declares_only_what_it_was_given() -> None:
    declared: list[dict[str, Any]] = []
    for options in (
        ClientOptions(),
        ClientOptions(sampling_handler=_sample),
        ClientOptions(roots=[{"uri": "file:///tmp", "name": "tmp"}]),
        ClientOptions(elicitation_handler=_elicit),
        ClientOptions(elicitation_handler=_elicit, elicitation_modes=("form", "url")),
        ClientOptions(elicitation_handler=_elicit, elicitation_modes=["url"]),
    ):
        server = builtin_server()
        async with connected(server, options):
            pass
        (opening,) = [r for r in server.requests if r.method == "initialize"]
        declared.append(opening.params["capabilities"])  # type: ignore[index]
    assert declared == [
        {},
        {"sampling": {}},
        {"roots": {"listChanged": True}},
        {"elicitation": {"form": {}}},
        {"elicitation": {"form": {}, "url": {}}},
        {"elicitation": {"url": {}}},
    ]
    with pytest.raises(ConfigError, match="elicitation_modes"):
        ClientOptions(elicitation_modes=("form", "fax"))
    with pytest.raises(ConfigError, match="elicitation_modes"):
        ClientOptions(elicitation_modes=())


async def test_undeclared_server_capabilities_fail_at_once() -> None:
    server = builtin_server()
    server.capabilities = {"tools": {}}
    calls: dict[str, Callable[[McpClient], Awaitable[object]]] = {
        "prompts": lambda c: c.list_prompts(),
        "prompts ": lambda c: c.get_prompt("p"),
        "resources": lambda c: c.list_resources(),
        "resources ": lambda c: c.list_resource_templates(),
        "resources  ": lambda c: c.read_resource("mem://r"),
        "resources.subscribe": lambda c: c.subscribe_resource("mem://r"),
        "resources.subscribe ": lambda c: c.unsubscribe_resource("mem://r"),
        "logging": lambda c: c.set_logging_level("info"),
        "completions": lambda c: c.complete({"type": "ref/prompt", "name": "p"}, "a", ""),
    }
    async with connected(server) as client:
        sent = len(server.requests)
        for capability, call in calls.items():
            with pytest.raises(CapabilityError) as info:
                await call(client)
            assert info.value.capability == capability.strip()
            assert info.value.server == "mem"
            assert f"did not declare the {capability.strip()!r} capability" in str(info.value)
        assert len(server.requests) == sent  # nothing went out
        assert [t.name for t in await client.list_tools()]  # tools are there
        # The raw request is the way around the check; the server answers for itself.
        assert "prompts" in await client.request("prompts/list")


async def test_subscriptions_need_the_subscribe_feature() -> None:
    server = builtin_server()  # declares resources, without subscribe
    async with connected(server) as client:
        await client.list_resources()
        with pytest.raises(CapabilityError, match=r"'resources\.subscribe'"):
            await client.subscribe_resource("mem://r")


async def test_mcp_server_time_is_asked_only_what_it_declared(
    time_server_command: list[str],
) -> None:
    with trio.fail_after(BOUND):
        async with client_for(time_server_command, "time") as client:
            # It declares tools, prompts and resources without subscriptions.
            assert client.capabilities.logging is None
            with pytest.raises(CapabilityError) as info:
                await client.set_logging_level("debug")
            assert info.value.capability == "logging"
            assert info.value.method == "logging/setLevel"
            with pytest.raises(CapabilityError, match=r"'resources\.subscribe'"):
                await client.subscribe_resource("file:///x")
            with pytest.raises(CapabilityError, match="'completions'"):
                await client.complete({"type": "ref/prompt", "name": "x"}, "a", "")
            assert (await client.list_tools())[0].name == "get_current_time"


async def test_handlers_are_told_which_server_asks() -> None:
    seen: list[tuple[str, RequestingServer]] = []

    async def sample(params: CreateMessageParams, server: RequestingServer) -> dict[str, Any]:
        seen.append(("sampling", server))
        return await _sample(params)

    async def elicit(params: ElicitParams, server: RequestingServer) -> dict[str, Any]:
        seen.append(("elicitation", server))
        return {"action": "accept", "content": {"name": "x"}}

    async def roots(server: RequestingServer) -> list[dict[str, Any]]:
        seen.append(("roots", server))
        return [{"uri": "file:///srv", "name": server.name}]

    options = ClientOptions(sampling_handler=sample, elicitation_handler=elicit, roots=roots)
    asking = builtin_server()
    asking.name = "asking-server"
    async with connected(asking, options, name="alpha") as client:
        await client.call_tool("sample", {"prompt": "hi"})
        await client.call_tool("elicit", {"message": "name?"})
        listed = json.loads((await client.call_tool("roots")).text)
    assert [kind for kind, _ in seen] == ["sampling", "elicitation", "roots"]
    for _, server in seen:
        assert server.name == "alpha"
        assert server.server_info is not None and server.server_info.name == "asking-server"
        assert server.protocol_version == client.protocol_version
    assert listed == [{"uri": "file:///srv", "name": "alpha"}]


async def test_an_undeclared_elicitation_mode_is_invalid_params() -> None:
    server = builtin_server()

    @server.tool(input_schema={"type": "object", "properties": {"mode": {"type": "string"}}})
    async def ask(args: Mapping[str, Any], ctx: ToolContext) -> str:
        params: dict[str, Any] = {"message": "Your name?", "requestedSchema": {"type": "object"}}
        if "mode" in args:
            params["mode"] = args["mode"]
        if args.get("mode") == "url":
            params = {
                "mode": "url",
                "message": "Sign in",
                "url": "https://example.com/x",
                "elicitationId": "e1",
            }
        return json.dumps(await ctx.request("elicitation/create", params))

    asked: list[ElicitParams] = []

    async def elicit(params: ElicitParams) -> dict[str, Any]:
        asked.append(params)
        return {"action": "accept", "content": {}}

    async with connected(server, ClientOptions(elicitation_handler=elicit)) as client:
        refused = await client.call_tool("ask", {"mode": "url"})
        assert refused.is_error
        assert "error -32602" in refused.text and "'url' was not declared" in refused.text
        assert asked == []
        # No mode is the form mode.
        assert json.loads((await client.call_tool("ask", {})).text)["action"] == "accept"
        assert len(asked) == 1 and asked[0].mode is None


async def test_server_everything_sees_the_declared_capabilities(
    everything_stdio_command: list[str],
) -> None:
    async def names(options: ClientOptions) -> set[str]:
        async with client_for(everything_stdio_command, "everything", options) as client:
            return {t.name for t in await client.list_tools()}

    with trio.fail_after(BOUND * 2):
        bare = await names(ClientOptions())
        form = await names(ClientOptions(elicitation_handler=_elicit, sampling_handler=_sample))
        both = await names(
            ClientOptions(elicitation_handler=_elicit, elicitation_modes=("form", "url"))
        )
    assert not {"trigger-elicitation-request", "trigger-sampling-request"} & bare
    assert "trigger-url-elicitation" not in bare
    assert {"trigger-elicitation-request", "trigger-sampling-request"} <= form
    assert "trigger-url-elicitation" not in form
    assert {"trigger-elicitation-request", "trigger-url-elicitation"} <= both


async def test_server_everything_sampling_knows_its_server(
    everything_stdio_command: list[str],
) -> None:
    seen: list[RequestingServer] = []

    async def sample(params: CreateMessageParams, server: RequestingServer) -> dict[str, Any]:
        seen.append(server)
        return await _sample(params)

    options = ClientOptions(sampling_handler=sample)
    with trio.fail_after(BOUND):
        async with client_for(everything_stdio_command, "everything", options) as client:
            await client.list_tools()
            answer = await client.call_tool("trigger-sampling-request", {"prompt": "Hi?"})
            assert not answer.is_error
            info = client.server_info
    assert seen and seen[0].name == "everything"
    assert seen[0].server_info == info


async def test_a_cancellation_by_the_server_is_logged_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = builtin_server()
    started = trio.Event()
    stopped = trio.Event()

    async def sample(params: CreateMessageParams) -> dict[str, Any]:
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            stopped.set()
        raise AssertionError("not reached")

    @server.tool()
    async def give_up(args: Mapping[str, Any], ctx: ToolContext) -> str:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                ctx.request, "sampling/createMessage", {"messages": [], "maxTokens": 1}
            )
            await started.wait()
            asked = max(r for r in ctx._conn._waiting)  # the id of the request above
            await ctx.notify(
                "notifications/cancelled", {"requestId": asked, "reason": "user went away"}
            )
            nursery.cancel_scope.cancel()
        return "gave up"

    with caplog.at_level("INFO", "opex_trio.mcp"):
        async with connected(server, ClientOptions(sampling_handler=sample)) as client:
            assert (await client.call_tool("give_up")).text == "gave up"
            await stopped.wait()
    assert any(
        "cancelled its request" in r.getMessage() and "user went away" in r.getMessage()
        for r in caplog.records
    )

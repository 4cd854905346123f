"""The MCP actor over stdio, against the built-in test server as a real process."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest
import trio

from opex_trio.errors import (
    ConfigError,
    McpError,
    MessageTooLargeError,
    RequestTimeoutError,
    ServerExitedError,
    TransportClosedError,
)
from opex_trio.mcp.client import ClientOptions, Notice
from opex_trio.protocol.session import ListChanged, LogReceived
from opex_trio.protocol.types import (
    CreateMessageParams,
    ElicitParams,
    LoggingMessageParams,
    ProgressParams,
    TextContent,
)
from opex_trio.transports.stdio import StdioParameters
from tests.mcp.support import BOUND, LeakCheck, group_members, stdio_client, test_server_params


async def stats(client: Any) -> dict[str, Any]:
    result = await client.call_tool("stats")
    return dict(result.structured_content)


async def test_lists_and_calls_tools_resources_prompts() -> None:
    leaks = LeakCheck()
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params("--page-size", "4")) as client:
            leaks.watch(client.transport.pid)  # type: ignore[union-attr]
            assert client.server_info.name == "opex-test-server"
            assert client.protocol_version == "2025-11-25"
            assert client.capabilities.list_changed("tools")
            tools = await client.list_tools()
            names = [t.name for t in tools]
            # 4 per page: the client followed every cursor.
            assert len(names) > 4 and len(set(names)) == len(names)
            assert {"echo", "add", "sleep", "stats"} <= set(names)
            echo = next(t for t in tools if t.name == "echo")
            assert echo.read_only and echo.input_schema["required"] == ["message"]

            result = await client.call_tool("echo", {"message": "héllo"})
            assert result.content == (TextContent("héllo"),) and not result.is_error
            added = await client.call_tool("add", {"a": 2, "b": 40})
            assert added.structured_content == {"sum": 42} and added.text == "42"
            failed = await client.call_tool("fail")
            assert failed.is_error and "on purpose" in failed.text
            with pytest.raises(McpError) as info:
                await client.call_tool("no-such-tool")
            assert info.value.code == -32602 and info.value.server == "test-server"
            assert info.value.method == "tools/call"

            (resource,) = await client.list_resources()
            assert resource.uri == "test://hello"
            read = await client.read_resource("test://hello")
            assert read.contents[0].text == "Hello, world"  # type: ignore[union-attr]
            assert await client.list_resource_templates() == []
            (prompt,) = await client.list_prompts()
            rendered = await client.get_prompt(prompt.name, {"who": "Ada"})
            assert rendered.messages[0].content == TextContent("Hello, Ada!")
            completion = await client.complete({"type": "ref/prompt", "name": "greet"}, "who", "g")
            assert completion.completion.values == ("gamma",)
            await client.set_logging_level("warning")
            await client.ping()
            assert (await stats(client))["log_level"] == "warning"
    leaks.assert_clean()


async def test_many_calls_in_flight_each_get_their_own_answer() -> None:
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params()) as client:
            answers: dict[int, str] = {}

            async def one(i: int) -> None:
                answers[i] = (await client.call_tool("echo", {"message": f"m{i}"})).text

            async with trio.open_nursery() as nursery:
                for i in range(200):
                    nursery.start_soon(one, i)
            assert answers == {i: f"m{i}" for i in range(200)}
            assert client.pending_count == 0


async def test_progress_reaches_the_callback_of_its_call() -> None:
    seen: list[ProgressParams] = []
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params()) as client:
            result = await client.call_tool("progress", {"steps": 4}, progress=seen.append)
    assert result.text == "done in 4 steps"
    assert [(p.progress, p.total, p.message) for p in seen] == [
        (i, 4, f"step {i}") for i in range(1, 5)
    ]


async def test_logs_and_list_changes_reach_handlers_and_subscribers() -> None:
    logs: list[LoggingMessageParams] = []
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params(), ClientOptions(on_log=logs.append)) as client:
            async with client.subscribe() as events:
                await client.call_tool("log", {"level": "error", "message": "disk full"})
                await client.call_tool("add_tool", {"name": "fresh"})
                received: list[Notice] = [await events.receive(), await events.receive()]
            assert isinstance(received[0], LogReceived)
            assert received[1] == ListChanged("tools")
            assert "fresh" in [t.name for t in await client.list_tools()]
    assert [(p.level, p.data, p.logger) for p in logs] == [("error", "disk full", "test")]


async def test_a_timeout_cancels_on_the_server_and_drops_the_late_answer() -> None:
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params()) as client:
            with pytest.raises(RequestTimeoutError) as info:
                await client.call_tool("sleep", {"seconds": 30}, timeout=0.5)
            assert info.value.method == "tools/call" and info.value.timeout == 0.5
            assert "did not answer tools/call within 0.5 s" in str(info.value)
            # The server was told and stopped the work.
            seen = await stats(client)
            assert len(seen["cancelled"]) == 1
            assert "notifications/cancelled" in seen["notifications"]
            assert client.pending_count == 0
            assert (await client.call_tool("echo", {"message": "still fine"})).text == "still fine"


async def test_cancelling_the_caller_tells_the_server() -> None:
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params()) as client:
            with trio.move_on_after(0.5):
                await client.call_tool("sleep", {"seconds": 30}, timeout=None)
            seen = await stats(client)
            assert len(seen["cancelled"]) == 1


async def test_server_requests_go_to_the_handlers() -> None:
    async def sampling(params: CreateMessageParams) -> dict[str, Any]:
        assert params.max_tokens == 20
        return {"role": "assistant", "content": {"type": "text", "text": "hi there"}, "model": "m"}

    async def elicit(params: ElicitParams) -> dict[str, Any]:
        assert params.message == "Your name?"
        return {"action": "accept", "content": {"name": "Ada"}}

    options = ClientOptions(
        sampling_handler=sampling,
        elicitation_handler=elicit,
        roots=[{"uri": "file:///tmp", "name": "tmp"}],
    )
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params(), options) as client:
            assert (await client.call_tool("sample")).text == "hi there"
            assert json.loads((await client.call_tool("roots")).text) == [
                {"uri": "file:///tmp", "name": "tmp"}
            ]
            assert json.loads((await client.call_tool("elicit")).text) == {
                "action": "accept",
                "content": {"name": "Ada"},
            }
            assert (await client.call_tool("ping_client")).text == "{}"


async def test_without_handlers_server_requests_get_an_error() -> None:
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params()) as client:
            result = await client.call_tool("sample")
            assert result.is_error and "-32601" in result.text


async def test_sigkill_mid_call_fails_pending_calls_at_once_with_exit_status() -> None:
    leaks = LeakCheck()
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params()) as client:
            pid = client.transport.pid  # type: ignore[union-attr]
            leaks.watch(pid)
            errors: list[BaseException] = []
            running: set[int] = set()
            all_running = trio.Event()

            async def slow(i: int) -> None:
                def on_progress(_: Any) -> None:
                    running.add(i)
                    if len(running) == 3:
                        all_running.set()

                try:
                    # Its first progress report shows the server is running the call.
                    await client.call_tool(
                        "progress", {"steps": 10**6}, timeout=None, progress=on_progress
                    )
                except ServerExitedError as exc:
                    errors.append(exc)

            async with trio.open_nursery() as nursery:
                for i in range(3):
                    nursery.start_soon(slow, i)
                await all_running.wait()
                os.kill(pid, signal.SIGKILL)
            assert len(errors) == 3
            error = errors[0]
            assert isinstance(error, ServerExitedError)
            assert error.returncode == -signal.SIGKILL
            assert error.server == "test-server"
            assert "'test-server'" in str(error)
            assert not client.connected
            with pytest.raises(ServerExitedError):
                await client.call_tool("echo", {"message": "after"})
    leaks.assert_clean()


async def test_a_crash_mid_call_carries_the_exit_status() -> None:
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params()) as client:
            with pytest.raises(ServerExitedError) as info:
                await client.call_tool("crash")
    assert info.value.returncode == 3


async def test_a_server_that_crashes_at_start_raises_with_its_stderr() -> None:
    leaks = LeakCheck()
    with trio.fail_after(BOUND), pytest.raises(ServerExitedError) as info:
        async with stdio_client(test_server_params("--crash-at-start")):
            pytest.fail("the handshake cannot succeed")
    assert info.value.returncode == 7
    assert info.value.stderr_tail == ("crashing at start on purpose",)
    assert "crashing at start on purpose" in str(info.value)
    leaks.assert_clean()


async def test_a_server_ignoring_sigterm_and_eof_is_killed_after_the_graces() -> None:
    leaks = LeakCheck()
    params = test_server_params(
        "--ignore-sigterm", "--ignore-stdin-eof", close_grace=0.3, term_grace=0.3
    )
    with trio.fail_after(BOUND):
        async with stdio_client(params) as client:
            pid = client.transport.pid  # type: ignore[union-attr]
            leaks.watch(pid)
            assert (await client.call_tool("echo", {"message": "x"})).text == "x"
        returncode = client.transport.returncode  # type: ignore[union-attr]
    assert returncode == -signal.SIGKILL
    leaks.assert_clean()


async def test_grandchildren_die_with_the_server(tmp_path: Any) -> None:
    leaks = LeakCheck()
    pid_file = tmp_path / "pids"
    with trio.fail_after(BOUND):
        async with stdio_client(
            test_server_params("--grandchild", "--pid-file", str(pid_file))
        ) as client:
            await client.ping()
            leaks.watch(client.transport.pid)  # type: ignore[union-attr]
            server_pid, grandchild_pid = map(int, pid_file.read_text().split())
            assert grandchild_pid in group_members(server_pid)
    leaks.assert_clean()


async def test_garbage_on_stdout_is_skipped() -> None:
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params("--garbage-first", "5")) as client:
            assert (await client.call_tool("garbage")).text == "after garbage"
            assert (await client.call_tool("echo", {"message": "ok"})).text == "ok"


async def test_a_stderr_flood_never_blocks_and_the_tail_is_kept() -> None:
    with trio.fail_after(BOUND):
        async with stdio_client(
            test_server_params("--stderr-flood", str(8 * 1024 * 1024))
        ) as client:
            for _ in range(20):
                assert (await client.call_tool("echo", {"message": "y"})).text == "y"
            transport: Any = client.transport
            # Lines longer than the line limit are kept in pieces cut where the
            # pipe's reads happened to end, so a piece may start mid-word.
            assert "flood flood" in " ".join(transport.stderr_tail)


async def test_a_response_over_the_limit_fails_that_call_and_the_connection_recovers() -> None:
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params(max_message_size=10_000)) as client:
            with pytest.raises(MessageTooLargeError) as info:
                await client.call_tool("big", {"size": 50_000})
            assert info.value.limit == 10_000 and info.value.size > 50_000
            assert str(info.value).startswith(
                f"MCP server 'test-server' sent a message of {info.value.size} bytes, "
                "which exceeds the limit of 10000 bytes"
            )
            assert (await client.call_tool("big", {"size": 100})).text == "x" * 100


async def test_cancelling_the_owning_nursery_mid_call_leaves_nothing_behind() -> None:
    leaks = LeakCheck()
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            running = trio.Event()

            async def run() -> None:
                async with stdio_client(test_server_params("--grandchild")) as client:
                    leaks.watch(client.transport.pid)  # type: ignore[union-attr]
                    await client.call_tool(
                        "progress",
                        {"steps": 10**6},
                        timeout=None,
                        progress=lambda _: running.set(),
                    )

            nursery.start_soon(run)
            # Cancel only once the server reports that it is running the call.
            await running.wait()
            nursery.cancel_scope.cancel()
    assert leaks.pgids
    leaks.assert_clean()


async def test_calls_after_close_raise_closed() -> None:
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params()) as client:
            pass
        with pytest.raises(TransportClosedError):
            await client.call_tool("echo", {"message": "late"})


async def test_environment_is_not_inherited_but_config_env_is_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPEX_TEST_SECRET", "hunter2")
    params = test_server_params()
    params = StdioParameters(
        params.command,
        params.args,
        env=[["PYTHONPATH", params.env["PYTHONPATH"]], {"name": "GREETING", "value": "hi"}],
        name="env-test",
    )
    with trio.fail_after(BOUND):
        async with stdio_client(params) as client:
            assert (
                await client.call_tool("getenv", {"name": "OPEX_TEST_SECRET"})
            ).text == "<unset>"
            assert (await client.call_tool("getenv", {"name": "GREETING"})).text == "hi"
            assert (await client.call_tool("getenv", {"name": "PATH"})).text == os.environ["PATH"]


async def test_bad_arguments_fail_in_the_callers_task_with_the_tool_named() -> None:
    with trio.fail_after(BOUND):
        async with stdio_client(test_server_params()) as client:
            with pytest.raises(ConfigError, match="'echo'"):
                await client.call_tool("echo", {"message": float("nan")})
            with pytest.raises(ConfigError, match="must be an object"):
                await client.call_tool("echo", ["not", "a", "dict"])  # type: ignore[arg-type]
            assert client.pending_count == 0
            assert (await client.call_tool("echo", {"message": "fine"})).text == "fine"


async def test_a_missing_command_is_a_config_error_naming_it() -> None:
    params = StdioParameters("definitely-not-a-command-xyz", name="ghost")
    with trio.fail_after(BOUND), pytest.raises(ConfigError, match="definitely-not-a-command-xyz"):
        async with stdio_client(params):
            pass


async def test_an_error_in_the_body_comes_out_as_itself() -> None:
    leaks = LeakCheck()
    client = stdio_client(test_server_params())

    async def body() -> None:
        async with client:
            leaks.watch(client.transport.pid)  # type: ignore[union-attr]
            raise KeyError("mine")

    with trio.fail_after(BOUND), pytest.raises(KeyError, match="mine"):
        await body()
    leaks.assert_clean()

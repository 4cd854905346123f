"""The transport contract: what every transport must do, checked through the MCP actor.

A :class:`ContractSubject` describes one transport connected to the built-in
test server (:func:`~opex_trio.testing.mcp_server.builtin_server`): how to open
a connection, how to make the server go away, and a response size over the
transport's message limit. Each check in :data:`CHECKS` runs an
:class:`~opex_trio.mcp.client.McpClient` over it and asserts one promise:

* ``round_trip``: the handshake, a tool call, a listing;
* ``concurrency``: many calls in flight each get their own answer;
* ``notifications``: notifications travel both ways;
* ``server_requests``: sampling, elicitation, roots and ping from the server
  reach the handlers and their answers reach the server;
* ``closed_by_us``: a closed connection raises
  :class:`~opex_trio.errors.TransportClosedError`, in the actor and in the transport;
* ``peer_gone``: when the server goes away, pending calls fail promptly with
  :class:`~opex_trio.errors.TransportBrokenError` (or a subclass), later calls too;
* ``oversized``: a response over the limit fails that call with
  :class:`~opex_trio.errors.MessageTooLargeError` and the connection goes on
  (or, where the medium closes the connection for it, as WebSocket does, the
  connection breaks with a typed error);
* ``cancellation``: a cancelled call tells the server, and cancelling the
  whole client leaves no task behind.

Use :func:`check_transport` to run them all, or parametrize a test over
:data:`CHECKS`. Every check bounds itself with :func:`trio.fail_after`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import trio

from ..errors import (
    MessageTooLargeError,
    TransportBrokenError,
    TransportClosedError,
    TransportError,
)
from ..mcp.client import ClientOptions, McpClient
from ..protocol.jsonrpc import Request
from ..protocol.session import ListChanged, LogReceived
from ..protocol.types import CreateMessageParams, ElicitParams
from ..transports.base import Outgoing, TransportFactory

__all__ = ["CHECKS", "ContractSubject", "check_transport"]

BOUND = 60.0
"""Seconds any one check may take; generous, for a loaded two-core machine."""


@attrs.frozen
class ContractSubject:
    """One transport under test, connected to the built-in test server.

    ``factory`` opens a fresh connection; ``break_server`` makes the server
    go away (kill its process, stop listening and drop its connections),
    given the client whose server it is. ``oversize`` is a response size in
    bytes over the transport's message limit (``None``: the transport has no
    limit, and ``oversized`` has nothing to check); ``oversize_breaks_connection``
    says the medium closes the connection for such a message.
    """

    name: str
    factory: TransportFactory
    break_server: Callable[[McpClient], Awaitable[None]]
    oversize: int | None
    oversize_breaks_connection: bool = False

    def client(self, options: ClientOptions | None = None) -> McpClient:
        """A new client over a new connection."""
        return McpClient(self.factory, name=self.name, options=options)


async def _stats(client: McpClient) -> dict[str, Any]:
    result = await client.call_tool("stats")
    return dict(result.structured_content or {})


async def check_round_trip(subject: ContractSubject) -> None:
    """The handshake, a tool call and a listing work."""
    with trio.fail_after(BOUND):
        async with subject.client() as client:
            assert client.server_info.name == "opex-test-server"
            assert client.protocol_version is not None
            assert (await client.call_tool("echo", {"message": "héllo ✓"})).text == "héllo ✓"
            names = {tool.name for tool in await client.list_tools()}
            assert {"echo", "add", "sleep"} <= names
            assert (await client.call_tool("add", {"a": 2, "b": 40})).structured_content == {
                "sum": 42
            }


async def check_concurrency(subject: ContractSubject) -> None:
    """Many calls in flight at once each get their own answer."""
    count = 50
    answers: dict[int, str] = {}
    with trio.fail_after(BOUND):
        async with subject.client() as client:

            async def one(i: int) -> None:
                answers[i] = (await client.call_tool("echo", {"message": f"m{i}"})).text

            async with trio.open_nursery() as nursery:
                for i in range(count):
                    nursery.start_soon(one, i)
            assert client.pending_count == 0
    assert answers == {i: f"m{i}" for i in range(count)}


async def check_notifications(subject: ContractSubject) -> None:
    """Server notifications reach subscribers; client notifications reach the server."""
    with trio.fail_after(BOUND):
        async with subject.client() as client:
            async with client.subscribe() as events:
                await client.call_tool("log", {"level": "warning", "message": "careful"})
                await client.call_tool("add_tool", {"name": "fresh"})
                received = [await events.receive(), await events.receive()]
            assert isinstance(received[0], LogReceived)
            assert received[0].params.data == "careful"
            assert received[1] == ListChanged("tools")
            await client.notify("notifications/roots/list_changed")
            seen: list[str] = []
            while "notifications/roots/list_changed" not in seen:
                # A notification carries no answer; the server's record shows it arrived.
                seen = (await _stats(client))["notifications"]
                await trio.sleep(0.01)


async def check_server_requests(subject: ContractSubject) -> None:
    """Requests from the server reach the handlers, and their answers reach the server."""

    async def sampling(params: CreateMessageParams) -> dict[str, Any]:
        return {"role": "assistant", "content": {"type": "text", "text": "hi there"}, "model": "m"}

    async def elicit(params: ElicitParams) -> dict[str, Any]:
        return {"action": "accept", "content": {"name": "Ada"}}

    options = ClientOptions(
        sampling_handler=sampling,
        elicitation_handler=elicit,
        roots=[{"uri": "file:///tmp", "name": "tmp"}],
    )
    with trio.fail_after(BOUND):
        async with subject.client(options) as client:
            assert (await client.call_tool("sample")).text == "hi there"
            assert json.loads((await client.call_tool("roots")).text) == [
                {"uri": "file:///tmp", "name": "tmp"}
            ]
            assert json.loads((await client.call_tool("elicit")).text) == {
                "action": "accept",
                "content": {"name": "Ada"},
            }
            assert (await client.call_tool("ping_client")).text == "{}"


async def check_closed_by_us(subject: ContractSubject) -> None:
    """After closing, the actor and the transport raise TransportClosedError."""
    with trio.fail_after(BOUND):
        async with subject.client() as client:
            await client.ping()
        try:
            await client.call_tool("echo", {"message": "late"})
        except TransportClosedError:
            pass
        else:
            raise AssertionError("a call after close did not raise TransportClosedError")
        async with subject.factory() as transport:
            pass
        for operation in ("send", "receive"):
            try:
                if operation == "send":
                    await transport.send([Outgoing.of(Request(1, "ping"))])
                else:
                    await transport.receive()
            except TransportClosedError:
                continue
            raise AssertionError(f"{operation} on a closed transport did not raise")


async def check_peer_gone(subject: ContractSubject) -> None:
    """When the server goes away, pending calls fail promptly with TransportBrokenError."""
    errors: list[BaseException] = []
    with trio.fail_after(BOUND):
        async with subject.client() as client:
            await client.ping()

            async def slow() -> None:
                try:
                    await client.call_tool("sleep", {"seconds": 3600}, timeout=None)
                except TransportError as exc:
                    errors.append(exc)

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(slow)
                while client.pending_count < 3:  # noqa: ASYNC110 - the actor exposes no event for it
                    await trio.sleep(0.01)
                await trio.sleep(0.1)
                await subject.break_server(client)
            assert len(errors) == 3, errors
            for error in errors:
                assert isinstance(error, TransportBrokenError), repr(error)
            try:
                await client.call_tool("echo", {"message": "after"})
            except TransportError:
                pass
            else:
                raise AssertionError("a call after the server went away did not fail")


async def check_oversized(subject: ContractSubject) -> None:
    """A response over the limit fails its call; the connection goes on where the medium allows."""
    if subject.oversize is None:
        return
    with trio.fail_after(BOUND):
        async with subject.client() as client:
            try:
                await client.call_tool("big", {"size": subject.oversize})
            except MessageTooLargeError as exc:
                assert not subject.oversize_breaks_connection, "expected the connection to break"
                assert exc.size > exc.limit  # noqa: PT017 - no pytest here
            except TransportBrokenError:
                assert subject.oversize_breaks_connection, "the connection broke"
                return
            else:
                raise AssertionError("an oversized response was accepted")
            assert (await client.call_tool("big", {"size": 100})).text == "x" * 100


async def check_cancellation(subject: ContractSubject) -> None:
    """A cancelled call tells the server; cancelling the client leaves no task behind."""
    with trio.fail_after(BOUND):
        async with subject.client() as client:
            async with trio.open_nursery() as nursery:
                base = (await _stats(client))["requests"]
                nursery.start_soon(_sleep_call, client)
                # The server must be running the call when the cancellation
                # comes, or it has nothing to cancel.
                await _server_saw_one_more(client, base)
                nursery.cancel_scope.cancel()
            # The cancellation is a notification: poll the server's record of it.
            while not (await _stats(client))["cancelled"]:  # noqa: ASYNC110
                await trio.sleep(0.01)
            assert client.pending_count == 0
        before = set(_our_tasks())
        async with trio.open_nursery() as nursery:
            in_flight = trio.Event()

            async def run() -> None:
                async with subject.client() as client, trio.open_nursery() as inner:
                    base = (await _stats(client))["requests"]
                    inner.start_soon(_sleep_call, client)
                    await _server_saw_one_more(client, base)
                    in_flight.set()

            nursery.start_soon(run)
            # Cancelled only once connected with a call in flight, however slowly
            # it started: a client cancelled earlier would leave nothing to check.
            await in_flight.wait()
            assert [task for task in _our_tasks() if task not in before], "no task to check"
            nursery.cancel_scope.cancel()
        leftover = [task.name for task in _our_tasks() if task not in before]
        assert not leftover, leftover


async def _sleep_call(client: McpClient) -> None:
    await client.call_tool("sleep", {"seconds": 3600}, timeout=None)


async def _server_saw_one_more(client: McpClient, base: int) -> None:
    """Wait until the server has started one request more than ``base`` besides ``stats`` calls.

    ``base`` is the count a ``stats`` call gave before that request was made.
    """
    asked = 0
    while True:
        asked += 1
        # Each stats call counts itself: one more than that is the other request.
        if (await _stats(client))["requests"] > base + asked:
            return
        await trio.sleep(0.01)


def _our_tasks() -> list[trio.lowlevel.Task]:
    """Every live task running opex_trio code outside the test helpers (servers)."""
    found = []
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None:
            continue
        if task.name.startswith("opex_trio.") and not task.name.startswith("opex_trio.testing"):
            found.append(task)
        pending.extend(t for nursery in task.child_nurseries for t in nursery.child_tasks)
    return found


CHECKS: Mapping[str, Callable[[ContractSubject], Awaitable[None]]] = {
    "round_trip": check_round_trip,
    "concurrency": check_concurrency,
    "notifications": check_notifications,
    "server_requests": check_server_requests,
    "closed_by_us": check_closed_by_us,
    "peer_gone": check_peer_gone,
    "oversized": check_oversized,
    "cancellation": check_cancellation,
}
"""Every check of the contract, by name."""


async def check_transport(subject: ContractSubject) -> None:
    """Run every check of :data:`CHECKS` against ``subject``.

    ``peer_gone`` runs last, since it ends the server.
    """
    for name, check in CHECKS.items():
        if name != "peer_gone":
            await check(subject)
    await CHECKS["peer_gone"](subject)

"""What every command stands on: its MCP servers, started, and the model, opened."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import attrs
import trio

from ..auth import FileTokenStore
from ..llm.local import missing_local_model
from ..mcp.manager import ServerOptions, SessionManager
from ._auth import with_login
from ._errors import EXIT_NO_MODEL, EXIT_USAGE, CliError
from ._model import OpenModel, choose_model, no_model_message, open_model
from ._person import Person
from ._servers import (
    Started,
    check_started,
    server_configs,
    start_servers,
    wait_started,
    watch_invalid_output,
)
from ._startup import StartupView
from ._ui import Ui

__all__ = ["Env", "environment"]

logger = logging.getLogger("opex_trio.cli")


@attrs.frozen
class Env:
    """What a command works with: the servers, how each start went, and the model.

    ``person`` answers the servers' requests and approves tool calls, when the
    command keeps a person in the loop.
    """

    mcp: SessionManager
    started: list[Started]
    model: OpenModel | None
    person: Person | None = None


@asynccontextmanager
async def environment(
    args: argparse.Namespace,
    ui: Ui,
    *,
    with_model: bool,
    strict: bool = True,
    person: Person | None = None,
) -> AsyncIterator[Env]:
    """Start the servers (and open the model when ``with_model``); stop them all on exit.

    With ``strict``, a server that did not start is an error; else it is only reported.
    With ``person``, the servers' sampling and elicitation requests go to the person.
    """
    # A remote server that answers 401 gets a login (browser, or the URL shown with
    # --no-browser); tokens are kept in the user's token file for the next command.
    configs = with_login(
        server_configs(args.mcp_config, args.server),
        store=FileTokenStore(),
        open_browser=not args.no_browser,
        show=ui.notice,
    )
    if not configs and not with_model:
        raise CliError("no MCP server given: use --mcp-config FILE or --server COMMAND", EXIT_USAGE)
    choice = (
        choose_model(local=args.local, base_url=args.base_url, model=args.model)
        if with_model
        else None
    )
    if choice is not None and choice.source == "local":
        # Said before any server starts: nothing could run without a model.
        problem = missing_local_model()
        if problem is not None:
            raise CliError(no_model_message(problem), EXIT_NO_MODEL)
    timeout = args.start_timeout or None
    async with AsyncExitStack() as stack:
        mcp = await stack.enter_async_context(SessionManager(name="opex-trio"))
        invalid = stack.enter_context(watch_invalid_output())
        view = StartupView(ui)
        # The servers start in the background while the model is opened.
        options = ServerOptions(client=person.client_options()) if person is not None else None
        await start_servers(mcp, configs, options=options)
        model = None
        if choice is not None:
            model = await stack.enter_async_context(
                open_model(choice, start_timeout=timeout or math.inf)
            )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(view.tick)
            started = await wait_started(mcp, timeout=timeout, on_change=view.update)
            nursery.cancel_scope.cancel()
        view.done()
        for entry in started:
            status = entry.status
            logger.info(
                "MCP server %r: %s, protocol %s, %d tools",
                status.id,
                status.state if entry.ready else f"failed ({status.last_error})",
                status.protocol_version,
                len(status.tools),
            )
        if strict:
            check_started(started, timeout, invalid.first)
        if model is not None:
            ui.notice(model.describe())
        if person is not None:
            person.model = model
        yield Env(mcp, started, model, person)

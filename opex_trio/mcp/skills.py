"""Skills an MCP server offers (the ``io.modelcontextprotocol/skills`` extension).

:func:`list_skills` asks a server that declares the extension for its skills
and fetches none of their files. :func:`load_skill` loads one when the
application (or the model, through the application) needs it: it reads the
``SKILL.md`` first and checks its size, digest and frontmatter against the
listing, then reads and checks each other file the skill lists. A file that
does not match refuses the whole skill with
:class:`~opex_trio.errors.SkillVerificationError`; no unverified content is
returned, and no file is read after a refusal.

The rules themselves (manifest parsing, verification) are sans IO, in
:mod:`opex_trio.protocol.skills`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from ..errors import ProtocolError, SkillVerificationError
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

__all__ = ["LoadedSkill", "SkillSource", "list_skills", "load_skill", "offers_skills"]


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

"""The skills extension (``io.modelcontextprotocol/skills``, SEP-2640), sans IO.

A server that declares the extension lists its skills with ``skills/list``:
each :class:`Skill` has the URI of its ``SKILL.md``, the frontmatter of that
file as the server read it, and a manifest of every file of the skill
(:class:`SkillFile`: URI, ``sha256:`` digest, size in bytes). Files are
ordinary resources read with ``resources/read``, and only once the skill is
loaded: listing fetches nothing.

Every file read is checked against its manifest entry before anything uses
it (:func:`verify_file`): the byte length first, then the digest. The
``SKILL.md`` is also parsed and its frontmatter compared field by field with
the listed one (:func:`verify_frontmatter`); any difference refuses the skill
with :class:`~opex_trio.errors.SkillVerificationError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ..errors import ProtocolError, SkillVerificationError

__all__ = [
    "SKILLS_EXTENSION",
    "Skill",
    "SkillFile",
    "parse_frontmatter",
    "parse_skills",
    "verify_file",
    "verify_frontmatter",
]

SKILLS_EXTENSION: Final = "io.modelcontextprotocol/skills"
"""The identifier of the skills extension."""


@attrs.frozen
class SkillFile:
    """One file of a skill as the manifest lists it."""

    uri: str
    digest: str
    size: int | None = None


@attrs.frozen
class Skill:
    """A skill a server lists: its ``SKILL.md``, frontmatter and files."""

    uri: str
    frontmatter: Mapping[str, Any]
    files: tuple[SkillFile, ...]

    @property
    def name(self) -> str:
        """The skill's name (from its frontmatter; the URI when it has none)."""
        name = self.frontmatter.get("name")
        return name if isinstance(name, str) and name else self.uri

    @property
    def description(self) -> str:
        """What the skill is for, as its frontmatter says."""
        text = self.frontmatter.get("description")
        return text if isinstance(text, str) else ""

    def file(self, uri: str) -> SkillFile | None:
        """The manifest entry of ``uri``, or ``None`` when the skill does not list it."""
        return next((f for f in self.files if f.uri == uri), None)


def _file(value: Any, where: str) -> SkillFile:
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{where} must be an object")
    uri, digest, size = value.get("uri"), value.get("digest"), value.get("size")
    if not isinstance(uri, str) or not isinstance(digest, str):
        raise ProtocolError(f"{where} needs a string uri and digest")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ProtocolError(f"{where}.size must be a non-negative integer")
    return SkillFile(uri, digest, size)


def parse_skills(result: Mapping[str, Any]) -> list[Skill]:
    """The skills of a ``skills/list`` result; :class:`ProtocolError` naming a bad entry."""
    entries = result.get("skills")
    if not isinstance(entries, list):
        raise ProtocolError("the skills/list result has no skills array")
    skills = []
    for i, entry in enumerate(entries):
        where = f"skills[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("uri"), str):
            raise ProtocolError(f"{where} must be an object with a string uri")
        frontmatter = entry.get("frontmatter") or {}
        if not isinstance(frontmatter, Mapping):
            raise ProtocolError(f"{where}.frontmatter must be an object")
        raw_files = entry.get("resources") or []
        if not isinstance(raw_files, list):
            raise ProtocolError(f"{where}.resources must be an array")
        files = tuple(_file(f, f"{where}.resources[{j}]") for j, f in enumerate(raw_files))
        skills.append(Skill(entry["uri"], dict(frontmatter), files))
    return skills


def verify_file(entry: SkillFile, content: bytes) -> None:
    """Refuse ``content`` unless its size and digest are what the manifest lists."""
    if entry.size is not None and len(content) != entry.size:
        raise SkillVerificationError(
            f"{entry.uri} is {len(content)} bytes, the skill lists {entry.size}", uri=entry.uri
        )
    algorithm, _, expected = entry.digest.partition(":")
    if algorithm != "sha256" or not expected:
        raise SkillVerificationError(
            f"{entry.uri} lists digest {entry.digest!r}, not a sha256 digest", uri=entry.uri
        )
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected.lower():
        raise SkillVerificationError(
            f"{entry.uri} has digest sha256:{actual}, the skill lists {entry.digest}",
            uri=entry.uri,
        )


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return json.loads(text) if text[0] == '"' else text[1:-1].replace("''", "'")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~", ""):
        return None
    return text


def parse_frontmatter(text: str) -> dict[str, Any]:
    """The top-level ``key: value`` members of a ``SKILL.md``'s frontmatter.

    Only plain and quoted scalars are read (what skill frontmatter holds: name,
    description, license, ...); nested blocks are kept as their raw text.
    :class:`SkillVerificationError` when there is no frontmatter.
    """
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise SkillVerificationError("SKILL.md does not start with a --- frontmatter block")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise SkillVerificationError("SKILL.md's frontmatter block never ends") from None
    out: dict[str, Any] = {}
    key: str | None = None
    for line in lines[1:end]:
        if line.startswith((" ", "\t")) and key is not None:
            previous = out[key]
            out[key] = f"{previous}\n{line}" if isinstance(previous, str) else line
            continue
        name, sep, value = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            key = name.strip()
            out[key] = _scalar(value)
    return out


def verify_frontmatter(skill: Skill, text: str) -> None:
    """Refuse a ``SKILL.md`` whose frontmatter differs from the listed one in any field."""
    found = parse_frontmatter(text)
    for field in sorted(set(found) | set(skill.frontmatter)):
        listed, read = skill.frontmatter.get(field), found.get(field)
        if isinstance(listed, Mapping | list) or isinstance(read, Mapping | list):
            continue  # nested values are not compared by this reader
        if listed != read:
            raise SkillVerificationError(
                f"{skill.uri}: frontmatter {field!r} is {read!r} in the file but listed as "
                f"{listed!r}",
                uri=skill.uri,
            )

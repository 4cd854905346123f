"""The skills extension's rules: the listing, and verification of what is read."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opex_trio.errors import ProtocolError, SkillVerificationError
from opex_trio.protocol.skills import (
    Skill,
    SkillFile,
    parse_frontmatter,
    parse_skills,
    verify_file,
    verify_frontmatter,
)

BODY = "---\nname: pdf-processing\ndescription: 'Extract, fill: assemble'\n---\n\nBody.\n"


def digest(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return "sha256:" + hashlib.sha256(data).hexdigest()


def listing(**changes: Any) -> dict[str, Any]:
    entry = {
        "uri": "skill://pdf/SKILL.md",
        "frontmatter": {"name": "pdf-processing", "description": "Extract, fill: assemble"},
        "resources": [
            {"uri": "skill://pdf/SKILL.md", "digest": digest(BODY), "size": len(BODY.encode())},
            {"uri": "skill://pdf/FORMS.md", "digest": digest("forms"), "size": 5},
        ],
    }
    entry.update(changes)
    return {"resultType": "complete", "skills": [entry]}


def test_the_listing_is_read_with_its_manifest() -> None:
    (skill,) = parse_skills(listing())
    assert skill.name == "pdf-processing" and skill.description == "Extract, fill: assemble"
    assert [f.uri for f in skill.files] == ["skill://pdf/SKILL.md", "skill://pdf/FORMS.md"]
    assert skill.file("skill://pdf/FORMS.md") == SkillFile(
        "skill://pdf/FORMS.md", digest("forms"), 5
    )
    assert skill.file("skill://other") is None


@pytest.mark.parametrize(
    "bad",
    [
        {"skills": "no"},
        {"skills": [{"frontmatter": {}}]},
        listing(frontmatter=[1]),
        listing(resources=[{"uri": "x"}]),
        listing(resources=[{"uri": "x", "digest": "sha256:0", "size": -1}]),
    ],
)
def test_a_malformed_listing_is_a_protocol_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        parse_skills(bad)


@given(st.binary(max_size=300))
def test_content_is_accepted_exactly_when_size_and_digest_match(content: bytes) -> None:
    entry = SkillFile("skill://x", digest(content), len(content))
    verify_file(entry, content)
    with pytest.raises(SkillVerificationError, match="bytes"):
        verify_file(entry, content + b"!")
    if content:
        tampered = bytes([content[0] ^ 1]) + content[1:]
        with pytest.raises(SkillVerificationError, match="digest"):
            verify_file(entry, tampered)


def test_a_digest_that_is_not_sha256_is_refused() -> None:
    with pytest.raises(SkillVerificationError, match="sha256"):
        verify_file(SkillFile("skill://x", "md5:abc", None), b"")


def test_frontmatter_is_read_and_compared_field_by_field() -> None:
    assert parse_frontmatter(BODY) == {
        "name": "pdf-processing",
        "description": "Extract, fill: assemble",
    }
    (skill,) = parse_skills(listing())
    verify_frontmatter(skill, BODY)
    with pytest.raises(SkillVerificationError, match="description"):
        verify_frontmatter(skill, BODY.replace("Extract, fill: assemble", "Exfiltrate"))
    with pytest.raises(SkillVerificationError, match="license"):
        verify_frontmatter(skill, BODY.replace("---\n\n", "license: MIT\n---\n\n"))
    with pytest.raises(SkillVerificationError, match="frontmatter"):
        verify_frontmatter(skill, "no frontmatter here")
    with pytest.raises(SkillVerificationError, match="never ends"):
        parse_frontmatter("---\nname: x\n")


def test_a_skill_without_a_name_is_named_by_its_uri() -> None:
    assert Skill("skill://x/SKILL.md", {}, ()).name == "skill://x/SKILL.md"

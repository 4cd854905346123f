"""README.md, the repository's front page: its links lead somewhere, its commands stay.

README is not part of the site, so the site's link check does not see it: here each
relative link must name a file of the repository (and each ``#anchor`` a heading of
its page), and the two commands keep the form CI and users depend on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.conftest import ROOT

README = ROOT / "README.md"
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(`{3,}|~{3,})")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown page outside its fenced blocks."""
    lines: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if match and (fence is None or match.group(1).startswith(fence)):
            fence = None if fence else match.group(1)
            continue
        if fence is None:
            lines.append(line)
    return lines


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub and MyST give the page's headings (lower case, spaces as -)."""
    anchors = set()
    for line in prose_lines(text):
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            anchors.add(title.replace(" ", "-"))
    return anchors


def broken_links(page: Path, root: Path, guides_merged: bool) -> list[str]:
    """The relative links of ``page`` that name no file or heading."""
    broken = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        for target in _LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue  # a URL
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if path.startswith("docs/guides/") and not guides_merged:
                continue
            if not file.exists():
                broken.append(f"{target} (no such file)")
            elif (
                anchor
                and file.suffix == ".md"
                and anchor not in heading_anchors(file.read_text(encoding="utf-8"))
            ):
                broken.append(f"{target} (no such heading)")
    return broken


def guides_merged() -> bool:
    """Whether the guides are in this tree (the guides index lists more than itself)."""
    return any(p.name != "index.md" for p in (ROOT / "docs" / "guides").glob("*.md"))


def test_readme_links_resolve() -> None:
    assert broken_links(README, ROOT, guides_merged()) == []
    if not guides_merged():
        pytest.skip("the guide pages README links to are not in this tree yet")


def test_the_link_check_finds_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# There\n\n## A section\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Top\n\n[ok](docs/there.md) [ok](docs/there.md#a-section) [ok](#top)"
        " [web](https://example.org/x)\n[gone](docs/gone.md) [bad](docs/there.md#nowhere)"
        " [self](#missing)\n\n```md\n[in a fence](not/checked.md)\n```\n"
    )
    assert broken_links(page, tmp_path, guides_merged=True) == [
        "docs/gone.md (no such file)",
        "docs/there.md#nowhere (no such heading)",
        "#missing (no such heading)",
    ]


def test_readme_shows_the_test_command_that_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = re.search(r"^COMMAND='(.*)'$", ci, re.MULTILINE)
    assert command is not None
    lines = README.read_text(encoding="utf-8").splitlines()
    section = lines[lines.index("## Running the tests") :]
    first_block = section.index("```sh")
    assert section[first_block + 1] == command.group(1)

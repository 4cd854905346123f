"""The 0.2 suite's skills scenarios, run against the conformance client's skill tool.

Each scenario must judge something (a skipped or zero-check run is a failure
here): the client lists the skills as the tool a model is offered, and (except
in ``no-prefetch``) calls it, which reads the tampered ``SKILL.md`` and must
refuse it before reading any other file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

from tests.conformance.run import Case, read_checks, run_case
from tests.transports.support import peers

pytestmark = [pytest.mark.peers, pytest.mark.conformance]

SKILL_MD = "skill://pdf-processing/SKILL.md"


@pytest.mark.parametrize(
    ("scenario", "reads"),
    [
        ("sep-2640-client-no-prefetch", None),
        ("sep-2640-client-verify-digest", [SKILL_MD]),
        ("sep-2640-client-verify-size", [SKILL_MD]),
        ("sep-2640-client-verify-frontmatter", [SKILL_MD]),
    ],
)
async def test_skills_scenario_judges_a_real_load(
    scenario: str, reads: list[str] | None, tmp_path: Path
) -> None:
    peers()  # the suite is installed, or the test says why not
    command = f"{sys.executable} -m opex_trio.testing.conformance_client"
    case = Case("0.2", "default", scenario)
    with trio.fail_after(240):
        outcome = await trio.to_thread.run_sync(run_case, case, command, tmp_path, 60000)
    folder = tmp_path / "0.2" / "default" / scenario
    assert outcome.passed, (outcome.detail, (folder / "suite-output.txt").read_text())
    (check,) = [c for c in read_checks(folder) if c.get("status") == "SUCCESS"]
    details = check["details"]
    assert isinstance(details, dict), json.dumps(check)
    if reads is None:
        assert details == {"skillsListCalled": True, "fileReads": 0}
    else:
        assert details["reads"] == reads

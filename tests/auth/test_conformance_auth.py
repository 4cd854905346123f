"""Every authorization scenario of both conformance suites, against our conformance client.

0.1.16's ``2025-03-26-oauth-metadata-backcompat`` must be refused: its mock's
root metadata names issuer ``<origin>/oauth`` (RFC 8414 section 3.3 forbids
using it). Five 0.2.0-alpha.12 scenarios run their MCP server in the stateless
2026-07-28 revision, which the client does not speak yet; their authorization
is checked here at 2025-11-25 (``--spec-version 2025-11-25 --force``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

from tests.transports.support import peers

pytestmark = pytest.mark.peers

COMMON = (
    "metadata-default",
    "metadata-var1",
    "metadata-var2",
    "metadata-var3",
    "basic-cimd",
    "scope-from-www-authenticate",
    "scope-from-scopes-supported",
    "scope-omitted-when-undefined",
    "scope-step-up",
    "scope-retry-limit",
    "token-endpoint-auth-basic",
    "token-endpoint-auth-post",
    "token-endpoint-auth-none",
    "pre-registration",
    "2025-03-26-oauth-endpoint-fallback",
    "client-credentials-jwt",
    "client-credentials-basic",
)
ONLY_0_1 = (
    "resource-mismatch",
    "offline-access-scope",
    "offline-access-not-supported",
    "cross-app-access-complete-flow",
)
ONLY_0_2 = (
    "2025-03-26-oauth-metadata-backcompat",
    "enterprise-managed-authorization",
    "dpop",
    "dpop-nonce",
    "wif-jwt-bearer",
    "resource-mismatch",
    "iss-supported-missing",
    "iss-wrong-issuer",
    "iss-unexpected",
    "iss-normalized",
    "metadata-issuer-mismatch",
)
# Their MCP exchange is in the 2026-07-28 revision; the authorization is checked at 2025-11-25.
MODERN_MCP = (
    "offline-access-scope",
    "offline-access-not-supported",
    "authorization-server-migration",
    "iss-supported",
    "iss-not-advertised",
)

CASES = [
    *[("0.1", name, ()) for name in (*COMMON, *ONLY_0_1)],
    *[("0.2", name, ()) for name in (*COMMON, *ONLY_0_2)],
    *[("0.2", name, ("--spec-version", "2025-11-25", "--force")) for name in MODERN_MCP],
]


async def _run(
    release: str, scenario: str, extra: tuple[str, ...], out: Path
) -> tuple[int, str, list[dict[str, str]]]:
    argv = [
        *peers().conformance_command(release),
        "client",
        "--command",
        f"{sys.executable} -m opex_trio.testing.conformance_client",
        "--scenario",
        f"auth/{scenario}",
        "--output-dir",
        str(out),
        *extra,
    ]
    with trio.fail_after(180):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    (checks_file,) = out.rglob("checks.json")
    return done.returncode, output, json.loads(checks_file.read_text())


@pytest.mark.parametrize(
    ("release", "scenario", "extra"), CASES, ids=[f"{r}-{s}" for r, s, _ in CASES]
)
async def test_authorization_scenario_passes(
    release: str, scenario: str, extra: tuple[str, ...], tmp_path: Path
) -> None:
    status, output, checks = await _run(release, scenario, extra, tmp_path)
    assert status == 0, output
    verdicts = [c["status"] for c in checks if c["status"] in ("SUCCESS", "FAILURE", "WARNING")]
    assert verdicts and set(verdicts) == {"SUCCESS"}, output


async def test_0_1_metadata_backcompat_mock_is_refused(tmp_path: Path) -> None:
    status, output, _ = await _run("0.1", "2025-03-26-oauth-metadata-backcompat", (), tmp_path)
    assert status != 0
    assert "IssuerMismatchError" in output
    assert "/oauth" in output

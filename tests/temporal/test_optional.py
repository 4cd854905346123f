"""The 'temporal' extra is optional: opex_trio works without temporalio, and says what is missing."""

from __future__ import annotations

import subprocess
import sys

BLOCK = "import sys; sys.modules['temporalio'] = None; "


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], capture_output=True, text=True, check=False
    )


def test_opex_trio_and_its_command_import_without_temporalio() -> None:
    done = run("import opex_trio, opex_trio.cli, opex_trio.testing.llm_server; print('ok')")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_importing_opex_trio_temporal_without_the_extra_names_the_extra() -> None:
    done = run("import opex_trio.temporal")
    assert done.returncode == 1
    assert "pip install 'opex_trio[temporal]'" in done.stderr

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


def test_the_durable_commands_without_the_extra_name_it() -> None:
    done = run(
        "from opex_trio.cli import main; "
        "sys.exit(main(['worker', '--base-url', 'http://127.0.0.1:9/v1']))"
    )
    assert done.returncode == 2
    assert "pip install 'opex_trio[temporal]'" in done.stderr

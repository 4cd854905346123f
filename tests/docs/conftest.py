"""Setup of the documentation tests: the built site, and the ``docs`` mark.

Every test here is marked ``docs``: the nox ``docs`` session runs them (after it has
built the site with warnings as errors), and the ``tests`` sessions, which do not
install the ``docs`` extra, deselect them.

The site is the one ``OPEX_DOCS_HTML`` names (the nox session sets it to the build it
just made), or else one built here, once per run, into a temporary directory.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import peers

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
HTML_ENV = "OPEX_DOCS_HTML"


def require_module(name: str, extra: str = "docs") -> None:
    """Skip (or fail under ``OPEX_REQUIRE_PEERS=1``) when ``name`` is not importable."""
    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed: pip install -e '.[{extra}]'"
        if peers.peers_required():
            pytest.fail(f"{message} [{peers.REQUIRE_ENV}=1 makes a missing tool an error]")
        pytest.skip(message)


def build_site(out: Path) -> None:
    """Build the site into ``out`` as the nox session does; fail with Sphinx's output."""
    command = [
        sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
        str(DOCS), str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"the documentation build failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of the built HTML site."""
    require_module("sphinx")
    given = os.environ.get(HTML_ENV)
    if given:
        path = Path(given)
        if not (path / "index.html").is_file():
            pytest.fail(f"{HTML_ENV}={given} holds no built site (no index.html)")
        return path
    out = tmp_path_factory.mktemp("site")
    build_site(out)
    return out


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``docs``."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.docs)

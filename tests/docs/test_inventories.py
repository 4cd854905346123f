"""The intersphinx inventories in docs/_inventories/ are the ones make.py writes.

The build reads them instead of downloading Python's and trio's ``objects.inv``; a
name added to make.py without running it would otherwise be missing from the build.
"""

from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path
from types import ModuleType

import pytest

from tests.docs.conftest import DOCS, require_module

INVENTORIES = DOCS / "_inventories"


def load_make() -> ModuleType:
    spec = importlib.util.spec_from_file_location("inventories_make", INVENTORIES / "make.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def entries_of(data: bytes) -> tuple[list[str], list[str]]:
    """The header lines and the entry lines of an objects.inv (version 2)."""
    lines = data.split(b"\n", 4)
    return [line.decode() for line in lines[:4]], zlib.decompress(lines[4]).decode().splitlines()


@pytest.mark.parametrize(("name", "table"), [("python.inv", "PYTHON"), ("trio.inv", "TRIO")])
def test_inventory_is_what_make_writes(name: str, table: str) -> None:
    make = load_make()
    project, version = {"python.inv": ("Python", "3"), "trio.inv": ("Trio", "stable")}[name]
    written = make.inventory(project, version, getattr(make, table))
    assert entries_of((INVENTORIES / name).read_bytes()) == entries_of(written), (
        f"docs/_inventories/{name} is stale: run python docs/_inventories/make.py"
    )


def test_sphinx_reads_the_inventories(tmp_path: Path) -> None:
    require_module("sphinx")
    make = load_make()
    make.check(INVENTORIES / "trio.inv", make.TRIO)
    broken = tmp_path / "trio.inv"
    broken.write_bytes(make.inventory("Trio", "stable", {"trio.run": ("function", "x.html#$")}))
    with pytest.raises(SystemExit, match="read back 1 names, wrote"):
        make.check(broken, make.TRIO)

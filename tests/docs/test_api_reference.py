"""The API reference describes every public name, and every public name has a docstring.

The public names are each public module's ``__all__`` (a module whose dotted path has
no part starting with ``_``). The reference (``docs/api/``, through the ``opex-api``
directive of ``docs/_ext/opex_api.py``) describes each object once, at its home; these
tests read the built site's ``objects.inv`` and fail for:

- a public module or name with no entry in the reference;
- a class or function without a docstring of its own, or a public method or property
  of a described class without one (autodoc leaves those out silently);
- a constant or type alias without a doc comment (``#:`` above it or a string below it,
  which is what the reference shows).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.docs.conftest import DOCS, require_module

sys.path.insert(0, str(DOCS / "_ext"))
opex_api: ModuleType = importlib.import_module("opex_api")


def reference_entries(site: Path) -> set[str]:
    """Every Python name the built site's inventory lists."""
    require_module("sphinx")
    from sphinx.util.inventory import InventoryFile

    inventory = InventoryFile.loads((site / "objects.inv").read_bytes(), uri="")
    return {
        name
        for role, objects in inventory.data.items()
        if role.startswith("py:")
        for name in objects
    }


def has_doc(obj: object) -> bool:
    """Whether ``obj`` has a non-empty docstring of its own (not its class's)."""
    doc = getattr(obj, "__doc__", None)
    return isinstance(doc, str) and bool(doc.strip())


def public_members(cls: type) -> list[tuple[str, Any]]:
    """The public methods and properties a class defines itself."""
    members = []
    for attr, member in vars(cls).items():
        if attr.startswith("_"):
            continue
        func = member.__func__ if isinstance(member, classmethod | staticmethod) else member
        if inspect.isfunction(func) or isinstance(func, property):
            members.append((attr, func))
    return members


def missing_from_reference(entries: set[str]) -> list[str]:
    """The public modules and names that have no entry in ``entries``."""
    missing = [m for m in opex_api.public_modules() if m not in entries]
    for entry in opex_api.public_names():
        target = opex_api.documented_path(entry)
        if target not in entries:
            missing.append(f"{entry.path} (described as {target})")
        if opex_api.kind_of(entry.obj) in {"class", "exception"} and target == entry.path:
            for attr, member in public_members(entry.obj):
                if has_doc(member) and f"{target}.{attr}" not in entries:
                    missing.append(f"{target}.{attr}")
    return missing


def undocumented() -> list[str]:
    """The public names (at their home) that have no docstring or doc comment."""
    missing = [m for m in opex_api.public_modules() if not has_doc(importlib.import_module(m))]
    for entry in opex_api.public_names():
        if opex_api.documented_path(entry) != entry.path:
            continue  # checked at its home
        kind = opex_api.kind_of(entry.obj)
        if kind == "data":
            if not opex_api.doc_comment(entry.module, entry.name):
                missing.append(f"{entry.path} (constant: add a docstring line below it)")
            continue
        if kind == "module":
            continue
        if not has_doc(entry.obj):
            missing.append(entry.path)
        if kind in {"class", "exception"}:
            missing += [
                f"{entry.path}.{attr}"
                for attr, member in public_members(entry.obj)
                if not has_doc(member)
            ]
    return missing


def test_every_public_name_has_a_docstring() -> None:
    require_module("sphinx")
    assert undocumented() == []


def test_every_public_name_is_in_the_reference(built_site: Path) -> None:
    assert missing_from_reference(reference_entries(built_site)) == []


def test_names_resolve_through_every_public_path(built_site: Path) -> None:
    # Re-exports point at the home entry: opex_trio.Client is described once.
    client = opex_api.PublicName("opex_trio", "Client", importlib.import_module("opex_trio").Client)
    assert opex_api.documented_path(client) == "opex_trio.llm.client.Client"
    assert "opex_trio.llm.client.Client" in reference_entries(built_site)
    assert opex_api.described_path("opex_trio.Chat.stream") == "opex_trio.agent.chat.Chat.stream"
    # Defined in a private module: described in the public module nearest to it.
    paths = opex_api.alias_map()
    assert paths["opex_trio.ClientOptions"] == "opex_trio.mcp.client.ClientOptions"
    assert paths["opex_trio.RestartPolicy"] == "opex_trio.supervision.RestartPolicy"
    assert paths["opex_trio.transports.http.HttpParameters"] == (
        "opex_trio.transports.http.HttpParameters"
    )
    # A constant is described where it is assigned.
    assert paths["opex_trio.llm.DEFAULT_BASE_URL"] == "opex_trio.llm.client.DEFAULT_BASE_URL"


def test_the_checks_find_what_is_missing(built_site: Path) -> None:
    entries = reference_entries(built_site)
    assert missing_from_reference(entries) == []
    without = entries - {"opex_trio.mcp.manager.SessionManager", "opex_trio.errors"}
    missing = missing_from_reference(without)
    assert "opex_trio.errors" in missing
    assert any(m.startswith("opex_trio.SessionManager (described as") for m in missing)
    assert (
        "opex_trio.mcp.manager.SessionManager (described as opex_trio.mcp.manager.SessionManager)"
        in missing
    )


def test_the_docstring_check_finds_an_undocumented_name(monkeypatch: pytest.MonkeyPatch) -> None:
    require_module("sphinx")
    from opex_trio.mcp import manager

    monkeypatch.setattr(manager.SessionManager, "__doc__", None)
    monkeypatch.setattr(manager.SessionManager.add_server, "__doc__", "")
    missing = undocumented()
    assert "opex_trio.mcp.manager.SessionManager" in missing
    assert "opex_trio.mcp.manager.SessionManager.add_server" in missing
    assert not opex_api.doc_comment("opex_trio.protocol.jsonrpc", "no_such_name")
    assert opex_api.doc_comment(
        "opex_trio.mcp.client", "ProgressCallback"
    )  # followed into _options

"""The public surface of opex_trio: explicit re-exports, and a docstring on every public name.

``opex_trio/__init__.py`` holds nothing but its docstring, re-exports written
``from .x import Name as Name`` (the explicit form type checkers honour) and
``__all__``, which lists exactly the names it re-exports.

A public module is one whose dotted path has no part starting with ``_``. Each
has a docstring, and so does every public class and function it defines, and
every public method or property of such a class.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import opex_trio

INIT = Path(opex_trio.__file__)

# Imports the package may make only when an optional extra is installed.
# Optional extras; a module that needs one is checked where it is installed (the
# nox `temporal` session runs this file with temporalio).
OPTIONAL_DEPENDENCIES = frozenset({"opentelemetry", "temporalio"})


def reexported_names(source: str) -> set[str]:
    """The names ``source`` binds by import, after checking it does nothing else."""
    tree = ast.parse(source)
    names: set[str] = set()
    for index, node in enumerate(tree.body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.asname != alias.name:
                    raise AssertionError(
                        f"line {node.lineno}: re-export {alias.name!r} as "
                        f"`{alias.name} as {alias.name}`, not as {alias.asname!r}"
                    )
                names.add(alias.name)
            continue
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "__all__"
        ):
            continue
        raise AssertionError(
            f"line {node.lineno}: opex_trio/__init__.py may only re-export "
            f"(found {type(node).__name__})"
        )
    return names


def test_init_only_reexports() -> None:
    reexported_names(INIT.read_text(encoding="utf-8"))


def test_all_is_exactly_the_reexported_names() -> None:
    names = reexported_names(INIT.read_text(encoding="utf-8"))
    assert len(opex_trio.__all__) == len(set(opex_trio.__all__)), "duplicates in __all__"
    assert set(opex_trio.__all__) == names


def test_every_name_in_all_exists() -> None:
    missing = [name for name in opex_trio.__all__ if not hasattr(opex_trio, name)]
    assert not missing


def test_no_public_name_outside_all() -> None:
    # Submodules become attributes of the package when anything imports them; they
    # are not names the package defines.
    stray = {
        name
        for name, value in vars(opex_trio).items()
        if not name.startswith("_")
        and name not in opex_trio.__all__
        and not (inspect.ismodule(value) and value.__name__ == f"opex_trio.{name}")
    }
    assert not stray


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("from .x import A\n", "as `A as A`"),
        ("from .x import A as B\n", "not as 'B'"),
        ("from .x import A as A\ndef f(): pass\n", "FunctionDef"),
        ("from .x import A as A\nB = 1\n", "Assign"),
        ('"""Doc."""\nimport os\n', "Import"),
    ],
)
def test_reexport_check_rejects(source: str, problem: str) -> None:
    with pytest.raises(AssertionError, match=problem):
        reexported_names(source)


def test_reexport_check_accepts_the_explicit_form() -> None:
    source = (
        '"""Doc."""\nfrom __future__ import annotations\n'
        "from . import errors as errors\nfrom .a import B as B\n__all__ = ['B', 'errors']\n"
    )
    assert reexported_names(source) == {"B", "errors"}


def public_module_names() -> Iterator[str]:
    yield opex_trio.__name__
    for info in pkgutil.walk_packages(opex_trio.__path__, prefix="opex_trio."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield info.name


def import_public(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in OPTIONAL_DEPENDENCIES:
            pytest.skip(f"{name} needs the optional dependency {exc.name}")
        raise


def has_doc(obj: object) -> bool:
    # The object's own __doc__: inspect.getdoc would accept one inherited from a base class.
    doc = getattr(obj, "__doc__", None)
    return isinstance(doc, str) and bool(doc.strip())


def undocumented(module: ModuleType) -> list[str]:
    """The public names ``module`` defines that have no docstring of their own."""
    missing = [] if has_doc(module) else [f"{module.__name__} (module)"]
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name, None)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue  # checked where it is defined
        if not has_doc(obj):
            missing.append(f"{module.__name__}.{name}")
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                func = member.__func__ if isinstance(member, classmethod | staticmethod) else member
                if (inspect.isfunction(func) or isinstance(func, property)) and not has_doc(func):
                    missing.append(f"{module.__name__}.{name}.{attr}")
    return missing


@pytest.mark.parametrize("name", sorted(public_module_names()))
def test_public_names_have_docstrings(name: str) -> None:
    assert undocumented(import_public(name)) == []


def test_docstring_check_finds_the_undocumented() -> None:
    module = ModuleType("fake", None)

    class Documented:
        """Has one."""

        def method(self) -> None:
            pass

        @property
        def value(self) -> int:
            return 1

    class Bare:
        pass

    def function() -> None:
        pass

    for obj in (Documented, Bare, function):
        obj.__module__ = "fake"
        setattr(module, obj.__name__, obj)
    assert sorted(undocumented(module)) == [
        "fake (module)",
        "fake.Bare",
        "fake.Documented.method",
        "fake.Documented.value",
        "fake.function",
    ]

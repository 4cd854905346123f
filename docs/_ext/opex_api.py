"""The API reference of opex_trio: one entry per public name, generated from its docstring.

A public module is one whose dotted path has no part starting with ``_``; its public
names are its ``__all__``. Each object is described once, in its *home*: the public
module that defines it, or, for an object defined in a private module, the public
module nearest to that definition that lists it. Every other module that lists the
object gets a line pointing at the home entry, and a cross-reference through any
public path (``opex_trio.Client``, ``opex_trio.llm.Client``) resolves to it.

The directive ``{opex-api} opex_trio.llm.client`` writes the autodoc directives of
one module. ``tests/docs/test_api_reference.py`` checks the built reference with the
same :func:`public_names` and :func:`home_of`.
"""

from __future__ import annotations

import ast
import enum
import functools
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

PACKAGE = "opex_trio"


def is_public(module_name: str) -> bool:
    """Whether no part of the dotted path starts with ``_``."""
    return not any(part.startswith("_") for part in module_name.split("."))


@functools.cache
def public_modules() -> tuple[str, ...]:
    """Every public module of the package, the package first, then in walk order."""
    package = importlib.import_module(PACKAGE)
    walked = pkgutil.walk_packages(package.__path__, prefix=f"{PACKAGE}.")
    return (PACKAGE, *(info.name for info in walked if is_public(info.name)))


def exported(module_name: str) -> tuple[str, ...]:
    """The module's ``__all__``, or no names when it has none (a namespace of submodules)."""
    module = importlib.import_module(module_name)
    return tuple(getattr(module, "__all__", ()))


@dataclass(frozen=True)
class PublicName:
    """One name of one public module's ``__all__`` and the object it names."""

    module: str
    name: str
    obj: Any

    @property
    def path(self) -> str:
        """``module.name``."""
        return f"{self.module}.{self.name}"


def public_names() -> Iterator[PublicName]:
    """Every (module, name) pair of every public module's ``__all__``."""
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in exported(module_name):
            yield PublicName(module_name, name, getattr(module, name))


def defines_name(module_name: str, name: str) -> bool:
    """Whether the module's source binds ``name`` at top level other than by import."""
    module = importlib.import_module(module_name)
    source = Path(inspect.getfile(module)).read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        elif (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name == name
        ):
            return True
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
    return False


def kind_of(obj: Any) -> str:
    """``module``, ``exception``, ``class``, ``function`` or ``data`` (constants, aliases)."""
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isfunction(obj):
        return "function"
    return "data"


def _common_depth(a: str, b: str) -> int:
    depth = 0
    for x, y in zip(a.split("."), b.split("."), strict=False):
        if x != y:
            break
        depth += 1
    return depth


@functools.cache
def _listing_modules() -> dict[tuple[str, str], list[str]]:
    """(kind key, name) -> the public modules that list it, for data and re-exports."""
    listing: dict[tuple[str, str], list[str]] = {}
    for entry in public_names():
        listing.setdefault((_identity(entry.obj, entry.name), entry.name), []).append(entry.module)
    return listing


def _identity(obj: Any, name: str) -> str:
    if kind_of(obj) in {"class", "exception", "function"}:
        return f"{obj.__module__}.{obj.__qualname__}"
    return f"id:{id(obj)}"


def home_of(entry: PublicName) -> str:
    """The public module whose reference page describes ``entry.obj``."""
    kind = kind_of(entry.obj)
    if kind == "module":
        return str(entry.obj.__name__)
    listing = _listing_modules()[(_identity(entry.obj, entry.name), entry.name)]
    if kind == "data":
        defining = [m for m in listing if defines_name(m, entry.name)]
        candidates = defining or listing
        origin = defining[0] if defining else entry.module
    else:
        origin = str(entry.obj.__module__)
        if origin in listing:
            return origin
        candidates = listing
    # Nearest to the definition; then the deeper (more specific) module.
    return max(candidates, key=lambda m: (_common_depth(m, origin), m.count("."), m))


def documented_path(entry: PublicName) -> str:
    """The full name under which the reference describes ``entry``."""
    if kind_of(entry.obj) == "module":
        return str(entry.obj.__name__)
    return f"{home_of(entry)}.{entry.name}"


@functools.cache
def alias_map() -> dict[str, str]:
    """Every public path of a described object -> the path it is described under."""
    return {entry.path: documented_path(entry) for entry in public_names()}


def _imported_from(module_name: str, name: str) -> str | None:
    """The module that ``module_name`` imports ``name`` from, by its source, if it does."""
    module = importlib.import_module(module_name)
    source = Path(inspect.getfile(module)).read_text(encoding="utf-8")
    package = module_name if hasattr(module, "__path__") else module_name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if not any((alias.asname or alias.name) == name for alias in node.names):
            continue
        if node.level == 0:
            return node.module
        base = package.split(".")
        base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)
    return None


def doc_comment(module_name: str, name: str) -> list[str]:
    """The doc comment (``#:`` above, or a string below) of a module-level name.

    A name the module imports is followed to the module that binds it: a private
    module's comment describes the public alias too.
    """
    from sphinx.pycode import ModuleAnalyzer

    seen: set[str] = set()
    current: str | None = module_name
    while current and current not in seen:
        seen.add(current)
        docs = ModuleAnalyzer.for_module(current).find_attr_docs()
        if ("", name) in docs:
            return [line for line in docs[("", name)] if line is not None]
        current = _imported_from(current, name)
    return []


SHORT_VALUE_TYPES = (bool, int, float, str, bytes)


def autodoc_lines(module_name: str) -> list[str]:
    """ReStructuredText for one module: its docstring, its entries, its re-exports."""
    module: ModuleType = importlib.import_module(module_name)
    lines = [f".. automodule:: {module_name}", ""]
    pointers: list[str] = []
    for name in exported(module_name):
        entry = PublicName(module_name, name, getattr(module, name))
        kind = kind_of(entry.obj)
        target = documented_path(entry)
        if target != entry.path or kind == "module":
            role = {"module": "mod", "exception": "exc", "class": "class", "function": "func"}
            pointers.append(f"* ``{name}``: :py:{role.get(kind, 'data')}:`{target}`")
            continue
        if kind in {"class", "exception"}:
            lines += [f".. auto{kind}:: {entry.path}", "   :members:", "   :show-inheritance:"]
            if issubclass(entry.obj, enum.Enum):
                lines.append("   :undoc-members:")
        elif kind == "function":
            lines.append(f".. autofunction:: {entry.path}")
        else:
            lines.append(f".. autodata:: {entry.path}")
            if not isinstance(entry.obj, SHORT_VALUE_TYPES) or len(repr(entry.obj)) > 60:
                lines.append("   :no-value:")
        lines.append("")
    if pointers:
        lines += [".. rubric:: Also importable from here", "", *pointers, ""]
    return lines


# Sphinx glue. Imported only by Sphinx, so the functions above stay usable without it.


@functools.cache
def described_objects() -> dict[str, str]:
    """Identity of each described class or function -> the path it is described under."""
    found: dict[str, str] = {}
    for entry in public_names():
        if kind_of(entry.obj) in {"class", "exception", "function"}:
            found.setdefault(_identity(entry.obj, entry.name), documented_path(entry))
    return found


def _lookup(path: str) -> Any:
    """The object at a dotted path (a module, then attributes), or ``None``."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj
    return None


def described_path(path: str) -> str | None:
    """The described path of what a dotted ``path`` names, through any public path.

    ``opex_trio.Client`` and ``opex_trio.llm.Client`` give
    ``opex_trio.llm.client.Client``; ``opex_trio.Chat.stream`` a member of one.
    """
    aliases = alias_map()
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        base = aliases.get(prefix)
        if base is None:
            obj = _lookup(prefix)
            if obj is None or kind_of(obj) not in {"class", "exception", "function"}:
                continue
            base = described_objects().get(_identity(obj, prefix.rsplit(".", 1)[-1]))
            if base is None:
                continue
        return ".".join([base, *parts[cut:]])
    return None


def _resolve_alias(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a Python reference that the domain does not find as written.

    A name is tried as written, then relative to the module and class of the text
    that refers to it (a docstring's ``:class:`ProtocolError``` in a module that
    imports it), each through any public path to the entry that describes it. A type
    alias is described as data, which annotations refer to with the class role, so a
    name the domain has under any role is taken too.
    """
    if node.get("refdomain") != "py":
        return None
    domain = env.domains["py"]
    target = str(node["reftarget"]).lstrip(".~")
    module = node.get("py:module")
    klass = node.get("py:class")
    written = [target]
    if module:
        if klass:
            written.append(f"{module}.{klass}.{target}")
        written.append(f"{module}.{target}")
    found = _first_described(domain, written)
    if found is None:
        # A short name written without its module (``:class:`McpError``` in a module
        # that does not import it): taken when exactly one entry has that last part.
        ending = f".{target}"
        matches = [name for name in domain.objects if name.endswith(ending)]
        found = matches[0] if len(matches) == 1 else None
    if found is None and node.get("reftype") == "attr":
        # An instance attribute that a class's docstring describes in its prose has no
        # entry of its own: the reference goes to the class.
        found = _first_described(domain, [p.rpartition(".")[0] for p in written if "." in p])
    if found is None:
        return None
    return domain.resolve_xref(
        env, node.get("refdoc", ""), app.builder, "obj", found, node, contnode
    )


def _first_described(domain: Any, paths: list[str]) -> str | None:
    for path in paths:
        for candidate in (path, described_path(path)):
            if candidate and candidate in domain.objects:
                return candidate
    return None


_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}$")


def _titles_to_rubrics(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Turn section titles in docstrings into rubrics.

    A docstring's sections would become sections of the reference page, with ids that
    clash between modules ("Theory of operation" in many) and entries in the page's
    table of contents; a rubric is a heading that is neither.
    """
    index = 0
    while index + 1 < len(lines):
        title, underline = lines[index], lines[index + 1].strip()
        if (
            title.strip()
            and not title.startswith(" ")
            and _UNDERLINE.match(underline)
            and len(underline) >= len(title.strip())
        ):
            lines[index : index + 2] = [f".. rubric:: {title.strip()}", ""]
        index += 1


def _data_docstrings(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Give a constant or type alias its doc comment, never its type's docstring.

    For a name with no doc comment in the module it is described in, autodoc shows the
    docstring of its value's type (the text of ``dict`` for a dict, of ``Literal`` for
    an alias). The comment is looked up where the name is bound instead (a private
    module, for a re-exported alias); ``tests/docs/test_api_reference.py`` asks every
    public constant for one.
    """
    if what != "data":
        return
    own = inspect.getdoc(type(obj)) or ""
    if own and "\n".join(lines).strip() == own.strip():
        lines.clear()
    if not "".join(lines).strip():
        module_name, _, attr = name.rpartition(".")
        lines[:] = doc_comment(module_name, attr)


def _relative_references(app: Any, doctree: Any) -> None:
    """Read ``:mod:`.content``` in a docstring as Python reads ``from . import content``.

    Sphinx takes a leading dot (kept as ``refspecific``) as "any entry whose name ends
    so", which is ambiguous
    where two layers have a module of that name (``protocol.content`` and
    ``agent.content``); the writer of a docstring meant the sibling in its package.
    """
    from sphinx import addnodes

    for node in doctree.findall(addnodes.pending_xref):
        name = str(node.get("reftarget", "")).lstrip(".")
        module = node.get("py:module")
        if node.get("refdomain") != "py" or not node.get("refspecific") or not module:
            continue
        klass = node.get("py:class")
        package = module.rpartition(".")[0]
        for candidate in (
            f"{module}.{klass}.{name}" if klass else None,
            f"{module}.{name}",
            f"{package}.{name}",
        ):
            if candidate and _lookup(candidate) is not None:
                node["reftarget"] = candidate
                node["refspecific"] = False
                break


_PLAIN_DOCSTRINGS = frozenset({"attribute", "property", "data"})


def _napoleon_for_signatures_only(app: Any) -> None:
    """Keep napoleon away from the docstrings of attributes, properties and constants.

    There napoleon reads a first line such as ``The exit status (negative: a
    signal): ...`` as ``type: description``; opex_trio writes those docstrings as
    plain sentences, and uses "Args:" and "Attributes:" sections only in classes
    and functions.
    """
    from sphinx.ext import napoleon

    listeners = app.events.listeners["autodoc-process-docstring"]
    for listener in list(listeners):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)

            def process(app: Any, what: str, *args: Any) -> None:
                if what not in _PLAIN_DOCSTRINGS:
                    napoleon._process_docstring(app, what, *args)

            app.connect("autodoc-process-docstring", process, priority=listener.priority)


def setup(app: Any) -> dict[str, Any]:
    """Register the ``opex-api`` directive and the alias resolver."""
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective
    from sphinx.util.nodes import nested_parse_with_titles

    class OpexApi(SphinxDirective):
        """``.. opex-api:: MODULE``: the reference entries of one public module."""

        required_arguments = 1

        def run(self) -> list[Any]:
            from docutils import nodes

            module_name = self.arguments[0]
            if module_name not in public_modules():
                raise self.error(f"{module_name} is not a public module of {PACKAGE}")
            _source, _line = self.get_source_info()
            content = StringList()
            for offset, text in enumerate(autodoc_lines(module_name)):
                content.append(text, f"<opex-api {module_name}>", offset)
            holder = nodes.section()
            holder.document = self.state.document
            nested_parse_with_titles(self.state, content, holder)
            return list(holder.children)

    app.add_directive("opex-api", OpexApi)
    app.connect("missing-reference", _resolve_alias)
    app.connect("doctree-read", _relative_references)
    app.connect("builder-inited", _napoleon_for_signatures_only)
    app.connect("autodoc-process-docstring", _titles_to_rubrics)
    app.connect("autodoc-process-docstring", _data_docstrings)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

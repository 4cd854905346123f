"""The layer rules of DESIGN.md, checked on the import statements of every module in opex_trio.

The rules are one table, ``LAYERS``: for each part of the package, the
third-party distributions and the opex_trio modules it may import. The
standard library is open to every layer, except that the sans-IO protocol core
may not touch anything that does IO (``IO_MODULES``). Imports are read with
:mod:`ast`, so a module is checked whether or not it imports cleanly, and
imports under ``TYPE_CHECKING`` count: a layer that needs another layer's
types depends on it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import opex_trio

PACKAGE = "opex_trio"
PACKAGE_DIR = Path(opex_trio.__file__).resolve().parent

# Standard-library modules that do IO or run concurrently: the protocol core is
# bytes and dicts in, events out, so it imports none of them.
IO_MODULES = frozenset(
    {
        "asyncio",
        "concurrent",
        "fcntl",
        "ftplib",
        "http",
        "imaplib",
        "mmap",
        "multiprocessing",
        "os",
        "pathlib",
        "poplib",
        "pty",
        "queue",
        "select",
        "selectors",
        "shutil",
        "signal",
        "smtplib",
        "socket",
        "socketserver",
        "ssl",
        "subprocess",
        "tempfile",
        "termios",
        "threading",
        "urllib.request",
        "xmlrpc",
    }
)

ANY = frozenset({"*"})

# Shared by every layer but the sans-IO core: the error tree, the telemetry
# events, the version string, the unwrapping of trio's exception groups, and
# the process-group shutdown of child processes.
BASE = frozenset(
    {
        "opex_trio.errors",
        "opex_trio.telemetry",
        "opex_trio._version",
        "opex_trio._exceptions",
        "opex_trio._process",
    }
)


@attrs.frozen
class Layer:
    """What the modules under ``prefix`` may import.

    ``third_party`` names top-level import names; ``internal`` names opex_trio
    modules or packages (a package allows everything under it). ``"*"`` allows
    anything. ``sans_io`` closes the IO part of the standard library.
    """

    prefix: str
    third_party: frozenset[str]
    internal: frozenset[str]
    sans_io: bool = False


def layer(
    prefix: str, third_party: set[str], internal: set[str], *, sans_io: bool = False
) -> Layer:
    return Layer(prefix, frozenset(third_party), frozenset(internal), sans_io)


ATTRS = {"attrs", "attr"}  # the attrs distribution installs both names

# The most specific prefix wins. Each layer may also import itself.
LAYERS = (
    layer("opex_trio.protocol", ATTRS, {"opex_trio.errors", "opex_trio._version"}, sans_io=True),
    # OAuth for the HTTP transports; joserfc (the `oauth` extra) signs DPoP proofs and
    # client assertions.
    layer(
        "opex_trio.auth",
        {"trio", "httpx2", "joserfc", *ATTRS},
        {*BASE, "opex_trio.protocol"},
    ),
    layer(
        "opex_trio.transports",
        {"trio", "httpx2", "trio_websocket", *ATTRS},
        {*BASE, "opex_trio.protocol", "opex_trio.auth"},
    ),
    layer(
        "opex_trio.mcp",
        {"trio", *ATTRS},
        {
            *BASE,
            "opex_trio.protocol",
            "opex_trio.auth",
            "opex_trio.transports",
            "opex_trio.supervision",
        },
    ),
    # Only this module of the MCP layer imports jsonschema (the optional `schema` extra).
    layer(
        "opex_trio.mcp.output_schema",
        {"jsonschema", *ATTRS},
        {*BASE, "opex_trio.protocol"},
    ),
    layer("opex_trio.llm", {"httpx2", "trio", *ATTRS}, set(BASE)),
    layer(
        "opex_trio.agent",
        {"trio", *ATTRS},
        {*BASE, "opex_trio.llm", "opex_trio.mcp", "opex_trio.protocol"},
    ),
    # The supervision layer: the public module and the private modules it is
    # split into (the restart policy; a child's handle and runner loop).
    layer(
        "opex_trio.supervision",
        {"trio", *ATTRS},
        {*BASE, "opex_trio._restart_policy", "opex_trio._supervised_child"},
    ),
    layer("opex_trio._restart_policy", ATTRS, {"opex_trio.errors"}),
    layer(
        "opex_trio._supervised_child",
        {"trio", *ATTRS},
        {*BASE, "opex_trio._restart_policy", "opex_trio.supervision"},
    ),
    # The events and subscriptions; instrument() loads _otel lazily, and only
    # _otel imports OpenTelemetry (an optional extra).
    layer(
        "opex_trio.telemetry",
        {"trio", *ATTRS},
        {"opex_trio._version", "opex_trio.errors", "opex_trio._otel"},
    ),
    layer(
        "opex_trio._otel",
        {"opentelemetry", "trio", *ATTRS},
        {"opex_trio.telemetry", "opex_trio.errors", "opex_trio._version"},
    ),
    # The error tree imports only itself: _mcp_errors holds the errors received from
    # MCP servers and is re-exported by errors.
    layer("opex_trio.errors", set(), {"opex_trio._mcp_errors"}),
    layer("opex_trio._mcp_errors", set(), {"opex_trio.errors"}),
    layer("opex_trio._exceptions", {"trio"}, set()),
    layer("opex_trio._process", {"trio"}, set()),
    layer("opex_trio._version", set(), set()),
    # Durable runs (the `temporal` extra): above the chat loop, below the command.
    layer(
        "opex_trio.temporal",
        {"trio", "temporalio", "outcome", *ATTRS},
        {*BASE, "opex_trio.agent", "opex_trio.mcp", "opex_trio.llm"},
    ),
    # The workflow is replayed deterministically in Temporal's sandbox: no trio,
    # no IO; only the step types and the hooks' answers.
    layer(
        "opex_trio.temporal.workflow",
        {"temporalio"},
        {"opex_trio.temporal.steps", "opex_trio.agent.hooks", "opex_trio.errors"},
    ),
    layer("opex_trio.temporal.steps", set(), {"opex_trio.errors"}),
    layer("opex_trio.cli", set(ANY), set(ANY)),
    layer("opex_trio.testing", set(ANY), set(ANY)),
    # The package root only re-exports the public names of every layer.
    layer("opex_trio", set(), set(ANY)),
)


def rule_for(module: str) -> Layer:
    """The layer whose prefix matches ``module`` most specifically."""
    matches = [
        entry for entry in LAYERS if module == entry.prefix or module.startswith(entry.prefix + ".")
    ]
    if not matches:
        raise LookupError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return max(matches, key=lambda entry: len(entry.prefix))


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package_module(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_modules(
    source: str, module: str, *, is_package: bool, known: set[str]
) -> Iterator[tuple[int, str]]:
    """Yield ``(line, absolute module name)`` for every import in ``source``.

    ``from package import name`` yields ``package.name`` when that is a module
    in ``known`` (a submodule import), else ``package``.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base == "__future__":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield node.lineno, candidate if candidate in known else base


def allowed(rule: Layer, own: str, target: str) -> bool:
    """Whether a module in layer ``rule`` (itself ``own``) may import ``target``."""
    top = target.split(".")[0]
    if top == PACKAGE:
        if "*" in rule.internal:
            return True
        if target == PACKAGE:
            return False  # the root re-exports everything: importing it pulls every layer in
        grants = {*rule.internal, rule.prefix}
        return any(target == g or target.startswith(g + ".") for g in grants)
    if top in sys.stdlib_module_names:
        if not rule.sans_io:
            return True
        return not any(target == m or target.startswith(m + ".") for m in IO_MODULES)
    return "*" in rule.third_party or top in rule.third_party


def violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """Every forbidden import in ``sources`` (module name -> (source text, is package))."""
    known = set(sources)
    found = []
    for module, (source, is_package) in sorted(sources.items()):
        rule = rule_for(module)
        for line, target in imported_modules(source, module, is_package=is_package, known=known):
            if not allowed(rule, module, target):
                found.append(f"{module}:{line} imports {target} (layer {rule.prefix})")
    return found


def package_sources() -> dict[str, tuple[str, bool]]:
    return {
        module_name(path): (path.read_text(encoding="utf-8"), is_package_module(path))
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
    }


def test_every_module_is_in_a_layer() -> None:
    for module in package_sources():
        rule_for(module)


def test_layer_rules_hold() -> None:
    found = violations(package_sources())
    assert not found, "imports that break the layer rules of DESIGN.md:\n  " + "\n  ".join(found)


# The checker itself: each rule must be able to fail.
FAKE_TREE = {
    "opex_trio": ("from .llm.client import Client as Client\n", True),
    "opex_trio.errors": ("import enum\n", False),
    "opex_trio.telemetry": ("import attrs\n", False),
    "opex_trio._otel": ("import opentelemetry.trace\nfrom . import telemetry\n", False),
    "opex_trio.supervision": ("import trio\nfrom . import errors\n", False),
    "opex_trio.protocol": ("", True),
    "opex_trio.protocol.jsonrpc": (
        "import json\nimport attrs\nfrom ..errors import ProtocolError\n",
        False,
    ),
    "opex_trio.transports": ("", True),
    "opex_trio.transports.stdio": ("import trio\nfrom ..protocol import jsonrpc\n", False),
    "opex_trio.llm": ("", True),
    "opex_trio.llm.client": ("import httpx2\nfrom .. import telemetry\n", False),
    "opex_trio.mcp": ("", True),
    "opex_trio.mcp.actor": (
        "from ..transports.stdio import X\nfrom ..supervision import Y\n",
        False,
    ),
    "opex_trio.agent": ("", True),
    "opex_trio.agent.chat": ("from ..llm.client import Client\nfrom ..mcp import actor\n", False),
    "opex_trio.testing": ("import hypothesis\nfrom opex_trio import Client\n", True),
    "opex_trio.temporal": ("", True),
    "opex_trio.temporal.steps": ("import dataclasses\n", False),
    "opex_trio.temporal.workflow": (
        "from temporalio import workflow\nfrom .steps import ChatSpec\n"
        "from ..agent.hooks import Stop\n",
        False,
    ),
    "opex_trio.temporal.worker": (
        "import temporalio\nimport trio\nfrom ..agent.chat import Chat\nfrom .workflow import W\n",
        False,
    ),
}


def test_checker_accepts_a_tree_that_keeps_the_rules() -> None:
    assert violations(FAKE_TREE) == []


@pytest.mark.parametrize(
    ("module", "source", "target"),
    [
        ("opex_trio.protocol.jsonrpc", "import trio\n", "trio"),
        ("opex_trio.protocol.jsonrpc", "import socket\n", "socket"),
        ("opex_trio.protocol.jsonrpc", "from subprocess import PIPE\n", "subprocess"),
        ("opex_trio.protocol.jsonrpc", "import urllib.request\n", "urllib.request"),
        (
            "opex_trio.protocol.jsonrpc",
            "from ..transports import stdio\n",
            "opex_trio.transports.stdio",
        ),
        ("opex_trio.protocol.jsonrpc", "from .. import telemetry\n", "opex_trio.telemetry"),
        ("opex_trio.transports.stdio", "from ..mcp import actor\n", "opex_trio.mcp.actor"),
        ("opex_trio.llm.client", "from ..mcp.actor import Actor\n", "opex_trio.mcp.actor"),
        (
            "opex_trio.llm.client",
            "import opex_trio.protocol.jsonrpc\n",
            "opex_trio.protocol.jsonrpc",
        ),
        ("opex_trio.llm.client", "from opex_trio import agent\n", "opex_trio.agent"),
        ("opex_trio.mcp.actor", "from ..agent.chat import Chat\n", "opex_trio.agent.chat"),
        ("opex_trio.mcp.actor", "import httpx2\n", "httpx2"),
        ("opex_trio.agent.chat", "import httpx2\n", "httpx2"),
        ("opex_trio.agent.chat", "from opex_trio import Client\n", "opex_trio"),
        ("opex_trio.supervision", "from .mcp import actor\n", "opex_trio.mcp.actor"),
        ("opex_trio.telemetry", "from .supervision import Supervisor\n", "opex_trio.supervision"),
        ("opex_trio.telemetry", "import opentelemetry\n", "opentelemetry"),
        ("opex_trio.llm.client", "import opentelemetry.trace\n", "opentelemetry.trace"),
        ("opex_trio._otel", "from .llm import client\n", "opex_trio.llm.client"),
        ("opex_trio._otel", "import httpx2\n", "httpx2"),
        ("opex_trio.errors", "import attrs\n", "attrs"),
        ("opex_trio.temporal.workflow", "import trio\n", "trio"),
        ("opex_trio.temporal.workflow", "from ..agent.chat import Chat\n", "opex_trio.agent.chat"),
        ("opex_trio.temporal.steps", "import temporalio\n", "temporalio"),
        ("opex_trio.temporal.worker", "from ..cli import main\n", "opex_trio.cli"),
        ("opex_trio.llm.client", "import temporalio\n", "temporalio"),
    ],
)
def test_checker_reports_a_forbidden_import(module: str, source: str, target: str) -> None:
    tree = dict(FAKE_TREE)
    is_package = tree[module][1]
    tree[module] = (source, is_package)
    found = violations(tree)
    assert len(found) == 1, found
    assert f"imports {target} " in found[0]


def test_checker_resolves_relative_imports_in_a_package_init() -> None:
    tree = dict(FAKE_TREE)
    tree["opex_trio.protocol"] = ("from . import jsonrpc\nfrom ..mcp import actor\n", True)
    assert violations(tree) == [
        "opex_trio.protocol:2 imports opex_trio.mcp.actor (layer opex_trio.protocol)"
    ]


def test_module_outside_every_layer_is_reported() -> None:
    with pytest.raises(LookupError, match=r"opex_trio_extra\.x is in no layer"):
        rule_for("opex_trio_extra.x")

"""Unique, stable, provider-valid names for the tools of many servers.

A model sees tools under names matching ``^[a-zA-Z0-9_-]{1,64}$``. MCP servers
name their tools freely (dots, slashes, unicode, any length), and two servers
may offer tools with the same name. :func:`assign_names` gives every tool a
name by one rule, applied to the whole set at once so that input order never
matters:

1. The program's own tools (``fixed``) keep their names; they win every
   collision.
2. An MCP tool is exposed under its bare name, made valid (each run of other
   characters becomes ``_``, accents are stripped), when no other tool wants
   the same name; a name that was valid as it is beats names that only become
   equal to it once made valid.
3. Tools still colliding get the server id as a prefix: ``server__tool``.
4. Names still colliding, over 64 characters, or with no letter or digit left
   are cut and get ``_`` and 8 hex digits of a SHA-256 of ``(server, name)``.

The same set of tools always gets the same names, and a tool added to one
server renames another tool only when it takes the bare name the other had.
Pure functions, no IO: the session manager's registry and the chat loop's
tool index both use them.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = [
    "MAX_TOOL_NAME_LENGTH",
    "TOOL_NAME_PATTERN",
    "assign_names",
    "is_valid_tool_name",
    "sanitize_tool_name",
]

MAX_TOOL_NAME_LENGTH: Final = 64
"""The longest tool name OpenAI-compatible providers accept."""

TOOL_NAME_PATTERN: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}\Z")
"""What a tool name sent to a provider must match."""

_HASH_DIGITS: Final = 8
_SEPARATOR: Final = "__"
_PREFIX_IN_HASHED_NAME: Final = 16

Key = tuple[str | None, str]


def sanitize_tool_name(name: str) -> str:
    """Make ``name`` match the allowed characters ``[a-zA-Z0-9_-]``.

    Accents are stripped (``café`` becomes ``cafe``); each run of other
    characters becomes one ``_``. The length is not changed beyond that, and an
    empty name stays empty: :func:`assign_names` handles both.
    """
    out: list[str] = []
    replaced = False
    for char in name:
        if _valid_char(char):
            out.append(char)
            replaced = False
            continue
        ascii_part = "".join(c for c in unicodedata.normalize("NFKD", char) if _valid_char(c))
        if ascii_part:
            out.append(ascii_part)
            replaced = False
        elif not replaced:
            out.append("_")
            replaced = True
    return "".join(out)


def _valid_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in "_-")


def is_valid_tool_name(name: str) -> bool:
    """Whether ``name`` can be sent to a provider as it is."""
    return TOOL_NAME_PATTERN.match(name) is not None


def _digest(server: str | None, name: str) -> str:
    return hashlib.sha256(json.dumps([server, name]).encode()).hexdigest()


def assign_names(fixed: Iterable[str], tools: Iterable[tuple[str, str]]) -> dict[Key, str]:
    """Name every tool by the rule of this module.

    ``fixed`` are names that must stay as they are (the program's own tools,
    already valid and unique); ``tools`` are ``(server_id, tool_name)`` pairs.
    Returns ``{(None, fixed_name): fixed_name, (server_id, tool_name): name}``.
    """
    names: dict[Key, str] = {(None, name): name for name in fixed}
    taken = set(names.values())
    pairs = sorted(set(tools))

    bare: dict[Key, str] = {}
    prefixed: dict[Key, str] = {}
    exact: set[Key] = set()
    opaque: set[Key] = set()
    for server, tool in pairs:
        key: Key = (server, tool)
        base = sanitize_tool_name(tool)
        if not any(c.isalnum() for c in base):
            opaque.add(key)
            continue
        bare[key] = base
        prefixed[key] = _server_prefix(server) + _SEPARATOR + base
        if base == tool:
            exact.add(key)

    for candidates in (bare, prefixed):
        pending = {k: v for k, v in candidates.items() if k not in names}
        granted = _grant(pending, exact, taken)
        names.update(granted)
        taken.update(granted.values())

    for server, tool in pairs:
        key = (server, tool)
        if key in names:
            continue
        stem = _server_prefix(server)[:_PREFIX_IN_HASHED_NAME] + _SEPARATOR
        stem += sanitize_tool_name(tool) if key not in opaque else "tool"
        digest = _digest(server, tool)
        for digits in (_HASH_DIGITS, 16, 32, MAX_TOOL_NAME_LENGTH - 1):
            room = MAX_TOOL_NAME_LENGTH - 1 - digits
            candidate = f"{stem[:room]}_{digest[:digits]}"
            if candidate not in taken:
                break
        else:  # pragma: no cover - needs a SHA-256 collision on 63 hex digits
            raise AssertionError(f"no unique name for tool {tool!r}")
        names[key] = candidate
        taken.add(candidate)
    return names


def _server_prefix(server: str | None) -> str:
    prefix = sanitize_tool_name(server or "")
    return prefix if any(c.isalnum() for c in prefix) else "server"


def _grant(candidates: Mapping[Key, str], exact: set[Key], taken: set[str]) -> dict[Key, str]:
    groups: dict[str, list[Key]] = {}
    for key, name in candidates.items():
        groups.setdefault(name, []).append(key)
    granted: dict[Key, str] = {}
    for name, keys in groups.items():
        if name in taken or len(name) > MAX_TOOL_NAME_LENGTH:
            continue
        if len(keys) == 1:
            granted[keys[0]] = name
            continue
        exact_keys = [k for k in keys if k in exact]
        if len(exact_keys) == 1:
            granted[exact_keys[0]] = name
    return granted

"""The machinery under the MCP types, and the small types every other one uses.

Theory of operation
-------------------
Each type is an :class:`McpType`: a frozen attrs class whose fields carry, in
their metadata, the JSON key they come from (``inputSchema`` for
``input_schema``) and a loader that checks and converts the value. One generic
:meth:`McpType.from_dict` walks those fields, so the rules for a type are
written once, in its field list. Whatever the server sends that a type does
not model lands in :attr:`McpType.extra` and comes back out of
:meth:`McpType.to_dict`: fields added by newer revisions or by extensions are
kept, not dropped.

A value of the wrong JSON type raises :class:`~opex_trio.errors.ProtocolError`
naming the path of the offending field (``ListToolsResult.tools[3].name``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias, TypeVar

import attrs

from ..errors import ProtocolError

__all__ = ["Annotations", "Icon", "Implementation", "McpType", "UnknownContent"]

T = TypeVar("T", bound="McpType")
# Shared by every instance that has no extra members; read-only, so sharing is safe.
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})
Loader: TypeAlias = Callable[[Any, Any], Any]
_MISSING: Any = object()


# -- loaders: check one JSON value and convert it; ``where`` names it in errors.


def _fmt(where: Any) -> str:
    """Spell out a lazily built path: ``("Tool", "name")`` is ``Tool.name``."""
    if isinstance(where, tuple):
        parent, part = where
        return f"{_fmt(parent)}[{part}]" if isinstance(part, int) else f"{_fmt(parent)}.{part}"
    return str(where)


def _fail(where: Any, expected: str, value: Any) -> ProtocolError:
    return ProtocolError(f"{_fmt(where)} must be {expected}, got {type(value).__name__}")


# Paths are passed as nested (parent, key) tuples and only turned into text
# when an error is raised: loading is on the hot path of every tool call.


def _str(value: Any, where: Any) -> str:
    if not isinstance(value, str):
        raise _fail(where, "a string", value)
    return value


def _bool(value: Any, where: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, "a boolean", value)
    return value


def _int(value: Any, where: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(where, "an integer", value)
    return value


def _number(value: Any, where: Any) -> float | int:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _fail(where, "a number", value)
    return value


def _object(value: Any, where: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, "an object", value)
    return value


def _any(value: Any, where: Any) -> Any:
    return value


def _str_or_int(value: Any, where: Any) -> str | int:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise _fail(where, "a string or an integer", value)


def _list_of(item: Loader) -> Loader:
    def load(value: Any, where: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _fail(where, "an array", value)
        return tuple([item(v, (where, i)) for i, v in enumerate(value)])

    return load


def _type(cls: type[McpType]) -> Loader:
    def load(value: Any, where: Any) -> Any:
        return cls.from_dict(value, where)

    return load


# The exact JSON types a simple loader accepts without calling it; anything
# else goes through the loader, which checks properly and raises.
_FAST_TYPES: dict[Loader, frozenset[type]] = {
    _str: frozenset({str}),
    _bool: frozenset({bool}),
    _int: frozenset({int}),
    _number: frozenset({int, float}),
    _object: frozenset({dict}),
}


def _meta(
    key: str, loader: Loader, *, required: bool = False, always: bool = False
) -> dict[str, Any]:
    """Field metadata: the field is read from JSON member ``key`` through ``loader``.

    ``required`` members must be present when loading; ``always`` members are
    written out even when they hold their default.
    """
    return {"key": key, "load": loader, "required": required, "always": required or always}


def _dump(value: Any) -> Any:
    if isinstance(value, McpType | UnknownContent):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_dump(v) for v in value]
    return value


@attrs.frozen
class _Plan:
    """What :meth:`McpType.from_dict` and :meth:`McpType.to_dict` need, computed once per class."""

    # (attribute, key, loader, fast types or None, required)
    load: tuple[tuple[str, str, Loader, frozenset[type] | None, bool], ...]
    # (attribute, key, always, default)
    dump: tuple[tuple[str, str, bool, Any], ...]
    known: frozenset[str]


class McpType:
    """Base of the MCP types: a JSON object with known fields plus :attr:`extra`."""

    __slots__ = ()
    _ignored_keys: ClassVar[frozenset[str]] = frozenset()
    extra: Mapping[str, Any]
    """Members the server sent that this type does not model, kept as they came."""

    @classmethod
    def _plan(cls) -> _Plan:
        plan = cls.__dict__.get("_plan_cache")
        if plan is None:
            fields = [f for f in attrs.fields(cls) if "key" in f.metadata]  # type: ignore[arg-type]
            plan = _Plan(
                load=tuple(
                    (
                        f.name,
                        f.metadata["key"],
                        f.metadata["load"],
                        _FAST_TYPES.get(f.metadata["load"]),
                        f.metadata["required"],
                    )
                    for f in fields
                ),
                dump=tuple(
                    (f.name, f.metadata["key"], f.metadata["always"], f.default) for f in fields
                ),
                known=frozenset(f.metadata["key"] for f in fields) | cls._ignored_keys,
            )
            type.__setattr__(cls, "_plan_cache", plan)
        return plan

    @classmethod
    def from_dict(cls: type[T], data: Any, where: Any = None) -> T:
        """Build the type from a decoded JSON object, or raise :class:`ProtocolError`.

        ``where`` names the object in error messages (the class name by default).
        """
        if where is None:
            where = cls.__name__
        if not isinstance(data, dict):
            raise _fail(where, "an object", data)
        plan = cls._plan()
        kwargs: dict[str, Any] = {}
        for name, key, load, fast, required in plan.load:
            value = data.get(key)
            if value is None:
                if required:
                    raise ProtocolError(f"{_fmt(where)} is missing the required member {key!r}")
                continue
            if fast is not None and type(value) in fast:
                kwargs[name] = value
            else:
                kwargs[name] = load(value, (where, key))
        known = plan.known
        if len(data) > len(kwargs):
            extra = {k: v for k, v in data.items() if k not in known}
            if extra:
                kwargs["extra"] = extra
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The type as a JSON-ready dict, :attr:`extra` included."""
        out: dict[str, Any] = {}
        for name, key, always, default in self._plan().dump:
            value = getattr(self, name)
            if always or (value is not None and value != default):
                out[key] = _dump(value)
        if self.extra:
            for k, v in self.extra.items():
                out.setdefault(k, v)
        return out


@attrs.frozen
class UnknownContent:
    """A content block of a ``type`` this client does not know; ``data`` is the whole block."""

    type: str
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The block as it came."""
        return dict(self.data)


# -- common pieces


@attrs.frozen(slots=False)
class Icon(McpType):
    """An icon a server offers for itself, a tool, a resource or a prompt."""

    src: str = attrs.field(metadata=_meta("src", _str, required=True))
    mime_type: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("mimeType", _str)
    )
    sizes: tuple[str, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("sizes", _list_of(_str))
    )
    theme: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("theme", _str))
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


_icons = _list_of(_type(Icon))


@attrs.frozen(slots=False)
class Implementation(McpType):
    """The name and version of an MCP client or server."""

    name: str = attrs.field(metadata=_meta("name", _str, required=True))
    version: str = attrs.field(metadata=_meta("version", _str, required=True))
    title: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("title", _str))
    description: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("description", _str)
    )
    website_url: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("websiteUrl", _str)
    )
    icons: tuple[Icon, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("icons", _icons)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class Annotations(McpType):
    """Hints about a content block or resource: audience, priority, last change."""

    audience: tuple[str, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("audience", _list_of(_str))
    )
    priority: float | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("priority", _number)
    )
    last_modified: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("lastModified", _str)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


_annotations = _type(Annotations)

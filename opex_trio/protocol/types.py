"""The MCP types a client needs, as frozen attrs classes.

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
Content blocks are told apart by ``type``; an unknown ``type`` becomes an
:class:`UnknownContent` that keeps the whole block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Literal, TypeAlias, TypeVar

import attrs

from ..errors import ProtocolError

__all__ = [
    "Annotations",
    "AudioContent",
    "BlobResourceContents",
    "CallToolResult",
    "CancelledParams",
    "CompleteResult",
    "Completion",
    "ContentBlock",
    "CreateMessageParams",
    "CreateMessageResult",
    "ElicitParams",
    "ElicitResult",
    "EmbeddedResource",
    "GetPromptResult",
    "Icon",
    "ImageContent",
    "Implementation",
    "InitializeResult",
    "ListPromptsResult",
    "ListResourceTemplatesResult",
    "ListResourcesResult",
    "ListRootsResult",
    "ListToolsResult",
    "LoggingMessageParams",
    "McpType",
    "ProgressParams",
    "Prompt",
    "PromptArgument",
    "PromptMessage",
    "ReadResourceResult",
    "Resource",
    "ResourceContents",
    "ResourceLink",
    "ResourceTemplate",
    "ResourceUpdatedParams",
    "Root",
    "SamplingMessage",
    "ServerCapabilities",
    "TextContent",
    "TextResourceContents",
    "Tool",
    "ToolAnnotations",
    "UnknownContent",
    "load_content_block",
]

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


# -- content blocks


class _Block(McpType):
    """Base of content blocks: ``type`` is fixed per class and written first."""

    __slots__ = ()
    type: ClassVar[str]
    _ignored_keys: ClassVar[frozenset[str]] = frozenset({"type"})

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **super().to_dict()}


@attrs.frozen(slots=False)
class TextContent(_Block):
    """Text content."""

    type: ClassVar[Literal["text"]] = "text"
    text: str = attrs.field(metadata=_meta("text", _str, required=True))
    annotations: Annotations | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("annotations", _annotations)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ImageContent(_Block):
    """An image, base64-encoded in ``data``."""

    type: ClassVar[Literal["image"]] = "image"
    data: str = attrs.field(metadata=_meta("data", _str, required=True))
    mime_type: str = attrs.field(metadata=_meta("mimeType", _str, required=True))
    annotations: Annotations | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("annotations", _annotations)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class AudioContent(_Block):
    """Audio, base64-encoded in ``data`` (2025-03-26 and later)."""

    type: ClassVar[Literal["audio"]] = "audio"
    data: str = attrs.field(metadata=_meta("data", _str, required=True))
    mime_type: str = attrs.field(metadata=_meta("mimeType", _str, required=True))
    annotations: Annotations | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("annotations", _annotations)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ResourceLink(_Block):
    """A link to a resource the client may read (2025-06-18 and later)."""

    type: ClassVar[Literal["resource_link"]] = "resource_link"
    uri: str = attrs.field(metadata=_meta("uri", _str, required=True))
    name: str = attrs.field(metadata=_meta("name", _str, required=True))
    title: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("title", _str))
    description: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("description", _str)
    )
    mime_type: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("mimeType", _str)
    )
    size: int | None = attrs.field(default=None, kw_only=True, metadata=_meta("size", _int))
    annotations: Annotations | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("annotations", _annotations)
    )
    icons: tuple[Icon, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("icons", _icons)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class TextResourceContents(McpType):
    """The text contents of a resource."""

    uri: str = attrs.field(metadata=_meta("uri", _str, required=True))
    text: str = attrs.field(metadata=_meta("text", _str, required=True))
    mime_type: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("mimeType", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class BlobResourceContents(McpType):
    """The binary contents of a resource, base64-encoded in ``blob``."""

    uri: str = attrs.field(metadata=_meta("uri", _str, required=True))
    blob: str = attrs.field(metadata=_meta("blob", _str, required=True))
    mime_type: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("mimeType", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


ResourceContents: TypeAlias = TextResourceContents | BlobResourceContents


def _resource_contents(value: Any, where: Any) -> ResourceContents:
    if isinstance(value, dict) and "blob" in value and "text" not in value:
        return BlobResourceContents.from_dict(value, where)
    return TextResourceContents.from_dict(value, where)


@attrs.frozen(slots=False)
class EmbeddedResource(_Block):
    """A resource's contents embedded in a result."""

    type: ClassVar[Literal["resource"]] = "resource"
    resource: ResourceContents = attrs.field(
        metadata=_meta("resource", _resource_contents, required=True)
    )
    annotations: Annotations | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("annotations", _annotations)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen
class UnknownContent:
    """A content block of a ``type`` this client does not know; ``data`` is the whole block."""

    type: str
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The block as it came."""
        return dict(self.data)


ContentBlock: TypeAlias = (
    TextContent | ImageContent | AudioContent | ResourceLink | EmbeddedResource | UnknownContent
)

_CONTENT_TYPES: dict[str, type[McpType]] = {
    "text": TextContent,
    "image": ImageContent,
    "audio": AudioContent,
    "resource_link": ResourceLink,
    "resource": EmbeddedResource,
}


def load_content_block(value: Any, where: Any = "content") -> ContentBlock:
    """Parse one content block, keeping blocks of unknown ``type`` as :class:`UnknownContent`."""
    if not isinstance(value, dict):
        raise _fail(where, "an object", value)
    kind = value.get("type")
    if not isinstance(kind, str):
        raise _fail((where, "type"), "a string", kind)
    if kind == "text" and len(value) == 2 and type(value.get("text")) is str:
        # The most common block by far, built without the generic walk.
        return TextContent(value["text"])
    cls = _CONTENT_TYPES.get(kind)
    if cls is None:
        return UnknownContent(kind, value)
    out: ContentBlock = cls.from_dict(value, where)  # type: ignore[assignment]
    return out


_content_list = _list_of(load_content_block)


def _content_one_or_many(value: Any, where: Any) -> ContentBlock | tuple[ContentBlock, ...]:
    # Sampling messages carry one block in older revisions and a list since 2025-11-25.
    if isinstance(value, list):
        return _content_list(value, where)  # type: ignore[no-any-return]
    return load_content_block(value, where)


# -- tools


@attrs.frozen(slots=False)
class ToolAnnotations(McpType):
    """Hints about a tool's behaviour. They are hints from the server, not guarantees."""

    title: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("title", _str))
    read_only_hint: bool | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("readOnlyHint", _bool)
    )
    destructive_hint: bool | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("destructiveHint", _bool)
    )
    idempotent_hint: bool | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("idempotentHint", _bool)
    )
    open_world_hint: bool | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("openWorldHint", _bool)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class Tool(McpType):
    """A tool a server offers."""

    name: str = attrs.field(metadata=_meta("name", _str, required=True))
    input_schema: Mapping[str, Any] = attrs.field(
        metadata=_meta("inputSchema", _object, required=True)
    )
    title: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("title", _str))
    description: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("description", _str)
    )
    output_schema: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("outputSchema", _object)
    )
    annotations: ToolAnnotations | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("annotations", _type(ToolAnnotations))
    )
    icons: tuple[Icon, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("icons", _icons)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)

    @property
    def display_name(self) -> str:
        """The name to show a person: ``title``, then ``annotations.title``, then ``name``."""
        if self.title:
            return self.title
        if self.annotations is not None and self.annotations.title:
            return self.annotations.title
        return self.name

    @property
    def read_only(self) -> bool:
        """Whether the server marks the tool read-only (safe to re-send after a crash)."""
        return bool(self.annotations and self.annotations.read_only_hint)

    @property
    def idempotent(self) -> bool:
        """Whether the server marks the tool idempotent (or read-only, which implies it)."""
        return self.read_only or bool(self.annotations and self.annotations.idempotent_hint)

    @property
    def task_support(self) -> str:
        """How the tool runs as a task (``execution.taskSupport``).

        ``"forbidden"`` (when the server says nothing), ``"optional"`` or ``"required"``.
        """
        execution = self.extra.get("execution")
        support = execution.get("taskSupport") if isinstance(execution, Mapping) else None
        return support if isinstance(support, str) else "forbidden"


@attrs.frozen(slots=False)
class ListToolsResult(McpType):
    """One page of ``tools/list``."""

    tools: tuple[Tool, ...] = attrs.field(
        metadata=_meta("tools", _list_of(_type(Tool)), required=True)
    )
    next_cursor: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("nextCursor", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class CallToolResult(McpType):
    """The result of ``tools/call``; ``is_error`` means the tool itself failed."""

    content: tuple[ContentBlock, ...] = attrs.field(
        default=(), kw_only=True, metadata=_meta("content", _content_list, always=True)
    )
    structured_content: Any = attrs.field(
        default=None, kw_only=True, metadata=_meta("structuredContent", _any)
    )
    is_error: bool = attrs.field(default=False, kw_only=True, metadata=_meta("isError", _bool))
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)

    @classmethod
    def from_dict(cls, data: Any, where: Any = None) -> CallToolResult:
        """Build the result from its JSON object, or raise :class:`ProtocolError`."""
        # The answer of nearly every tool call is text blocks and maybe
        # isError: built directly, it costs a fraction of the general walk.
        if type(data) is dict and _PLAIN_RESULT_KEYS.issuperset(data):
            content = data.get("content")
            is_error = data.get("isError", False)
            if type(content) is list and type(is_error) is bool:
                blocks = []
                for block in content:
                    if (
                        type(block) is not dict
                        or len(block) != 2
                        or block.get("type") != "text"
                        or type(block.get("text")) is not str
                    ):
                        break
                    blocks.append(TextContent(block["text"]))
                else:
                    return cls(content=tuple(blocks), is_error=is_error)
        return super().from_dict(data, where)

    @property
    def text(self) -> str:
        """The text blocks joined with newlines (empty when there are none)."""
        return "\n".join(b.text for b in self.content if isinstance(b, TextContent))


_PLAIN_RESULT_KEYS = frozenset({"content", "isError"})

# -- resources


@attrs.frozen(slots=False)
class Resource(McpType):
    """A resource a server offers."""

    uri: str = attrs.field(metadata=_meta("uri", _str, required=True))
    name: str = attrs.field(metadata=_meta("name", _str, required=True))
    title: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("title", _str))
    description: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("description", _str)
    )
    mime_type: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("mimeType", _str)
    )
    size: int | None = attrs.field(default=None, kw_only=True, metadata=_meta("size", _int))
    annotations: Annotations | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("annotations", _annotations)
    )
    icons: tuple[Icon, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("icons", _icons)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ResourceTemplate(McpType):
    """A parameterised resource URI (RFC 6570 template)."""

    uri_template: str = attrs.field(metadata=_meta("uriTemplate", _str, required=True))
    name: str = attrs.field(metadata=_meta("name", _str, required=True))
    title: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("title", _str))
    description: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("description", _str)
    )
    mime_type: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("mimeType", _str)
    )
    annotations: Annotations | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("annotations", _annotations)
    )
    icons: tuple[Icon, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("icons", _icons)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ListResourcesResult(McpType):
    """One page of ``resources/list``."""

    resources: tuple[Resource, ...] = attrs.field(
        metadata=_meta("resources", _list_of(_type(Resource)), required=True)
    )
    next_cursor: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("nextCursor", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ListResourceTemplatesResult(McpType):
    """One page of ``resources/templates/list``."""

    resource_templates: tuple[ResourceTemplate, ...] = attrs.field(
        metadata=_meta("resourceTemplates", _list_of(_type(ResourceTemplate)), required=True)
    )
    next_cursor: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("nextCursor", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ReadResourceResult(McpType):
    """The result of ``resources/read``."""

    contents: tuple[ResourceContents, ...] = attrs.field(
        metadata=_meta("contents", _list_of(_resource_contents), required=True)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ResourceUpdatedParams(McpType):
    """Params of ``notifications/resources/updated``."""

    uri: str = attrs.field(metadata=_meta("uri", _str, required=True))
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


# -- prompts


@attrs.frozen(slots=False)
class PromptArgument(McpType):
    """An argument a prompt accepts."""

    name: str = attrs.field(metadata=_meta("name", _str, required=True))
    title: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("title", _str))
    description: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("description", _str)
    )
    required: bool | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("required", _bool)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class Prompt(McpType):
    """A prompt template a server offers."""

    name: str = attrs.field(metadata=_meta("name", _str, required=True))
    title: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("title", _str))
    description: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("description", _str)
    )
    arguments: tuple[PromptArgument, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("arguments", _list_of(_type(PromptArgument)))
    )
    icons: tuple[Icon, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("icons", _icons)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ListPromptsResult(McpType):
    """One page of ``prompts/list``."""

    prompts: tuple[Prompt, ...] = attrs.field(
        metadata=_meta("prompts", _list_of(_type(Prompt)), required=True)
    )
    next_cursor: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("nextCursor", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class PromptMessage(McpType):
    """One message of a rendered prompt."""

    role: str = attrs.field(metadata=_meta("role", _str, required=True))
    content: ContentBlock = attrs.field(
        metadata=_meta("content", load_content_block, required=True)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class GetPromptResult(McpType):
    """The result of ``prompts/get``."""

    messages: tuple[PromptMessage, ...] = attrs.field(
        metadata=_meta("messages", _list_of(_type(PromptMessage)), required=True)
    )
    description: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("description", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


# -- completion


@attrs.frozen(slots=False)
class Completion(McpType):
    """Completion values for a prompt or resource-template argument."""

    values: tuple[str, ...] = attrs.field(metadata=_meta("values", _list_of(_str), required=True))
    total: int | None = attrs.field(default=None, kw_only=True, metadata=_meta("total", _int))
    has_more: bool | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("hasMore", _bool)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class CompleteResult(McpType):
    """The result of ``completion/complete``."""

    completion: Completion = attrs.field(
        metadata=_meta("completion", _type(Completion), required=True)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


# -- lifecycle


@attrs.frozen(slots=False)
class ServerCapabilities(McpType):
    """What a server declared it can do. Each member is its settings object, or ``None``."""

    experimental: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("experimental", _object)
    )
    logging: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("logging", _object)
    )
    completions: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("completions", _object)
    )
    prompts: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("prompts", _object)
    )
    resources: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("resources", _object)
    )
    tools: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("tools", _object)
    )
    tasks: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("tasks", _object)
    )
    extensions: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("extensions", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)

    def list_changed(self, kind: Literal["tools", "resources", "prompts"]) -> bool:
        """Whether the server said it sends ``notifications/<kind>/list_changed``."""
        section = getattr(self, kind)
        return bool(section and section.get("listChanged"))


@attrs.frozen(slots=False)
class InitializeResult(McpType):
    """The server's answer to ``initialize``."""

    protocol_version: str = attrs.field(metadata=_meta("protocolVersion", _str, required=True))
    capabilities: ServerCapabilities = attrs.field(
        metadata=_meta("capabilities", _type(ServerCapabilities), required=True)
    )
    server_info: Implementation = attrs.field(
        metadata=_meta("serverInfo", _type(Implementation), required=True)
    )
    instructions: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("instructions", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


# -- notifications


@attrs.frozen(slots=False)
class ProgressParams(McpType):
    """Params of ``notifications/progress``."""

    progress_token: str | int = attrs.field(
        metadata=_meta("progressToken", _str_or_int, required=True)
    )
    progress: float = attrs.field(metadata=_meta("progress", _number, required=True))
    total: float | None = attrs.field(default=None, kw_only=True, metadata=_meta("total", _number))
    message: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("message", _str))
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class LoggingMessageParams(McpType):
    """Params of ``notifications/message``: a log record from the server."""

    level: str = attrs.field(metadata=_meta("level", _str, required=True))
    data: Any = attrs.field(metadata=_meta("data", _any, required=True))
    logger: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("logger", _str))
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class CancelledParams(McpType):
    """Params of ``notifications/cancelled``."""

    request_id: str | int | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("requestId", _str_or_int)
    )
    reason: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("reason", _str))
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


# -- server-to-client requests


@attrs.frozen(slots=False)
class Root(McpType):
    """A root (a directory or file URI) the client exposes to the server."""

    uri: str = attrs.field(metadata=_meta("uri", _str, required=True))
    name: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("name", _str))
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ListRootsResult(McpType):
    """The client's answer to ``roots/list``."""

    roots: tuple[Root, ...] = attrs.field(
        metadata=_meta("roots", _list_of(_type(Root)), required=True)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class SamplingMessage(McpType):
    """One message of a sampling request: one content block, or several since 2025-11-25."""

    role: str = attrs.field(metadata=_meta("role", _str, required=True))
    content: ContentBlock | tuple[ContentBlock, ...] = attrs.field(
        metadata=_meta("content", _content_one_or_many, required=True)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class CreateMessageParams(McpType):
    """Params of ``sampling/createMessage``: the server asks the client's model to answer."""

    messages: tuple[SamplingMessage, ...] = attrs.field(
        metadata=_meta("messages", _list_of(_type(SamplingMessage)), required=True)
    )
    max_tokens: int = attrs.field(metadata=_meta("maxTokens", _int, required=True))
    system_prompt: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("systemPrompt", _str)
    )
    include_context: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("includeContext", _str)
    )
    temperature: float | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("temperature", _number)
    )
    stop_sequences: tuple[str, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("stopSequences", _list_of(_str))
    )
    metadata: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("metadata", _object)
    )
    model_preferences: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("modelPreferences", _object)
    )
    tools: tuple[Any, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("tools", _list_of(_object))
    )
    tool_choice: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("toolChoice", _object)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class CreateMessageResult(McpType):
    """The client's answer to ``sampling/createMessage``."""

    role: str = attrs.field(metadata=_meta("role", _str, required=True))
    content: ContentBlock | tuple[ContentBlock, ...] = attrs.field(
        metadata=_meta("content", _content_one_or_many, required=True)
    )
    model: str = attrs.field(metadata=_meta("model", _str, required=True))
    stop_reason: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("stopReason", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ElicitParams(McpType):
    """Params of ``elicitation/create``: the server asks the user for input."""

    message: str = attrs.field(metadata=_meta("message", _str, required=True))
    requested_schema: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("requestedSchema", _object)
    )
    mode: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("mode", _str))
    url: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("url", _str))
    elicitation_id: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("elicitationId", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ElicitResult(McpType):
    """The client's answer to ``elicitation/create``: ``accept``, ``decline`` or ``cancel``."""

    action: str = attrs.field(metadata=_meta("action", _str, required=True))
    content: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("content", _object)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


def dump_sequence(items: Sequence[McpType]) -> list[dict[str, Any]]:
    """Dump several types to JSON-ready dicts."""
    return [item.to_dict() for item in items]

"""Content blocks (text, image, audio, resource links, embedded resources) and resource contents.

Blocks are told apart by ``type``; an unknown ``type`` becomes an
:class:`~._model.UnknownContent` that keeps the whole block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeAlias

import attrs

from ._model import (
    _NO_EXTRA,
    Annotations,
    Icon,
    McpType,
    UnknownContent,
    _annotations,
    _bool,
    _fail,
    _icons,
    _int,
    _list_of,
    _meta,
    _object,
    _str,
)

__all__ = [
    "AudioContent",
    "BlobResourceContents",
    "ContentBlock",
    "EmbeddedResource",
    "ImageContent",
    "ResourceContents",
    "ResourceLink",
    "SamplingContent",
    "TextContent",
    "TextResourceContents",
    "ToolResultContent",
    "ToolUseContent",
    "load_content_block",
    "load_sampling_block",
]

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
"""The contents of a resource: text or a base64 blob."""


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


ContentBlock: TypeAlias = (
    TextContent | ImageContent | AudioContent | ResourceLink | EmbeddedResource | UnknownContent
)
"""Any content block of a tool result, prompt message or sampling message."""

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


# -- the blocks of sampling messages (2025-11-25 and later)


@attrs.frozen(slots=False)
class ToolUseContent(_Block):
    """The model asks to call a tool: in a sampling result, or in a history sent back."""

    type: ClassVar[Literal["tool_use"]] = "tool_use"
    id: str = attrs.field(metadata=_meta("id", _str, required=True))
    name: str = attrs.field(metadata=_meta("name", _str, required=True))
    input: Mapping[str, Any] = attrs.field(metadata=_meta("input", _object, required=True))
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ToolResultContent(_Block):
    """What a tool the model asked for returned, matched to its :class:`ToolUseContent` by id."""

    type: ClassVar[Literal["tool_result"]] = "tool_result"
    tool_use_id: str = attrs.field(metadata=_meta("toolUseId", _str, required=True))
    content: tuple[ContentBlock, ...] = attrs.field(
        default=(), metadata=_meta("content", _content_list, required=True, always=True)
    )
    structured_content: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("structuredContent", _object)
    )
    is_error: bool | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("isError", _bool)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


SamplingContent: TypeAlias = ContentBlock | ToolUseContent | ToolResultContent
"""A block of a sampling message: text, image or audio, a tool use, or a tool result."""

_SAMPLING_TYPES: dict[str, type[McpType]] = {
    "tool_use": ToolUseContent,
    "tool_result": ToolResultContent,
}


def load_sampling_block(value: Any, where: Any = "content") -> SamplingContent:
    """Parse one block of a sampling message (tool uses and results included)."""
    kind = value.get("type") if isinstance(value, dict) else None
    cls = _SAMPLING_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return load_content_block(value, where)
    out: SamplingContent = cls.from_dict(value, where)  # type: ignore[assignment]
    return out


_sampling_list = _list_of(load_sampling_block)


def _content_one_or_many(value: Any, where: Any) -> SamplingContent | tuple[SamplingContent, ...]:
    # Sampling messages carry one block in older revisions and a list since 2025-11-25.
    if isinstance(value, list):
        return _sampling_list(value, where)  # type: ignore[no-any-return]
    return load_sampling_block(value, where)

"""The MCP types a client needs, as frozen attrs classes.

Every type here is an :class:`McpType` (see :mod:`._model` for how loading
and dumping work, and :mod:`.content` for the content blocks): a frozen attrs
class built with :meth:`McpType.from_dict`, which keeps what it does not model
in :attr:`McpType.extra`, and written back with :meth:`McpType.to_dict`. This
module re-exports the content types so that one import serves a caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from ._model import (
    _NO_EXTRA,
    Annotations,
    Icon,
    Implementation,
    McpType,
    UnknownContent,
    _annotations,
    _any,
    _bool,
    _icons,
    _int,
    _list_of,
    _meta,
    _number,
    _object,
    _str,
    _str_or_int,
    _type,
)
from .client_features import (
    CreateMessageParams,
    CreateMessageResult,
    ElicitParams,
    ElicitResult,
    ListRootsResult,
    Root,
    SamplingMessage,
    blocks_of,
    sampling_problem,
)
from .content import (
    AudioContent,
    BlobResourceContents,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceContents,
    ResourceLink,
    SamplingContent,
    TextContent,
    TextResourceContents,
    ToolResultContent,
    ToolUseContent,
    _content_list,
    _resource_contents,
    load_content_block,
)

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
    "SamplingContent",
    "SamplingMessage",
    "ServerCapabilities",
    "TextContent",
    "TextResourceContents",
    "Tool",
    "ToolAnnotations",
    "ToolResultContent",
    "ToolUseContent",
    "UnknownContent",
    "blocks_of",
    "load_content_block",
    "sampling_problem",
]

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


def dump_sequence(items: Sequence[McpType]) -> list[dict[str, Any]]:
    """Dump several types to JSON-ready dicts."""
    return [item.to_dict() for item in items]

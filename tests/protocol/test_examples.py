"""Every example message of the 2026-07-28 specification decodes with our types."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opex_trio.errors import McpError
from opex_trio.protocol import jsonrpc
from opex_trio.protocol import types as T
from opex_trio.protocol.events import (
    CancelledByServer,
    ListChanged,
    LogReceived,
    ProgressReceived,
    ResourceUpdated,
    SubscriptionAcknowledged,
    notification_event,
)
from opex_trio.protocol.jsonrpc import ErrorResponse, Notification, Request, Response
from opex_trio.protocol.modern import (
    DiscoverResult,
    InputRequired,
    SubscriptionFilter,
    result_type,
)

from .test_types import EXAMPLE_TYPES


def _type(cls: type[T.McpType]) -> Callable[[Any], Any]:
    def load(data: Any) -> Any:
        loaded = cls.from_dict(data)
        assert isinstance(loaded, cls)
        return loaded

    return load


def _in_elicitation(schema: Any) -> T.ElicitParams:
    # Elicitation field schemas only travel inside requestedSchema.
    params = {"message": "m", "requestedSchema": {"type": "object", "properties": {"f": schema}}}
    loaded = T.ElicitParams.from_dict(params)
    assert loaded.requested_schema is not None
    assert loaded.requested_schema["properties"]["f"] == schema
    return loaded


def _input_requests(data: Any) -> InputRequired:
    asked = InputRequired.of({"resultType": "input_required", "inputRequests": data})
    assert [r.key for r in asked.input_requests] == list(data)
    return asked


def _input_responses(data: Any) -> None:
    loaders: dict[str, type[T.McpType]] = {
        "action": T.ElicitResult,
        "role": T.CreateMessageResult,
        "roots": T.ListRootsResult,
    }
    for value in data.values():
        (kind,) = [cls for key, cls in loaders.items() if key in value]
        kind.from_dict(value)


def _input_required(data: Any) -> InputRequired:
    assert result_type(data) == "input_required"
    return InputRequired.of(data)


def _discover(data: Any) -> DiscoverResult:
    loaded = DiscoverResult.from_dict(data)
    assert loaded.supported_versions and loaded.server_info is not None
    return loaded


_NOTIFICATION_EVENTS = {
    "notifications/cancelled": CancelledByServer,
    "notifications/message": LogReceived,
    "notifications/progress": ProgressReceived,
    "notifications/prompts/list_changed": ListChanged,
    "notifications/tools/list_changed": ListChanged,
    "notifications/resources/list_changed": ListChanged,
    "notifications/resources/updated": ResourceUpdated,
    "notifications/subscriptions/acknowledged": SubscriptionAcknowledged,
}

# Results inside response envelopes, by the folder's type name.
_RESULTS: dict[str, Callable[[Any], Any]] = {
    "CallToolResultResponse": _type(T.CallToolResult),
    "CompleteResultResponse": _type(T.CompleteResult),
    "DiscoverResultResponse": _discover,
    "GetPromptResultResponse": _type(T.GetPromptResult),
    "ListPromptsResultResponse": _type(T.ListPromptsResult),
    "ListResourceTemplatesResultResponse": _type(T.ListResourceTemplatesResult),
    "ListResourcesResultResponse": _type(T.ListResourcesResult),
    "ListToolsResultResponse": _type(T.ListToolsResult),
    "ReadResourceResultResponse": _type(T.ReadResourceResult),
    "SubscriptionsListenResultResponse": lambda r: result_type(r) == "complete",
}

# Bare objects (no JSON-RPC envelope), by folder.
_OBJECTS: dict[str, Callable[[Any], Any]] = {
    **{folder: _type(cls) for folder, cls in EXAMPLE_TYPES.items()},
    "AudioContent": T.load_content_block,
    "ToolUseContent": T.load_content_block,
    "ToolResultContent": T.load_content_block,
    "Tool": _type(T.Tool),
    "Root": _type(T.Root),
    "ListResourceTemplatesResult": _type(T.ListResourceTemplatesResult),
    "SubscriptionsListenResult": lambda r: result_type(r) == "complete",
    "ElicitResult": _type(T.ElicitResult),
    "ElicitRequestURLParams": _type(T.ElicitParams),
    "LoggingMessageNotificationParams": _type(T.LoggingMessageParams),
    "ResourceUpdatedNotificationParams": _type(T.ResourceUpdatedParams),
    "ServerCapabilities": _type(T.ServerCapabilities),
    "DiscoverResult": _discover,
    "InputRequiredResult": _input_required,
    "InputRequests": _input_requests,
    "InputResponses": _input_responses,
    "BooleanSchema": _in_elicitation,
    "NumberSchema": _in_elicitation,
    "StringSchema": _in_elicitation,
    "TitledMultiSelectEnumSchema": _in_elicitation,
    "TitledSingleSelectEnumSchema": _in_elicitation,
    "UntitledMultiSelectEnumSchema": _in_elicitation,
    "UntitledSingleSelectEnumSchema": _in_elicitation,
    "ModelPreferences": lambda d: T.CreateMessageParams.from_dict(
        {"messages": [], "maxTokens": 1, "modelPreferences": d}
    ),
    # What the client sends: the params of its own requests and its capabilities.
    "CallToolRequestParams": lambda d: Request(1, "tools/call", d).to_dict(),
    "CompleteRequestParams": lambda d: Request(1, "completion/complete", d).to_dict(),
    "GetPromptRequestParams": lambda d: Request(1, "prompts/get", d).to_dict(),
    "PaginatedRequestParams": lambda d: Request(1, "tools/list", d).to_dict(),
    "ClientCapabilities": lambda d: SubscriptionFilter.of(d) is not None,
}


_INPUT_PARAMS: dict[str, type[T.McpType] | None] = {
    "sampling/createMessage": T.CreateMessageParams,
    "elicitation/create": T.ElicitParams,
    "roots/list": None,
}


_TYPED_ERRORS = {
    "HeaderMismatchError",
    "MissingRequiredClientCapabilityError",
    "UnsupportedProtocolVersionError",
}


def _decode(folder: str, data: Any) -> None:
    if not (isinstance(data, dict) and data.get("jsonrpc") == "2.0"):
        if isinstance(data, dict) and isinstance(data.get("method"), str):
            # A request a modern server embeds in inputRequests.
            (item,) = _input_requests({"key": data}).input_requests
            cls = _INPUT_PARAMS[item.method]
            if cls is not None:
                cls.from_dict(dict(item.params))
            return
        if folder.endswith("Error"):
            # A bare error object, as it sits inside an error response.
            (message,) = jsonrpc.decode(json.dumps({"jsonrpc": "2.0", "id": 1, "error": data}))
            assert isinstance(message, ErrorResponse), (folder, message)
            assert McpError.received(data["code"], data["message"]).code == data["code"]
            return
        _OBJECTS[folder](data)
        return
    (message,) = jsonrpc.decode(json.dumps(data))
    assert not isinstance(message, Exception), (folder, message)
    if isinstance(message, Response):
        _RESULTS[folder](dict(message.result))
    elif isinstance(message, ErrorResponse):
        error = McpError.received(message.error.code, message.error.message, message.error.data)
        if folder in _TYPED_ERRORS:
            assert type(error).__name__ == folder
        else:
            assert type(error) is McpError
    elif isinstance(message, Notification):
        event = notification_event(message)
        assert isinstance(event, _NOTIFICATION_EVENTS[message.method]), (folder, event)
    else:
        assert isinstance(message, Request) and message.method


def test_every_specification_example_decodes(mcp_spec: Path) -> None:
    root = mcp_spec / "schema" / "2026-07-28" / "examples"
    files = sorted(root.glob("*/*.json"))
    for path in files:
        _decode(path.parent.name, json.loads(path.read_text()))
    assert len(files) >= 129

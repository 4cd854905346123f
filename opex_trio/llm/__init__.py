"""The OpenAI-compatible chat completion client: requests, retries, streaming and typed results.

This layer knows nothing of MCP; it imports only httpx2, trio, attrs and the
shared error tree and telemetry. :mod:`opex_trio.llm.local` starts the
embedded model (an optional extra) as a local OpenAI-compatible server.
"""

from .client import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from .client import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from .client import ChatStream as ChatStream
from .client import Client as Client
from .client import EventHook as EventHook
from .retry import RetryKind as RetryKind
from .retry import RetryPolicy as RetryPolicy
from .retry import parse_retry_after as parse_retry_after
from .types import ChatCompletion as ChatCompletion
from .types import Choice as Choice
from .types import ContentDelta as ContentDelta
from .types import FinishEvent as FinishEvent
from .types import FunctionCall as FunctionCall
from .types import Message as Message
from .types import ReasoningDelta as ReasoningDelta
from .types import StreamEvent as StreamEvent
from .types import ToolCall as ToolCall
from .types import ToolCallDelta as ToolCallDelta
from .types import Usage as Usage
from .types import UsageEvent as UsageEvent

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "ChatCompletion",
    "ChatStream",
    "Choice",
    "Client",
    "ContentDelta",
    "EventHook",
    "FinishEvent",
    "FunctionCall",
    "Message",
    "ReasoningDelta",
    "RetryKind",
    "RetryPolicy",
    "StreamEvent",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "UsageEvent",
    "parse_retry_after",
]

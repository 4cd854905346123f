"""opex_trio: a Trio-native agentic LLM toolkit.

An OpenAI-compatible chat client with retries and streaming, MCP clients over
stdio, Streamable HTTP, HTTP+SSE and WebSocket, a tool-calling chat loop with
hooks, and a supervised session manager for many MCP servers::

    import trio
    import opex_trio as opex

    async def main() -> None:
        async with opex.Client(api_key) as client, opex.SessionManager() as mcp:
            await mcp.add_server({"command": "uvx", "args": ["mcp-server-time"]}, name="time")
            chat = opex.Chat(client, mcp=mcp)
            result = await chat.chat(model="openai/gpt-4o-mini",
                                     messages=[{"role": "user", "content": "What time is it?"}])

This module only re-exports; every name lives in its layer.
"""

from . import errors as errors
from . import supervision as supervision
from . import telemetry as telemetry
from ._version import __version__ as __version__
from .agent.chat import Chat as Chat
from .agent.chat import ChatEvent as ChatEvent
from .agent.chat import ChatFinished as ChatFinished
from .agent.chat import ChatResult as ChatResult
from .agent.chat import TextDelta as TextDelta
from .agent.chat import ToolFinished as ToolFinished
from .agent.chat import ToolProgress as ToolProgress
from .agent.chat import ToolResult as ToolResult
from .agent.chat import ToolStarted as ToolStarted
from .agent.chat import TurnFinished as TurnFinished
from .agent.hooks import NOT_MINE as NOT_MINE
from .agent.hooks import Approve as Approve
from .agent.hooks import Continue as Continue
from .agent.hooks import Deny as Deny
from .agent.hooks import NotMine as NotMine
from .agent.hooks import Rewrite as Rewrite
from .agent.hooks import Stop as Stop
from .agent.sampling import sampling_handler as sampling_handler
from .agent.tools import ToolIndex as ToolIndex
from .agent.tools import ToolRef as ToolRef
from .agent.tools import make_strict as make_strict
from .agent.tools import mcp_tool_to_openai as mcp_tool_to_openai
from .agent.tools import normalize_schema as normalize_schema
from .agent.tools import openai_tool_to_mcp as openai_tool_to_mcp
from .errors import APIConnectionError as APIConnectionError
from .errors import APIStatusError as APIStatusError
from .errors import APITimeoutError as APITimeoutError
from .errors import AuthenticationError as AuthenticationError
from .errors import AuthorizationError as AuthorizationError
from .errors import ConfigError as ConfigError
from .errors import LLMError as LLMError
from .errors import McpError as McpError
from .errors import OpexError as OpexError
from .errors import ProtocolError as ProtocolError
from .errors import RateLimitError as RateLimitError
from .errors import RequestTimeoutError as RequestTimeoutError
from .errors import ServerExitedError as ServerExitedError
from .errors import ServerUnavailableError as ServerUnavailableError
from .errors import StreamError as StreamError
from .errors import SupervisionError as SupervisionError
from .errors import TransportBrokenError as TransportBrokenError
from .errors import TransportClosedError as TransportClosedError
from .errors import TransportError as TransportError
from .errors import UnknownToolError as UnknownToolError
from .errors import UsageError as UsageError
from .llm import ChatCompletion as ChatCompletion
from .llm import ChatStream as ChatStream
from .llm import Choice as Choice
from .llm import Client as Client
from .llm import ContentDelta as ContentDelta
from .llm import FinishEvent as FinishEvent
from .llm import FunctionCall as FunctionCall
from .llm import Message as Message
from .llm import ReasoningDelta as ReasoningDelta
from .llm import RetryPolicy as RetryPolicy
from .llm import StreamEvent as StreamEvent
from .llm import ToolCall as ToolCall
from .llm import ToolCallDelta as ToolCallDelta
from .llm import Usage as Usage
from .llm import UsageEvent as UsageEvent
from .mcp.client import ClientOptions as ClientOptions
from .mcp.client import McpClient as McpClient
from .mcp.config import from_config as from_config
from .mcp.config import load_config as load_config
from .mcp.config import parse_server as parse_server
from .mcp.config import server_id as server_id
from .mcp.manager import HealthCheck as HealthCheck
from .mcp.manager import RegisteredTool as RegisteredTool
from .mcp.manager import ServerOptions as ServerOptions
from .mcp.manager import ServerStatus as ServerStatus
from .mcp.manager import SessionManager as SessionManager
from .protocol.types import Tool as Tool
from .supervision import ChildHandle as ChildHandle
from .supervision import RestartPolicy as RestartPolicy
from .supervision import Supervisor as Supervisor
from .transports.http import HttpParameters as HttpParameters
from .transports.stdio import StdioParameters as StdioParameters
from .transports.websocket import WebSocketParameters as WebSocketParameters

__all__ = [
    "NOT_MINE",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Approve",
    "AuthenticationError",
    "AuthorizationError",
    "Chat",
    "ChatCompletion",
    "ChatEvent",
    "ChatFinished",
    "ChatResult",
    "ChatStream",
    "ChildHandle",
    "Choice",
    "Client",
    "ClientOptions",
    "ConfigError",
    "ContentDelta",
    "Continue",
    "Deny",
    "FinishEvent",
    "FunctionCall",
    "HealthCheck",
    "HttpParameters",
    "LLMError",
    "McpClient",
    "McpError",
    "Message",
    "NotMine",
    "OpexError",
    "ProtocolError",
    "RateLimitError",
    "ReasoningDelta",
    "RegisteredTool",
    "RequestTimeoutError",
    "RestartPolicy",
    "RetryPolicy",
    "Rewrite",
    "ServerExitedError",
    "ServerOptions",
    "ServerStatus",
    "ServerUnavailableError",
    "SessionManager",
    "StdioParameters",
    "Stop",
    "StreamError",
    "StreamEvent",
    "SupervisionError",
    "Supervisor",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolFinished",
    "ToolIndex",
    "ToolProgress",
    "ToolRef",
    "ToolResult",
    "ToolStarted",
    "TransportBrokenError",
    "TransportClosedError",
    "TransportError",
    "TurnFinished",
    "UnknownToolError",
    "Usage",
    "UsageError",
    "UsageEvent",
    "WebSocketParameters",
    "__version__",
    "errors",
    "from_config",
    "load_config",
    "make_strict",
    "mcp_tool_to_openai",
    "normalize_schema",
    "openai_tool_to_mcp",
    "parse_server",
    "sampling_handler",
    "server_id",
    "supervision",
    "telemetry",
]

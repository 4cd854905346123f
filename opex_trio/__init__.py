"""opex_trio: a Trio-native agentic LLM toolkit.

An OpenAI-compatible chat client with retries and streaming, MCP clients over
stdio, Streamable HTTP, HTTP+SSE and WebSocket, a tool-calling chat loop with
hooks, and a supervised session manager for many MCP servers.

This module only re-exports; every name lives in its layer.
"""

from . import errors as errors
from . import telemetry as telemetry
from ._version import __version__ as __version__
from .errors import ConfigError as ConfigError
from .errors import McpError as McpError
from .errors import OpexError as OpexError

__all__ = [
    "ConfigError",
    "McpError",
    "OpexError",
    "__version__",
    "errors",
    "telemetry",
]

"""A small FastMCP 4 server over Streamable HTTP, as an interop peer (run with the peers venv).

It binds a free port on 127.0.0.1 itself and prints ``listening on <url>`` first.
Tool: ``multiply(a, b)``.
"""

from __future__ import annotations

import importlib
import socket
import sys
from typing import Any


def main() -> int:
    """Serve until killed."""
    fastmcp: Any = importlib.import_module("fastmcp")
    uvicorn: Any = importlib.import_module("uvicorn")
    app = fastmcp.FastMCP("opex-trio-fastmcp-peer")

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    app.tool(multiply)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}/mcp", flush=True)
    config = uvicorn.Config(app.http_app(path="/mcp"), log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())

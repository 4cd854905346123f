"""A minimal hand-written MCP server over stdio, the peer of the stdio benchmark.

It answers initialize (legacy era), server/discover (modern era), tools/list
and tools/call for two tools: ``echo``
(answers at once) and ``sleep`` (answers after ``seconds``, from a timer
thread). It reads what stdin has, answers every complete line, then writes all
answers in one go, so the server's own cost stays small and equal for every
client measured against it.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

TOOLS = [
    {
        "name": "echo",
        "description": "Return the message",
        "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}},
    },
    {
        "name": "sleep",
        "description": "Wait, then answer",
        "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}},
    },
]

_write_lock = threading.Lock()


def _write(data: bytes) -> None:
    with _write_lock:
        view = memoryview(data)
        while view:
            written = os.write(1, view)
            view = view[written:]


def _result(rid: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode() + b"\n"


def _handle(message: dict[str, Any], out: list[bytes]) -> None:
    method = message.get("method")
    rid = message.get("id")
    if rid is None:
        return
    if method == "initialize":
        version = message.get("params", {}).get("protocolVersion", "2025-06-18")
        out.append(
            _result(
                rid,
                {
                    "protocolVersion": version,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "bench-echo", "version": "1"},
                },
            )
        )
    elif method == "server/discover":
        out.append(
            _result(
                rid,
                {
                    "supportedVersions": ["2026-07-28"],
                    "capabilities": {"tools": {}},
                    "_meta": {
                        "io.modelcontextprotocol/serverInfo": {"name": "bench-echo", "version": "1"}
                    },
                },
            )
        )
    elif method == "tools/list":
        out.append(_result(rid, {"tools": TOOLS}))
    elif method == "tools/call":
        params = message.get("params", {})
        arguments = params.get("arguments") or {}
        if params.get("name") == "sleep":
            reply = _result(rid, {"content": [{"type": "text", "text": "slept"}]})
            threading.Timer(float(arguments.get("seconds", 0)), _write, (reply,)).start()
        else:
            text = str(arguments.get("message", ""))
            out.append(
                _result(rid, {"content": [{"type": "text", "text": text}], "isError": False})
            )
    elif method == "ping":
        out.append(_result(rid, {}))
    else:
        out.append(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "error": {"code": -32601, "message": "no such method"},
                }
            ).encode()
            + b"\n"
        )


def main() -> None:
    buffer = b""
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        out: list[bytes] = []
        for line in lines:
            if line.strip():
                _handle(json.loads(line), out)
        if out:
            _write(b"".join(out))


if __name__ == "__main__":
    main()
